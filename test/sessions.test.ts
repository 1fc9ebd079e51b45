import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { ENGINES, engineOptions } from './helpers/engines.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { tracker } from './helpers/tracker.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';


interface Opened {
  client: MqttClient;
  connack: IConnackPacket;
  /**
   * Every PUBLISH packet in the order it came off the wire, including those right after CONNACK.
   * (mqtt.js emits 'message' for QoS 2 only at PUBREL, which reorders QoS 1 and 2; wire order is what the broker sent.)
   */
  messages: IPublishPacket[];
}

/** Connects mqtt.js with the packet listener attached before CONNACK, so nothing resent is missed. */
async function open(url: string, options: IClientOptions): Promise<Opened> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  const messages: IPublishPacket[] = [];
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') messages.push(packet as IPublishPacket);
  });
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', (p) => resolve(p as IConnackPacket));
    client.once('error', reject);
  });
  return { client, connack, messages };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(10);
  }
}

/**
 * Subscribes `b` to `marker`, runs `act` (publishes that must not reach `b`), then publishes a
 * marker from `pub` and resolves with the payloads `b` got before it. What a resumed session is
 * sent comes right after CONNACK, so before the SUBACK; what `act` published was acknowledged
 * (QoS 1) before the marker from the same publisher.
 */
async function beforeMarkerFor(b: Opened, pub: MqttClient, marker: string, act: () => Promise<unknown> = async () => {}): Promise<string[]> {
  await b.client.subscribeAsync(marker, { qos: 1 });
  await act();
  await pub.publishAsync(marker, 'marker', { qos: 1 });
  return (await beforeMarker(b.messages, isPublish(marker, 'marker'))).map((m) => m.payload.toString());
}

async function rawSubscribe(client: RawClient, topic: string, qos: 0 | 1 | 2): Promise<void> {
  client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] } as Packet);
  const suback = (await client.next('suback', 2000)) as ISubackPacket;
  assert.deepEqual(suback.granted, [qos]);
}

for (const engine of ENGINES) {
  describe(`sessions (${engine} engine)`, () => {
    let server: EddyServer;
    const t = tracker();
    before(async () => {
      server = await startBroker(engineOptions(engine));
    });
    afterEach(() => t.closeAll());
    after(() => server.stop());

    /** Removes a persistent session by connecting once with clean start. */
    async function discard(clientId: string, version: 4 | 5): Promise<void> {
      const c = await open(server.mqttUrl, { clientId, clean: true, protocolVersion: version });
      await c.client.endAsync();
    }

    for (const version of [4, 5] as const) {
      it(`v${version}: a clean session ends at disconnect: subscriptions gone, sessionPresent false`, async () => {
        const clientId = `clean-${version}`;
        const a = await open(server.mqttUrl, { clientId, clean: true, protocolVersion: version });
        t.track(a.client);
        assert.equal(a.connack.sessionPresent, false);
        await a.client.subscribeAsync(`clean${version}/t`, { qos: 1 });
        await a.client.endAsync();
        await sleep(50);
        assert.equal(server.broker.sessions.has(clientId), false, 'the broker dropped the session');

        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
        await pub.publishAsync(`clean${version}/t`, 'while away', { qos: 1 });

        // Even asking to resume finds nothing.
        const resume = version === 4 ? { clean: false } : { clean: false, properties: { sessionExpiryInterval: 0 } };
        const b = await open(server.mqttUrl, { clientId, protocolVersion: version, ...resume });
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, false);
        const before = await beforeMarkerFor(b, pub, `clean${version}/marker`, () => pub.publishAsync(`clean${version}/t`, 'now', { qos: 1 }));
        assert.deepEqual(before, [], 'no queued messages and no subscription');
        await b.client.endAsync();
        if (version === 4) await discard(clientId, 4);
      });
    }

    const persistent: Array<{ name: string; version: 4 | 5; options: IClientOptions }> = [
      { name: 'v3.1.1 clean=false', version: 4, options: { protocolVersion: 4, clean: false } },
      { name: 'v5 sessionExpiryInterval=60', version: 5, options: { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } } },
    ];
    for (const { name, version, options } of persistent) {
      it(`${name}: subscriptions kept; offline QoS 1/2 queued and delivered in order; QoS 0 not queued`, async () => {
        const clientId = `persist-${version}`;
        const topic = `persist${version}/data`;
        await discard(clientId, version);
        const a = await open(server.mqttUrl, { clientId, ...options });
        t.track(a.client);
        assert.equal(a.connack.sessionPresent, false, 'first connection creates the session');
        await a.client.subscribeAsync(topic, { qos: 2 });
        await a.client.endAsync();
        await sleep(50);

        const droppedBefore = server.broker.stats.dropped['offline-qos0'];
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        const expected: Array<[string, number]> = [];
        for (let i = 0; i < 50; i++) {
          const qos = i % 2 === 0 ? 1 : 2;
          await pub.publishAsync(topic, `m${i}`, { qos });
          expected.push([`m${i}`, qos]);
          if (i % 10 === 0) await pub.publishAsync(topic, `zero${i}`, { qos: 0 });
        }
        await sleep(50);
        assert.equal(server.broker.stats.dropped['offline-qos0'] - droppedBefore, 5, 'the five QoS 0 messages were dropped for the offline session');

        const b = await open(server.mqttUrl, { clientId, ...options });
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, true);
        await waitFor(() => b.messages.length >= 50, 5000, () => `got ${b.messages.length} of 50`);
        // The subscription itself survived: a live message arrives too, queued behind everything the
        // session held (QoS 1, so not sent past the queue): what came before it is all the session got.
        await pub.publishAsync(topic, 'live', { qos: 1 });
        const queued = await beforeMarker(b.messages, isPublish(topic, 'live'), 2000);
        assert.deepEqual(
          queued.map((m) => [m.payload.toString(), m.qos]),
          expected,
          'exactly the QoS 1/2 messages, in publish order, at their QoS',
        );
        assert.ok(queued.every((m) => m.topic === topic && m.retain === false));
        await b.client.endAsync();
        await discard(clientId, version);
      });
    }

    it('v5: an offline queue drains in order through a Receive Maximum of 3', async () => {
      const clientId = 'drain-rm3';
      const connect = { clientId, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 3 } };
      const a = await RawClient.open(server.mqtt.port, { ...connect, clean: true }, 5);
      t.track(a.client);
      await rawSubscribe(a.client, 'drain/t', 1);
      await rawSubscribe(a.client, 'drain/marker', 0); // QoS 0: not held back by the Receive Maximum
      a.client.send({ cmd: 'disconnect', reasonCode: 0 });
      await a.client.closed;
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      for (let i = 0; i < 20; i++) await pub.publishAsync('drain/t', `d${i}`, { qos: 1 });

      const b = await RawClient.open(server.mqtt.port, connect, 5);
      t.track(b.client);
      assert.equal(b.connack.sessionPresent, true);
      const got: string[] = [];
      for (let i = 0; i < 20; i += 3) {
        const batch: IPublishPacket[] = [];
        for (let j = i; j < Math.min(i + 3, 20); j++) batch.push((await b.client.next('publish', 2000)) as IPublishPacket);
        // The batch left in the drains that followed the last PUBACKs; a fourth would have too.
        await pub.publishAsync('drain/marker', `after-${i}`, { qos: 0 });
        const before = await b.client.until(isPublish('drain/marker', `after-${i}`));
        assert.deepEqual(before.filter((p) => p.cmd === 'publish'), [], `no more than 3 unacknowledged (after ${got.length + batch.length})`);
        for (const p of batch) {
          got.push(p.payload.toString());
          b.client.send({ cmd: 'puback', messageId: p.messageId });
        }
      }
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `d${i}`));
      b.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
      await b.client.closed;
    });

    it('v3.1.1: connecting with clean=true discards a stored session and its queue', async () => {
      const clientId = 'discard-4';
      const a = await open(server.mqttUrl, { clientId, clean: false, protocolVersion: 4 });
      t.track(a.client);
      await a.client.subscribeAsync('discard4/t', { qos: 1 });
      await a.client.endAsync();
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
      await pub.publishAsync('discard4/t', 'queued', { qos: 1 });

      const b = await open(server.mqttUrl, { clientId, clean: true, protocolVersion: 4 });
      t.track(b.client);
      assert.equal(b.connack.sessionPresent, false);
      assert.deepEqual(await beforeMarkerFor(b, pub, 'discard4/marker', () => pub.publishAsync('discard4/t', 'after', { qos: 1 })), []);
      await b.client.endAsync();

      const c = await open(server.mqttUrl, { clientId, clean: false, protocolVersion: 4 });
      t.track(c.client);
      assert.equal(c.connack.sessionPresent, false, 'the persistent session is gone for good');
      assert.deepEqual(await beforeMarkerFor(c, pub, 'discard4/marker'), []);
      await c.client.endAsync();
      await discard(clientId, 4);
    });

    it('v5: takeover of a persistent session keeps it (sessionPresent true, subscription works)', async () => {
      const clientId = 'takeover-persist';
      const opts: IClientOptions = { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } };
      await discard(clientId, 5);
      const a = await open(server.mqttUrl, opts);
      t.track(a.client);
      await a.client.subscribeAsync('tp/t', { qos: 1 });
      const b = await open(server.mqttUrl, opts);
      t.track(b.client);
      assert.equal(b.connack.sessionPresent, true);
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      await pub.publishAsync('tp/t', 'to-new', { qos: 1 });
      await waitFor(() => b.messages.length === 1, 2000, () => 'message to the new connection');
      assert.equal(b.messages[0]!.payload.toString(), 'to-new');
      assert.equal(a.messages.length, 0);
      await b.client.endAsync();
      await discard(clientId, 5);
    });

    for (const version of [4, 5] as const) {
      it(`v${version}: taking over a connected non-persistent session with clean start 0 does not resume it`, async () => {
        // 3.1.1 §3.1.2.4 [MQTT-3.1.2-6]: state of a clean session MUST NOT be reused in any subsequent session.
        // 5.0 §3.1.2.11.2: with Session Expiry 0 the session ends when its network connection closes,
        // and the takeover closes it (§3.1.4).
        const clientId = `takeover-clean-${version}`;
        const a = await open(server.mqttUrl, { clientId, clean: true, protocolVersion: version });
        t.track(a.client);
        await a.client.subscribeAsync(`tc${version}/t`, { qos: 1 });
        const resume = version === 4 ? { clean: false } : { clean: false, properties: { sessionExpiryInterval: 60 } };
        const b = await open(server.mqttUrl, { clientId, protocolVersion: version, ...resume });
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, false, 'sessionPresent must be 0: the clean session ended with its connection');
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        const before = await beforeMarkerFor(b, pub, `tc${version}/marker`, () => pub.publishAsync(`tc${version}/t`, 'leaked', { qos: 1 }));
        assert.deepEqual(before, [], 'the subscription of the clean session must not carry over');
        await b.client.endAsync();
        await discard(clientId, version);
      });
    }

    describe('MQTT 5 session expiry', () => {
      it('sessionExpiryInterval=1: the session is gone after ~1.5 s with its queued messages', async () => {
        const clientId = 'expiry-1';
        const a = await open(server.mqttUrl, { clientId, protocolVersion: 5, clean: true, properties: { sessionExpiryInterval: 1 } });
        t.track(a.client);
        await a.client.subscribeAsync('exp1/t', { qos: 1 });
        await a.client.endAsync();
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await pub.publishAsync('exp1/t', 'queued then expired', { qos: 1 });
        assert.equal(server.broker.sessions.get(clientId)?.queue.pendingCount, 1, 'queued while the session lives');
        await sleep(1500);
        assert.equal(server.broker.sessions.has(clientId), false, 'session removed after expiry');

        const b = await open(server.mqttUrl, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, false);
        const before = await beforeMarkerFor(b, pub, 'exp1/marker', () => pub.publishAsync('exp1/t', 'after', { qos: 1 }));
        assert.deepEqual(before, [], 'no queued message, no subscription');
        await b.client.endAsync();
        await discard(clientId, 5);
      });

      it('reconnecting before the expiry finds the session', async () => {
        const clientId = 'expiry-early';
        const opts: IClientOptions = { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 2 } };
        await discard(clientId, 5);
        const a = await open(server.mqttUrl, opts);
        t.track(a.client);
        await a.client.subscribeAsync('expe/t', { qos: 1 });
        await a.client.endAsync();
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await pub.publishAsync('expe/t', 'kept', { qos: 1 });
        await sleep(1000);
        const b = await open(server.mqttUrl, opts);
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, true);
        await waitFor(() => b.messages.length === 1, 2000, () => 'queued message');
        assert.equal(b.messages[0]!.payload.toString(), 'kept');
        // The expiry timer of the first disconnect must not end the resumed session.
        await sleep(1300);
        assert.equal(server.broker.sessions.get(clientId)?.connected, true);
        await b.client.endAsync();
        await discard(clientId, 5);
      });

      it('DISCONNECT with sessionExpiryInterval shortens the expiry', async () => {
        const clientId = 'disc-shorten';
        const a = await RawClient.open(server.mqtt.port, { clientId, clean: true, properties: { sessionExpiryInterval: 60 } }, 5);
        t.track(a.client);
        await rawSubscribe(a.client, 'dshort/t', 1);
        a.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 1 } });
        await a.client.closed;
        await sleep(300);
        assert.equal(server.broker.sessions.has(clientId), true, 'still there before the new expiry');
        await sleep(1200);
        assert.equal(server.broker.sessions.has(clientId), false, 'gone after the new expiry');
        const b = await RawClient.open(server.mqtt.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0 } }, 5);
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, false);
      });

      it('DISCONNECT with sessionExpiryInterval lengthens the expiry', async () => {
        const clientId = 'disc-lengthen';
        const a = await RawClient.open(server.mqtt.port, { clientId, clean: true, properties: { sessionExpiryInterval: 1 } }, 5);
        t.track(a.client);
        await rawSubscribe(a.client, 'dlong/t', 1);
        a.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
        await a.client.closed;
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await pub.publishAsync('dlong/t', 'survives', { qos: 1 });
        await sleep(1500);
        const b = await RawClient.open(server.mqtt.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0 } }, 5);
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, true);
        const m = (await b.client.next('publish', 2000)) as IPublishPacket;
        assert.equal(m.payload.toString(), 'survives');
        assert.equal(m.qos, 1);
      });

      it('DISCONNECT with sessionExpiryInterval 0 ends the session at once', async () => {
        const clientId = 'disc-zero';
        const a = await RawClient.open(server.mqtt.port, { clientId, clean: true, properties: { sessionExpiryInterval: 60 } }, 5);
        t.track(a.client);
        await rawSubscribe(a.client, 'dzero/t', 1);
        a.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await a.client.closed;
        await sleep(50);
        assert.equal(server.broker.sessions.has(clientId), false);
        const b = await RawClient.open(server.mqtt.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0 } }, 5);
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, false);
      });

      it('DISCONNECT setting a non-zero expiry after CONNECT with 0 is a protocol error (0x82)', async () => {
        const clientId = 'disc-illegal';
        const a = await RawClient.open(server.mqtt.port, { clientId, clean: true }, 5);
        t.track(a.client);
        a.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 30 } });
        const d = (await a.client.next('disconnect', 2000)) as IDisconnectPacket;
        assert.equal(d.reasonCode, 0x82);
        await a.client.closed;
        await sleep(50);
        assert.equal(server.broker.sessions.has(clientId), false, 'the session still ended');
      });
    });
  });
}
