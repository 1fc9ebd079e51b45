import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';

type DisconnectPacket = Extract<Packet, { cmd: 'disconnect' }>;
type SubackPacket = Extract<Packet, { cmd: 'suback' }>;
type PublishPacket = Extract<Packet, { cmd: 'publish' }>;

const opened: Array<{ close(): void }> = [];
function track<T extends { close(): void }>(c: T): T {
  opened.push(c);
  return c;
}

async function closedWithin(client: RawClient, ms = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.closed,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** A raw socket that records every byte the broker sends and when it closes. */
async function rawSocket(port: number): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void>; close(): void }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, received: () => Buffer.concat(chunks), closed, close: () => socket.destroy() };
}

async function socketClosedWithin(closed: Promise<void>, ms = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** A CONNECT packet with an arbitrary protocol level, built by hand. */
function connectBytes(level: number, clientId = 'x'): Buffer {
  const id = Buffer.from(clientId);
  const variable = Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, level, 0x02, 0x00, 0x3c]);
  const payload = Buffer.concat([Buffer.from([0x00, id.length]), id]);
  const body = Buffer.concat([variable, payload]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

let messageId = 1;

/** A subscriber that must keep receiving while other connections misbehave. */
async function bystander(server: EddyServer, topic: string): Promise<RawClient> {
  const { client } = await RawClient.open(server.mqtt.port, { clientId: `bystander-${topic.replace(/\W/g, '-')}` });
  track(client);
  const id = messageId++;
  client.send({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic, qos: 1 }] } as Packet);
  const suback = (await client.next('suback')) as SubackPacket;
  assert.deepEqual(suback.granted, [1]);
  return client;
}

/** Publishes from the bystander to itself and checks the message comes back. */
async function assertStillWorks(client: RawClient, topic: string, payload: string): Promise<void> {
  assert.equal(client.isClosed, false, 'the well-behaved client was disconnected');
  const id = messageId++;
  client.send({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, messageId: id } as Packet);
  const puback = (await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
  assert.equal(puback.messageId, id);
  const msg = (await client.next('publish')) as PublishPacket;
  assert.equal(msg.topic, topic);
  assert.equal(msg.payload.toString(), payload);
  client.send({ cmd: 'puback', messageId: msg.messageId } as Packet);
}

describe('malformed and hostile input', () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker();
  });
  after(async () => {
    for (const c of opened.splice(0)) c.close();
    await server.stop();
  });

  test('an invalid remaining length after CONNECT gets DISCONNECT 0x81 (v5) and a close; others keep working', async () => {
    const other = await bystander(server, 'bad/varint');
    const { client } = await RawClient.open(server.mqtt.port);
    track(client);
    client.writeRaw(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]));
    const disconnect = (await client.next('disconnect')) as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x81);
    await closedWithin(client);
    await assertStillWorks(other, 'bad/varint', 'after-varint');
  });

  test('a PUBLISH with both QoS bits set gets DISCONNECT 0x81 (v5) and a close; others keep working', async () => {
    const other = await bystander(server, 'bad/qos3');
    const { client } = await RawClient.open(server.mqtt.port);
    track(client);
    // PUBLISH, QoS bits 11, topic "a", packet id 1, no properties, payload "x".
    client.writeRaw(Buffer.from([0x36, 0x07, 0x00, 0x01, 0x61, 0x00, 0x01, 0x00, 0x78]));
    const disconnect = (await client.next('disconnect')) as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x81);
    await closedWithin(client);
    await assertStillWorks(other, 'bad/qos3', 'after-qos3');
  });

  test('a malformed packet on MQTT 3.1.1 closes the connection without a DISCONNECT', async () => {
    const other = await bystander(server, 'bad/v4');
    const { client } = await RawClient.open(server.mqtt.port, {}, 4);
    track(client);
    client.writeRaw(Buffer.from([0x36, 0x06, 0x00, 0x01, 0x61, 0x00, 0x01, 0x78]));
    await closedWithin(client);
    assert.deepEqual(
      client.packets.map((p) => p.cmd),
      [],
      'a 3.1.1 client gets no packet before the close',
    );
    await assertStillWorks(other, 'bad/v4', 'after-v4');
  });

  test('a PUBLISH with a wildcard in its topic name gets DISCONNECT 0x90 and is not routed', async () => {
    const other = await bystander(server, 'a/#');
    const { client } = await RawClient.open(server.mqtt.port);
    track(client);
    client.send({ cmd: 'publish', topic: 'a/+/b', payload: 'wild', qos: 0, retain: false, dup: false } as Packet);
    const disconnect = (await client.next('disconnect')) as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x90);
    await closedWithin(client);
    // The broker handled the invalid PUBLISH before it sent the DISCONNECT we waited for: had it
    // routed it, it would be the bystander's next message, before its own one on a/ok.
    await assertStillWorks(other, 'a/ok', 'after-wildcard');
  });

  test('a subscription to an invalid filter gets SUBACK 0x8F (v5) and 0x80 (v3.1.1); valid ones next to it are granted', async () => {
    const { client: v5 } = await RawClient.open(server.mqtt.port);
    track(v5);
    v5.send({ cmd: 'subscribe', messageId: 11, subscriptions: [{ topic: 'a/#/b', qos: 1 }, { topic: 'a/b', qos: 1 }, { topic: 'a/b+', qos: 0 }] } as Packet);
    const suback5 = (await v5.next('suback')) as SubackPacket;
    assert.deepEqual(suback5.granted, [0x8f, 1, 0x8f]);
    assert.equal(v5.isClosed, false);

    const { client: v4 } = await RawClient.open(server.mqtt.port, {}, 4);
    track(v4);
    v4.send({ cmd: 'subscribe', messageId: 12, subscriptions: [{ topic: 'a/#/b', qos: 1 }, { topic: 'a/b', qos: 2 }] } as Packet);
    const suback4 = (await v4.next('suback')) as SubackPacket;
    assert.deepEqual(suback4.granted, [0x80, 2]);
    assert.equal(v4.isClosed, false);
  });

  test('a CONNECT with an unsupported protocol level is answered with CONNACK 0x01 and closed', async () => {
    const sock = track(await rawSocket(server.mqtt.port));
    sock.socket.write(connectBytes(6));
    await socketClosedWithin(sock.closed);
    // 3.1.1 [MQTT-3.1.2-2]: CONNACK with return code 0x01 (unacceptable protocol level), then disconnect.
    assert.deepEqual([...sock.received()], [0x20, 0x02, 0x00, 0x01]);
  });

  test('garbage before CONNECT closes the connection', async () => {
    const http = track(await rawSocket(server.mqtt.port));
    http.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await socketClosedWithin(http.closed);
    assert.equal(http.received().length, 0, 'nothing is sent back to a non-MQTT peer');

    const zeros = track(await rawSocket(server.mqtt.port));
    zeros.socket.write(Buffer.from([0x00, 0x00, 0x00, 0x00]));
    await socketClosedWithin(zeros.closed);
    assert.equal(zeros.received().length, 0);

    // A well-formed packet that is not CONNECT is refused too.
    const ping = track(await rawSocket(server.mqtt.port));
    ping.socket.write(Buffer.from([0xc0, 0x00]));
    await socketClosedWithin(ping.closed);
    assert.equal(ping.received().length, 0);
  });

  test('a second CONNECT on one connection gets DISCONNECT 0x82', async () => {
    const { client } = await RawClient.open(server.mqtt.port);
    track(client);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'again', clean: true, keepalive: 60 } as Packet);
    const disconnect = (await client.next('disconnect')) as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x82);
    await closedWithin(client);
  });

  test('a client that sends half a packet and goes away does not disturb others', async () => {
    const other = await bystander(server, 'bad/half');
    const { client } = await RawClient.open(server.mqtt.port);
    client.writeRaw(Buffer.from([0x30, 0x7f, 0x00, 0x05, 0x68]));
    await sleep(50);
    client.close();
    await closedWithin(client);
    await assertStillWorks(other, 'bad/half', 'after-half');
  });

  test('the broker survived everything: a new client connects, publishes and receives', async () => {
    const { client, connack } = await RawClient.open(server.mqtt.port, { clientId: 'final' });
    track(client);
    assert.equal(connack.reasonCode, 0);
    client.send({ cmd: 'subscribe', messageId: 99, subscriptions: [{ topic: 'final/t', qos: 1 }] } as Packet);
    assert.deepEqual(((await client.next('suback')) as SubackPacket).granted, [1]);
    await assertStillWorks(client, 'final/t', 'still alive');
  });

  test('each protocol violation is counted by reason code and visible on /healthz', async () => {
    const res = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(res.status, 200);
    const health = (await res.json()) as { status: string; protocolErrors: Record<string, number> };
    assert.equal(health.status, 'ok');
    // What the tests above did to this broker: five malformed packets (0x81), a wildcard topic
    // name (0x90), an unsupported protocol level (0x84), garbage parsed as a first packet other
    // than CONNECT and a second CONNECT (0x82 twice).
    assert.deepEqual(health.protocolErrors, { '0x81': 5, '0x90': 1, '0x84': 1, '0x82': 2 });
  });
});

describe('connection limit', () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker({ limits: { maxConnections: 2 } });
  });
  after(async () => {
    await server.stop();
  });

  test('the connection over maxConnections gets CONNACK 0x89 (v5) / return code 3 (v3.1.1); a freed slot is reusable', async () => {
    const first = await RawClient.open(server.mqtt.port, { clientId: 'one' });
    const second = await RawClient.open(server.mqtt.port, { clientId: 'two' }, 4);
    try {
      assert.equal(first.connack.reasonCode, 0);
      assert.equal(second.connack.returnCode, 0);

      const third = await RawClient.open(server.mqtt.port, { clientId: 'three' });
      assert.equal(third.connack.reasonCode, 0x89);
      await closedWithin(third.client);

      const fourth = await RawClient.open(server.mqtt.port, { clientId: 'four' }, 4);
      assert.equal(fourth.connack.returnCode, 3);
      assert.equal(fourth.connack.sessionPresent, false);
      await closedWithin(fourth.client);

      // Refused connections do not use up slots; closing an accepted one frees one.
      first.client.close();
      await closedWithin(first.client);
      let again: Awaited<ReturnType<typeof RawClient.open>> | undefined;
      for (let attempt = 0; attempt < 20; attempt++) {
        again = await RawClient.open(server.mqtt.port, { clientId: `again-${attempt}` });
        if (again.connack.reasonCode === 0) break;
        again.client.close();
        await sleep(25);
      }
      assert.equal(again!.connack.reasonCode, 0, 'a slot freed by a closed connection must be reusable');
      again!.client.close();
    } finally {
      first.client.close();
      second.client.close();
    }
  });
});
