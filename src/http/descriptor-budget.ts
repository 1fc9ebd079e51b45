import fs from 'node:fs';
import type { BrokerLimits } from '../core/limits.js';
import type { Logger } from '../util/logger.js';

/**
 * Descriptors the broker needs besides its client sockets: stdio, the listeners, the event loop's
 * own, the disk engine's log segments and checkpoint, and the few MQTT sockets past
 * `maxConnections` that are told "server busy" before they close (1 % of it at 10 000).
 */
export const DESCRIPTOR_MARGIN = 128;

/**
 * The process's soft limit on open files, from /proc/self/limits (Linux; Node has already raised it
 * to the hard limit when it could). Undefined elsewhere, when unreadable, or when unlimited.
 */
export function softFileLimit(readLimits: () => string = () => fs.readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  if (process.platform !== 'linux') return undefined;
  let text: string;
  try {
    text = readLimits();
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+)\s/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/**
 * Warns at start when the connection limits allow more sockets than the process may open: past the
 * descriptor limit, accept fails (EMFILE) for every client, and so do the disk engine's files, long
 * before either limit is reached. Returns the warning's figures, or undefined when all fits.
 */
export function checkDescriptorBudget(
  limits: Pick<BrokerLimits, 'maxConnections' | 'maxHttpConnections'>,
  log: Logger,
  softLimit: number | undefined = softFileLimit(),
): { softLimit: number; needed: number } | undefined {
  if (softLimit === undefined) return undefined;
  const needed = limits.maxConnections + limits.maxHttpConnections + DESCRIPTOR_MARGIN;
  if (needed <= softLimit) return undefined;
  log.warn(
    { softLimit, maxConnections: limits.maxConnections, maxHttpConnections: limits.maxHttpConnections, margin: DESCRIPTOR_MARGIN, needed },
    `the file descriptor limit (${softLimit}) is below maxConnections (${limits.maxConnections}) + maxHttpConnections (${limits.maxHttpConnections}) + ${DESCRIPTOR_MARGIN} = ${needed}: ` +
      'clients may be refused (EMFILE) before those limits are reached; raise `ulimit -n` or lower the limits',
  );
  return { softLimit, needed };
}
