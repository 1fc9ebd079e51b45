import type http from 'node:http';
import { EddyError } from '../util/errors.js';

/**
 * A request the HTTP gateway refuses: the HTTP `status`, and a stable `code` that is the
 * `error` field of the JSON answer (`{"error": code, "message": what exactly is wrong}`).
 */
export class HttpError extends EddyError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    /** Individual problems (schema validation errors), sent as `errors`. */
    readonly details?: string[],
  ) {
    super(code, message);
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

export function sendError(res: http.ServerResponse, err: HttpError, headers: http.OutgoingHttpHeaders = {}): void {
  sendJson(res, err.status, { error: err.code, message: err.message, ...(err.details ? { errors: err.details } : {}) }, headers);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Node hands over header values (and the request target) as Latin-1, one character per byte.
 * Clients such as curl send UTF-8 bytes, so the text is read back as UTF-8 where those bytes are
 * valid UTF-8, and kept as Latin-1 otherwise.
 */
export function utf8FromLatin1(text: string): string {
  // Pure ASCII reads the same either way (the common case: no copy).
  if (!/[\u0080-\u00ff]/.test(text)) return text;
  try {
    return utf8.decode(Buffer.from(text, 'latin1'));
  } catch {
    return text;
  }
}
