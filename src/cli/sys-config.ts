import { parseDuration } from '../core/channels.js';
import { ConfigError } from '../util/errors.js';

/** The `$SYS` topics' configuration: `sys: { interval: 10 }` (seconds, or a duration such as `30s`; 0 turns them off). */
export interface SysConfig {
  interval?: number;
}

export function parseSysConfig(raw: unknown, source: string): SysConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: sys must be a mapping, e.g. sys: { interval: 10 }`);
  const config: SysConfig = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key !== 'interval') throw new ConfigError(`${source}: unknown key sys.${key} (known: interval)`);
    config.interval = parseSysInterval(value, `${source}: sys.interval`);
  }
  return config;
}

/** Seconds: a number (Mosquitto's `sys_interval`), or a duration; 0 turns `$SYS` off. */
export function parseSysInterval(value: unknown, what: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${what} must be 0 or more seconds, got ${value}`);
    return value;
  }
  if (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value)) return Number(value);
  return parseDuration(value, what) / 1000;
}
