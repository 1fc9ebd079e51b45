// The live AsyncAPI document (/asyncapi.json) as the console reads it: its channels, their
// messages and operations, and example payloads made from the schemas.

import { get } from './api.js';

export type Json = Record<string, unknown>;

export interface AsyncApiDocument {
  asyncapi: string;
  info: { title: string; version: string; description?: string };
  servers?: Record<string, Json>;
  channels?: Record<string, Json>;
  operations?: Record<string, Json>;
  components?: Json;
}

let cached: { at: number; doc: Promise<AsyncApiDocument> } | undefined;

/** The document, read again when the cached one is older than `maxAgeMs`. */
export function liveDocument(maxAgeMs = 5000): Promise<AsyncApiDocument> {
  if (!cached || Date.now() - cached.at > maxAgeMs) {
    const doc = get<AsyncApiDocument>('/asyncapi.json');
    cached = { at: Date.now(), doc };
    doc.catch(() => (cached = undefined));
  }
  return cached.doc;
}

/** `#/channels/x/messages/y` → the object there. */
export function resolveRef(doc: AsyncApiDocument, value: unknown): Json | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const ref = (value as Json).$ref;
  if (typeof ref !== 'string') return value as Json;
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = doc;
  for (const token of ref.slice(2).split('/')) {
    const name = token.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!at || typeof at !== 'object') return undefined;
    at = (at as Json)[name];
  }
  return at && typeof at === 'object' ? (at as Json) : undefined;
}

/** The channel of the document with this address. */
export function channelByAddress(doc: AsyncApiDocument, address: string): [string, Json] | undefined {
  return Object.entries(doc.channels ?? {}).find(([, c]) => c.address === address);
}

export function messagesOf(doc: AsyncApiDocument, channel: Json): Array<[string, Json]> {
  return Object.entries((channel.messages as Record<string, unknown>) ?? {}).flatMap(([name, m]) => {
    const message = resolveRef(doc, m);
    return message ? [[name, message] as [string, Json]] : [];
  });
}

/** An example payload for a message: its own example, else the schema's example or default, else one made from the schema. */
export function examplePayload(doc: AsyncApiDocument, message: Json): unknown {
  const examples = message.examples as Array<{ payload?: unknown }> | undefined;
  if (Array.isArray(examples) && examples[0]?.payload !== undefined) return examples[0].payload;
  return exampleOf(doc, resolveRef(doc, message.payload), 0);
}

/** A value that a JSON schema accepts, as far as a small walk can tell. */
export function exampleOf(doc: AsyncApiDocument, schema: Json | undefined, depth: number): unknown {
  if (!schema || depth > 6) return null;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if (schema.example !== undefined) return schema.example;
  if (schema.default !== undefined) return schema.default;
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const variants = (schema.oneOf ?? schema.anyOf) as unknown[] | undefined;
  if (Array.isArray(variants) && variants.length > 0) return exampleOf(doc, resolveRef(doc, variants[0]), depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      const out: Json = {};
      const properties = (schema.properties as Record<string, unknown>) ?? {};
      for (const [name, sub] of Object.entries(properties)) out[name] = exampleOf(doc, resolveRef(doc, sub), depth + 1);
      return out;
    }
    case 'array':
      return [exampleOf(doc, resolveRef(doc, schema.items), depth + 1)];
    case 'string':
      return schema.format === 'email' ? 'someone@example.com' : schema.format === 'date-time' ? new Date(0).toISOString() : 'text';
    case 'integer':
      return typeof schema.minimum === 'number' ? Math.ceil(schema.minimum) : 0;
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 0;
    case 'boolean':
      return false;
    default:
      return null;
  }
}

/** The channel id an operation's `channel: {$ref}` names. */
export function operationChannel(operation: Json): string | undefined {
  const ref = (operation.channel as Json | undefined)?.$ref;
  return typeof ref === 'string' && ref.startsWith('#/channels/') ? ref.slice('#/channels/'.length).replace(/~1/g, '/').replace(/~0/g, '~') : undefined;
}
