import { dirname, resolve } from 'node:path';
import { ConfigError } from '../util/errors.js';
import type { TlsSettings } from '../transport/tls-credentials.js';
import { parseInteger } from './args.js';

/** The `tls:` mapping of the config file, and each key's flag. */
const TLS_KEYS = {
  cert: '--tls-cert',
  key: '--tls-key',
  ca: '--tls-ca',
  port: '--tls-port',
  requireClientCert: '--require-client-cert',
  http: '--tls-http',
  httpPort: '--tls-http-port',
} as const satisfies Record<keyof TlsSettings, string>;

export const TLS_FLAGS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-port': { type: 'string' },
  'require-client-cert': { type: 'boolean' },
  'tls-http': { type: 'boolean' },
  'tls-http-port': { type: 'string' },
} as const;

export const TLS_HELP = `  --tls-cert FILE           PEM server certificate (chain): MQTT over TLS on --tls-port
  --tls-key FILE            PEM private key of --tls-cert (unencrypted)
  --tls-ca FILE             PEM CA that client certificates are verified against; clients are asked for one
  --tls-port PORT           MQTT over TLS port (default 8883; 0 = any free port)
  --require-client-cert     refuse TLS clients without a certificate that --tls-ca verifies
  --tls-http                the HTTP port serves HTTPS (and WSS at /mqtt) instead of HTTP
  --tls-http-port PORT      a second listener, HTTPS, beside the plain HTTP port`;

type TlsFlagValues = { [K in keyof typeof TLS_FLAGS]?: (typeof TLS_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

/** The config file's `tls:` mapping, its paths made absolute against the file's directory. */
export function parseTlsMapping(raw: unknown, source: string): Partial<TlsSettings> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: tls must be a mapping (${Object.keys(TLS_KEYS).join(', ')})`);
  const tls: Partial<TlsSettings> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!(key in TLS_KEYS)) throw new ConfigError(`${source}: unknown key tls.${key} (known: ${Object.keys(TLS_KEYS).join(', ')})`);
    if (key === 'cert' || key === 'key' || key === 'ca') {
      if (typeof value !== 'string' || value === '') throw new ConfigError(`${source}: tls.${key} must be a file name`);
      tls[key] = resolve(dirname(resolve(source)), value);
    } else if (key === 'port' || key === 'httpPort') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) throw new ConfigError(`${source}: tls.${key} must be a port number 0..65535`);
      tls[key] = value;
    } else {
      if (typeof value !== 'boolean') throw new ConfigError(`${source}: tls.${key} must be true or false`);
      tls[key as 'requireClientCert' | 'http'] = value;
    }
  }
  return tls;
}

/** The flags over the file's mapping (flag paths are relative to the working directory). */
export function mergeTlsFlags(file: Partial<TlsSettings> | undefined, values: TlsFlagValues): Partial<TlsSettings> | undefined {
  const tls: Partial<TlsSettings> = { ...file };
  if (values['tls-cert'] !== undefined) tls.cert = resolve(values['tls-cert']);
  if (values['tls-key'] !== undefined) tls.key = resolve(values['tls-key']);
  if (values['tls-ca'] !== undefined) tls.ca = resolve(values['tls-ca']);
  const port = parseInteger(values['tls-port'], '--tls-port', 0, 65535);
  if (port !== undefined) tls.port = port;
  const httpPort = parseInteger(values['tls-http-port'], '--tls-http-port', 0, 65535);
  if (httpPort !== undefined) tls.httpPort = httpPort;
  if (values['require-client-cert']) tls.requireClientCert = true;
  if (values['tls-http']) tls.http = true;
  return Object.keys(tls).length > 0 ? tls : undefined;
}

/**
 * Checks that the TLS settings work together, one line per problem; the files themselves are read
 * (and checked) when the broker starts. `ports` are the other listeners, to refuse a port given twice.
 */
export function checkTlsSettings(tls: Partial<TlsSettings> | undefined, ports: { port?: number; httpPort?: number }): TlsSettings | undefined {
  const given = (Object.keys(tls ?? {}) as Array<keyof TlsSettings>).filter((k) => tls![k] !== undefined && tls![k] !== false);
  if (tls === undefined || given.length === 0) return undefined;
  const name = (key: keyof TlsSettings): string => `${TLS_KEYS[key]} (tls.${key})`;
  if (tls.cert === undefined || tls.key === undefined) {
    const missing = tls.cert === undefined ? 'cert' : 'key';
    throw new ConfigError(`${name(given[0]!)} needs ${name(missing)}: TLS needs both a certificate and its private key`);
  }
  if (tls.requireClientCert && tls.ca === undefined) {
    throw new ConfigError(`${name('requireClientCert')} needs ${name('ca')}, the CA that client certificates are verified against`);
  }
  if (tls.http && tls.httpPort !== undefined) {
    throw new ConfigError(`${name('http')} and ${name('httpPort')} exclude each other: the first makes the HTTP port HTTPS, the second opens HTTPS beside it`);
  }
  const taken: Array<[string, number | undefined]> = [
    ['--port (port)', ports.port ?? 1883],
    ['--http-port (httpPort)', ports.httpPort ?? 8080],
    [name('port'), tls.port ?? 8883],
    [name('httpPort'), tls.httpPort],
  ];
  for (let i = 0; i < taken.length; i++) {
    for (let j = i + 1; j < taken.length; j++) {
      const [a, p] = taken[i]!;
      const [b, q] = taken[j]!;
      if (p !== undefined && p !== 0 && p === q) throw new ConfigError(`${a} and ${b} are both ${p}: each listener needs its own port`);
    }
  }
  return tls as TlsSettings;
}
