import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ConfigError, EddyError } from '../util/errors.js';
import { describeConnectError, redactUrl } from './connect-errors.js';

/** The flags of the commands that talk to the broker's HTTP port: who is asking, and how HTTPS is verified. */
export const HTTP_AUTH_FLAGS = {
  username: { type: 'string', short: 'u' },
  password: { type: 'string', short: 'P' },
  token: { type: 'string' },
  cafile: { type: 'string' },
  insecure: { type: 'boolean' },
} as const;

export const HTTP_AUTH_HELP = `  -u, --username USER  HTTP Basic user (or in the URL: https://USER:PASSWORD@HOST:PORT)
  -P, --password PASS  HTTP Basic password
  --token JWT          Authorization: Bearer JWT
  --cafile FILE        PEM CA certificate(s) to verify an https:// broker with
  --insecure           do not verify the broker's certificate (testing only)`;

export interface HttpAuthValues {
  username?: string;
  password?: string;
  token?: string;
  cafile?: string;
  insecure?: boolean;
}

/** A request as the flags describe it: the URL without credentials, the Authorization header, the TLS options. */
export interface HttpTarget {
  url: URL;
  headers: Record<string, string>;
  tls: https.RequestOptions;
}

/** Credentials from the URL (percent-decoded) under the flags; Basic and Bearer exclude each other. */
export function httpTarget(url: URL, values: HttpAuthValues, command: string): HttpTarget {
  const username = values.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password = values.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  url.username = '';
  url.password = '';
  if (values.token !== undefined && (username !== undefined || password !== undefined)) throw new ConfigError('--token (Bearer) and a user name/password (Basic) exclude each other', { command });
  if (password !== undefined && username === undefined) throw new ConfigError('--password needs --username (-u)', { command });
  const headers: Record<string, string> = {};
  if (values.token !== undefined) headers.authorization = `Bearer ${values.token}`;
  else if (username !== undefined) headers.authorization = `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
  if ((values.cafile !== undefined || values.insecure) && url.protocol !== 'https:') throw new ConfigError(`--${values.cafile !== undefined ? 'cafile' : 'insecure'} is for an https:// broker address`, { command });
  const tls: https.RequestOptions = {};
  if (values.cafile !== undefined) {
    try {
      tls.ca = readFileSync(values.cafile);
    } catch (err) {
      throw new ConfigError(`cannot read --cafile ${values.cafile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { command });
    }
  }
  if (values.insecure) tls.rejectUnauthorized = false;
  return { url, headers, tls };
}

/**
 * Sends one request and reads a JSON answer. node:http rather than fetch: fetch takes neither a
 * CA file nor a URL with credentials. A connection or TLS failure is one line (EDDY_CONNECT).
 */
export function requestJson(target: HttpTarget, method: string): Promise<{ status: number; statusText: string; body: unknown }> {
  const { url } = target;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method, headers: { accept: 'application/json', ...target.headers }, ...target.tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => reject(new EddyError('EDDY_CONNECT', `the broker at ${url.origin} broke off its answer: ${err.message}`)));
      res.on('end', () => {
        let body: unknown = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          // not JSON: the status says what happened
        }
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body });
      });
    });
    req.on('error', (err: Error & { code?: string }) => {
      reject(new EddyError('EDDY_CONNECT', `cannot reach the broker at ${redactUrl(url.origin)}: ${describeConnectError(err, url.hostname)}`));
    });
    req.end();
  });
}
