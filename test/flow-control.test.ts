import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import mqtt from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { spawnBroker, startBroker, type BrokerProcess } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { tempDirs } from './helpers/temp-dir.js';

/**
 * Flow control: a subscriber that is behind slows its publishers down (TCP backpressure) instead of
 * losing QoS 0 messages; one that stops reading becomes a slow consumer and stops slowing anyone;
 * what waits for a clean session spills to disk in order; queues are bounded in bytes.
 */

const tempDir = tempDirs('eddy-flow-');
const servers: EddyServer[] = [];
const children: BrokerProcess[] = [];
after(async () => {
  await Promise.all([...servers.map((s) => s.stop()), ...children.map((c) => c.stop())]);
});

/** A broker in a process of its own: backpressure needs the publisher and the broker on different event loops. */
async function child(args: string[] = []): Promise<{ url: string; port: number; health: () => Promise<Record<string, unknown> & { dropped: Record<string, number> }> }> {
  const b = await spawnBroker(['--memory', '--log-level', 'warn', ...args]);
  children.push(b);
  return {
    url: `mqtt://127.0.0.1:${b.mqttPort}`,
    port: b.mqttPort,
    health: async () => (await (await fetch(`http://127.0.0.1:${b.httpPort}/healthz`)).json()) as Record<string, unknown> & { dropped: Record<string, number> },
  };
}

async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<EddyServer> {
  const server = await startBroker(options);
  servers.push(server);
  return server;
}

/** A raw MQTT 5 subscriber whose socket can stop being read. */
async function rawSubscriber(port: number, clientId: string, filter: string, qos: 0 | 1, sessionExpiryInterval = 0): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 0, properties: { sessionExpiryInterval } } as Packet, { protocolVersion: 5 }));
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] } as Packet, { protocolVersion: 5 }));
  return socket;
}

describe('flow control', { concurrency: false }, () => {
  test('a QoS 0 flood from one mqtt.js publisher to one subscriber that keeps up loses nothing', async () => {
    // A queue too short to absorb the flood: only slowing the publisher down keeps every message.
    const server = await child(['--max-queued', '10000']);
    // A raw MQTT 3.1.1 subscriber: mqtt.js pipes its socket into its parser, and a pipe's 'drain'
    // resumes a paused source, so pausing mqtt.js's stream does not reliably stop the reading.
    const sub = net.connect(server.port, '127.0.0.1');
    sub.on('error', () => {});
    await new Promise((r) => sub.once('connect', r));
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let got = 0;
    let inOrder = true;
    let subscribed!: () => void;
    const suback = new Promise<void>((r) => (subscribed = r));
    // On a fast machine the subscriber may keep up by itself. So that the test always exercises the
    // throttle, it stops reading once, after 20,000 messages, until the broker says it slowed the
    // publisher down: the flood (about 32 MB) is far more than the output buffer, the queue and the
    // socket buffers hold, so without a throttle messages would drop here.
    let paused: Promise<void> | undefined;
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'suback') return subscribed();
      if (packet.cmd !== 'publish') return;
      if ((packet.payload as Buffer).readUInt32BE(0) !== got) inOrder = false;
      got++;
      if (got === 20_000) paused = pauseUntilThrottled();
    });
    sub.on('data', (chunk: Buffer) => parser.parse(chunk));
    const pauseUntilThrottled = async (): Promise<void> => {
      sub.pause();
      const until = Date.now() + 30_000;
      while (Date.now() < until && ((await server.health()).throttledPublishers as number) === 0) await sleep(50);
      sub.resume();
    };
    sub.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'flood-sub', clean: true, keepalive: 0 } as Packet));
    sub.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood', qos: 0 }] } as Packet));
    await suback;
    const pub = await connectClient(server.url, { protocolVersion: 4 });
    const total = 300_000;
    const payload = Buffer.alloc(100);
    // As fast as mqtt.js can write, yielding now and then as an application loop does: faster than one subscriber reads.
    for (let i = 0; i < total; i++) {
      payload.writeUInt32BE(i, 0);
      pub.publish('flood', Buffer.from(payload), { qos: 0 });
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    const deadline = Date.now() + 60_000;
    while (got < total && Date.now() < deadline) await sleep(100);
    await paused;
    const health = await server.health();
    assert.equal(got, total, `delivered ${got} of ${total}; dropped ${JSON.stringify(health.dropped)}`);
    assert.equal(inOrder, true);
    assert.equal(health.dropped.congested, 0);
    assert.ok((health.throttledPublishers as number) > 0, 'the publisher was slowed down');
    pub.end(true);
    sub.destroy();
  });

  test('a subscriber that stops reading becomes a slow consumer: its QoS 0 messages drop, the others keep flowing', async () => {
    const server = await child(['--max-queued', '1000']);
    const stalled = await rawSubscriber(server.port, 'stalled', 'fan/#', 0);
    await sleep(200);
    stalled.pause();
    const healthy = await connectClient(server.url, { protocolVersion: 5 });
    let got = 0;
    healthy.on('message', () => got++);
    await healthy.subscribeAsync('fan/#', { qos: 0 });
    const pub = await connectClient(server.url, { protocolVersion: 5 });
    const payload = Buffer.alloc(10_000, 1);
    const total = 5000; // 50 MB: far more than the stalled subscriber's buffers and queue hold
    const started = Date.now();
    for (let i = 0; i < total; i++) {
      pub.publish('fan/x', payload, { qos: 0 });
      if (i % 100 === 99) await sleep(1);
    }
    const deadline = Date.now() + 30_000;
    while (got < total && Date.now() < deadline) await sleep(50);
    const elapsed = Date.now() - started;
    const health = await server.health();
    assert.equal(got, total, 'the healthy subscriber gets every message');
    assert.ok((health.slowConsumers as number) >= 1, 'the stalled subscriber was marked slow');
    assert.ok(health.dropped.congested > 0, "the stalled subscriber's messages were dropped and counted");
    assert.ok(elapsed < 20_000, `the publisher was not held back for long (${elapsed} ms)`);
    stalled.destroy();
    pub.end(true);
    healthy.end(true);
  });

  test('what waits for a stalled clean-session subscriber spills to disk, and arrives in order once it reads again', async () => {
    const dir = tempDir();
    const server = await broker({ storage: new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger }) });
    const stalled = await rawSubscriber(server.mqtt.port, 'spill-sub', 'spill/#', 1);
    const received: number[] = [];
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (p: Packet) => {
      if (p.cmd !== 'publish') return;
      received.push((p.payload as Buffer).readUInt32BE(0));
      stalled.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId } as Packet, { protocolVersion: 5 }));
    });
    stalled.on('data', (d: Buffer) => parser.parse(d));
    await sleep(200);
    stalled.pause();
    const pub = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    const total = 3000;
    const payload = Buffer.alloc(10_000, 2);
    // 30 MB of QoS 1: past the socket buffer and the memory window, into the spill file.
    for (let i = 0; i < total; i++) {
      payload.writeUInt32BE(i, 0);
      await pub.publishAsync('spill/x', Buffer.from(payload), { qos: 1 });
    }
    const spill = path.join(dir, 'spill');
    const spilled = fs.existsSync(spill) ? fs.readdirSync(spill).map((f) => fs.statSync(path.join(spill, f)).size).reduce((a, b) => a + b, 0) : 0;
    assert.ok(spilled > 5_000_000, `the backlog waits on disk (${spilled} bytes spilled)`);
    stalled.resume();
    const deadline = Date.now() + 30_000;
    while (received.length < total && Date.now() < deadline) await sleep(50);
    assert.equal(received.length, total);
    assert.deepEqual(received, Array.from({ length: total }, (_, i) => i), 'in publish order');
    stalled.destroy();
    pub.end(true);
  });

  test('a persistent session past maxQueuedBytes gets publishes refused with 0x97; what was accepted is delivered', async () => {
    const server = await broker({ limits: { maxQueuedBytes: 100_000 } });
    const sub = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'bytes-sub', clean: true, properties: { sessionExpiryInterval: 600 } });
    await sub.subscribeAsync('bytes/#', { qos: 1 });
    sub.end(true);
    await sleep(100);
    const { client: pub } = await RawClient.open(server.mqtt.port, { clientId: 'bytes-pub' });
    let accepted = 0;
    let refusal: Extract<Packet, { cmd: 'puback' }> | undefined;
    for (let i = 0; i < 20 && !refusal; i++) {
      pub.send({ cmd: 'publish', topic: 'bytes/x', payload: Buffer.alloc(10_000, i), qos: 1, messageId: i + 1, retain: false, dup: false } as Packet);
      const ack = (await pub.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
      if ((ack.reasonCode ?? 0) === 0) accepted++;
      else refusal = ack;
    }
    assert.equal(accepted, 10, '10 × 10 kB fit in 100 kB');
    assert.equal(refusal?.reasonCode, 0x97);
    assert.match(refusal!.properties?.reasonString ?? '', /maxQueuedBytes 100000/);
    // The handler is attached before CONNACK: queued messages arrive right behind it.
    const back = mqtt.connect(server.mqttUrl, { protocolVersion: 5, clientId: 'bytes-sub', clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 });
    const inbox = collect(back);
    const got = await inbox.take(10);
    assert.deepEqual(got.map((m) => m.payload[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // A sentinel after the refused one: nothing else was queued in between.
    pub.send({ cmd: 'publish', topic: 'bytes/x', payload: 'sentinel', qos: 1, messageId: 100, retain: false, dup: false } as Packet);
    await pub.next('puback');
    const all = await inbox.take(11);
    assert.equal(all[10]!.payload.toString(), 'sentinel');
    back.end(true);
    pub.close();
  });
});
