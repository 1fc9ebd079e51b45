import { ProtocolError } from '../../../util/errors.js';
import { RC } from '../codes.js';

/**
 * MQTT 5 properties for the fast path: decoded into the same objects mqtt-packet 9 produces (names,
 * booleans for its 'byte' properties, a null-prototype object for user properties, a repeated user
 * property name folded into an array), and encoded into the same bytes, in the same order, as its
 * generate. Anything the fast encoder is not sure to encode alike (a value of an odd type) makes it
 * give up, and the caller falls back to mqtt-packet, which then behaves as it always did.
 */

type PropertyType = 'byte' | 'int8' | 'int16' | 'int32' | 'var' | 'string' | 'binary' | 'pair';

interface PropertySpec {
  readonly id: number;
  readonly name: string;
  readonly type: PropertyType;
}

/** mqtt-packet's table (constants.js `properties` and `propertiesTypes`). */
const SPECS: readonly PropertySpec[] = [
  { id: 0x01, name: 'payloadFormatIndicator', type: 'byte' },
  { id: 0x02, name: 'messageExpiryInterval', type: 'int32' },
  { id: 0x03, name: 'contentType', type: 'string' },
  { id: 0x08, name: 'responseTopic', type: 'string' },
  { id: 0x09, name: 'correlationData', type: 'binary' },
  { id: 0x0b, name: 'subscriptionIdentifier', type: 'var' },
  { id: 0x11, name: 'sessionExpiryInterval', type: 'int32' },
  { id: 0x12, name: 'assignedClientIdentifier', type: 'string' },
  { id: 0x13, name: 'serverKeepAlive', type: 'int16' },
  { id: 0x15, name: 'authenticationMethod', type: 'string' },
  { id: 0x16, name: 'authenticationData', type: 'binary' },
  { id: 0x17, name: 'requestProblemInformation', type: 'byte' },
  { id: 0x18, name: 'willDelayInterval', type: 'int32' },
  { id: 0x19, name: 'requestResponseInformation', type: 'byte' },
  { id: 0x1a, name: 'responseInformation', type: 'string' },
  { id: 0x1c, name: 'serverReference', type: 'string' },
  { id: 0x1f, name: 'reasonString', type: 'string' },
  { id: 0x21, name: 'receiveMaximum', type: 'int16' },
  { id: 0x22, name: 'topicAliasMaximum', type: 'int16' },
  { id: 0x23, name: 'topicAlias', type: 'int16' },
  { id: 0x24, name: 'maximumQoS', type: 'int8' },
  { id: 0x25, name: 'retainAvailable', type: 'byte' },
  { id: 0x26, name: 'userProperties', type: 'pair' },
  { id: 0x27, name: 'maximumPacketSize', type: 'int32' },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', type: 'byte' },
  { id: 0x29, name: 'subscriptionIdentifiersAvailable', type: 'byte' },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', type: 'byte' },
];

const BY_ID: Array<PropertySpec | undefined> = [];
const BY_NAME = new Map<string, PropertySpec>();
for (const spec of SPECS) {
  BY_ID[spec.id] = spec;
  BY_NAME.set(spec.name, spec);
}

const USER_PROPERTY = 0x26;
const VARBYTEINT_MAX = 268_435_455;

export function malformed(what: string): ProtocolError {
  return new ProtocolError(RC.MalformedPacket, `malformed packet: ${what}`);
}

/** A variable byte integer at `pos`, which must end before `end`; returns [value, next position]. */
export function readVarInt(buf: Buffer, pos: number, end: number): [number, number] {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (pos >= end) throw malformed('variable byte integer runs past the packet');
    const b = buf[pos++]!;
    value += (b & 0x7f) * multiplier;
    if ((b & 0x80) === 0) return [value, pos];
    multiplier *= 128;
  }
  throw malformed('invalid variable byte integer');
}

export function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

export function writeVarInt(buf: Buffer, pos: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

/** Decoded properties and where the bytes after them begin. */
export interface DecodedProperties {
  properties: Record<string, unknown>;
  count: number;
  end: number;
}

/**
 * Decodes the properties block at `pos` (its length, then the properties), which must lie within
 * `end`. A property that MQTT 5 allows only once and that appears again is a Protocol Error (0x82,
 * §2.2.2.2); only User Property may repeat in what a client sends.
 */
export function decodeProperties(buf: Buffer, pos: number, end: number, where: string): DecodedProperties {
  const [length, start] = readVarInt(buf, pos, end);
  const stop = start + length;
  if (stop > end) throw malformed(`properties of ${where} run past the packet`);
  const properties: Record<string, unknown> = {};
  let count = 0;
  // Property ids are below 64: two 32-bit masks of the ids seen so far.
  let seenLow = 0;
  let seenHigh = 0;
  let p = start;
  while (p < stop) {
    const id = buf[p++]!;
    const spec = BY_ID[id];
    if (spec === undefined) throw malformed(id === 0 ? 'cannot parse property code type' : `unknown property 0x${id.toString(16)}`);
    if (id !== USER_PROPERTY) {
      const bit = 1 << (id & 31);
      const seen = id < 32 ? seenLow & bit : seenHigh & bit;
      if (seen !== 0) throw new ProtocolError(RC.ProtocolError, `property 0x${id.toString(16).padStart(2, '0')} appears more than once in ${where}`);
      if (id < 32) seenLow |= bit;
      else seenHigh |= bit;
    }
    count++;
    switch (spec.type) {
      case 'byte':
      case 'int8':
        if (p + 1 > stop) throw malformed(`property ${spec.name} runs past its properties`);
        properties[spec.name] = spec.type === 'byte' ? buf[p] !== 0 : buf[p];
        p += 1;
        break;
      case 'int16':
        if (p + 2 > stop) throw malformed(`property ${spec.name} runs past its properties`);
        properties[spec.name] = buf.readUInt16BE(p);
        p += 2;
        break;
      case 'int32':
        if (p + 4 > stop) throw malformed(`property ${spec.name} runs past its properties`);
        properties[spec.name] = buf.readUInt32BE(p);
        p += 4;
        break;
      case 'var': {
        const [value, next] = readVarInt(buf, p, stop);
        properties[spec.name] = value;
        p = next;
        break;
      }
      case 'string':
        properties[spec.name] = buf.toString('utf8', p + 2, (p = lengthPrefixedEnd(buf, p, stop, spec.name)));
        break;
      case 'binary': {
        const from = p + 2;
        p = lengthPrefixedEnd(buf, p, stop, spec.name);
        properties[spec.name] = buf.subarray(from, p);
        break;
      }
      case 'pair': {
        const nameEnd = lengthPrefixedEnd(buf, p, stop, 'user property name');
        const name = buf.toString('utf8', p + 2, nameEnd);
        const valueEnd = lengthPrefixedEnd(buf, nameEnd, stop, 'user property value');
        const value = buf.toString('utf8', nameEnd + 2, valueEnd);
        p = valueEnd;
        const pairs = (properties['userProperties'] ??= Object.create(null)) as Record<string, string | string[]>;
        // As mqtt-packet does: a repeated name becomes an array of its values (an empty first value is replaced).
        const before = pairs[name];
        if (!before) pairs[name] = value;
        else if (Array.isArray(before)) before.push(value);
        else pairs[name] = [before, value];
        break;
      }
    }
  }
  return { properties, count, end: stop };
}

/** The end of the length-prefixed string or binary at `pos`. */
function lengthPrefixedEnd(buf: Buffer, pos: number, stop: number, what: string): number {
  if (pos + 2 > stop) throw malformed(`${what} runs past its properties`);
  const end = pos + 2 + buf.readUInt16BE(pos);
  if (end > stop) throw malformed(`${what} runs past its properties`);
  return end;
}

/** Properties measured for encoding: their bytes (without the length prefix), or undefined to fall back to mqtt-packet. */
export interface MeasuredProperties {
  readonly properties: Record<string, unknown> | undefined;
  /** Bytes of the properties themselves, without their length prefix. */
  readonly length: number;
}

/** Measures `properties` as mqtt-packet would encode them; undefined when a value is not one the fast path encodes. */
export function measureProperties(properties: Record<string, unknown> | undefined): MeasuredProperties | undefined {
  if (properties === undefined) return { properties, length: 0 };
  if (properties === null || typeof properties !== 'object' || Array.isArray(properties)) return undefined;
  let length = 0;
  for (const name in properties) {
    const value = properties[name];
    if (value === undefined) continue;
    const spec = BY_NAME.get(name);
    if (!spec || !Object.prototype.hasOwnProperty.call(properties, name)) return undefined;
    if (Array.isArray(value)) {
      // Only a subscription identifier legitimately repeats in what the broker sends.
      // An empty array makes mqtt-packet give up on the whole packet: leave that to it.
      if (spec.type !== 'var' || value.length === 0) return undefined;
      for (const v of value) {
        const n = valueSize(spec, v);
        if (n === undefined) return undefined;
        length += n;
      }
      continue;
    }
    const n = valueSize(spec, value);
    // 0: user properties without a single pair, which mqtt-packet turns into an empty packet.
    if (n === undefined || n === 0) return undefined;
    length += n;
  }
  return length > VARBYTEINT_MAX ? undefined : { properties, length };
}

function isInt(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/** Bytes of one property (id included), or undefined when the fast path does not encode this value. */
function valueSize(spec: PropertySpec, v: unknown): number | undefined {
  switch (spec.type) {
    case 'byte':
      return typeof v === 'boolean' ? 2 : undefined;
    case 'int8':
      return isInt(v, 0xff) ? 2 : undefined;
    case 'int16':
      return isInt(v, 0xffff) ? 3 : undefined;
    case 'int32':
      return isInt(v, 0xffffffff) ? 5 : undefined;
    case 'var':
      // mqtt-packet refuses a subscription identifier above 0x0fffffff.
      return isInt(v, 0x0fffffff) ? 1 + varIntSize(v) : undefined;
    case 'string': {
      if (typeof v !== 'string') return undefined;
      const n = Buffer.byteLength(v);
      return n <= 0xffff ? 3 + n : undefined;
    }
    case 'binary':
      return Buffer.isBuffer(v) && v.length <= 0xffff ? 3 + v.length : undefined;
    case 'pair': {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
      let n = 0;
      for (const name of Object.getOwnPropertyNames(v)) {
        const value = (v as Record<string, unknown>)[name];
        const values = Array.isArray(value) ? value : [value];
        for (const item of values) {
          if (typeof item !== 'string') return undefined;
          const nameBytes = Buffer.byteLength(name);
          const itemBytes = Buffer.byteLength(item);
          if (nameBytes > 0xffff || itemBytes > 0xffff) return undefined;
          n += 5 + nameBytes + itemBytes;
        }
      }
      return n;
    }
  }
}

/** Writes measured properties (length prefix first) at `pos`; returns the position after them. */
export function writeProperties(buf: Buffer, pos: number, m: MeasuredProperties): number {
  pos = writeVarInt(buf, pos, m.length);
  const properties = m.properties;
  if (!properties) return pos;
  for (const name in properties) {
    const value = properties[name];
    if (value === undefined || value === null) continue;
    const spec = BY_NAME.get(name)!;
    if (Array.isArray(value)) {
      for (const v of value) pos = writeValue(buf, pos, spec, v);
    } else {
      pos = writeValue(buf, pos, spec, value);
    }
  }
  return pos;
}

function writeValue(buf: Buffer, pos: number, spec: PropertySpec, v: unknown): number {
  if (spec.type === 'pair') {
    const pairs = v as Record<string, string | string[]>;
    for (const name of Object.getOwnPropertyNames(pairs)) {
      const value = pairs[name]!;
      for (const item of Array.isArray(value) ? value : [value]) {
        buf[pos++] = spec.id;
        pos = writeString(buf, pos, name);
        pos = writeString(buf, pos, item);
      }
    }
    return pos;
  }
  buf[pos++] = spec.id;
  switch (spec.type) {
    case 'byte':
      buf[pos] = v ? 1 : 0;
      return pos + 1;
    case 'int8':
      buf[pos] = v as number;
      return pos + 1;
    case 'int16':
      return buf.writeUInt16BE(v as number, pos);
    case 'int32':
      return buf.writeUInt32BE(v as number, pos);
    case 'var':
      return writeVarInt(buf, pos, v as number);
    case 'string':
      return writeString(buf, pos, v as string);
    case 'binary': {
      const b = v as Buffer;
      pos = buf.writeUInt16BE(b.length, pos);
      return pos + b.copy(buf, pos);
    }
  }
}

/** A two-byte length, then the string's UTF-8 bytes. */
export function writeString(buf: Buffer, pos: number, s: string): number {
  const n = buf.write(s, pos + 2, 'utf8');
  buf.writeUInt16BE(n, pos);
  return pos + 2 + n;
}
