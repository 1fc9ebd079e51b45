import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { connectPacket, mqttString, publishHeader, varint } from './helpers/hostile.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';

type DisconnectPacket = Extract<Packet, { cmd: 'disconnect' }>;
type SubackPacket = Extract<Packet, { cmd: 'suback' }>;
type PubackPacket = Extract<Packet, { cmd: 'puback' }>;
type ConnackPacket = Extract<Packet, { cmd: 'connack' }>;

const opened: Array<{ close(): void }> = [];
function track<T extends { close(): void }>(c: T): T {
  opened.push(c);
  return c;
}

async function closedWithin(closed: Promise<unknown>, ms = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** A v5 packet built from its parts: first byte, then body (remaining length is computed). */
function packet(first: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

/** A v5 properties block from raw property bytes. */
function props(...bytes: number[][]): Buffer {
  const body = Buffer.from(bytes.flat());
  return Buffer.concat([varint(body.length), body]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

describe('MQTT 5 properties that may appear only once', () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker();
  });
  after(async () => {
    for (const c of opened.splice(0)) c.close();
    await server.stop();
  });

  const repeated: Array<[string, (v: number) => Buffer]> = [
    // Two payload format indicators, 0 then 1: mqtt-packet alone would keep the second and miss the repeat.
    ['two payload format indicators in PUBLISH', () => packet(0x30, mqttString('dup/a'), props([0x01, 0x00], [0x01, 0x01]), Buffer.from('x'))],
    ['two topic aliases in PUBLISH', () => packet(0x30, mqttString('dup/a'), props([0x23, 0x00, 0x01], [0x23, 0x00, 0x02]), Buffer.from('x'))],
    ['two message expiry intervals in a QoS 1 PUBLISH', (id) => packet(0x32, mqttString('dup/a'), u16(id), props([0x02, 0, 0, 0, 5], [0x02, 0, 0, 0, 9]), Buffer.from('x'))],
    ['two content types in PUBLISH', () => packet(0x30, mqttString('dup/a'), props([0x03, 0, 1, 0x61], [0x03, 0, 1, 0x62]), Buffer.from('x'))],
    ['two subscription identifiers in SUBSCRIBE', (id) => packet(0x82, u16(id), props([0x0b, 0x01], [0x0b, 0x02]), mqttString('dup/#'), Buffer.from([0x01]))],
    ['two reason strings in PUBACK', (id) => packet(0x40, u16(id), Buffer.from([0x00]), props([0x1f, 0, 1, 0x61], [0x1f, 0, 1, 0x62]))],
    ['two session expiry intervals in DISCONNECT', () => packet(0xe0, Buffer.from([0x00]), props([0x11, 0, 0, 0, 0], [0x11, 0, 0, 0, 0]))],
  ];

  let id = 1;
  for (const [name, build] of repeated) {
    test(`${name}: DISCONNECT 0x82 and nothing routed`, async () => {
      const { client: watcher } = await RawClient.open(server.mqtt.port, { clientId: `watch-${id}` });
      track(watcher);
      watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dup/#', qos: 0 }] } as Packet);
      await watcher.next('suback');
      const { client } = await RawClient.open(server.mqtt.port, { clientId: `dup-${id}` });
      track(client);
      client.writeRaw(build(id++));
      const disconnect = (await client.next('disconnect')) as DisconnectPacket;
      assert.equal(disconnect.reasonCode, 0x82);
      assert.match(disconnect.properties?.reasonString ?? '', /more than once/);
      await closedWithin(client.closed);
      // A sentinel published afterwards arrives; the refused publish never did.
      const pub = await connectClient(server.mqttUrl, { protocolVersion: 5 });
      await pub.publishAsync('dup/sentinel', 'after', { qos: 1 });
      pub.end(true);
      const first = (await watcher.next('publish')) as Extract<Packet, { cmd: 'publish' }>;
      assert.equal(first.topic, 'dup/sentinel');
    });
  }

  test('a CONNECT with two session expiry intervals is refused with 0x82', async () => {
    const sock = net.connect(server.mqtt.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    const closed = new Promise((r) => sock.once('close', r));
    const variable = Buffer.concat([mqttString('MQTT'), Buffer.from([5, 0x02, 0, 60]), props([0x11, 0, 0, 0, 1], [0x11, 0, 0, 0, 2])]);
    sock.write(packet(0x10, variable, mqttString('dup-connect')));
    await closedWithin(closed);
    const received = Buffer.concat(chunks);
    assert.equal(received[0], 0x20, 'a CONNACK');
    assert.equal(received[3], 0x82);
  });

  test('repeated user properties are allowed and all forwarded', async () => {
    const { client: watcher } = await RawClient.open(server.mqtt.port, { clientId: 'watch-user' });
    track(watcher);
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dup/user', qos: 0 }] } as Packet);
    await watcher.next('suback');
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'dup-user' });
    track(client);
    const user = (k: string, v: string): number[] => [0x26, ...mqttString(k), ...mqttString(v)];
    client.writeRaw(packet(0x30, mqttString('dup/user'), props(user('a', '1'), user('a', '2')), Buffer.from('x')));
    const got = (await watcher.next('publish')) as Extract<Packet, { cmd: 'publish' }>;
    assert.deepEqual({ ...got.properties?.userProperties }, { a: ['1', '2'] });
    assert.equal(client.isClosed, false);
  });
});

describe('topic depth and length', () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker({ limits: { maxTopicLevels: 8, maxTopicLength: 64 } });
  });
  after(async () => {
    for (const c of opened.splice(0)) c.close();
    await server.stop();
  });

  const deep = 'a/b/c/d/e/f/g/h/i'; // 9 levels
  const atLimit = 'a/b/c/d/e/f/g/h'; // 8 levels

  test('a publish deeper than maxTopicLevels gets PUBACK 0x90 and is not routed; one at the limit is delivered', async () => {
    const sub = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    const inbox = collect(sub);
    await sub.subscribeAsync('#', { qos: 1 });
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'deep-pub' });
    track(client);
    client.send({ cmd: 'publish', topic: deep, payload: 'too deep', qos: 1, messageId: 5, retain: false, dup: false } as Packet);
    const puback = (await client.next('puback')) as PubackPacket;
    assert.equal(puback.reasonCode, 0x90);
    assert.match(puback.properties?.reasonString ?? '', /9 levels.*limit of 8/);
    client.send({ cmd: 'publish', topic: atLimit, payload: 'sentinel', qos: 1, messageId: 6, retain: false, dup: false } as Packet);
    assert.equal(((await client.next('puback')) as PubackPacket).reasonCode ?? 0, 0);
    const [first] = await inbox.take(1);
    assert.equal(first!.topic, atLimit, 'the refused publish was not delivered before the sentinel');
    sub.end(true);
  });

  test('a topic longer than maxTopicLength is refused the same way', async () => {
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'long-pub' });
    track(client);
    client.send({ cmd: 'publish', topic: 'x'.repeat(65), payload: 'long', qos: 1, messageId: 7, retain: false, dup: false } as Packet);
    const puback = (await client.next('puback')) as PubackPacket;
    assert.equal(puback.reasonCode, 0x90);
    assert.match(puback.properties?.reasonString ?? '', /65 bytes.*limit of 64/);
  });

  test('a subscription deeper than the limit gets SUBACK 0x8F, with the reason', async () => {
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'deep-sub' });
    track(client);
    client.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: '+/+/+/+/+/+/+/+/+', qos: 0 }, { topic: atLimit, qos: 0 }] } as Packet);
    const suback = (await client.next('suback')) as SubackPacket;
    assert.deepEqual(suback.granted, [0x8f, 0]);
    assert.match(suback.properties?.reasonString ?? '', /9 levels/);
  });

  test('a will deeper than the limit is refused at CONNECT with 0x90', async () => {
    const client = await RawClient.connect(server.mqtt.port);
    track(client);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'deep-will', clean: true, keepalive: 60, will: { topic: deep, payload: Buffer.from('bye'), qos: 0, retain: false } } as Packet);
    const connack = (await client.next('connack')) as ConnackPacket;
    assert.equal(connack.reasonCode, 0x90);
  });

  test('HTTP publish to a too-deep topic answers 400', async () => {
    const res = await fetch(`${server.httpUrl}/v1/publish/${deep}`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: string; message: string };
    assert.equal(body.error, 'invalid_topic');
    assert.match(body.message, /9 levels/);
  });
});

describe('inbound packets: sizes, timeouts, the shared budget and counted sockets', () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker({ limits: { maxInboundBytes: 300_000, packetTimeout: 1, maxConnections: 6 } });
  });
  after(async () => {
    for (const c of opened.splice(0)) c.close();
    await server.stop();
  });

  test('a PUBLISH announcing more than the maximum packet size is refused at its header, before its payload comes', async () => {
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'announce' });
    track(client);
    client.writeRaw(Buffer.concat([Buffer.from([0x30]), varint(50 * 1024 * 1024)]));
    const disconnect = (await client.next('disconnect')) as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x95);
    assert.match(disconnect.properties?.reasonString ?? '', /announced/);
  });

  test('a packet that does not complete within packetTimeout is cut off with 0x82; the count shows on /healthz', async () => {
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'slow-packet' });
    track(client);
    client.writeRaw(Buffer.concat([publishHeader('slow', 1000), Buffer.alloc(10)]));
    const disconnect = (await client.next('disconnect', 4000)) as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x82);
    assert.match(disconnect.properties?.reasonString ?? '', /not completed within 1 s/);
    const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { packetTimeouts: number };
    assert.ok(health.packetTimeouts >= 1);
  });

  test('when unfinished packets hold the whole budget, another large packet waits, and completes once room returns', async () => {
    const sub = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'budget-sub' });
    const inbox = collect(sub);
    await sub.subscribeAsync('budget/#', { qos: 0 });
    // Two hogs hold 2 × 200 kB of unfinished packets; the budget is 300 kB.
    const hogs = [];
    for (const name of ['hog-1', 'hog-2']) {
      const s = net.connect(server.mqtt.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('data', () => {});
      s.write(connectPacket(name));
      s.write(publishHeader('budget/hog', 200_000));
      hogs.push(s);
    }
    await sleep(100);
    const before = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { inboundPauses: number };
    const big = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'budget-big' });
    const started = Date.now();
    await big.publishAsync('budget/big', Buffer.alloc(150_000, 9), { qos: 1 });
    const waited = Date.now() - started;
    const [got] = await inbox.take(1, 5000);
    assert.equal(got!.topic, 'budget/big');
    assert.equal(got!.payload.length, 150_000);
    const afterHealth = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { inboundPauses: number; packetTimeouts: number };
    assert.ok(afterHealth.inboundPauses > before.inboundPauses, 'the large publish waited for room');
    assert.ok(waited >= 300, `it completed once a hog timed out (${waited} ms)`);
    for (const s of hogs) s.destroy();
    big.end(true);
    sub.end(true);
  });

  test('over WebSocket too: an unfinished message holds budget (eddy_inbound_bytes) and is cut off at packetTimeout', async () => {
    const socket = net.connect(server.http.port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise((r) => socket.once('close', r));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.write(
      'GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n',
    );
    while (!answer.includes('\r\n\r\n')) await sleep(10);
    assert.match(answer, /^HTTP\/1.1 101/);
    // A masked binary frame announcing 100 kB, of which 1 kB comes.
    const header = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x01, 0x86, 0xa0, 1, 2, 3, 4]);
    socket.write(Buffer.concat([header, Buffer.alloc(1000)]));
    await sleep(200);
    const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { inboundBytes: number; packetTimeouts: number };
    assert.ok(health.inboundBytes >= 100_000, `the unfinished message holds budget (${health.inboundBytes})`);
    await closedWithin(closed, 3000);
    const later = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { inboundBytes: number; packetTimeouts: number };
    assert.equal(later.inboundBytes, 0, 'and gives it back when cut off');
    assert.ok(later.packetTimeouts > health.packetTimeouts);
  });

  test('sockets that never send CONNECT count against maxConnections; a few past it are told 0x89, the rest closed', async () => {
    await sleep(200); // the sockets of earlier tests are gone
    const idle: net.Socket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = net.connect(server.mqtt.port, '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
      await new Promise((r) => s.once('connect', r));
    }
    await sleep(100);
    const client = await RawClient.connect(server.mqtt.port);
    track(client);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'over', clean: true, keepalive: 60 } as Packet);
    const connack = (await client.next('connack')) as ConnackPacket;
    assert.equal(connack.reasonCode, 0x89);
    const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { refusedConnections: number };
    assert.ok(health.refusedConnections >= 1);
    for (const s of idle) s.destroy();
    await sleep(100);
    // Freed: a client connects again.
    const again = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    again.end(true);
  });
});
