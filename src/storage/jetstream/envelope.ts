import type { Message, MessageProperties, QoS } from '../../core/message.js';
import type { QueuedDelivery } from '../../core/storage.js';

/**
 * How the JetStream engine writes a message into a stream or KV value: a 4-byte length, the
 * message's metadata as JSON, then the payload bytes as they are (no base64: payloads are most of
 * the bytes). The same envelope carries a queue entry, with the delivery's own fields (`d`).
 * JSON rather than NATS headers because headers are text and correlation data, user properties
 * with repeated keys and empty values must come back exactly.
 */

interface EnvelopeMeta {
  t: string;
  q: QoS;
  r: boolean;
  at: number;
  e?: number;
  o?: string;
  u?: string;
  /** Properties, correlation data as base64. */
  p?: Omit<MessageProperties, 'correlationData'> & { correlationData?: string };
  /** A queue entry's delivery fields: qos, retain, subscription ids. */
  d?: { q: QoS; r: boolean; s?: number[]; n: number };
}

export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
  readonly code = 'bad-envelope' as const;
}

function metaOf(message: Message): EnvelopeMeta {
  const meta: EnvelopeMeta = { t: message.topic, q: message.qos, r: message.retain, at: message.publishedAt };
  if (message.expiresAt !== undefined) meta.e = message.expiresAt;
  if (message.origin !== undefined) meta.o = message.origin;
  if (message.originUser !== undefined) meta.u = message.originUser;
  const props = message.properties;
  if (props && Object.keys(props).length > 0) {
    const { correlationData, ...rest } = props;
    meta.p = correlationData ? { ...rest, correlationData: correlationData.toString('base64') } : rest;
  }
  return meta;
}

function frame(meta: EnvelopeMeta, payload: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.length, 0);
  return Buffer.concat([head, json, payload]);
}

export function encodeMessage(message: Message): Buffer {
  return frame(metaOf(message), message.payload);
}

export function encodeDelivery(message: Message, delivery: { qos: QoS; retain: boolean; subscriptionIds?: number[] }): Buffer {
  const meta = metaOf(message);
  meta.d = { q: delivery.qos, r: delivery.retain, n: message.seq ?? 0 };
  if (delivery.subscriptionIds?.length) meta.d.s = delivery.subscriptionIds;
  return frame(meta, message.payload);
}

function unframe(data: Uint8Array): { meta: EnvelopeMeta; payload: Buffer } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 4) throw new EnvelopeError(`envelope of ${buf.length} bytes is too short`);
  const len = buf.readUInt32BE(0);
  if (4 + len > buf.length) throw new EnvelopeError(`envelope metadata of ${len} bytes overruns the ${buf.length}-byte value`);
  let meta: EnvelopeMeta;
  try {
    meta = JSON.parse(buf.subarray(4, 4 + len).toString()) as EnvelopeMeta;
  } catch (err) {
    throw new EnvelopeError('envelope metadata is not JSON', { cause: err });
  }
  // A copy, so that a message kept in a queue does not pin the whole fetched batch's buffer.
  return { meta, payload: Buffer.from(buf.subarray(4 + len)) };
}

function messageOf(meta: EnvelopeMeta, payload: Buffer, seq: number): Message {
  const properties: MessageProperties = {};
  if (meta.p) {
    const { correlationData, ...rest } = meta.p;
    Object.assign(properties, rest);
    if (correlationData !== undefined) properties.correlationData = Buffer.from(correlationData, 'base64');
  }
  const message: Message = { topic: meta.t, payload, qos: meta.q, retain: meta.r, properties, publishedAt: meta.at, seq };
  if (meta.e !== undefined) message.expiresAt = meta.e;
  if (meta.o !== undefined) message.origin = meta.o;
  if (meta.u !== undefined) message.originUser = meta.u;
  return message;
}

/** A stored message; `seq` is the message stream's sequence (the engine's seq). */
export function decodeMessage(data: Uint8Array, seq: number): Message {
  const { meta, payload } = unframe(data);
  return messageOf(meta, payload, seq);
}

/** A queue entry; the message keeps the seq it has in the message stream (written after that stream's PubAck). */
export function decodeDelivery(data: Uint8Array): QueuedDelivery {
  const { meta, payload } = unframe(data);
  if (!meta.d) throw new EnvelopeError('queue entry without delivery fields');
  const delivery: QueuedDelivery = { message: messageOf(meta, payload, meta.d.n), qos: meta.d.q, retain: meta.d.r };
  if (meta.d.s) delivery.subscriptionIds = meta.d.s;
  return delivery;
}
