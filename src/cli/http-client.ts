import { ConfigError, EddyError } from '../util/errors.js';

/** The flags of a command that talks to the broker's HTTP port, with credentials. */
export const HTTP_CLIENT_FLAGS = {
  http: { type: 'string' },
  user: { type: 'string', short: 'u' },
  password: { type: 'string', short: 'P' },
  token: { type: 'string' },
} as const;

export const HTTP_CLIENT_HELP = `  --http URL          broker HTTP address (default $EDDY_HTTP_URL or http://127.0.0.1:8080)
  -u, --user USER     HTTP Basic user (a password-file user with the admin role)
  -P, --password PW   its password
  --token JWT         a Bearer token instead (its roles claim must hold admin)`;

export interface HttpClientOptions {
  http?: string;
  user?: string;
  password?: string;
  token?: string;
}

/** An HTTP answer with its JSON body. */
export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** Talks JSON to the broker's HTTP port as one identity (Basic or Bearer), failing with one clear line. */
export class HttpClient {
  readonly base: string;
  private readonly authorization: string | undefined;

  constructor(options: HttpClientOptions, command: string) {
    this.base = options.http ?? process.env.EDDY_HTTP_URL ?? 'http://127.0.0.1:8080';
    if (!/^https?:\/\//.test(this.base)) throw new ConfigError(`--http must start with http:// or https://, got ${JSON.stringify(this.base)}`, { command });
    if (options.token !== undefined && (options.user !== undefined || options.password !== undefined)) {
      throw new ConfigError('--token and -u/-P exclude each other', { command });
    }
    if (options.password !== undefined && options.user === undefined) throw new ConfigError('-P needs -u USER', { command });
    if (options.token !== undefined) this.authorization = `Bearer ${options.token}`;
    else if (options.user !== undefined) this.authorization = `Basic ${Buffer.from(`${options.user}:${options.password ?? ''}`).toString('base64')}`;
  }

  /** `path` may carry a query; statuses in `accept` come back as answers, any other 4xx/5xx is an error. */
  async request(method: string, path: string, accept: number[] = []): Promise<JsonAnswer> {
    const url = new URL(path, this.base);
    let res: Response;
    try {
      res = await fetch(url, { method, headers: this.authorization ? { authorization: this.authorization } : {} });
    } catch (err) {
      throw new EddyError('EDDY_CONNECT', `cannot reach the broker at ${url.origin}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.status >= 400 && !accept.includes(res.status)) {
      const hint = res.status === 401 ? ' (give -u USER -P PASSWORD or --token)' : '';
      throw new EddyError('EDDY_HTTP', `${method} ${url.pathname}: ${res.status} ${typeof body.message === 'string' ? body.message : res.statusText}${hint}`);
    }
    return { status: res.status, body };
  }
}
