import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IPublishPacket } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import type { AclRule } from '../src/core/admission/index.js';
import type { ChannelPolicy } from '../src/core/channels.js';
import { startBroker } from './helpers/broker.js';
import { aclFile, basic, passwordFile } from './helpers/auth.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';
import { SseClient } from './helpers/sse.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';

/**
 * Every bypass of the old access checks (issue #10, "Why") against one ACL: `subscribe` is the right
 * to receive a topic, so no filter, group, retained message, replay or SSE stream reaches a topic
 * the subscriber may not receive; publishes, wills and redrives are checked per message.
 */

const RULES: AclRule[] = [
  { role: 'admin', allow: ['all'], topics: ['#', '$SYS/#', '$DLQ/#'] },
  { user: '*', deny: ['all'], topics: ['private/#'] },
  { anonymous: true, allow: ['subscribe'], topics: ['public/#'] },
  { user: 'bob', allow: ['all'], topics: ['#'] },
  { user: 'carol', allow: ['subscribe'], topics: ['fridge/%u/#'] },
  { user: '*', allow: ['publish'], topics: ['fridge/%u/#'] },
];
const USERS = { alice: { password: 'a', roles: ['admin'] }, bob: { password: 'b' }, carol: { password: 'c' } };
const HISTORY: ChannelPolicy = { pattern: '#', maxDeliveries: 2, retention: { maxAgeMs: 3_600_000 } };

const tempDir = tempDirs('eddy-acl-');
const t = tracker();
let server: EddyServer;
let dir: string;
let acl: string;
before(async () => {
  dir = tempDir();
  acl = aclFile(dir, RULES);
  server = await startBroker({ auth: { passwordFile: await passwordFile(dir, USERS), acl, allowAnonymous: true }, channels: [HISTORY], redelivery: { initialBackoffMs: 10, maxBackoffMs: 10 } });
});
afterEach(() => t.closeAll());
after(async () => {
  await t.closeAll();
  await server.stop();
});

const as = (user: keyof typeof USERS): { username: string; password: string } => ({ username: user, password: USERS[user].password });

/** An mqtt.js client whose messages are collected from before CONNACK. */
async function client(user: keyof typeof USERS | undefined, extra: mqtt.IClientOptions = {}): Promise<{ c: mqtt.MqttClient; inbox: IPublishPacket[] }> {
  const c = t.track(mqtt.connect(server.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0, ...(user ? as(user) : {}), ...extra }));
  const inbox: IPublishPacket[] = [];
  c.on('message', (_t, _p, packet) => inbox.push(packet));
  await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return { c, inbox };
}

const alice = (): Promise<{ c: mqtt.MqttClient; inbox: IPublishPacket[] }> => client('alice');
const topics = (list: IPublishPacket[]): string[] => list.map((m) => m.topic);

/** SUBSCRIBE and the SUBACK's codes (mqtt.js rejects subscribeAsync when any is a refusal). */
function subscribeCodes(c: mqtt.MqttClient, filters: Record<string, { qos: 0 | 1 | 2 }> | string, opts: mqtt.IClientSubscribeOptions = { qos: 1 }): Promise<number[]> {
  return new Promise((resolve) => {
    const callback = (_err: Error | null | undefined, _granted: unknown, packet?: { granted?: number[] }): void => resolve(packet?.granted ?? []);
    if (typeof filters === 'string') c.subscribe(filters, opts, callback as never);
    else c.subscribe(filters, callback as never);
  });
}

describe('ACL: the right to receive, whatever the filter', () => {
  for (const filter of ['#', 'private/#', '+/secret', '+/+', '$share/g/#']) {
    test(`bob subscribed to ${filter} never gets private/secret; a public marker after it arrives`, async () => {
      const bob = await client('bob');
      const granted = await subscribeCodes(bob.c, filter);
      if (filter === 'private/#') {
        // A filter that can match nothing allowed is refused outright.
        assert.deepEqual(granted, [0x87]);
        return;
      }
      assert.deepEqual(granted, [1]);
      await bob.c.subscribeAsync('public/marker', { qos: 1 });
      const pub = await alice();
      await pub.c.publishAsync('private/secret', 'the secret', { qos: 1 });
      await pub.c.publishAsync('public/marker', 'marker', { qos: 1 });
      const before = await beforeMarker(bob.inbox, isPublish('public/marker', 'marker'));
      assert.ok(!topics(before).includes('private/secret'), `got ${topics(before).join(', ')}`);
    });
  }

  test('retained: a private retained message is not sent through a wildcard; a public one is', async () => {
    const pub = await alice();
    await pub.c.publishAsync('private/kept', 'secret', { qos: 1, retain: true });
    await pub.c.publishAsync('public/kept', 'open', { qos: 1, retain: true });
    const bob = await client('bob');
    await bob.c.subscribeAsync('#', { qos: 1 });
    await pub.c.publishAsync('public/after-retained', 'marker', { qos: 1 });
    const before = await beforeMarker(bob.inbox, isPublish('public/after-retained', 'marker'));
    assert.ok(topics(before).includes('public/kept'));
    assert.ok(!topics(before).includes('private/kept'));
    // Clean up for the other tests.
    await pub.c.publishAsync('private/kept', '', { qos: 1, retain: true });
    await pub.c.publishAsync('public/kept', '', { qos: 1, retain: true });
  });

  test('replay (eddy-from earliest): private history is not replayed; public history is', async () => {
    const pub = await alice();
    await pub.c.publishAsync('private/history', 'old secret', { qos: 1 });
    await pub.c.publishAsync('public/history', 'old news', { qos: 1 });
    const bob = await client('bob');
    await bob.c.subscribeAsync('#', { qos: 1, properties: { userProperties: { 'eddy-from': 'earliest' } } });
    // Live messages come after the history: this one marks its end.
    await pub.c.publishAsync('public/after-history', 'marker', { qos: 1 });
    const before = await beforeMarker(bob.inbox, isPublish('public/after-history', 'marker'));
    assert.ok(topics(before).includes('public/history'));
    assert.ok(!topics(before).includes('private/history'));
  });

  test('SSE ?filter=%23 with bob\'s credentials: private messages are not streamed', async () => {
    const sse = await SseClient.open(`${server.httpUrl}/v1/subscribe?filter=%23`, { authorization: basic('bob', 'b') });
    const pub = await alice();
    await sleep(50);
    await pub.c.publishAsync('private/sse', 'secret', { qos: 1 });
    await pub.c.publishAsync('public/sse', 'marker', { qos: 1 });
    const events = await sse.take(1, 5000);
    assert.equal(events[0]!.event, 'public/sse');
    sse.close();
  });

  test('anonymous clients receive public/# only; a filter outside it is refused with 0x87', async () => {
    const anon = await client(undefined);
    assert.deepEqual(await subscribeCodes(anon.c, { 'public/#': { qos: 1 }, 'news/#': { qos: 1 }, '#': { qos: 1 } }), [1, 0x87, 1]);
    const pub = await alice();
    await pub.c.publishAsync('news/x', 'not for anonymous', { qos: 1 });
    await pub.c.publishAsync('public/anon-marker', 'marker', { qos: 1 });
    const before = await beforeMarker(anon.inbox, isPublish('public/anon-marker', 'marker'));
    assert.deepEqual(topics(before), []);
  });

  test('%u: carol receives fridge/carol/… through fridge/#, not fridge/bob/…; she may publish only her own', async () => {
    const carol = await client('carol');
    assert.deepEqual(await subscribeCodes(carol.c, 'fridge/#'), [1]);
    assert.deepEqual(await subscribeCodes(carol.c, 'news/#'), [0x87]);
    const bob = await client('bob');
    await bob.c.publishAsync('fridge/bob/level', 'bob 40', { qos: 1 });
    await carol.c.publishAsync('fridge/carol/level', 'carol 10', { qos: 1 });
    const refused = await carol.c.publishAsync('fridge/bob/level', 'spoof', { qos: 1 }).then(
      () => undefined,
      (err: Error & { code?: number }) => err.code,
    );
    assert.equal(refused, 0x87);
    await sleep(50);
    assert.deepEqual(topics(carol.inbox), ['fridge/carol/level']);
  });

  test('the broker-owned $DLQ/# and $SYS/# are read by the admin role only', async () => {
    const bob = await client('bob');
    assert.deepEqual(await subscribeCodes(bob.c, { '$DLQ/#': { qos: 1 }, '$SYS/#': { qos: 1 } }), [0x87, 0x87]);
    const admin = await alice();
    assert.deepEqual(await subscribeCodes(admin.c, { '$DLQ/#': { qos: 1 } }), [1]);
  });
});

describe('ACL: publishes, wills, HTTP and redrive', () => {
  test('a publish on a denied topic is refused with 0x87 (MQTT) and 403 (HTTP)', async () => {
    const bob = await client('bob');
    const code = await bob.c.publishAsync('private/x', 'no', { qos: 1 }).then(
      () => 0,
      (err: Error & { code?: number }) => err.code,
    );
    assert.equal(code, 0x87);
    const res = await fetch(`${server.httpUrl}/v1/publish/private/x`, { method: 'POST', body: 'no', headers: { authorization: basic('bob', 'b') } });
    assert.equal(res.status, 403);
    const ok = await fetch(`${server.httpUrl}/v1/publish/public/x`, { method: 'POST', body: 'yes', headers: { authorization: basic('bob', 'b') } });
    assert.equal(ok.status, 202);
  });

  test('a will on a topic the client may not publish is refused at CONNECT with 0x87', async () => {
    const client = await RawClient.connect(server.mqtt.port);
    t.track(client);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'carol-will', clean: true, keepalive: 30, username: 'carol', password: Buffer.from('c'), will: { topic: 'private/will', payload: Buffer.from('x'), qos: 0, retain: false } } as Packet);
    assert.equal(((await client.next('connack')) as Extract<Packet, { cmd: 'connack' }>).reasonCode, 0x87);
  });

  test('redrive re-checks the original publisher: a dead letter it may no longer publish stays a dead letter', async () => {
    // bob publishes on control/door; a consumer refuses it until it is dead-lettered.
    let refusals = 0;
    // Refuses every delivery (MQTT 5 PUBACK 0x80): after maxDeliveries it goes to $DLQ.
    const consumer = await client('alice', {
      clientId: 'door-consumer',
      customHandleAcks: (_topic, _message, _packet, done) => {
        refusals++;
        done(0x80);
      },
    });
    await consumer.c.subscribeAsync('control/door', { qos: 1 });
    const bob = await client('bob');
    await bob.c.publishAsync('control/door', 'OPEN-THE-DOOR', { qos: 1 });
    const deadline = Date.now() + 5000;
    let waiting = 0;
    while (Date.now() < deadline) {
      waiting = ((await (await fetch(`${server.httpUrl}/v1/dlq`, { headers: { authorization: basic('alice', 'a') } })).json()) as { waiting: number }).waiting;
      if (waiting > 0) break;
      await sleep(50);
    }
    assert.equal(waiting, 1, `dead-lettered after ${refusals} refusals`);
    consumer.c.end(true);
    // Redrive is an admin route.
    assert.equal((await fetch(`${server.httpUrl}/v1/dlq/redrive`, { method: 'POST', headers: { authorization: basic('bob', 'b') } })).status, 403);
    // bob loses the right to publish on control/#.
    aclFile(dir, [{ user: 'bob', deny: ['publish'], topics: ['control/#'] }, ...RULES]);
    await server.reload({});
    const watcher = await alice();
    await watcher.c.subscribeAsync('control/door', { qos: 1 });
    const result = (await (await fetch(`${server.httpUrl}/v1/dlq/redrive`, { method: 'POST', headers: { authorization: basic('alice', 'a') } })).json()) as { redriven: number; refused: number };
    assert.deepEqual({ redriven: result.redriven, refused: result.refused }, { redriven: 0, refused: 1 });
    await watcher.c.publishAsync('control/door', 'marker', { qos: 1 });
    const before = await beforeMarker(watcher.inbox, isPublish('control/door', 'marker'));
    assert.deepEqual(before.map((m) => m.payload.toString()), [], 'the door did not open');
    aclFile(dir, RULES);
    await server.reload({});
  });
});
