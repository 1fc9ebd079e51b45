import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { ConfigError } from '../util/errors.js';

/** The flags of `eddy pub` and `eddy sub` that say who connects and how TLS is verified (as mosquitto_pub's). */
export const CONNECTION_FLAGS = {
  username: { type: 'string', short: 'u' },
  password: { type: 'string', short: 'P' },
  cafile: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  insecure: { type: 'boolean' },
} as const;

export const CONNECTION_HELP = `  -u, --username USER    user name (or in the URL: mqtt://USER:PASSWORD@HOST:PORT, percent-encoded)
  -P, --password PASS    password, or a JWT
  --cafile FILE          PEM CA certificate(s) to verify the broker with (mqtts://, wss://)
  --cert FILE            PEM client certificate, for a broker that asks for one
  --key FILE             PEM private key of --cert
  --insecure             do not verify the broker's certificate (testing only)`;

export interface ConnectionFlagValues {
  username?: string;
  password?: string;
  cafile?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
}

/** Where and how to connect: the URL without its credentials, and the options that carry them. */
export interface ConnectTarget {
  url: string;
  /** The user name, password and TLS options for mqtt.js. */
  options: IClientOptions;
}

/**
 * Takes credentials out of the URL (percent-decoded; mqtt.js would split `user:pa:ss` at the last
 * colon and keep `%40` encoded in places), puts the flags over them, and reads the TLS files. A
 * TLS flag on a plain URL is a usage error: silently switching to TLS would connect elsewhere.
 */
export function connectionTarget(rawUrl: string, values: ConnectionFlagValues, command: string): ConnectTarget {
  if (!/^(mqtts?|wss?|tcp):\/\//.test(rawUrl)) throw new ConfigError(`--url must start with mqtt://, mqtts://, ws:// or wss://, got ${JSON.stringify(rawUrl)}`, { command });
  let parsed: URL;
  try {
    parsed = new URL(rawUrl);
  } catch {
    throw new ConfigError(`--url is not a URL: ${JSON.stringify(rawUrl.replace(/\/\/[^@/]*@/, '//…@'))}`, { command });
  }
  const options: IClientOptions = {};
  const fromUrl = { username: decode(parsed.username, 'user name', command), password: decode(parsed.password, 'password', command) };
  const username = values.username ?? (fromUrl.username || undefined);
  const password = values.password ?? (parsed.password ? fromUrl.password : undefined);
  // A CONNECT with a password must carry a user name (MQTT 3.1.1, and mqtt.js for 5 too): `-P JWT` alone sends an empty one.
  if (username !== undefined || password !== undefined) options.username = username ?? '';
  if (password !== undefined) options.password = password;
  parsed.username = '';
  parsed.password = '';

  const secure = parsed.protocol === 'mqtts:' || parsed.protocol === 'wss:';
  const tlsFlag = (['cafile', 'cert', 'key', 'insecure'] as const).find((f) => values[f] !== undefined);
  if (tlsFlag && !secure) throw new ConfigError(`--${tlsFlag} is for TLS: use an mqtts:// or wss:// URL`, { command });
  if ((values.cert === undefined) !== (values.key === undefined)) throw new ConfigError(values.cert ? '--cert needs --key, its private key' : '--key needs --cert', { command });
  if (values.cafile !== undefined) options.ca = readPem(values.cafile, '--cafile', command);
  if (values.cert !== undefined) options.cert = readPem(values.cert, '--cert', command);
  if (values.key !== undefined) options.key = readPem(values.key, '--key', command);
  if (values.insecure) options.rejectUnauthorized = false;
  return { url: parsed.toString(), options };
}

function decode(text: string, what: string, command: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConfigError(`the ${what} in --url is not valid percent-encoding`, { command });
  }
}

function readPem(file: string, flag: string, command: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { command });
  }
}
