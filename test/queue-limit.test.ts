import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { tracker } from './helpers/tracker.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';
import type { Packet } from 'mqtt-packet';

describe('maxQueued for a persistent session', () => {
  let server: EddyServer;
  const t = tracker();
  before(async () => {
    server = await startBroker({ limits: { maxQueued: 5 } });
  });
  after(async () => {
    await t.closeAll();
    await server.stop();
  });

  test('publishes beyond the limit are refused with 0x97 and a reason, counted, and never half-delivered', async () => {
    const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'slow-durable', clean: true, properties: { sessionExpiryInterval: 600 } }));
    await sub.subscribeAsync('limit/#', { qos: 1 });
    await sub.endAsync();
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    const outcomes: Array<number | 'ok'> = [];
    for (let i = 0; i < 6; i++) {
      outcomes.push(await pub.publishAsync('limit/x', String(i), { qos: 1 }).then(() => 'ok' as const, (err: Error & { code?: number }) => err.code ?? -1));
    }
    assert.deepEqual(outcomes, ['ok', 'ok', 'ok', 'ok', 'ok', 0x97]);
    // The reason string names the subscriber whose queue is full.
    const { client: raw } = await RawClient.open(server.mqtt.port, { clientId: 'raw-pub' });
    t.track(raw);
    raw.send({ cmd: 'publish', topic: 'limit/x', payload: Buffer.from('6'), qos: 1, dup: false, retain: false, messageId: 9 } as Packet);
    const ack = (await raw.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
    assert.equal(ack.reasonCode, 0x97);
    assert.match(ack.properties?.reasonString ?? '', /queue of subscriber slow-durable holds 5 messages \(maxQueued 5\)/);
    const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { dropped: Record<string, number>; refusedPublishes: Record<string, number> };
    assert.equal(health.dropped['queue-full'], 2);
    assert.equal(health.refusedPublishes['0x97'], 2);

    const again = t.track(mqtt.connect(server.mqttUrl, { protocolVersion: 5, clientId: 'slow-durable', clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 }));
    const inbox = collect(again);
    const got = await inbox.take(5);
    assert.deepEqual(got.map((m) => m.payload.toString()), ['0', '1', '2', '3', '4']);
    // The queue went out on resume; a publish accepted now comes after all of it.
    await pub.publishAsync('limit/x', 'marker', { qos: 1 });
    assert.deepEqual((await beforeMarker(inbox.messages, isPublish('limit/x', 'marker'))).map((m) => m.payload.toString()), ['0', '1', '2', '3', '4'], 'exactly 5');
  });
});
