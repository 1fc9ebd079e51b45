import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from 'mqtt-packet';
import type { IPublishPacket } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { run, startBroker } from './helpers/broker.js';
import { passwordFile } from './helpers/auth.js';
import { connectClient } from './helpers/mqtt.js';
import { onPath } from './helpers/path.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish, wireInbox } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';
import { until } from './helpers/admin.js';

type Suback = Extract<Packet, { cmd: 'suback' }>;

const t = tracker();
const tempDir = tempDirs('eddy-sys-');
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});

const USERS = { root: { password: 'root-pw', roles: ['admin'] }, bob: { password: 'bob-pw' } };
const latest = (inbox: IPublishPacket[], topic: string): string | undefined => inbox.filter((p) => p.topic === topic).at(-1)?.payload.toString();

describe('$SYS topics', () => {
  it('an admin subscriber gets the retained values at once, then changes every interval, under Mosquitto names', async () => {
    const s = (server = await startBroker({ sys: { interval: 0.2 }, auth: { passwordFile: await passwordFile(tempDir(), USERS) } }));
    const watcher = t.track(await connectClient(s.mqttUrl, { clientId: 'sys-admin', username: 'root', password: 'root-pw', protocolVersion: 5 }));
    const inbox = wireInbox(watcher);
    await watcher.subscribeAsync('$SYS/#', { qos: 0 });
    await until(() => latest(inbox, '$SYS/broker/version') !== undefined, () => `got ${inbox.map((p) => p.topic).join(', ')}`, 2000);
    const first = inbox.find((p) => p.topic === '$SYS/broker/version')!;
    assert.equal(first.retain, true, 'sent as the retained value on subscribing');
    assert.match(latest(inbox, '$SYS/broker/version')!, /^eddy version \d+\.\d+\.\d+/);
    assert.match(latest(inbox, '$SYS/broker/uptime')!, /^\d+ seconds$/);
    for (const topic of [
      'clients/connected', 'clients/disconnected', 'clients/total', 'clients/maximum',
      'messages/received', 'messages/sent', 'bytes/received', 'bytes/sent', 'publish/messages/dropped',
      'load/messages/received/1min', 'load/messages/sent/5min', 'load/bytes/received/15min',
      'store/messages/count', 'store/messages/bytes', 'messages/stored', 'retained messages/count', 'subscriptions/count',
      'heap/current', 'rate/messages/received', 'rate/bytes/sent',
    ]) {
      assert.ok(latest(inbox, `$SYS/broker/${topic}`) !== undefined, `$SYS/broker/${topic} missing`);
    }
    // The retained value may be of a round before this client connected; the next one counts it.
    await until(() => latest(inbox, '$SYS/broker/clients/connected') === '1', () => `clients/connected ${latest(inbox, '$SYS/broker/clients/connected')}`, 3000);

    // A client and some traffic: the next rounds say so.
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'sys-pub', username: 'bob', password: 'bob-pw', protocolVersion: 5 }));
    for (let i = 0; i < 5; i++) await publisher.publishAsync('plain/topic', `m${i}`, { qos: 1, retain: i === 0 });
    await until(() => latest(inbox, '$SYS/broker/clients/connected') === '2', () => `clients/connected ${latest(inbox, '$SYS/broker/clients/connected')}`, 3000);
    await until(() => Number(latest(inbox, '$SYS/broker/messages/received')) >= 5, () => `messages/received ${latest(inbox, '$SYS/broker/messages/received')}`, 3000);
    await until(() => latest(inbox, '$SYS/broker/retained messages/count') === '1', () => 'retained count', 3000);
    assert.ok(Number(latest(inbox, '$SYS/broker/load/messages/received/1min')) > 0);
    const live = inbox.filter((p) => p.topic === '$SYS/broker/clients/connected').at(-1)!;
    assert.equal(live.retain, false, 'a live update');
    assert.equal(live.qos, 0);
  });

  it('a non-admin may not subscribe to $SYS (SUBACK 0x87), and its # never matches $SYS', async () => {
    const s = (server = await startBroker({ sys: { interval: 0.1 }, auth: { passwordFile: await passwordFile(tempDir(), USERS) } }));
    const { client: bob } = await RawClient.open(s.mqtt.port, { clientId: 'sys-bob', username: 'bob', password: Buffer.from('bob-pw') });
    t.track(bob);
    bob.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$SYS/#', qos: 0 }, { topic: '$SYS/broker/uptime', qos: 0 }, { topic: '#', qos: 0 }] } as Packet);
    const suback = (await bob.next('suback')) as Suback;
    assert.deepEqual(suback.granted, [0x87, 0x87, 0]);
    // Rounds keep coming (every 100 ms); a marker published after two of them must come with nothing of $SYS before it.
    await new Promise((r) => setTimeout(r, 250));
    const { client: marker } = await RawClient.open(s.mqtt.port, { clientId: 'sys-marker', username: 'bob', password: Buffer.from('bob-pw') });
    t.track(marker);
    marker.send({ cmd: 'publish', topic: 'marker', payload: 'done', qos: 1, messageId: 2, retain: false, dup: false } as Packet);
    const early = await bob.until(isPublish('marker', 'done'));
    assert.deepEqual(early.filter((p) => p.cmd === 'publish'), []);
  });

  it('sys.interval 0 publishes nothing', async () => {
    const s = (server = await startBroker({ sys: { interval: 0 } }));
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'sys-off-pub', protocolVersion: 5 }));
    await publisher.publishAsync('marker', 'retained marker', { qos: 1, retain: true });
    const watcher = t.track(await connectClient(s.mqttUrl, { clientId: 'sys-off', protocolVersion: 5 }));
    const inbox = wireInbox(watcher);
    // One SUBSCRIBE, $SYS first: its retained values would come before the marker's.
    await watcher.subscribeAsync(['$SYS/#', 'marker'], { qos: 0 });
    const early = await beforeMarker(inbox, isPublish('marker', 'retained marker'));
    assert.deepEqual(early.map((p) => p.topic), []);
  });

  it('mosquitto_sub reads $SYS/broker/version as from Mosquitto', { skip: !onPath('mosquitto_sub') && 'mosquitto_sub is not installed' }, async () => {
    const s = (server = await startBroker({ sys: { interval: 10 } }));
    const result = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(s.mqtt.port), '-V', '311', '-t', '$SYS/broker/version', '-C', '1', '-W', '5']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^eddy version \d/);
  });
});
