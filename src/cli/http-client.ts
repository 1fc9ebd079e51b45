import { ConfigError, EddyError } from '../util/errors.js';
import { HTTP_AUTH_FLAGS, HTTP_AUTH_HELP, httpTarget, requestJson, type HttpAuthValues, type HttpTarget } from './http-request.js';

/** The flags of a command that talks to the broker's HTTP port, with credentials and HTTPS verification. */
export const HTTP_CLIENT_FLAGS = {
  http: { type: 'string' },
  ...HTTP_AUTH_FLAGS,
} as const;

export const HTTP_CLIENT_HELP = `  --http URL           broker HTTP address (default $EDDY_HTTP_URL or http://127.0.0.1:8080)
${HTTP_AUTH_HELP}`;

export interface HttpClientOptions extends HttpAuthValues {
  http?: string;
}

/** An HTTP answer with its JSON body. */
export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** Talks JSON to the broker's HTTP port (HTTP or HTTPS) as one identity (Basic or Bearer), failing with one clear line. */
export class HttpClient {
  private readonly target: HttpTarget;

  constructor(options: HttpClientOptions, command: string) {
    const base = options.http ?? process.env.EDDY_HTTP_URL ?? 'http://127.0.0.1:8080';
    let url: URL | undefined;
    try {
      url = new URL(base);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ConfigError(`--http must be an http:// or https:// URL, got ${JSON.stringify(base.replace(/\/\/[^@/]*@/, '//…@'))}`, { command });
    }
    this.target = httpTarget(url, options, command);
  }

  /** The broker's address, without credentials. */
  get base(): string {
    return this.target.url.origin;
  }

  /** `path` may carry a query; statuses in `accept` come back as answers, any other 4xx/5xx is an error. */
  async request(method: string, path: string, accept: number[] = []): Promise<JsonAnswer> {
    const url = new URL(path, this.target.url);
    const res = await requestJson({ ...this.target, url }, method);
    const body = (res.body && typeof res.body === 'object' ? res.body : {}) as Record<string, unknown>;
    if (res.status >= 400 && !accept.includes(res.status)) {
      const hint = res.status === 401 ? ' (give -u USER -P PASSWORD or --token)' : '';
      throw new EddyError('EDDY_HTTP', `${method} ${url.pathname}: ${res.status} ${typeof body.message === 'string' ? body.message : res.statusText}${hint}`);
    }
    return { status: res.status, body };
  }
}
