import { ProtocolError } from '../../util/errors.js';
import { RC } from './codes.js';

/**
 * MQTT 5 says of almost every property "it is a Protocol Error to include it more than once"
 * (§2.2.2.2, and each property's own section). mqtt-packet folds repeats into arrays, or lets a
 * later value replace an earlier falsy one, so repeats are found here, on the packet's bytes,
 * before it is decoded. Only User Property may repeat in what a client sends (Subscription
 * Identifier repeats only in a server's PUBLISH).
 */

/** How each property's value is encoded, by property id, to step over it. */
const enum Kind {
  Byte,
  TwoBytes,
  FourBytes,
  VarInt,
  String,
  Binary,
  StringPair,
}

const KINDS: Record<number, Kind> = {
  0x01: Kind.Byte, // payload format indicator
  0x02: Kind.FourBytes, // message expiry interval
  0x03: Kind.String, // content type
  0x08: Kind.String, // response topic
  0x09: Kind.Binary, // correlation data
  0x0b: Kind.VarInt, // subscription identifier
  0x11: Kind.FourBytes, // session expiry interval
  0x12: Kind.String, // assigned client identifier
  0x13: Kind.TwoBytes, // server keep alive
  0x15: Kind.String, // authentication method
  0x16: Kind.Binary, // authentication data
  0x17: Kind.Byte, // request problem information
  0x18: Kind.FourBytes, // will delay interval
  0x19: Kind.Byte, // request response information
  0x1a: Kind.String, // response information
  0x1c: Kind.String, // server reference
  0x1f: Kind.String, // reason string
  0x21: Kind.TwoBytes, // receive maximum
  0x22: Kind.TwoBytes, // topic alias maximum
  0x23: Kind.TwoBytes, // topic alias
  0x24: Kind.Byte, // maximum QoS
  0x25: Kind.Byte, // retain available
  0x26: Kind.StringPair, // user property
  0x27: Kind.FourBytes, // maximum packet size
  0x28: Kind.Byte, // wildcard subscription available
  0x29: Kind.Byte, // subscription identifier available
  0x2a: Kind.Byte, // shared subscription available
};

const USER_PROPERTY = 0x26;

/** A cursor over one packet's bytes that refuses to read past the end (a malformed packet). */
class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
  ) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  skip(n: number): void {
    if (n > this.left) throw new Malformed();
    this.pos += n;
  }

  u8(): number {
    if (this.left < 1) throw new Malformed();
    return this.buf[this.pos++]!;
  }

  u16(): number {
    if (this.left < 2) throw new Malformed();
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  varInt(): number {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.u8();
      value += (b & 0x7f) * multiplier;
      if ((b & 0x80) === 0) return value;
      multiplier *= 128;
    }
    throw new Malformed();
  }

  lengthPrefixed(): void {
    this.skip(this.u16());
  }
}

/** The packet is too short for its own fields: mqtt-packet reports that as malformed, with more detail. */
class Malformed extends Error {}

/** Throws a ProtocolError (0x82) when a properties block at the reader's position repeats a property. */
function checkProperties(r: Reader, where: string): void {
  const length = r.varInt();
  if (length > r.left) throw new Malformed();
  const end = r.pos + length;
  const seen = new Set<number>();
  while (r.pos < end) {
    const id = r.varInt();
    const kind = KINDS[id];
    if (kind === undefined) return; // an unknown property: mqtt-packet refuses it as malformed
    if (id !== USER_PROPERTY) {
      if (seen.has(id)) throw new ProtocolError(RC.ProtocolError, `property 0x${id.toString(16).padStart(2, '0')} appears more than once in ${where}`);
      seen.add(id);
    }
    switch (kind) {
      case Kind.Byte:
        r.skip(1);
        break;
      case Kind.TwoBytes:
        r.skip(2);
        break;
      case Kind.FourBytes:
        r.skip(4);
        break;
      case Kind.VarInt:
        r.varInt();
        break;
      case Kind.String:
      case Kind.Binary:
        r.lengthPrefixed();
        break;
      case Kind.StringPair:
        r.lengthPrefixed();
        r.lengthPrefixed();
        break;
    }
  }
}

/**
 * Checks every properties block of one whole MQTT 5 packet (fixed header included) for repeated
 * properties. `headerBytes` is the size of its fixed header. Anything else that is wrong with the
 * packet is left to the decoder.
 */
export function checkRepeatedProperties(packet: Buffer, headerBytes: number): void {
  const type = packet[0]! >> 4;
  const r = new Reader(packet, headerBytes);
  try {
    switch (type) {
      case 1: {
        // CONNECT: protocol name, level, flags, keep alive, properties, client id, [will properties, ...]
        r.lengthPrefixed();
        const level = r.u8();
        if (level !== 5) return;
        const flags = r.u8();
        r.skip(2);
        checkProperties(r, 'CONNECT');
        r.lengthPrefixed();
        if (flags & 0x04) checkProperties(r, 'the will properties of CONNECT');
        return;
      }
      case 3: {
        // PUBLISH: topic, [packet id], properties
        r.lengthPrefixed();
        if ((packet[0]! & 0x06) !== 0) r.skip(2);
        checkProperties(r, 'PUBLISH');
        return;
      }
      case 4:
      case 5:
      case 6:
      case 7: {
        // PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, [reason code, [properties]]
        r.skip(2);
        if (r.left < 2) return;
        r.skip(1);
        checkProperties(r, 'an acknowledgement');
        return;
      }
      case 8:
      case 10:
        // SUBSCRIBE, UNSUBSCRIBE: packet id, properties
        r.skip(2);
        checkProperties(r, type === 8 ? 'SUBSCRIBE' : 'UNSUBSCRIBE');
        return;
      case 14:
      case 15:
        // DISCONNECT, AUTH: [reason code, [properties]]
        if (r.left < 2) return;
        r.skip(1);
        checkProperties(r, type === 14 ? 'DISCONNECT' : 'AUTH');
        return;
      default:
        return;
    }
  } catch (err) {
    if (err instanceof Malformed) return;
    throw err;
  }
}
