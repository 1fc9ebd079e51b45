// The broker's HTTP API as the console uses it: every request carries the operator's
// Authorization header and `X-Eddy-Request: 1` (which passes the broker's cross-site checks for a
// page of its own origin, and makes a 401 carry no Basic challenge, so the browser shows no dialog).

import { parseSse, type SseEvent } from './sse.js';

/** `{"error","message","errors"?}` as the broker answers a refusal, with the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly errors: string[] = [],
  ) {
    super(message);
  }
}

const CREDENTIALS_KEY = 'eddy-console-authorization';

let authorization: string | null = sessionStorage.getItem(CREDENTIALS_KEY);
/** Told when the broker refuses the stored credentials (401), so that the login form comes back. */
let onUnauthorized: () => void = () => {};

export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

/** Keeps the credentials for this tab only (sessionStorage): gone when it closes. */
export function setAuthorization(value: string | null): void {
  authorization = value;
  if (value === null) sessionStorage.removeItem(CREDENTIALS_KEY);
  else sessionStorage.setItem(CREDENTIALS_KEY, value);
}

export function basicAuthorization(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { 'x-eddy-request': '1', ...(authorization ? { authorization } : {}), ...extra };
}

async function failure(res: Response): Promise<ApiError> {
  let body: { error?: string; message?: string; errors?: string[] } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  if (res.status === 401) onUnauthorized();
  return new ApiError(res.status, body.error ?? `http_${res.status}`, body.message ?? res.statusText, body.errors ?? []);
}

export async function request<T>(method: string, path: string, init: { body?: string; contentType?: string; signal?: AbortSignal } = {}): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(init.contentType ? { 'content-type': init.contentType } : {}),
    ...(init.body !== undefined ? { body: init.body } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
    cache: 'no-store',
  });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal): Promise<T> => request<T>('GET', path, signal ? { signal } : {});

/** `/v1/admin/<resource>/<id>`, the id percent-encoded (client ids and topics hold `/` and `#`). */
export function itemPath(resource: string, id: string): string {
  return `/v1/admin/${resource}/${encodeURIComponent(id)}`;
}

/**
 * Reads a Server-Sent Events stream with fetch (EventSource cannot send an Authorization header),
 * calling `onEvent` for each event, until `signal` aborts. Resolves when the stream ends; rejects
 * with an ApiError when the broker refuses it.
 */
export async function stream(path: string, onEvent: (event: SseEvent) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal, cache: 'no-store' });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parse = parseSse(onEvent);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parse(value);
    }
  } finally {
    reader.releaseLock();
  }
}
