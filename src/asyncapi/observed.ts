import { isUtf8 } from 'node:buffer';
import type { Message } from '../core/message.js';

/** A JSON Schema inferred from payloads: the subset the inference produces. */
export interface InferredSchema {
  type?: string | string[];
  properties?: Record<string, InferredSchema>;
  required?: string[];
  items?: InferredSchema;
  format?: string;
}

export interface ObservedChannel {
  topic: string;
  contentType: string | undefined;
  messages: number;
  firstSeen: number;
  lastSeen: number;
  schema: InferredSchema | undefined;
}

/** Payloads sampled per channel: every one of the first SAMPLE_ALL, then one in SAMPLE_EVERY. */
const SAMPLE_ALL = 20;
const SAMPLE_EVERY = 100;
/** Channels tracked at most; a broker flooded with random topics does not grow without bound. */
const MAX_CHANNELS = 1000;


/**
 * Where the SDK's `request()` takes its replies: `_inbox/<clientId>/<random>` (packages/client). An
 * inbox is one client's reply address, named afresh for each client, not a channel of the system:
 * listed, each requester would add a channel to the live document.
 */
const SDK_INBOX_PREFIX = '_inbox/';

/**
 * Records the channels clients publish on that no AsyncAPI document declares, with a JSON Schema
 * inferred from sampled payloads and refined as more arrive: the live document lists them. Replies
 * to the SDK's requests, on the requester's inbox, are not recorded.
 */
export class TrafficRecorder {
  readonly channels = new Map<string, ObservedChannel>();
  /** Channels not tracked because MAX_CHANNELS was reached. */
  untracked = 0;

  record(message: Message): void {
    if (message.topic.startsWith(SDK_INBOX_PREFIX)) return;
    let channel = this.channels.get(message.topic);
    const now = Date.now();
    if (!channel) {
      // Braces would read as AsyncAPI channel parameters in the live document.
      if (this.channels.size >= MAX_CHANNELS || /[{}]/.test(message.topic)) {
        this.untracked++;
        return;
      }
      channel = { topic: message.topic, contentType: message.properties.contentType, messages: 0, firstSeen: now, lastSeen: now, schema: undefined };
      this.channels.set(message.topic, channel);
    }
    channel.messages++;
    channel.lastSeen = now;
    if (channel.messages > SAMPLE_ALL && channel.messages % SAMPLE_EVERY !== 0) return;
    channel.contentType ??= message.properties.contentType;
    const sample = inferPayload(message.payload, message.properties.contentType);
    channel.schema = channel.schema ? mergeSchemas(channel.schema, sample) : sample;
  }
}

/** JSON when it parses as JSON (whatever the content type says), else a string or binary. */
export function inferPayload(payload: Buffer, contentType: string | undefined): InferredSchema {
  // isUtf8 rather than a fatal TextDecoder: a binary payload would throw, and a throw per sampled
  // message was 2-6% of the broker's CPU with binary payloads (bench profiles).
  if (!isUtf8(payload)) return { type: 'string', format: 'binary' };
  const decoded = payload.toString('utf8');
  // As TextDecoder did: a leading byte order mark is not part of the text.
  const text = decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded;
  if (!contentType || /json/i.test(contentType)) {
    try {
      return inferValue(JSON.parse(text));
    } catch {
      // not JSON: a string
    }
  }
  return { type: 'string' };
}

export function inferValue(value: unknown): InferredSchema {
  if (value === null) return { type: 'null' };
  if (Array.isArray(value)) {
    const items = value.map(inferValue).reduce<InferredSchema | undefined>((a, b) => (a ? mergeSchemas(a, b) : b), undefined);
    return items ? { type: 'array', items } : { type: 'array' };
  }
  switch (typeof value) {
    case 'number':
      return { type: Number.isInteger(value) ? 'integer' : 'number' };
    case 'boolean':
      return { type: 'boolean' };
    case 'string':
      return isDateTime(value) ? { type: 'string', format: 'date-time' } : { type: 'string' };
    case 'object': {
      const properties: Record<string, InferredSchema> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) properties[k] = inferValue(v);
      return { type: 'object', properties, required: Object.keys(properties).sort() };
    }
    default:
      return {};
  }
}

/**
 * The schema both samples satisfy: object properties are united and only those in every sample stay
 * required; integer and number make number; other differing types become a type list.
 */
export function mergeSchemas(a: InferredSchema, b: InferredSchema): InferredSchema {
  const types = new Set([...toList(a.type), ...toList(b.type)]);
  if (types.has('number')) types.delete('integer');
  const out: InferredSchema = {};
  const list = [...types].sort();
  if (list.length === 1) out.type = list[0]!;
  else if (list.length > 1) out.type = list;
  if (a.format && a.format === b.format) out.format = a.format;
  if (a.properties || b.properties) {
    const properties: Record<string, InferredSchema> = {};
    for (const key of new Set([...Object.keys(a.properties ?? {}), ...Object.keys(b.properties ?? {})])) {
      const x = a.properties?.[key];
      const y = b.properties?.[key];
      properties[key] = x && y ? mergeSchemas(x, y) : (x ?? y)!;
    }
    out.properties = properties;
    // Only a property every object sample had stays required (a sample that is not an object requires nothing).
    const required = (a.required ?? []).filter((k) => (b.type === 'object' || toList(b.type).includes('object') ? (b.required ?? []).includes(k) : true));
    const fromB = a.properties ? [] : (b.required ?? []);
    out.required = [...new Set([...required, ...fromB])].sort();
  }
  if (a.items || b.items) out.items = a.items && b.items ? mergeSchemas(a.items, b.items) : (a.items ?? b.items)!;
  return out;
}

function toList(type: string | string[] | undefined): string[] {
  return type === undefined ? [] : Array.isArray(type) ? type : [type];
}

function isDateTime(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value));
}
