import type { EddyServer } from '../server.js';
import { EddyError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { BrokerConfig } from './config.js';
import { startedByNpm, watchAncestors } from './parent-watch.js';
import { drainFarewell } from '../transport/farewell.js';

/** Settings a reload cannot change on a running broker: a changed one is logged as waiting for a restart. */
const RESTART_KEYS = ['host', 'port', 'httpPort', 'dataDir', 'memory', 'fsync', 'logLevel', 'limits', 'access', 'redelivery', 'strict', 'auth', 'quotas', 'tls', 'http', 'sys', 'cluster', 'workers'] as const;

/** The configuration keys whose values differ between two configurations. */
function changedKeys(before: BrokerConfig, after: BrokerConfig): string[] {
  return RESTART_KEYS.filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/**
 * Runs a started broker until a signal ends it: SIGTERM and SIGINT (and, under npm, the exit of the
 * npm process, see watchAncestors) shut it down gracefully and exit 0; SIGHUP reloads what can be
 * reloaded, the AsyncAPI documents and the channel policies, re-reading the flags and the config file,
 * and the TLS certificate, key and CA from the files the broker started with (the server logs that part).
 * `readConfig` gives the configuration as it is now; it throws a ConfigError for a bad file.
 */
export function runUntilStopped(
  server: EddyServer,
  logger: Logger,
  initial: BrokerConfig,
  readConfig: () => BrokerConfig,
  options: { watchParent?: boolean } = {},
): (reason: string) => void {
  let stopping = false;
  let current = initial;
  const shutdown = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    stopWatching();
    logger.info(reason.startsWith('SIG') ? { signal: reason } : { reason }, 'shutting down');
    // A cluster node drains: its MQTT 5 clients are sent to another node (0x9C with the Server
    // Reference, when configured), where their persistent sessions wait in JetStream.
    const serverReference = initial.cluster?.serverReference;
    server.stop(initial.cluster ? { farewell: drainFarewell(serverReference) } : {}).then(
      (result) => {
        if (initial.cluster) {
          logger.info(
            { redirected: result.redirected, told: result.told, closed: result.closed, ...(serverReference ? { serverReference } : {}) },
            serverReference
              ? `drained: ${plural(result.redirected, 'MQTT 5 client')} redirected to ${serverReference} (0x9C), ${plural(result.closed - result.told, 'other connection')} closed`
              : `drained: no cluster.serverReference, ${plural(result.told, 'MQTT 5 client')} told 0x8B, ${plural(result.closed - result.told, 'other connection')} closed`,
          );
        }
        logger.info('broker stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        logger.flush?.();
        process.exit(1);
      },
    );
  };

  const reload = async (): Promise<void> => {
    if (stopping) return;
    let next: BrokerConfig;
    try {
      next = readConfig();
      const result = await server.reload({ asyncapi: next.asyncapi ?? [], channels: next.channels ?? [] });
      const restartNeeded = changedKeys(current, next);
      current = { ...current, asyncapi: next.asyncapi, channels: next.channels };
      logger.info(
        { signal: 'SIGHUP', documents: result.documents, channels: result.channels, policies: result.policies, auth: result.auth },
        `reloaded ${result.auth.length > 0 ? `the ${result.auth.join(', ')}, ` : ''}${plural(result.documents.length, 'AsyncAPI document')} (${plural(result.channels, 'channel')}) and the channel policies (${result.policies.join(', ')})`,
      );
      if (result.unchecked.length > 0) logger.warn({ messages: result.unchecked }, 'messages with a schema format Eddy cannot check are accepted unchecked');
      if (restartNeeded.length > 0) logger.warn({ keys: restartNeeded }, `changed settings that only a restart applies: ${restartNeeded.join(', ')}`);
    } catch (err) {
      if (!(err instanceof EddyError)) throw err;
      const diagnostics = (err as EddyError & { diagnostics?: string[] }).diagnostics;
      logger.error({ signal: 'SIGHUP', err: err.message, ...(diagnostics ? { diagnostics } : {}) }, `reload failed, keeping the current AsyncAPI documents and channel policies: ${err.message}`);
    }
  };
  // One reload at a time, in the order the signals came.
  let reloads = Promise.resolve();
  const onHangup = (): void => {
    reloads = reloads.then(reload).catch((err: unknown) => logger.error({ err }, 'reload failed'));
  };

  // A worker of `--workers` is watched by its primary instead, which it follows (worker-link.ts).
  const stopWatching = (options.watchParent ?? true) && startedByNpm() ? watchAncestors((what) => shutdown(`${what} (npm does not pass signals on)`)) : () => {};
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', onHangup);
  keepRunningOnStrayErrors(server, logger);
  return shutdown;
}

/**
 * The last line of defence: every socket and timer callback of the broker guards itself, so an
 * error reaching the process is a bug in a path nobody guarded. It is logged and counted
 * (`internalErrors`, eddy_internal_errors_total) and the broker goes on serving: a broker that
 * exits drops every client, while the error itself concerned one connection or one timer.
 */
function keepRunningOnStrayErrors(server: EddyServer, logger: Logger): void {
  process.on('uncaughtException', (err) => {
    server.broker.stats.internalErrors++;
    logger.error({ err }, 'uncaught exception: the broker keeps running');
  });
  process.on('unhandledRejection', (reason) => {
    server.broker.stats.internalErrors++;
    logger.error({ err: reason }, 'unhandled rejection: the broker keeps running');
  });
}
