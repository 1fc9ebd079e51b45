import type { IPublishPacket, Packet } from 'mqtt-packet';
import { measureProperties, varIntSize, writeProperties, writeVarInt, type MeasuredProperties } from './properties.js';

/**
 * Encodes PUBLISH and the acknowledgements into one buffer, byte for byte what mqtt-packet's
 * generate makes of the same packet object (checked by test/fast-path-codec.test.ts), without its
 * chunk accumulator and `debug` calls. Returns undefined for anything it does not encode exactly
 * alike (an odd value type, a Buffer topic, a string payload): the caller then uses mqtt-packet.
 */

const VARBYTEINT_MAX = 268_435_455;
const EMPTY = Buffer.alloc(0);

function isPacketId(id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff;
}

/** A PUBLISH encoded, with where its packet identifier sits (to patch a copy for another subscriber). */
export interface EncodedPublish {
  bytes: Buffer;
  /** Offset of the two-byte packet identifier; -1 at QoS 0. */
  idOffset: number;
  /** Offset where the payload starts. */
  payloadOffset: number;
}

export function encodePublishFast(packet: IPublishPacket, protocolVersion: number): EncodedPublish | undefined {
  const { topic, messageId } = packet;
  const qos = packet.qos || 0;
  const payload = packet.payload || EMPTY;
  if (typeof topic !== 'string' || !Buffer.isBuffer(payload) || qos > 2) return undefined;
  if (qos > 0 && !isPacketId(messageId)) return undefined;
  const topicBytes = Buffer.byteLength(topic);
  if (topicBytes > 0xffff) return undefined;
  let props: MeasuredProperties | undefined;
  let length = 2 + topicBytes + payload.length + (qos > 0 ? 2 : 0);
  if (protocolVersion === 5) {
    props = measureProperties(packet.properties as Record<string, unknown> | undefined);
    if (!props) return undefined;
    length += varIntSize(props.length) + props.length;
  }
  if (length > VARBYTEINT_MAX) return undefined;
  const bytes = Buffer.allocUnsafe(1 + varIntSize(length) + length);
  bytes[0] = 0x30 | (qos << 1) | (packet.dup ? 0x08 : 0) | (packet.retain ? 0x01 : 0);
  let pos = writeVarInt(bytes, 1, length);
  pos = bytes.writeUInt16BE(topicBytes, pos);
  pos += bytes.write(topic, pos, 'utf8');
  let idOffset = -1;
  if (qos > 0) {
    idOffset = pos;
    pos = bytes.writeUInt16BE(messageId!, pos);
  }
  if (props) pos = writeProperties(bytes, pos, props);
  const payloadOffset = pos;
  payload.copy(bytes, pos);
  return { bytes, idOffset, payloadOffset };
}

const ACK_TYPES: Record<string, number> = { puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7 };

/** PUBACK, PUBREC, PUBREL or PUBCOMP; undefined for any other packet, or one to leave to mqtt-packet. */
export function encodeAckFast(packet: Packet, protocolVersion: number): Buffer | undefined {
  const type = ACK_TYPES[packet.cmd];
  if (type === undefined) return undefined;
  const ack = packet as Packet & { messageId?: unknown; reasonCode?: unknown; properties?: unknown; dup?: unknown };
  if (!isPacketId(ack.messageId)) return undefined;
  const reasonCode = ack.reasonCode;
  if (reasonCode !== undefined && !(typeof reasonCode === 'number' && Number.isInteger(reasonCode) && reasonCode >= 0 && reasonCode <= 0xff)) return undefined;
  const header = (type << 4) | (type === 6 ? 0x02 : 0) | (type === 6 && ack.dup ? 0x08 : 0);
  if (protocolVersion !== 5) return Buffer.from([header, 2, ack.messageId >> 8, ack.messageId & 0xff]);
  let props: MeasuredProperties | undefined;
  // As mqtt-packet: any properties object (even empty) is written; without one, the reason code
  // (and an empty properties length) only when it is not 0. Note: an absent reason code counts as "not 0".
  if (typeof ack.properties === 'object') {
    props = measureProperties(ack.properties as Record<string, unknown>);
    if (!props) return undefined;
  }
  if (!props && reasonCode === 0) return Buffer.from([header, 2, ack.messageId >> 8, ack.messageId & 0xff]);
  const propsLength = props ? props.length : 0;
  const length = 3 + varIntSize(propsLength) + propsLength;
  const bytes = Buffer.allocUnsafe(1 + varIntSize(length) + length);
  bytes[0] = header;
  let pos = writeVarInt(bytes, 1, length);
  pos = bytes.writeUInt16BE(ack.messageId, pos);
  bytes[pos++] = (reasonCode as number | undefined) ?? 0;
  if (props) writeProperties(bytes, pos, props);
  else bytes[pos] = 0;
  return bytes;
}
