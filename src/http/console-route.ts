import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type http from 'node:http';
import type { Logger } from '../util/logger.js';
import { sendJson } from './respond.js';

/** Where the console's assets are served from: `/console/<file>`; the page itself is `/`. */
export const CONSOLE_ASSET_PATH = '/console/';

/** The console as `npm run build` writes it (console/build.mjs), next to dist/src. */
const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** The page loads only what the broker serves: no CDN, no inline script, and no frames of it elsewhere. */
const PAGE_HEADERS: http.OutgoingHttpHeaders = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

interface ConsoleFile {
  type: string;
  body: Buffer;
  gzip: Buffer | undefined;
  etag: string;
  /** Hashed asset names never change content: cached for good. The page is revalidated. */
  immutable: boolean;
}

/**
 * Serves the web console: `/` is its page (index.html) and `/console/<name>` its assets, read once
 * from the built directory at start. Only the files found there then are served (by exact name, no
 * path is ever joined from the request, so there is no traversal), each with its content type, a
 * strong ETag, `304` on `If-None-Match`, and gzip when the client accepts it. The page and its
 * assets hold no data: everything the console shows comes from `/v1/admin/…` with the operator's
 * credentials, so they are served without authentication (the login form is part of them).
 */
export class ConsoleRoute {
  private readonly files = new Map<string, ConsoleFile>();

  constructor(
    private readonly log: Logger,
    dir: string = DEFAULT_CONSOLE_DIR,
  ) {
    this.load(dir);
  }

  /** Whether this route answers the path (GET and HEAD). */
  matches(path: string): boolean {
    return path === '/' || path === '/index.html' || path.startsWith(CONSOLE_ASSET_PATH);
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(res, 405, { error: 'method_not_allowed', message: `${path} takes GET, HEAD` }, { allow: 'GET, HEAD' });
    }
    const name = path === '/' || path === '/index.html' ? 'index.html' : path.slice(CONSOLE_ASSET_PATH.length);
    const file = this.files.get(name);
    if (!file) {
      if (this.files.size === 0) return sendJson(res, 503, { error: 'console_not_built', message: 'the web console is not built: run npm run build' });
      return sendJson(res, 404, { error: 'not_found', message: `no console file ${JSON.stringify(name.slice(0, 200))}` });
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-type': file.type,
      etag: file.etag,
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'Accept-Encoding',
      ...(name === 'index.html' ? PAGE_HEADERS : { 'x-content-type-options': 'nosniff' }),
    };
    if (etagMatches(req.headers['if-none-match'], file.etag)) return void res.writeHead(304, headers).end();
    const gzip = file.gzip && acceptsGzip(req.headers['accept-encoding']);
    const body = gzip ? file.gzip! : file.body;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private load(dir: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      this.log.warn({ dir }, 'the web console is not built (npm run build): / answers 503');
      return;
    }
    for (const name of names) {
      const type = CONTENT_TYPES[path.extname(name)];
      // Plain names only: a request names a file of this list, never a path.
      if (!type || !/^[\w.-]+$/.test(name)) continue;
      const full = path.join(dir, name);
      let body: Buffer;
      try {
        if (!fs.statSync(full).isFile()) continue;
        body = fs.readFileSync(full);
      } catch (err) {
        // A file that vanished or cannot be read is not served; the broker starts all the same.
        this.log.warn({ file: full, err: (err as Error).message }, 'a web console file could not be read');
        continue;
      }
      const compressible = !type.startsWith('image/png') && body.length > 256;
      this.files.set(name, {
        type,
        body,
        gzip: compressible ? gzipSync(body, { level: 9 }) : undefined,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
        immutable: /-[A-Z0-9]{8}\.\w+$/.test(name),
      });
    }
  }
}

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header === '*' || header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
