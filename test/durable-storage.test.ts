import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDirs } from './helpers/temp-dir.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';

const clients: MqttClient[] = [];
let server: EddyServer | undefined;

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await server?.stop();
  server = undefined;
});

const tempDir = tempDirs('eddy-durable-');

async function startDurable(dir: string, segmentBytes?: number): Promise<EddyServer> {
  server = await startBroker({ storage: new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger, segmentBytes }) });
  return server;
}

async function restart(dir: string, segmentBytes?: number): Promise<EddyServer> {
  for (const c of clients.splice(0)) c.end(true);
  await server?.stop();
  server = undefined;
  return startDurable(dir, segmentBytes);
}

/** Connects with the message listener attached first: queued messages follow CONNACK at once. */
async function connectCollecting(s: EddyServer, options: IClientOptions) {
  const c = mqtt.connect(s.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0, ...options });
  clients.push(c);
  const inbox = collect(c);
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    c.once('connect', (packet) => resolve(packet));
    c.once('error', reject);
  });
  return { client: c, inbox, sessionPresent: connack.sessionPresent };
}

const durable = (clientId: string, clean = false): IClientOptions => ({ clientId, clean, properties: { sessionExpiryInterval: 3600 } });

describe('durable storage', () => {
  test('a persistent session keeps its subscription and a backlog larger than memory across restarts, in order', async () => {
    const dir = tempDir();
    let s = await startDurable(dir);
    const sub = await connectClient(s.mqttUrl, { protocolVersion: 5, ...durable('backlog-sub', true) });
    clients.push(sub);
    await sub.subscribeAsync('orders/#', { qos: 1 });
    await sub.endAsync();
    const pub = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(pub);
    const total = 3000; // beyond the queue's in-memory window, so most of it waits on disk
    for (let i = 0; i < total; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => pub.publishAsync('orders/new', String(i + j), { qos: 1 })));
    }
    s = await restart(dir);
    const { inbox, sessionPresent } = await connectCollecting(s, durable('backlog-sub'));
    assert.equal(sessionPresent, true);
    const got = await inbox.take(total, 15_000);
    assert.deepEqual(got.map((m) => Number(m.payload.toString())), Array.from({ length: total }, (_, i) => i));
    assert.ok(got.every((m) => m.topic === 'orders/new' && m.qos === 1));
  });

  test('messages published after a restart reach a subscription made before it', async () => {
    const dir = tempDir();
    let s = await startDurable(dir);
    const first = await connectCollecting(s, durable('keeps-sub', true));
    await first.client.subscribeAsync('fridge/+/level', { qos: 1 });
    s = await restart(dir);
    const { inbox, sessionPresent } = await connectCollecting(s, durable('keeps-sub'));
    assert.equal(sessionPresent, true);
    const pub = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(pub);
    await pub.publishAsync('fridge/kitchen/level', '0.2', { qos: 1, properties: { userProperties: { unit: 'fraction' }, contentType: 'text/plain' } });
    const [m] = await inbox.take(1);
    assert.equal(m!.topic, 'fridge/kitchen/level');
    assert.equal(m!.payload.toString(), '0.2');
    assert.deepEqual({ ...m!.properties?.userProperties }, { unit: 'fraction' });
    assert.equal(m!.properties?.contentType, 'text/plain');
  });

  test('retained messages survive a restart; a cleared one stays cleared', async () => {
    const dir = tempDir();
    let s = await startDurable(dir);
    const pub = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(pub);
    await pub.publishAsync('status/a', 'up', { qos: 1, retain: true });
    await pub.publishAsync('status/b', 'down', { qos: 0, retain: true });
    await pub.publishAsync('status/c', 'gone soon', { qos: 1, retain: true });
    await pub.publishAsync('status/c', '', { qos: 1, retain: true });
    await new Promise((r) => setTimeout(r, 100)); // the QoS 0 retained message is stored without a confirmation
    s = await restart(dir);
    const { client: c, inbox } = await connectCollecting(s, { clean: true });
    await c.subscribeAsync('status/#', { qos: 1 });
    const got = await inbox.take(2);
    assert.deepEqual(got.map((m) => `${m.topic}=${m.payload.toString()}:${m.retain}`).sort(), ['status/a=up:true', 'status/b=down:true']);
    // Retained messages follow the SUBACK at once; a live marker published after it comes later.
    await c.publishAsync('status/marker', 'marker', { qos: 1 });
    assert.equal((await beforeMarker(inbox.messages, isPublish('status/marker', 'marker'))).length, 2, 'the cleared one stays cleared');
  });

  test('a session ended with clean start stays ended after a restart', async () => {
    const dir = tempDir();
    let s = await startDurable(dir);
    const a = await connectCollecting(s, durable('ends', true));
    await a.client.subscribeAsync('x/#', { qos: 1 });
    await a.client.endAsync();
    const b = await connectCollecting(s, durable('ends', true)); // clean start: the old session ends
    await b.client.endAsync();
    s = await restart(dir);
    const c = await connectCollecting(s, durable('ends'));
    assert.equal(c.sessionPresent, true, 'the second session (expiry 3600) is kept');
    const pub = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(pub);
    await c.client.subscribeAsync('ends-marker', { qos: 1 });
    await pub.publishAsync('x/1', 'should not arrive', { qos: 1 });
    await pub.publishAsync('ends-marker', 'marker', { qos: 1 });
    assert.deepEqual(await beforeMarker(c.inbox.messages, isPublish('ends-marker', 'marker')), [], 'the ended session’s subscription is gone');
  });

  test('segments nobody needs any more are deleted at a checkpoint', async () => {
    const dir = tempDir();
    const s = await startDurable(dir, 8 * 1024);
    const { client: sub, inbox } = await connectCollecting(s, durable('drainer', true));
    await sub.subscribeAsync('load/#', { qos: 1 });
    const pub = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(pub);
    await Promise.all(Array.from({ length: 400 }, (_, i) => pub.publishAsync('load/x', Buffer.alloc(200, i % 256), { qos: 1 })));
    await inbox.take(400);
    const logDir = path.join(dir, 'log');
    const before = fs.readdirSync(logDir).length;
    assert.ok(before > 5, `segments before: ${before}`);
    // Everything is acknowledged: the next checkpoint (each second) removes the drained segments
    // while the broker runs, though acknowledgements write nothing to the log.
    let afterCount = before;
    for (let i = 0; i < 40 && afterCount > 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      afterCount = fs.readdirSync(logDir).length;
    }
    assert.ok(afterCount <= 2, `segments after: ${afterCount}`);
  });

  test('a second broker on the same data directory is refused', async () => {
    const dir = tempDir();
    await startDurable(dir);
    await assert.rejects(
      startBroker({ storage: new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger }) }),
      (err: Error & { code?: string }) => err.code === 'EDDY_STORAGE_LOCKED' && /in use by process/.test(err.message),
    );
  });
});
