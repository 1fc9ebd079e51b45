/** Headers are MQTT 5 user properties: string values, a repeated key becomes a list. */
export type Headers = Record<string, string | string[]>;

/** A payload on the wire and the content type that says how to read it. */
export interface Encoded {
  bytes: Buffer;
  contentType: string | undefined;
}

/**
 * Buffers and strings pass through untouched (a string is labelled `text/plain; charset=utf-8`, so it
 * comes back as a string); anything else is JSON (`application/json`). An explicit content type wins.
 */
export function encodePayload(payload: unknown, contentType?: string): Encoded {
  if (Buffer.isBuffer(payload)) return { bytes: payload, contentType };
  if (payload instanceof Uint8Array) return { bytes: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), contentType };
  if (typeof payload === 'string') return { bytes: Buffer.from(payload, 'utf8'), contentType: contentType ?? 'text/plain; charset=utf-8' };
  return { bytes: Buffer.from(JSON.stringify(payload) ?? 'null', 'utf8'), contentType: contentType ?? 'application/json' };
}

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json(\s*;.*)?$/i;
const TEXT_TYPE = /^text\//i;

/** JSON content types are parsed, text types become strings, everything else stays a Buffer. */
export function decodePayload(bytes: Buffer, contentType: string | undefined): unknown {
  if (contentType && JSON_TYPE.test(contentType)) return JSON.parse(bytes.toString('utf8')) as unknown;
  if (contentType && TEXT_TYPE.test(contentType)) return bytes.toString('utf8');
  return bytes;
}

export function firstHeader(headers: Headers | undefined, key: string): string | undefined {
  const value = headers?.[key];
  return Array.isArray(value) ? value[0] : value;
}
