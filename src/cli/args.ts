import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../util/errors.js';
import { nearest } from './suggest.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with Eddy's error style: an unknown or malformed flag becomes a one-line ConfigError. */
export function parseFlags<O extends Options>(args: string[], options: O, command: string): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError(describeFlagError(err as Error & { code?: string }, options, command), { command });
  }
}

/** Node's parseArgs messages, rewritten as one short line; an unknown flag gets the nearest known one. */
function describeFlagError(err: Error & { code?: string }, options: Options, command: string): string {
  const message = err.message.split('\n')[0]!;
  const unknown = /^Unknown option '(.+?)'/.exec(message);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const flag = unknown[1]!;
    const known = Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
    const guess = nearest(flag, known);
    return `unknown option ${flag} ${guess ? `(did you mean ${guess}?)` : `(see ${command} --help)`}`;
  }
  const missing = /^Option '(?:-\w, )?(-[^\s']+)(?: <value>)?' argument missing/.exec(message);
  if (missing) return `option ${missing[1]} needs a value`;
  const noValue = /^Option '(?:-\w, )?(-[^\s']+)' does not take an argument/.exec(message);
  if (noValue) return `option ${noValue[1]} takes no value`;
  return message.replace(/\. To specify a positional argument.*$/, '').replace(/^./, (c) => c.toLowerCase());
}

export function parseInteger(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new ConfigError(`${flag} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseQos(value: string | undefined, flag = '--qos'): 0 | 1 | 2 | undefined {
  return parseInteger(value, flag, 0, 2) as 0 | 1 | 2 | undefined;
}

/** `--header k=v` pairs as MQTT 5 user properties; a repeated key becomes a list. */
export function parseHeaders(values: string[] | undefined): Record<string, string | string[]> | undefined {
  if (!values || values.length === 0) return undefined;
  const headers: Record<string, string | string[]> = {};
  for (const pair of values) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--header must look like key=value, got ${JSON.stringify(pair)}`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const existing = headers[key];
    headers[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return headers;
}
