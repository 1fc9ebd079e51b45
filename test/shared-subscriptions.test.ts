import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import type { IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { tracker } from './helpers/tracker.js';


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

describe('shared subscriptions', () => {
  let server: EddyServer;
  const t = tracker();
  before(async () => {
    server = await startBroker();
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

  for (const version of [4, 5] as const) {
    it(`v${version}: two members of $share/g/... split 10 messages 5/5, no duplicates, union = all`, async () => {
      const a = await member(`$share/g/sh${version}/#`, version);
      const b = await member(`$share/g/sh${version}/#`, version);
      const sent = range('m', 10);
      await publishAll((i) => `sh${version}/dev/${i}`, sent);
      await waitFor(() => a.got.length + b.got.length >= 10, 3000, () => `a=${a.got} b=${b.got}`);
      await sleep(200);
      assert.equal(a.got.length, 5, `round robin: a got ${a.got}`);
      assert.equal(b.got.length, 5, `round robin: b got ${b.got}`);
      assert.deepEqual(sorted([...a.got, ...b.got]), sent, 'each message exactly once across the group');
      // In publish order within each member.
      assert.deepEqual(a.got, sorted(a.got));
      assert.deepEqual(b.got, sorted(b.got));
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
    const total = (): number => g1a.got.length + g1b.got.length + g2a.got.length + g2b.got.length + plain.got.length;
    await waitFor(() => total() >= 30, 3000, () => `total ${total()}`);
    await sleep(200);
    assert.deepEqual(sorted([...g1a.got, ...g1b.got]), sent, 'group g1 got each message once');
    assert.deepEqual(sorted([...g2a.got, ...g2b.got]), sent, 'group g2 got each message once');
    assert.deepEqual(plain.got, sent, 'the plain subscriber got all, in order');
    assert.deepEqual([g1a.got.length, g1b.got.length, g2a.got.length, g2b.got.length], [5, 5, 5, 5]);
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
    await waitFor(() => b.got.length >= 12, 2000, () => `b got ${b.got}`);
    await sleep(150);
    assert.deepEqual(b.got.slice(2), after, 'the remaining member gets every later message, in order');
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
    await waitFor(() => got.length >= 5, 2000, () => `got ${got}`);
    await sleep(100);
    assert.deepEqual(got, sent);
    await b.endAsync();
    await (await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'shared-queue', clean: true })).endAsync();
  });

  it('unsubscribing leaves the group', async () => {
    const a = await member('$share/g/unsub/t');
    const b = await member('$share/g/unsub/t');
    await a.client.unsubscribeAsync('$share/g/unsub/t');
    const sent = range('u', 6);
    await publishAll(() => 'unsub/t', sent);
    await waitFor(() => b.got.length >= 6, 2000, () => `b got ${b.got}`);
    await sleep(150);
    assert.deepEqual(b.got, sent);
    assert.deepEqual(a.got, []);
  });

  it('shared subscriptions get no retained messages (plain ones do)', async () => {
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await pub.publishAsync('ret/shared', 'retained', { qos: 1, retain: true });
    const shared = await member('$share/g/ret/shared');
    const sharedHash = await member('$share/h/ret/#', 4);
    const plain = await member('ret/shared');
    await waitFor(() => plain.got.length >= 1, 2000, () => 'retained to the plain subscriber');
    await sleep(250);
    assert.deepEqual(plain.got, ['retained']);
    assert.deepEqual(shared.got, []);
    assert.deepEqual(sharedHash.got, []);
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
    await waitFor(() => got.length >= 4, 1500, () => `got ${JSON.stringify(got)}`).catch(() => {});
    await sleep(100);
    assert.deepEqual(
      [...got].sort(),
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
