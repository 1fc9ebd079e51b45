import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../util/logger.js';

/** The HTTP port's settings against browsers used by other sites (config `http:`, flag `--protect-status`). */
export interface HttpSecurityOptions {
  /**
   * Origins whose pages may use the broker from a browser: `https://app.example.com`, or `*` for
   * any. Default: only the request's own origin (its Host, on this listener's scheme). A list
   * replaces that default: name the broker's own origin in it too when pages it serves need it.
   */
  allowedOrigins?: string[];
  /** /metrics and /healthz need an authenticated identity (401 otherwise). */
  protectStatus?: boolean;
}

/** What the policy refused (on /healthz `http`, and in /metrics). */
export interface OriginStats {
  /** WebSocket upgrades at /mqtt refused for their Origin (403). */
  originRefused: number;
  /** Requests refused as cross-site (403 `cross_site`). */
  crossSiteRefused: number;
}

/** What a form, or a fetch without a CORS preflight, may send (the Fetch standard's CORS-safelisted Content-Type values). */
const SIMPLE_CONTENT_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);
/** Proves the request is not a form or a simple fetch: no browser sends it cross-site without a preflight, which gets no CORS answer. */
export const EDDY_REQUEST_HEADER = 'x-eddy-request';
/** A refusal is logged the first time and every this many times after: a flood must not become a log flood. */
const LOG_EVERY = 1000;

/** `scheme://host[:port]` as browsers send it in `Origin` (default ports dropped, lower case); undefined for anything else (`null` included). */
export function normalOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash || text.endsWith('/')) return undefined;
  return `${url.protocol}//${url.host}`;
}

/** Why an `http.allowedOrigins` entry is not an origin; undefined when it is one (or `*`). */
export function invalidOrigin(entry: unknown): string | undefined {
  if (entry === '*') return undefined;
  if (typeof entry !== 'string' || normalOrigin(entry) === undefined) return `${JSON.stringify(entry)} is not an origin like https://app.example.com (scheme, host and port only) or *`;
  return undefined;
}

/**
 * Keeps pages of other sites from using a visitor's browser against the broker (cross-site
 * WebSocket hijacking, CSRF): a browser attaches cached HTTP Basic credentials, and reaches a
 * broker on loopback or an intranet, whatever page asks. Requests without `Origin` and without
 * `Sec-Fetch-Site` are not from a browser page (curl, the SDK, the CLI, Node's fetch, which sends
 * `Sec-Fetch-Mode` only) and are not concerned. The broker sends no CORS headers, so no page of
 * another origin can send a request a form could not (a non-simple content type, a custom header).
 */
export class OriginPolicy {
  readonly stats: OriginStats = { originRefused: 0, crossSiteRefused: 0 };
  private readonly any: boolean;
  private readonly listed: Set<string> | undefined;

  constructor(
    allowedOrigins: string[] | undefined,
    private readonly log: Logger,
  ) {
    this.any = allowedOrigins?.includes('*') ?? false;
    this.listed = allowedOrigins && new Set(allowedOrigins.filter((o) => o !== '*').map((o) => normalOrigin(o) ?? o));
  }

  /** Whether a WebSocket upgrade at /mqtt may go on: no Origin (a native client), or an allowed one. Counts and logs a refusal. */
  upgradeAllowed(req: http.IncomingMessage): boolean {
    const origin = single(req, 'origin');
    if (origin === undefined || this.allows(origin, req)) return true;
    if (this.stats.originRefused++ % LOG_EVERY === 0) {
      this.log.warn({ origin: origin.slice(0, 200), host: single(req, 'host'), remote: req.socket.remoteAddress, times: this.stats.originRefused }, 'WebSocket upgrade refused: Origin not allowed (http.allowedOrigins)');
    }
    return false;
  }

  /**
   * Why a request that changes something is refused as cross-site (403 `cross_site`); undefined
   * when it may go on. Refused: `Sec-Fetch-Site: cross-site`; an `Origin` not allowed; and a POST from
   * a browser (`Origin` or `Sec-Fetch-Site` present) whose body a form could have sent, without
   * `X-Eddy-Request: 1`. Counts and logs a refusal.
   */
  crossSiteRefusal(req: http.IncomingMessage): string | undefined {
    const origin = single(req, 'origin');
    const site = single(req, 'sec-fetch-site');
    let why: string | undefined;
    if (site?.toLowerCase() === 'cross-site') why = 'a cross-site request (Sec-Fetch-Site: cross-site) may not change anything here';
    else if (origin !== undefined && !this.allows(origin, req)) why = `requests from pages of ${origin.slice(0, 200)} may not change anything here (http.allowedOrigins)`;
    else if (req.method === 'POST' && (origin !== undefined || site !== undefined) && !preflighted(req)) {
      why = 'a POST from a browser needs a Content-Type other than text/plain, application/x-www-form-urlencoded and multipart/form-data, or the header X-Eddy-Request: 1';
    }
    if (why === undefined) return undefined;
    if (this.stats.crossSiteRefused++ % LOG_EVERY === 0) {
      this.log.warn({ method: req.method, path: (req.url ?? '').slice(0, 200), origin: origin?.slice(0, 200), secFetchSite: site, remote: req.socket.remoteAddress, times: this.stats.crossSiteRefused }, `cross-site request refused: ${why}`);
    }
    return why;
  }

  private allows(origin: string, req: http.IncomingMessage): boolean {
    if (this.any) return true;
    const normal = normalOrigin(origin);
    if (normal === undefined) return false;
    if (this.listed) return this.listed.has(normal);
    return normal === ownOrigin(req);
  }
}

/** The origin the request was sent to, as a browser would write it: this listener's scheme and the Host header. */
function ownOrigin(req: http.IncomingMessage): string | undefined {
  const host = single(req, 'host');
  if (host === undefined) return undefined;
  return normalOrigin(`${(req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http'}://${host}`);
}

/** A browser sends this request only after a CORS preflight: a content type a form cannot send, or Eddy's own header. */
function preflighted(req: http.IncomingMessage): boolean {
  if (single(req, EDDY_REQUEST_HEADER) === '1') return true;
  const type = single(req, 'content-type')?.split(';')[0]!.trim().toLowerCase();
  // No Content-Type at all is what a fetch with a Blob body sends without a preflight.
  return type !== undefined && type !== '' && !SIMPLE_CONTENT_TYPES.has(type);
}

function single(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
