import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { IConnackPacket, IConnectPacket, IPublishPacket } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { tracker } from './helpers/tracker.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';

type QoS = 0 | 1 | 2;
type Closable = MqttClient | RawClient;
type Will = NonNullable<IConnectPacket['will']>;


/**
 * Records when each PUBLISH arrived, relative to nothing; tests compare against their own t0.
 * Wire order ('packetreceive'): mqtt.js emits 'message' for QoS 2 only at PUBREL, after a marker
 * at a lower QoS that the broker sent later.
 */
function timedInbox(client: MqttClient): Array<{ at: number; packet: IPublishPacket }> {
  const list: Array<{ at: number; packet: IPublishPacket }> = [];
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') list.push({ at: Date.now(), packet: packet as IPublishPacket });
  });
  return list;
}

let markers = 0;
/**
 * The payloads an observer got before a marker it publishes now on its own topic. A will published
 * so far is routed before the marker; so is one whose delay timer was due before the test's sleep
 * ended, since the broker runs in this process and Node fires timers in order of their due time.
 */
async function beforeMarkerOn(observer: { client: MqttClient; inbox: ReturnType<typeof timedInbox> }, topic: string): Promise<string[]> {
  const marker = `marker-${markers++}`;
  await observer.client.publishAsync(topic, marker, { qos: 1 });
  const isMarker = isPublish(topic, marker);
  const before = await beforeMarker(observer.inbox, (e) => isMarker(e.packet));
  // Earlier markers are not what the test is about.
  return before.map((e) => e.packet.payload.toString()).filter((p) => !p.startsWith('marker-'));
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

describe('will messages', () => {
  let server: EddyServer;
  const t = tracker();
  before(async () => {
    server = await startBroker();
  });
  afterEach(() => t.closeAll());
  after(() => server.stop());

  async function observer(filter: string, qos: QoS = 2, version: 4 | 5 = 5): Promise<{ client: MqttClient; inbox: ReturnType<typeof timedInbox> }> {
    const client = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
    await client.subscribeAsync(filter, { qos });
    return { client, inbox: timedInbox(client) };
  }

  async function willClient(clientId: string, will: Will, version: 4 | 5, connect: Partial<IConnectPacket> = {}): Promise<{ client: RawClient; connack: IConnackPacket }> {
    const { client, connack } = await RawClient.open(server.mqtt.port, { clientId, will, ...connect }, version);
    t.track(client);
    return { client, connack: connack as IConnackPacket };
  }

  for (const version of [4, 5] as const) {
    for (const [willQos, subQos] of [
      [0, 2],
      [1, 2],
      [2, 2],
      [2, 1],
    ] as const) {
      it(`v${version}: abrupt close publishes the will (will QoS ${willQos}, subscription QoS ${subQos})`, async () => {
        const topic = `will/${version}/q${willQos}s${subQos}`;
        const watcher = await observer(topic, subQos);
        const { inbox } = watcher;
        const { client } = await willClient(`w-${version}-${willQos}-${subQos}`, { topic, payload: Buffer.from('bye'), qos: willQos, retain: false }, version);
        client.close();
        await waitFor(() => inbox.length >= 1, 2000, 'the will');
        assert.deepEqual(await beforeMarkerOn(watcher, topic), ['bye'], 'exactly one will');
        const m = inbox[0]!.packet;
        assert.equal(m.topic, topic);
        assert.equal(m.payload.toString(), 'bye');
        assert.equal(m.qos, Math.min(willQos, subQos));
        assert.equal(m.retain, false);
      });
    }
  }

  for (const version of [4, 5] as const) {
    it(`v${version}: a retained will is retained: a later subscriber gets it with retain=1`, async () => {
      const topic = `will/retained/${version}`;
      const live = await observer(topic, 1, 4);
      const { client } = await willClient(`w-retained-${version}`, { topic, payload: Buffer.from('offline'), qos: 1, retain: true }, version);
      client.close();
      await waitFor(() => live.inbox.length >= 1, 2000, 'the live will');
      assert.equal(live.inbox[0]!.packet.retain, false, 'live delivery to a 3.1.1 subscriber has retain=0');

      const later = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
      const inbox = collect(later);
      await later.subscribeAsync(topic, { qos: 2 });
      const [m] = await inbox.take(1, 2000);
      assert.equal(m!.payload.toString(), 'offline');
      assert.equal(m!.retain, true);
      assert.equal(m!.qos, 1);
    });
  }

  it('v5: will properties reach a v5 subscriber', async () => {
    const topic = 'will/props';
    const { inbox } = await observer(topic, 1, 5);
    const { client } = await willClient(
      'w-props',
      {
        topic,
        payload: Buffer.from('{"state":"offline"}'),
        qos: 1,
        retain: false,
        properties: { contentType: 'application/json', userProperties: { device: 'd1' }, responseTopic: 'reply/here' },
      },
      5,
    );
    client.close();
    await waitFor(() => inbox.length >= 1, 2000, 'the will');
    const m = inbox[0]!.packet;
    assert.equal(m.properties?.contentType, 'application/json');
    assert.deepEqual({ ...m.properties?.userProperties }, { device: 'd1' });
    assert.equal(m.properties?.responseTopic, 'reply/here');
  });

  it('keep-alive timeout publishes the will', async () => {
    const topic = 'will/keepalive';
    const { inbox } = await observer(topic, 0, 4);
    const start = Date.now();
    await willClient('w-keepalive', { topic, payload: Buffer.from('timeout'), qos: 0, retain: false }, 4, { keepalive: 1 });
    await waitFor(() => inbox.length >= 1, 3500, 'the will after keep-alive timeout');
    const elapsed = inbox[0]!.at - start;
    assert.ok(elapsed >= 1200 && elapsed <= 3000, `will after ${elapsed} ms`);
  });

  it('v5: a protocol error (second CONNECT) publishes the will', async () => {
    const topic = 'will/protocol-error';
    const { inbox } = await observer(topic, 0);
    const { client } = await willClient('w-proto', { topic, payload: Buffer.from('err'), qos: 0, retain: false }, 5);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'w-proto', clean: true, keepalive: 60 });
    await waitFor(() => inbox.length >= 1, 2000, 'the will');
    assert.equal(inbox[0]!.packet.payload.toString(), 'err');
  });

  it('v5: session takeover by a clean-start connection publishes the old connection’s will', async () => {
    const topic = 'will/takeover';
    const watcher = await observer(topic, 0);
    const { inbox } = watcher;
    await willClient('w-takeover', { topic, payload: Buffer.from('old'), qos: 0, retain: false }, 5);
    const fresh = await RawClient.open(server.mqtt.port, { clientId: 'w-takeover', clean: true }, 5);
    t.track(fresh.client);
    await waitFor(() => inbox.length >= 1, 2000, 'the will of the taken-over connection');
    assert.deepEqual(await beforeMarkerOn(watcher, topic), ['old']);
  });

  describe('MQTT 5 will delay interval', () => {
    it('with delay 2 s the will arrives after >= ~1.8 s, not before', async () => {
      const topic = 'will/delay';
      const watcher = await observer(topic, 1);
      const { inbox } = watcher;
      const { client } = await willClient('w-delay', { topic, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 2 } }, 5, {
        clean: true,
        properties: { sessionExpiryInterval: 10 },
      });
      const closedAt = Date.now();
      client.close();
      await sleep(1500);
      assert.deepEqual(await beforeMarkerOn(watcher, topic), [], 'no will within 1.5 s');
      const isWill = isPublish(topic, 'late');
      await waitFor(() => inbox.some((e) => isWill(e.packet)), 2000, 'the delayed will');
      const will = inbox.find((e) => isWill(e.packet))!;
      const elapsed = will.at - closedAt;
      assert.ok(elapsed >= 1800 && elapsed <= 3000, `will after ${elapsed} ms, expected 1800..3000`);
      // The session outlives the will: end it.
      t.track((await RawClient.open(server.mqtt.port, { clientId: 'w-delay', clean: true }, 5)).client);
    });

    it('reconnecting with clean start 0 within the delay cancels the will', async () => {
      const topic = 'will/cancel';
      const watcher = await observer(topic, 1);
      const connect = { clean: false, properties: { sessionExpiryInterval: 10 } };
      const first = await willClient('w-cancel', { topic, payload: Buffer.from('never'), qos: 1, retain: false, properties: { willDelayInterval: 2 } }, 5, {
        ...connect,
        clean: true,
      });
      first.client.close();
      await sleep(500);
      const again = await RawClient.open(server.mqtt.port, { clientId: 'w-cancel', ...connect }, 5);
      t.track(again.client);
      assert.equal(again.connack.sessionPresent, true);
      await sleep(2200); // past the will delay
      assert.deepEqual(await beforeMarkerOn(watcher, topic), [], 'the will was cancelled by the reconnect');
      again.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
      await again.client.closed;
    });

    it('a takeover with clean start 0 while the old connection is still open cancels a delayed will', async () => {
      const topic = 'will/takeover-delay';
      const watcher = await observer(topic, 1);
      const connect = { clean: false, properties: { sessionExpiryInterval: 10 } };
      await willClient('w-takeover-delay', { topic, payload: Buffer.from('never'), qos: 1, retain: false, properties: { willDelayInterval: 1 } }, 5, connect);
      const fresh = await RawClient.open(server.mqtt.port, { clientId: 'w-takeover-delay', ...connect }, 5);
      t.track(fresh.client);
      assert.equal(fresh.connack.sessionPresent, true);
      await sleep(1400); // past the will delay
      assert.deepEqual(await beforeMarkerOn(watcher, topic), []);
      fresh.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
      await fresh.client.closed;
    });

    it('reconnecting with clean start 1 within the delay ends the session and publishes the will at once', async () => {
      const topic = 'will/clean-reconnect';
      const watcher = await observer(topic, 1);
      const { inbox } = watcher;
      const first = await willClient('w-clean', { topic, payload: Buffer.from('ended'), qos: 1, retain: false, properties: { willDelayInterval: 5 } }, 5, {
        clean: true,
        properties: { sessionExpiryInterval: 30 },
      });
      first.client.close();
      await sleep(300);
      assert.deepEqual(await beforeMarkerOn(watcher, topic), [], 'no will at the close: it is delayed');
      const reconnectAt = Date.now();
      const again = await RawClient.open(server.mqtt.port, { clientId: 'w-clean', clean: true }, 5);
      t.track(again.client);
      assert.equal(again.connack.sessionPresent, false);
      const isWill = isPublish(topic, 'ended');
      await waitFor(() => inbox.some((e) => isWill(e.packet)), 1500, 'the will when the old session ends');
      const will = inbox.find((e) => isWill(e.packet))!;
      assert.ok(will.at - reconnectAt < 1000, `will ${will.at - reconnectAt} ms after the clean reconnect`);
      assert.deepEqual(await beforeMarkerOn(watcher, topic), ['ended'], 'the will once');
    });

    it('a session expiry shorter than the delay sends the will when the session ends', async () => {
      const topic = 'will/expiry-first';
      const { inbox } = await observer(topic, 1);
      const { client } = await willClient('w-expiry', { topic, payload: Buffer.from('expired'), qos: 1, retain: false, properties: { willDelayInterval: 10 } }, 5, {
        clean: true,
        properties: { sessionExpiryInterval: 1 },
      });
      const closedAt = Date.now();
      client.close();
      await waitFor(() => inbox.length >= 1, 2500, 'the will at session end');
      const elapsed = inbox[0]!.at - closedAt;
      assert.ok(elapsed >= 800 && elapsed <= 2000, `will after ${elapsed} ms, expected ~1000`);
      const again = await RawClient.open(server.mqtt.port, { clientId: 'w-expiry', clean: false, properties: { sessionExpiryInterval: 0 } }, 5);
      t.track(again.client);
      assert.equal(again.connack.sessionPresent, false, 'the session ended with the will');
    });

    it('session expiry 0 with a will delay publishes the will at once', async () => {
      const topic = 'will/no-session';
      const { inbox } = await observer(topic, 1);
      const { client } = await willClient('w-nosession', { topic, payload: Buffer.from('now'), qos: 1, retain: false, properties: { willDelayInterval: 5 } }, 5);
      const closedAt = Date.now();
      client.close();
      await waitFor(() => inbox.length >= 1, 1500, 'the will');
      assert.ok(inbox[0]!.at - closedAt < 800, `will after ${inbox[0]!.at - closedAt} ms`);
    });

    it('a normal DISCONNECT during a delayed session still discards the will', async () => {
      const topic = 'will/delay-normal';
      const watcher = await observer(topic, 1);
      const { client } = await willClient('w-delay-normal', { topic, payload: Buffer.from('no'), qos: 1, retain: false, properties: { willDelayInterval: 1 } }, 5, {
        clean: true,
        properties: { sessionExpiryInterval: 2 },
      });
      client.send({ cmd: 'disconnect', reasonCode: 0 });
      await client.closed;
      await sleep(1300); // past the will delay
      assert.deepEqual(await beforeMarkerOn(watcher, topic), []);
    });
  });
});
