import type { IPubackPacket, IPubcompPacket, IPublishPacket, IPubrecPacket, IPubrelPacket } from 'mqtt-packet';
import { ProtocolError } from '../../../util/errors.js';
import { RC } from '../codes.js';
import { decodeProperties, malformed } from './properties.js';

/** The packets the fast path decodes; every other type goes through mqtt-packet. */
export type FastPacket = IPublishPacket | IPubackPacket | IPubrecPacket | IPubrelPacket | IPubcompPacket;

const ACK_CMDS = ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const;
/** mqtt-packet's MQTT5_PUBACK_PUBREC_CODES and MQTT5_PUBREL_PUBCOMP_CODES. */
const PUBACK_PUBREC_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]);
const PUBREL_PUBCOMP_CODES = new Set([0x00, 0x92]);

/** True for the packet types `decodeFast` handles (PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP). */
export function isFastPathType(firstByte: number): boolean {
  const type = firstByte >> 4;
  return type >= 3 && type <= 7;
}

/**
 * Decodes one whole PUBLISH or acknowledgement straight from the framed bytes (a view of the socket
 * chunk), into the object mqtt-packet's parser would emit for it, without its buffer list or its
 * per-packet `debug` calls. What it checks is what mqtt-packet checks (QoS, the reason codes it
 * knows) plus the repeated-property rule of `checkRepeatedProperties` (0x82), and it is stricter
 * where mqtt-packet would read a field past the packet's end: that is malformed (0x81) here.
 * The payload is a view of `bytes`, as mqtt-packet's is of its buffer list.
 */
export function decodeFast(bytes: Buffer, protocolVersion: number): FastPacket {
  const first = bytes[0]!;
  let pos = 1;
  let length = 0;
  let multiplier = 1;
  for (;;) {
    if (pos > 4 || pos >= bytes.length) throw malformed('invalid remaining length');
    const b = bytes[pos++]!;
    length += (b & 0x7f) * multiplier;
    if ((b & 0x80) === 0) break;
    multiplier *= 128;
  }
  const end = pos + length;
  if (end !== bytes.length) throw malformed('remaining length does not match the packet');
  const qos = (first >> 1) & 0x03;
  if (qos === 3) throw malformed('Packet must not have both QoS bits set to 1');
  const retain = (first & 0x01) !== 0;
  const dup = (first & 0x08) !== 0;
  const v5 = protocolVersion === 5;
  const type = first >> 4;

  if (type === 3) {
    if (pos + 2 > end) throw malformed('Cannot parse topic');
    const topicEnd = pos + 2 + bytes.readUInt16BE(pos);
    if (topicEnd > end) throw malformed('Cannot parse topic');
    const topic = bytes.toString('utf8', pos + 2, topicEnd);
    pos = topicEnd;
    const packet = { cmd: 'publish', retain, qos, dup, length, topic, payload: undefined as unknown as Buffer } as IPublishPacket;
    if (qos > 0) {
      if (pos + 2 > end) throw malformed('Cannot parse messageId');
      packet.messageId = bytes.readUInt16BE(pos);
      pos += 2;
    }
    if (v5) {
      const decoded = decodeProperties(bytes, pos, end, 'PUBLISH');
      if (decoded.count > 0) packet.properties = decoded.properties as IPublishPacket['properties'];
      pos = decoded.end;
    }
    packet.payload = bytes.subarray(pos, end);
    return packet;
  }

  if (type < 4 || type > 7) throw new ProtocolError(RC.ProtocolError, `packet type ${type} is not on the fast path`);
  const cmd = ACK_CMDS[type - 4]!;
  // mqtt-packet's Packet carries topic and payload (null) on every packet.
  const ack = { cmd, retain, qos, dup, length, topic: null, payload: null } as unknown as IPubackPacket | IPubrecPacket | IPubrelPacket | IPubcompPacket;
  if (length < 2) throw malformed('Cannot parse messageId');
  ack.messageId = bytes.readUInt16BE(pos);
  if (v5) {
    if (length > 2) {
      const reasonCode = bytes[pos + 2]!;
      const known = type === 4 || type === 5 ? PUBACK_PUBREC_CODES : PUBREL_PUBCOMP_CODES;
      if (!known.has(reasonCode)) throw malformed(`Invalid ${cmd} reason code`);
      ack.reasonCode = reasonCode;
    } else {
      ack.reasonCode = 0;
    }
    if (length > 3) {
      const decoded = decodeProperties(bytes, pos + 3, end, 'an acknowledgement');
      if (decoded.count > 0) ack.properties = decoded.properties as IPubackPacket['properties'];
    }
  }
  return ack;
}
