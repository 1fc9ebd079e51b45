// The fast path for PUBLISH and the acks against mqtt-packet, byte for byte, both ways and for both
// protocol versions: decoding mqtt-packet's encoding gives what mqtt-packet's parser gives, and
// encoding gives what mqtt-packet's generate gives, for random packets with every PUBLISH property.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { decodeFast } from '../src/protocol/mqtt/fast-path/decode.js';
import { encodeAckFast, encodePublishFast } from '../src/protocol/mqtt/fast-path/encode.js';
import { ProtocolError } from '../src/util/errors.js';

const RUNS = 400;

/** What mqtt-packet's parser emits for `bytes` (a whole packet), as a plain object. */
function mqttPacketParse(bytes: Buffer, protocolVersion: 4 | 5): Record<string, unknown> {
  const parser = mqttPacket.parser({ protocolVersion });
  const out: Packet[] = [];
  let error: Error | undefined;
  parser.on('packet', (p: Packet) => out.push(p));
  parser.on('error', (e: Error) => (error = e));
  parser.parse(bytes);
  if (error) throw error;
  assert.equal(out.length, 1);
  return { ...out[0] };
}

const text = fc.string({ unit: 'binary', maxLength: 40 });
const userProperties = fc.dictionary(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 })),
  { minKeys: 1, maxKeys: 4 },
);

/** Every property a PUBLISH can carry; `repeatable` also lets the subscription identifier repeat (broker to client only). */
function publishProperties(repeatable: boolean): fc.Arbitrary<NonNullable<IPublishPacket['properties']>> {
  const subscriptionId = fc.integer({ min: 1, max: 268_435_455 });
  return fc.record({
    payloadFormatIndicator: fc.boolean(),
    messageExpiryInterval: fc.integer({ min: 0, max: 0xffffffff }),
    topicAlias: fc.integer({ min: 1, max: 0xffff }),
    responseTopic: text,
    correlationData: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    userProperties,
    subscriptionIdentifier: repeatable ? fc.oneof(subscriptionId, fc.array(subscriptionId, { minLength: 1, maxLength: 3 })) : subscriptionId,
    contentType: text,
  }, { requiredKeys: [] });
}

function publishPacket(protocolVersion: 4 | 5, repeatable: boolean): fc.Arbitrary<IPublishPacket> {
  return fc.record({
    qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    dup: fc.boolean(),
    retain: fc.boolean(),
    topic: fc.string({ unit: 'binary', minLength: 0, maxLength: 60 }),
    messageId: fc.integer({ min: 1, max: 0xffff }),
    // Sizes around the one- and two-byte remaining length boundary (127/128) and a little beyond.
    payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    properties: protocolVersion === 5 ? fc.option(publishProperties(repeatable), { nil: undefined }) : fc.constant(undefined),
  }).map((p) => {
    const packet: IPublishPacket = { cmd: 'publish', qos: p.qos, dup: p.dup, retain: p.retain, topic: p.topic, payload: p.payload };
    if (p.qos > 0) packet.messageId = p.messageId;
    if (p.properties) packet.properties = p.properties;
    return packet;
  });
}

function ackPacket(protocolVersion: 4 | 5): fc.Arbitrary<Packet> {
  return fc.record({
    cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp') as fc.Arbitrary<'puback' | 'pubrec' | 'pubrel' | 'pubcomp'>,
    messageId: fc.integer({ min: 0, max: 0xffff }),
    reasonCode: fc.option(fc.constantFrom(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x92, 0x97, 0x99), { nil: undefined }),
    properties: protocolVersion === 5
      ? fc.option(fc.record({ reasonString: text, userProperties }, { requiredKeys: [] }), { nil: undefined })
      : fc.constant(undefined),
  }).map((a) => {
    const packet: Record<string, unknown> = { cmd: a.cmd, messageId: a.messageId };
    if (a.reasonCode !== undefined) packet['reasonCode'] = a.reasonCode;
    if (a.properties !== undefined) packet['properties'] = a.properties;
    return packet as unknown as Packet;
  });
}

/** Reason codes mqtt-packet's parser accepts per ack type (so the decode direction uses only those). */
function validForDecode(packet: Packet): boolean {
  const rc = (packet as { reasonCode?: number }).reasonCode;
  if (rc === undefined) return true;
  return packet.cmd === 'pubrel' || packet.cmd === 'pubcomp' ? rc === 0 || rc === 0x92 : rc !== 0x92;
}

for (const protocolVersion of [4, 5] as const) {
  describe(`fast path codec, MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}`, () => {
    test('decode: PUBLISH as mqtt-packet generates it decodes to what mqtt-packet parses', () => {
      fc.assert(fc.property(publishPacket(protocolVersion, false), (packet) => {
        const bytes = mqttPacket.generate(packet, { protocolVersion });
        assert.deepStrictEqual({ ...decodeFast(bytes, protocolVersion) }, mqttPacketParse(bytes, protocolVersion));
      }), { numRuns: RUNS });
    });

    test('encode: PUBLISH encodes to the bytes mqtt-packet generates (subscription identifiers may repeat)', () => {
      fc.assert(fc.property(publishPacket(protocolVersion, true), (packet) => {
        const expected = mqttPacket.generate(packet, { protocolVersion });
        const fast = encodePublishFast(packet, protocolVersion);
        assert.ok(fast, 'the fast path encodes every well-formed PUBLISH');
        assert.deepStrictEqual(fast.bytes, expected);
        if (packet.qos > 0) assert.equal(fast.bytes.readUInt16BE(fast.idOffset), packet.messageId);
        assert.deepStrictEqual(fast.bytes.subarray(fast.payloadOffset), packet.payload);
      }), { numRuns: RUNS });
    });

    test('decode: acks as mqtt-packet generates them decode to what mqtt-packet parses', () => {
      fc.assert(fc.property(ackPacket(protocolVersion).filter(validForDecode), (packet) => {
        const bytes = mqttPacket.generate(packet, { protocolVersion });
        assert.deepStrictEqual({ ...decodeFast(bytes, protocolVersion) }, mqttPacketParse(bytes, protocolVersion));
      }), { numRuns: RUNS });
    });

    test('encode: acks encode to the bytes mqtt-packet generates', () => {
      fc.assert(fc.property(ackPacket(protocolVersion), (packet) => {
        const fast = encodeAckFast(packet, protocolVersion);
        assert.ok(fast);
        assert.deepStrictEqual(fast, mqttPacket.generate(packet, { protocolVersion }));
      }), { numRuns: RUNS });
    });
  });
}

describe('fast path codec: what it refuses', () => {
  const refusal = (bytes: Buffer, protocolVersion: number): number => {
    try {
      decodeFast(bytes, protocolVersion);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, String(err));
      return err.reasonCode;
    }
    assert.fail('decoded a packet that should be refused');
  };

  test('a PUBLISH from a client with a repeated property (here the subscription identifier) is a Protocol Error, 0x82', () => {
    const bytes = mqttPacket.generate({ cmd: 'publish', qos: 0, dup: false, retain: false, topic: 't', payload: Buffer.from('x'),
      properties: { subscriptionIdentifier: [1, 2] } }, { protocolVersion: 5 });
    assert.equal(refusal(bytes, 5), 0x82);
    const twice = mqttPacket.generate({ cmd: 'publish', qos: 1, messageId: 3, dup: false, retain: false, topic: 't', payload: Buffer.from('x'),
      properties: { contentType: 'a' } }, { protocolVersion: 5 });
    // Append a second content type inside the properties block: [len][0x03 00 01 'a'] -> [len+4][0x03 00 01 'a'][0x03 00 01 'b'].
    const propsAt = 2 + 2 + 1 + 2;
    const patched = Buffer.concat([Buffer.from([twice[0]!, twice[1]! + 4]), twice.subarray(2, propsAt), Buffer.from([twice[propsAt]! + 4]),
      twice.subarray(propsAt + 1, propsAt + 1 + 4), Buffer.from([0x03, 0x00, 0x01, 0x62]), twice.subarray(propsAt + 1 + 4)]);
    assert.equal(refusal(patched, 5), 0x82);
  });

  test('fields past the end of the packet, unknown properties and unknown ack reason codes are malformed, 0x81', () => {
    assert.equal(refusal(Buffer.from([0x30, 0x03, 0x00, 0x05, 0x61]), 4), 0x81); // topic longer than the packet
    assert.equal(refusal(Buffer.from([0x32, 0x03, 0x00, 0x01, 0x61]), 4), 0x81); // QoS 1 without a packet id
    assert.equal(refusal(Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x02, 0x7f]), 5), 0x81); // unknown property 0x7f
    assert.equal(refusal(Buffer.from([0x30, 0x04, 0x00, 0x01, 0x61, 0x09]), 5), 0x81); // properties longer than the packet
    assert.equal(refusal(Buffer.from([0x40, 0x01, 0x00]), 4), 0x81); // PUBACK without a whole packet id
    assert.equal(refusal(Buffer.from([0x40, 0x03, 0x00, 0x01, 0x92]), 5), 0x81); // 0x92 is not a PUBACK reason
    assert.equal(refusal(Buffer.from([0x62, 0x03, 0x00, 0x01, 0x10]), 5), 0x81); // 0x10 is not a PUBREL reason
  });

  test('what the fast encoder does not encode exactly like mqtt-packet it leaves to mqtt-packet', () => {
    const base = { cmd: 'publish' as const, qos: 0 as const, dup: false, retain: false, topic: 't', payload: Buffer.from('x') };
    assert.equal(encodePublishFast({ ...base, payload: 'a string' }, 4), undefined);
    assert.equal(encodePublishFast({ ...base, properties: { userProperties: {} } }, 5), undefined);
    assert.equal(encodePublishFast({ ...base, properties: { subscriptionIdentifier: [] } }, 5), undefined);
    assert.equal(encodePublishFast({ ...base, qos: 1 }, 4), undefined); // no packet id
  });
});
