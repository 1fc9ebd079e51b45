import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import type { IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { ENGINES, engineOptions } from './helpers/engines.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { tracker } from './helpers/tracker.js';
import { beforeMarker } from './helpers/sentinel.js';


/** Payloads a client receives, in arrival order. */
function payloads(client: MqttClient): string[] {
  const list: string[] = [];
  client.on('message', (_t, p: Buffer) => list.push(p.toString()));
  return list;
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(10);
  }
}

const range = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const sorted = (l: string[]): string[] => [...l].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));

for (const engine of ENGINES) {
  describe(`shared subscriptions (${engine} engine)`, () => {
    let server: EddyServer;
    const t = tracker();
    before(async () => {
      server = await startBroker(engineOptions(engine));
    });
    afterEach(() => t.closeAll());
    after(() => server.stop());

    async function member(filter: string, version: 4 | 5 = 5, qos: 0 | 1 | 2 = 1): Promise<{ client: MqttClient; got: string[] }> {
      const client = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
      const got = payloads(client);
      const [grant] = await client.subscribeAsync(filter, { qos });
      assert.equal(grant!.qos, qos, `granted ${filter}`);
      return { client, got };
    }

    async function publishAll(topic: (i: number) => string, list: string[], qos: 0 | 1 | 2 = 1): Promise<void> {
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      for (let i = 0; i < list.length; i++) await pub.publishAsync(topic(i), list[i]!, { qos });
    }

    /**
     * Gives each member a plain subscription to `topic`, publishes a marker there and resolves with
     * what each got before it. Group deliveries are dispatched as the broker routes a publish, and
     * every publish before the marker was acknowledged, so all their copies come before it.
     */
    async function beforeMarkerAll(members: Array<{ client: MqttClient; got: string[] }>, topic: string): Promise<string[][]> {
      for (const m of members) await m.client.subscribeAsync(topic, { qos: 1 });
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      await pub.publishAsync(topic, 'marker', { qos: 1 });
      return Promise.all(members.map((m) => beforeMarker(m.got, (p) => p === 'marker')));
    }

    for (const version of [4, 5] as const) {
      it(`v${version}: two members of $share/g/... split 10 messages 5/5, no duplicates, union = all`, async () => {
        const a = await member(`$share/g/sh${version}/#`, version);
        const b = await member(`$share/g/sh${version}/#`, version);
        const sent = range('m', 10);
        await publishAll((i) => `sh${version}/dev/${i}`, sent);
        const [gotA, gotB] = await beforeMarkerAll([a, b], `sh${version}/marker`);
        assert.equal(gotA!.length, 5, `round robin: a got ${gotA}`);
        assert.equal(gotB!.length, 5, `round robin: b got ${gotB}`);
        assert.deepEqual(sorted([...gotA!, ...gotB!]), sent, 'each message exactly once across the group');
        // In publish order within each member.
        assert.deepEqual(gotA, sorted(gotA!));
        assert.deepEqual(gotB, sorted(gotB!));
      });
    }

    it('two different groups each get every message; a plain subscriber gets all too', async () => {
      const g1a = await member('$share/g1/multi/t');
      const g1b = await member('$share/g1/multi/t');
      const g2a = await member('$share/g2/multi/+', 5, 2);
      const g2b = await member('$share/g2/multi/+', 4, 0);
      const plain = await member('multi/t', 4);
      const sent = range('x', 10);
      await publishAll(() => 'multi/t', sent);
      const [a1, b1, a2, b2, all] = await beforeMarkerAll([g1a, g1b, g2a, g2b, plain], 'multi-marker');
      assert.deepEqual(sorted([...a1!, ...b1!]), sent, 'group g1 got each message once');
      assert.deepEqual(sorted([...a2!, ...b2!]), sent, 'group g2 got each message once');
      assert.deepEqual(all, sent, 'the plain subscriber got all, in order');
      assert.deepEqual([a1!.length, b1!.length, a2!.length, b2!.length], [5, 5, 5, 5]);
    });

    it('each member receives at the min of publish QoS and its own subscription QoS', async () => {
      const clients: MqttClient[] = [];
      const qosSeen = new Map<MqttClient, number[]>();
      for (const qos of [0, 2] as const) {
        const client = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        const seen: number[] = [];
        client.on('message', (_t, _p, packet: IPublishPacket) => seen.push(packet.qos));
        await client.subscribeAsync('$share/q/qos/t', { qos });
        clients.push(client);
        qosSeen.set(client, seen);
      }
      await publishAll(() => 'qos/t', range('q', 4), 1);
      await waitFor(() => [...qosSeen.values()].reduce((n, l) => n + l.length, 0) >= 4, 2000, () => 'four deliveries');
      assert.deepEqual(qosSeen.get(clients[0]!), [0, 0], 'QoS 0 member');
      assert.deepEqual(qosSeen.get(clients[1]!), [1, 1], 'QoS 2 member gets the publish QoS 1');
    });

    it('when one member disconnects, the other gets everything after', async () => {
      const a = await member('$share/g/leave/#');
      const b = await member('$share/g/leave/#');
      await publishAll((i) => `leave/${i}`, range('before', 4));
      await waitFor(() => a.got.length + b.got.length >= 4, 2000, () => 'first batch');
      assert.deepEqual([a.got.length, b.got.length], [2, 2]);
      await a.client.endAsync();
      await sleep(50);
      const after = range('after', 10);
      await publishAll((i) => `leave/${i}`, after);
      const [gotB] = await beforeMarkerAll([b], 'leave-marker');
      assert.deepEqual(gotB!.slice(2), after, 'the remaining member gets every later message, in order');
      assert.equal(a.got.length, 2);
    });

    it('a disconnected persistent member is skipped while another member is connected', async () => {
      const opts = { protocolVersion: 5 as const, clean: false, clientId: 'shared-persist', properties: { sessionExpiryInterval: 60 } };
      const away = t.track(await connectClient(server.mqttUrl, opts));
      await away.subscribeAsync('$share/p/persist/t', { qos: 1 });
      const b = await member('$share/p/persist/t');
      await away.endAsync();
      await sleep(50);
      const sent = range('p', 6);
      await publishAll(() => 'persist/t', sent);
      await waitFor(() => b.got.length >= 6, 2000, () => `b got ${b.got}`);
      assert.deepEqual(b.got, sent);
      assert.equal(server.broker.sessions.get('shared-persist')?.queue.pendingCount, 0, 'nothing queued for the offline member');
      const end = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'shared-persist', clean: true }));
      await end.endAsync();
    });

    it('when every member is offline, a persistent member queues the messages and gets them on reconnect', async () => {
      const opts = { protocolVersion: 5 as const, clean: false, clientId: 'shared-queue', properties: { sessionExpiryInterval: 60 } };
      const a = t.track(await connectClient(server.mqttUrl, { ...opts, clean: true }));
      await a.subscribeAsync('$share/q/squeue/t', { qos: 1 });
      await a.endAsync();
      const sent = range('s', 5);
      await publishAll(() => 'squeue/t', sent);
      assert.equal(server.broker.groups.get('$share/q/squeue/t')?.queue.pendingCount, 5, 'queued in the group while no member is connected');
      // Listen before CONNACK: queued messages follow it immediately.
      const b = t.track(mqtt.connect(server.mqttUrl, { ...opts, reconnectPeriod: 0 }));
      const got = payloads(b);
      await new Promise((resolve, reject) => b.once('connect', resolve).once('error', reject));
      // The group sends its queue as the member attaches, before the SUBACK of the marker subscription.
      assert.deepEqual((await beforeMarkerAll([{ client: b, got }], 'squeue-marker'))[0], sent);
      await b.endAsync();
      await (await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'shared-queue', clean: true })).endAsync();
    });

    it('unsubscribing leaves the group', async () => {
      const a = await member('$share/g/unsub/t');
      const b = await member('$share/g/unsub/t');
      await a.client.unsubscribeAsync('$share/g/unsub/t');
      const sent = range('u', 6);
      await publishAll(() => 'unsub/t', sent);
      const [gotA, gotB] = await beforeMarkerAll([a, b], 'unsub/marker');
      assert.deepEqual(gotB, sent);
      assert.deepEqual(gotA, []);
    });

    it('shared subscriptions get no retained messages (plain ones do)', async () => {
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      await pub.publishAsync('ret/shared', 'retained', { qos: 1, retain: true });
      const shared = await member('$share/g/ret/shared');
      const sharedHash = await member('$share/h/ret/#', 4);
      const plain = await member('ret/shared');
      // Retained messages follow each SUBACK at once; a live message published now comes after them,
      // to every one of the three (each the only member of its group).
      await pub.publishAsync('ret/shared', 'marker', { qos: 1 });
      const isMarker = (p: string): boolean => p === 'marker';
      assert.deepEqual(await beforeMarker(plain.got, isMarker), ['retained']);
      assert.deepEqual(await beforeMarker(shared.got, isMarker), []);
      assert.deepEqual(await beforeMarker(sharedHash.got, isMarker), []);
      await pub.publishAsync('ret/shared', '', { qos: 1, retain: true });
    });

    it('a client with a shared and a matching non-shared subscription gets a copy for each (MQTT 5 §4.8.2)', async () => {
      // "the Client will receive a copy of the message by virtue of it having the Non-shared Subscription.
      // A second copy of the message will be delivered to one of the subscribers to the Shared Subscription".
      // Here the client is the group's only member, so both copies go to it.
      const client = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      const got: Array<[string, number]> = [];
      client.on('message', (_t, p: Buffer, packet: IPublishPacket) => got.push([p.toString(), packet.qos]));
      await client.subscribeAsync({ 'both/t': { qos: 0 }, '$share/solo/both/t': { qos: 1 } });
      await publishAll(() => 'both/t', ['one', 'two'], 1);
      await client.subscribeAsync('both-marker', { qos: 1 });
      await publishAll(() => 'both-marker', ['marker'], 1);
      assert.deepEqual(
        (await beforeMarker(got, ([p]) => p === 'marker')).sort(),
        [
          ['one', 0],
          ['one', 1],
          ['two', 0],
          ['two', 1],
        ],
        'one copy per subscription kind, each at its own QoS',
      );
    });

    it('invalid shared filters are refused (v5 0x8F, v3.1.1 0x80)', async () => {
      const filters = ['$share/g', '$share/+/x', '$share//x', '$share/ok/x'];
      for (const [version, bad] of [
        [5, 0x8f],
        [4, 0x80],
      ] as const) {
        const { client } = await RawClient.open(server.mqtt.port, { clientId: `shared-invalid-${version}` }, version);
        try {
          client.send({ cmd: 'subscribe', messageId: 3, subscriptions: filters.map((topic) => ({ topic, qos: 1 })) } as Packet);
          const suback = (await client.next('suback', 2000)) as ISubackPacket;
          assert.deepEqual(suback.granted, [bad, bad, bad, 1], `v${version}`);
        } finally {
          client.close();
        }
      }
    });
  });
}
