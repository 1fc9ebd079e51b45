import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import mqtt, { type IPublishPacket } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import type { BrokerLimits } from '../src/core/limits.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { encodeMessageRecord } from '../src/storage/disk/record.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { silentLogger } from '../src/util/logger.js';
import { startBroker } from './helpers/broker.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';

/**
 * Retained messages as storage keeps them: bounded in count and bytes, on disk with only an index
 * in memory (disk engine), served paced by the subscriber's window, compacted so that old log
 * segments can go, and carried over from a version 1 checkpoint.
 */

const tempDir = tempDirs('eddy-retained-');
const t = tracker();
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});
after(() => t.closeAll());

type Engine = 'memory' | 'disk';

async function start(engine: Engine, limits: Partial<BrokerLimits> = {}, dir = tempDir(), extra: { segmentBytes?: number; checkpointIntervalMs?: number } = {}): Promise<EddyServer> {
  const storage = engine === 'memory' ? new MemoryStorage() : new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger, ...extra });
  server = await startBroker({ storage, limits });
  return server;
}

/**
 * What a new subscriber to `filter` is sent as retained messages: everything that arrives before a
 * live sentinel published after the SUBACK (live messages wait behind the retained ones).
 */
async function retainedFor(s: EddyServer, filter: string, sentinelTopic: string): Promise<IPublishPacket[]> {
  const client = t.track(mqtt.connect(s.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0 }));
  const got: IPublishPacket[] = [];
  let sentinel: () => void;
  const sawSentinel = new Promise<void>((r) => (sentinel = r));
  client.on('message', (_topic, _payload, packet) => {
    if (packet.topic === sentinelTopic && !packet.retain) sentinel();
    else got.push(packet);
  });
  await new Promise((r) => client.once('connect', r));
  await client.subscribeAsync(filter, { qos: 1 });
  const pub = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5 }));
  await pub.publishAsync(sentinelTopic, 'sentinel', { qos: 1 });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([sawSentinel, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no sentinel; got ${got.length}`)), 20_000)))]).finally(() => clearTimeout(timer));
  return got;
}

async function rawPublish(client: RawClient, topic: string, payload: Buffer | string, id: number, retain = true): Promise<Extract<Packet, { cmd: 'puback' }>> {
  client.send({ cmd: 'publish', topic, payload, qos: 1, messageId: id, retain, dup: false } as Packet);
  return (await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
}

for (const engine of ['memory', 'disk'] as const) {
  describe(`retained limits (${engine})`, () => {
    test('past maxRetained a new retained topic is refused with 0x97; replacing one is not; QoS 0 is delivered but not kept', async () => {
      const s = await start(engine, { maxRetained: 3 });
      const { client } = await RawClient.open(s.mqtt.port, { clientId: 'ret-limit' });
      t.track(client);
      for (let i = 0; i < 3; i++) assert.equal((await rawPublish(client, `lim/${i}`, `v${i}`, i + 1)).reasonCode ?? 0, 0);
      const refused = await rawPublish(client, 'lim/3', 'four', 10);
      assert.equal(refused.reasonCode, 0x97);
      assert.match(refused.properties?.reasonString ?? '', /maxRetained 3/);
      assert.equal((await rawPublish(client, 'lim/0', 'replaced', 11)).reasonCode ?? 0, 0, 'replacing an existing retained message adds none');
      // QoS 0 past the limit: a current subscriber gets it live, a later one does not get it retained.
      const live = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5 }));
      const liveGot: string[] = [];
      live.on('message', (topic) => liveGot.push(topic));
      await live.subscribeAsync('lim/q0', { qos: 0 });
      client.send({ cmd: 'publish', topic: 'lim/q0', payload: 'not kept', qos: 0, retain: true, dup: false } as Packet);
      const kept = await retainedFor(s, 'lim/#', 'lim/sentinel');
      assert.deepEqual(kept.map((m) => `${m.topic}=${m.payload.toString()}`).sort(), ['lim/0=replaced', 'lim/1=v1', 'lim/2=v2']);
      assert.deepEqual(liveGot, ['lim/q0']);
      const health = (await (await fetch(`${s.httpUrl}/healthz`)).json()) as { retainedRefused: number };
      assert.equal(health.retainedRefused, 2);
    });

    test('past maxRetainedBytes a retained message is refused with 0x97', async () => {
      const s = await start(engine, { maxRetainedBytes: 25_000 });
      const { client } = await RawClient.open(s.mqtt.port, { clientId: 'ret-bytes' });
      t.track(client);
      assert.equal((await rawPublish(client, 'bytes/a', Buffer.alloc(10_000), 1)).reasonCode ?? 0, 0);
      assert.equal((await rawPublish(client, 'bytes/b', Buffer.alloc(10_000), 2)).reasonCode ?? 0, 0);
      const refused = await rawPublish(client, 'bytes/c', Buffer.alloc(10_000), 3);
      assert.equal(refused.reasonCode, 0x97);
      assert.match(refused.properties?.reasonString ?? '', /maxRetainedBytes 25000/);
      // Clearing one frees its bytes.
      assert.equal((await rawPublish(client, 'bytes/a', Buffer.alloc(0), 4)).reasonCode ?? 0, 0);
      assert.equal((await rawPublish(client, 'bytes/c', Buffer.alloc(10_000), 5)).reasonCode ?? 0, 0);
      const kept = await retainedFor(s, 'bytes/#', 'bytes/sentinel');
      assert.deepEqual(kept.map((m) => m.topic).sort(), ['bytes/b', 'bytes/c']);
    });

    test('200 retained messages of 100 kB reach a subscriber whose Receive Maximum is 5, paced by its window', async () => {
      const s = await start(engine);
      const pub = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5 }));
      for (let i = 0; i < 200; i++) await pub.publishAsync(`many/${i}`, Buffer.alloc(100_000, i % 256), { qos: 1, retain: true });
      const { client } = await RawClient.open(s.mqtt.port, { clientId: 'narrow', properties: { receiveMaximum: 5 } });
      t.track(client);
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'many/#', qos: 1 }] } as Packet);
      await client.next('suback');
      const topics = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const p = (await client.next('publish')) as Extract<Packet, { cmd: 'publish' }>;
        assert.equal(p.retain, true);
        assert.equal((p.payload as Buffer).length, 100_000);
        topics.add(p.topic);
        // Never more than 5 unacknowledged.
        assert.ok(client.packets.filter((x) => x.cmd === 'publish').length <= 5);
        client.send({ cmd: 'puback', messageId: p.messageId } as Packet);
      }
      assert.equal(topics.size, 200);
    });
  });
}

describe('retained messages on disk', () => {
  test('only an index is in memory and in the checkpoint: payloads stay in the log, and survive a restart', async () => {
    const dir = tempDir();
    let s = await start('disk', {}, dir, { checkpointIntervalMs: 100 });
    const pub = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5 }));
    for (let i = 0; i < 50; i++) await pub.publishAsync(`idx/${i}`, Buffer.alloc(100_000, i), { qos: 1, retain: true });
    await sleep(400);
    const parts = fs.readdirSync(dir).filter((f) => f.startsWith('checkpoint'));
    const checkpointBytes = parts.reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
    assert.ok(checkpointBytes < 20_000, `the checkpoint holds no payloads (${checkpointBytes} bytes for 5 MB retained)`);
    await t.closeAll();
    await s.stop();
    s = server = await start('disk', {}, dir);
    const kept = await retainedFor(s, 'idx/#', 'idx/sentinel');
    assert.equal(kept.length, 50);
    for (const m of kept) assert.equal(m.payload[0], Number(m.topic.split('/')[1]));
  });

  test('retained messages that never change do not keep old log segments: they are copied forward, and still served', async () => {
    const dir = tempDir();
    let s = await start('disk', {}, dir, { segmentBytes: 64 * 1024, checkpointIntervalMs: 50 });
    const pub = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5 }));
    for (let i = 0; i < 10; i++) await pub.publishAsync(`still/${i}`, `value-${i}`, { qos: 1, retain: true });
    // 2 MB of other traffic: 30 segments' worth.
    for (let i = 0; i < 200; i++) await pub.publishAsync('traffic', Buffer.alloc(10_000), { qos: 1 });
    await sleep(600);
    const segments = fs.readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).length;
    assert.ok(segments <= 4, `old segments were deleted (${segments} remain)`);
    await t.closeAll();
    await s.stop();
    s = server = await start('disk', {}, dir);
    const kept = await retainedFor(s, 'still/#', 'still/sentinel');
    assert.deepEqual(kept.map((m) => `${m.topic}=${m.payload.toString()}`).sort(), Array.from({ length: 10 }, (_, i) => `still/${i}=value-${i}`).sort());
  });

  test('a version 1 checkpoint (retained messages kept whole) is read, and its retained messages move into the log', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'log'), { recursive: true });
    const message = { topic: 'old/kept', payload: Buffer.from('from v1'), qos: 1 as const, retain: true, properties: {}, publishedAt: Date.now(), seq: 7 };
    const v1 = { version: 1, position: 0, seq: 7, nextQueueId: 1, sessions: [], queues: [], retained: [encodeMessageRecord(message, []).toString('base64')] };
    fs.writeFileSync(path.join(dir, 'checkpoint.json'), JSON.stringify(v1));
    let s = await start('disk', {}, dir);
    assert.deepEqual((await retainedFor(s, 'old/#', 'old/sentinel')).map((m) => m.payload.toString()), ['from v1']);
    await t.closeAll();
    await s.stop();
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')).version, 2);
    s = server = await start('disk', {}, dir);
    assert.deepEqual((await retainedFor(s, 'old/#', 'old/sentinel')).map((m) => m.payload.toString()), ['from v1'], 'still there after the upgrade');
  });
});

