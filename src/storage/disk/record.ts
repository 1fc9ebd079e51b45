import type { Message, MessageProperties, QoS } from '../../core/message.js';
import type { DurableDelivery, SessionRecord } from '../../core/storage.js';
import type { QueueCheckpoint } from './disk-queue.js';
import { crc32 } from './crc32.js';

/**
 * One log record:  u32 bodyLength | u32 crc32(body) | body
 * body:            u8 type | type-specific fields (little endian)
 *
 * A MESSAGE body:  f64 seq | f64 publishedAt | f64 expiresAt (0 = none) | u8 flags (qos, retain, copy)
 *                  | u16 topicLength | topic | u32 metaLength | meta (JSON of properties and origin)
 *                  | u16 deliveryCount | delivery… | u32 payloadLength | payload
 * A delivery:      u32 queueId | u8 flags (qos, retain) | u8 subscriptionIdCount | u32 subscriptionId…
 * A STATE body:    u32 jsonLength | json   (session changes, and queue cursors between checkpoints)
 *
 * Deliveries name the durable queues (persistent sessions) the message was routed to when it was
 * published, with the QoS, retain flag and subscription ids it is delivered with.
 */
export const HEADER_BYTES = 8;
export const RecordType = { Message: 1, State: 2 } as const;

export interface MessageRecord {
  type: typeof RecordType.Message;
  message: Message;
  deliveries: DurableDelivery[];
  /**
   * A retained message written again further on in the log (compaction), so that the segment
   * holding the original can be deleted: it is the topic's retained message, never history.
   */
  copy: boolean;
}

const FLAG_RETAIN = 4;
const FLAG_COPY = 8;

export interface StateRecord {
  type: typeof RecordType.State;
  change: StateChange;
}

export type LogRecord = MessageRecord | StateRecord;

/** Changes to broker state, written to the log so they share its ordering and group commit. */
export type StateChange =
  | { op: 'session'; record: SessionRecord; queueId: number }
  | { op: 'session-end'; clientId: string }
  /** Where queues stood when written: acknowledgements between checkpoints, so a restart resends less. */
  | { op: 'cursors'; queues: QueueCheckpoint[] };

interface StoredMeta {
  p?: MessageProperties & { correlationData?: string };
  o?: string;
  u?: string;
}

export function encodeMessageRecord(message: Message, deliveries: readonly DurableDelivery[], copy = false): Buffer {
  const topic = Buffer.from(message.topic);
  const meta = encodeMeta(message);
  let deliveryBytes = 0;
  for (const d of deliveries) deliveryBytes += 6 + 4 * (d.subscriptionIds?.length ?? 0);
  const bodyLength = 1 + 8 + 8 + 8 + 1 + 2 + topic.length + 4 + meta.length + 2 + deliveryBytes + 4 + message.payload.length;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  let o = HEADER_BYTES;
  buf[o++] = RecordType.Message;
  buf.writeDoubleLE(message.seq ?? 0, o);
  o += 8;
  buf.writeDoubleLE(message.publishedAt, o);
  o += 8;
  buf.writeDoubleLE(message.expiresAt ?? 0, o);
  o += 8;
  buf[o++] = message.qos | (message.retain ? FLAG_RETAIN : 0) | (copy ? FLAG_COPY : 0);
  buf.writeUInt16LE(topic.length, o);
  o += 2;
  o += topic.copy(buf, o);
  buf.writeUInt32LE(meta.length, o);
  o += 4;
  o += meta.copy(buf, o);
  buf.writeUInt16LE(deliveries.length, o);
  o += 2;
  for (const d of deliveries) {
    buf.writeUInt32LE(d.queueId, o);
    buf[o + 4] = d.qos | (d.retain ? 4 : 0);
    const ids = d.subscriptionIds ?? [];
    buf[o + 5] = ids.length;
    o += 6;
    for (const id of ids) {
      buf.writeUInt32LE(id, o);
      o += 4;
    }
  }
  buf.writeUInt32LE(message.payload.length, o);
  o += 4;
  message.payload.copy(buf, o);
  return seal(buf);
}

export function encodeStateRecord(change: StateChange): Buffer {
  const json = Buffer.from(JSON.stringify(change));
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 1 + 4 + json.length);
  buf[HEADER_BYTES] = RecordType.State;
  buf.writeUInt32LE(json.length, HEADER_BYTES + 1);
  json.copy(buf, HEADER_BYTES + 5);
  return seal(buf);
}

function seal(buf: Buffer): Buffer {
  buf.writeUInt32LE(buf.length - HEADER_BYTES, 0);
  buf.writeUInt32LE(crc32(buf, HEADER_BYTES), 4);
  return buf;
}

function encodeMeta(message: Message): Buffer {
  const meta: StoredMeta = {};
  const p = message.properties;
  if (Object.keys(p).length > 0) {
    meta.p = { ...p, correlationData: p.correlationData?.toString('base64') } as StoredMeta['p'];
    if (p.correlationData === undefined) delete meta.p!.correlationData;
  }
  if (message.origin !== undefined) meta.o = message.origin;
  if (message.originUser !== undefined) meta.u = message.originUser;
  return meta.p || meta.o || meta.u ? Buffer.from(JSON.stringify(meta)) : Buffer.alloc(0);
}

export type ReadResult =
  | { kind: 'record'; record: LogRecord; size: number }
  | { kind: 'incomplete' }
  | { kind: 'corrupt'; reason: string };

/**
 * Decodes the record at `offset`. `incomplete` means the buffer ends inside it (read more, or at
 * the end of the log: a torn write); `corrupt` means its checksum or structure is wrong.
 */
export function decodeRecord(buf: Buffer, offset: number, maxBodyBytes: number): ReadResult {
  if (buf.length - offset < HEADER_BYTES) return { kind: 'incomplete' };
  const length = buf.readUInt32LE(offset);
  if (length === 0 || length > maxBodyBytes) return { kind: 'corrupt', reason: `implausible record length ${length}` };
  if (buf.length - offset < HEADER_BYTES + length) return { kind: 'incomplete' };
  const start = offset + HEADER_BYTES;
  const end = start + length;
  if (crc32(buf, start, end) !== buf.readUInt32LE(offset + 4)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  try {
    return { kind: 'record', record: decodeBody(buf, start, end), size: HEADER_BYTES + length };
  } catch (err) {
    return { kind: 'corrupt', reason: (err as Error).message };
  }
}

function decodeBody(buf: Buffer, start: number, end: number): LogRecord {
  let o = start;
  const type = buf[o++];
  if (type === RecordType.State) {
    const length = buf.readUInt32LE(o);
    return { type, change: JSON.parse(buf.toString('utf8', o + 4, o + 4 + length)) as StateChange };
  }
  if (type !== RecordType.Message) throw new Error(`unknown record type ${type}`);
  const seq = buf.readDoubleLE(o);
  o += 8;
  const publishedAt = buf.readDoubleLE(o);
  o += 8;
  const expiresAt = buf.readDoubleLE(o);
  o += 8;
  const flags = buf[o++]!;
  const topicLength = buf.readUInt16LE(o);
  o += 2;
  const topic = buf.toString('utf8', o, o + topicLength);
  o += topicLength;
  const metaLength = buf.readUInt32LE(o);
  o += 4;
  const meta: StoredMeta = metaLength > 0 ? JSON.parse(buf.toString('utf8', o, o + metaLength)) : {};
  o += metaLength;
  const deliveryCount = buf.readUInt16LE(o);
  o += 2;
  const deliveries: DurableDelivery[] = new Array(deliveryCount);
  for (let i = 0; i < deliveryCount; i++) {
    const queueId = buf.readUInt32LE(o);
    const dflags = buf[o + 4]!;
    const idCount = buf[o + 5]!;
    o += 6;
    const delivery: DurableDelivery = { queueId, qos: (dflags & 3) as QoS, retain: (dflags & 4) !== 0 };
    if (idCount > 0) {
      delivery.subscriptionIds = [];
      for (let j = 0; j < idCount; j++, o += 4) delivery.subscriptionIds.push(buf.readUInt32LE(o));
    }
    deliveries[i] = delivery;
  }
  const payloadLength = buf.readUInt32LE(o);
  o += 4;
  if (o + payloadLength !== end) throw new Error('record length does not match its fields');
  // Copy: the read buffer is reused for the next chunk.
  const payload = Buffer.from(buf.subarray(o, o + payloadLength));
  const properties: MessageProperties = {};
  if (meta.p) {
    Object.assign(properties, meta.p);
    if (meta.p.correlationData !== undefined) properties.correlationData = Buffer.from(meta.p.correlationData, 'base64');
  }
  const message: Message = { topic, payload, qos: (flags & 3) as QoS, retain: (flags & FLAG_RETAIN) !== 0, properties, publishedAt, seq };
  if (expiresAt !== 0) message.expiresAt = expiresAt;
  if (meta.o !== undefined) message.origin = meta.o;
  if (meta.u !== undefined) message.originUser = meta.u;
  return { type: RecordType.Message, message, deliveries, copy: (flags & FLAG_COPY) !== 0 };
}
