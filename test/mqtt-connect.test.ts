import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';
import { tracker } from './helpers/tracker.js';


/** Resolves with how many ms after `since` the raw client's socket closed; rejects after `timeoutMs`. */
async function closedWithin(client: RawClient, timeoutMs: number, since = Date.now()): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([client.closed, timeout]);
    return Date.now() - since;
  } finally {
    clearTimeout(timer);
  }
}

/** Subscribes a raw client and waits for its SUBACK. */
async function rawSubscribe(client: RawClient, topic: string, qos: 0 | 1 | 2, messageId = 1): Promise<ISubackPacket> {
  client.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] } as Packet);
  return (await client.next('suback')) as ISubackPacket;
}

describe('MQTT CONNECT / CONNACK', () => {
  let server: EddyServer;
  const t = tracker();
  before(async () => {
    server = await startBroker();
  });
  afterEach(() => t.closeAll());
  after(() => server.stop());

  it('a 3.1.1 SUBSCRIBE sent in the same write as its CONNECT keeps the session at 3.1.1 (its topic length is no protocol level)', async () => {
    // Framed while the CONNECT is being authenticated. The topic is 5 bytes long: read at the
    // CONNECT's level offset, its length once said "MQTT 5", and the 3.1.1 subscriber got MQTT 5
    // PUBLISH packets (a property length byte at the front of every payload).
    const client = t.track(await RawClient.connect(server.mqtt.port, 4));
    client.writeRaw(
      Buffer.concat([
        mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'same-write', clean: true, keepalive: 60 } as Packet),
        mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'five!', qos: 0 }] } as Packet),
      ]),
    );
    await client.next('connack');
    await client.next('suback');
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
    await pub.publishAsync('five!', Buffer.from('payload'), { qos: 0 });
    const message = (await client.next('publish')) as IPublishPacket;
    assert.equal(message.payload.toString(), 'payload');
  });

  it('v3.1.1: accepts a CONNECT with return code 0 and no session present', async () => {
    const { client, connack } = await RawClient.open(server.mqtt.port, { clientId: 'c-v4-ok', clean: true }, 4);
    t.track(client);
    const c = connack as IConnackPacket;
    assert.equal(c.returnCode, 0);
    assert.equal(c.sessionPresent, false);
    // The connection is usable: PINGREQ gets PINGRESP.
    client.send({ cmd: 'pingreq' });
    assert.equal((await client.next('pingresp', 2000)).cmd, 'pingresp');
  });

  it('v5: accepts a CONNECT with reason code 0 and advertises its capabilities', async () => {
    const { client, connack } = await RawClient.open(server.mqtt.port, { clientId: 'c-v5-ok', clean: true }, 5);
    t.track(client);
    const c = connack as IConnackPacket;
    assert.equal(c.reasonCode, 0);
    assert.equal(c.sessionPresent, false);
    assert.equal(c.properties?.assignedClientIdentifier, undefined, 'no id assigned when the client sent one');
    assert.equal(c.properties?.sharedSubscriptionAvailable, true);
    assert.equal(c.properties?.wildcardSubscriptionAvailable, true);
    assert.equal(c.properties?.retainAvailable, true);
    assert.equal(c.properties?.receiveMaximum, server.broker.limits.maxInflight);
    assert.equal(c.properties?.maximumPacketSize, server.broker.limits.maxPacketSize);
  });

  it('mqtt.js connects with protocol versions 4 and 5', async () => {
    for (const protocolVersion of [4, 5] as const) {
      const client = t.track(await connectClient(server.mqttUrl, { clientId: `c-mqttjs-${protocolVersion}`, protocolVersion }));
      assert.equal(client.connected, true);
      assert.equal(server.broker.sessions.get(`c-mqttjs-${protocolVersion}`)?.link?.protocolVersion, protocolVersion);
    }
  });

  it('v5: an empty client id gets an assigned client identifier that works', async () => {
    const { client, connack } = await RawClient.open(server.mqtt.port, { clientId: '', clean: true }, 5);
    t.track(client);
    const c = connack as IConnackPacket;
    assert.equal(c.reasonCode, 0);
    const assigned = c.properties?.assignedClientIdentifier;
    assert.equal(typeof assigned, 'string');
    assert.ok(assigned!.length > 0, 'assigned id is not empty');
    assert.ok(server.broker.sessions.get(assigned!)?.connected, 'the broker keeps the session under the assigned id');

    // A second anonymous client gets a different id.
    const second = await RawClient.open(server.mqtt.port, { clientId: '', clean: true }, 5);
    t.track(second.client);
    const other = (second.connack as IConnackPacket).properties?.assignedClientIdentifier;
    assert.equal(typeof other, 'string');
    assert.notEqual(other, assigned);

    // And the connection works end to end.
    assert.deepEqual((await rawSubscribe(client, 'anon/t', 1)).granted, [1]);
    second.client.send({ cmd: 'publish', topic: 'anon/t', payload: Buffer.from('hi'), qos: 0, retain: false, dup: false });
    const msg = (await client.next('publish', 2000)) as IPublishPacket;
    assert.equal(msg.topic, 'anon/t');
    assert.equal(msg.payload.toString(), 'hi');
  });

  it('v3.1.1: an empty client id with clean session is accepted', async () => {
    const { client, connack } = await RawClient.open(server.mqtt.port, { clientId: '', clean: true }, 4);
    t.track(client);
    assert.equal((connack as IConnackPacket).returnCode, 0);
    assert.equal(connack.sessionPresent, false);
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp', 2000);
  });

  it('v3.1.1: an empty client id without clean session is refused with return code 2 and closed', async () => {
    // mqtt-packet refuses to encode this CONNECT, so it is written by hand:
    // protocol name MQTT, level 4, flags 0x00 (clean session 0), keepalive 60, client id "".
    const client = t.track(await RawClient.connect(server.mqtt.port, 4));
    client.writeRaw(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00]));
    const connack = (await client.next('connack', 2000)) as IConnackPacket;
    assert.equal(connack.returnCode, 2);
    assert.equal(connack.sessionPresent, false);
    await closedWithin(client, 2000);
    assert.equal(server.broker.sessions.has(''), false, 'no session was opened');
  });

  it('v5: a second connection with the same client id takes over: old gets DISCONNECT 0x8E and is closed', async () => {
    const first = await RawClient.open(server.mqtt.port, { clientId: 'c-takeover-5', clean: true }, 5);
    t.track(first.client);
    const second = await RawClient.open(server.mqtt.port, { clientId: 'c-takeover-5', clean: true }, 5);
    t.track(second.client);
    assert.equal((second.connack as IConnackPacket).reasonCode, 0);

    const disconnect = (await first.client.next('disconnect', 2000)) as IDisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x8e);
    await closedWithin(first.client, 2000);
    assert.equal(second.client.isClosed, false, 'the new connection stays open');

    // The new connection works.
    assert.deepEqual((await rawSubscribe(second.client, 'takeover/5', 0)).granted, [0]);
    second.client.send({ cmd: 'publish', topic: 'takeover/5', payload: Buffer.from('new'), qos: 0, retain: false, dup: false });
    const msg = (await second.client.next('publish', 2000)) as IPublishPacket;
    assert.equal(msg.payload.toString(), 'new');
  });

  it('v3.1.1: a second connection with the same client id closes the old one (no DISCONNECT packet) and works', async () => {
    const first = await RawClient.open(server.mqtt.port, { clientId: 'c-takeover-4', clean: true }, 4);
    t.track(first.client);
    const second = await RawClient.open(server.mqtt.port, { clientId: 'c-takeover-4', clean: true }, 4);
    t.track(second.client);
    assert.equal((second.connack as IConnackPacket).returnCode, 0);
    await closedWithin(first.client, 2000);
    assert.deepEqual(
      first.client.packets.filter((p) => p.cmd === 'disconnect'),
      [],
      '3.1.1 has no server DISCONNECT',
    );
    second.client.send({ cmd: 'pingreq' });
    await second.client.next('pingresp', 2000);
  });

  it('mqtt.js v5: the taken-over client sees DISCONNECT 0x8E', async () => {
    const old = t.track(await connectClient(server.mqttUrl, { clientId: 'c-takeover-js', protocolVersion: 5 }));
    const seen = new Promise<IDisconnectPacket>((resolve) => old.once('disconnect', (p) => resolve(p as IDisconnectPacket)));
    const fresh = t.track(await connectClient(server.mqttUrl, { clientId: 'c-takeover-js', protocolVersion: 5 }));
    const packet = await seen;
    assert.equal(packet.reasonCode, 0x8e);
    await fresh.subscribeAsync('takeover/js', { qos: 1 });
    const inbox = collect(fresh);
    await fresh.publishAsync('takeover/js', 'x', { qos: 1 });
    const [m] = await inbox.take(1, 2000);
    assert.equal(m!.payload.toString(), 'x');
  });

  for (const version of [4, 5] as const) {
    it(`v${version}: keepalive=1 with no traffic is disconnected after about 1.5 s`, async () => {
      const start = Date.now();
      const { client } = await RawClient.open(server.mqtt.port, { clientId: `c-ka-${version}`, clean: true, keepalive: 1 }, version);
      t.track(client);
      const elapsed = await closedWithin(client, 4000, start);
      assert.ok(elapsed >= 1200 && elapsed <= 3000, `closed after ${elapsed} ms, expected 1200..3000`);
      if (version === 5) {
        const disconnect = client.packets.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined;
        assert.equal(disconnect?.reasonCode, 0x8d, 'v5 gets DISCONNECT Keep alive timeout');
      }
    });
  }

  it('keepalive=1 with PINGREQ every 500 ms stays connected', async () => {
    const { client } = await RawClient.open(server.mqtt.port, { clientId: 'c-ka-ping', clean: true, keepalive: 1 }, 4);
    t.track(client);
    for (let i = 0; i < 5; i++) {
      await sleep(500);
      client.send({ cmd: 'pingreq' });
      await client.next('pingresp', 1000);
    }
    assert.equal(client.isClosed, false, 'still connected after 2.5 s of pings');
  });

  describe('will on disconnect', () => {
    async function observer(topic: string): Promise<{ client: MqttClient; inbox: ReturnType<typeof collect> }> {
      const client = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
      await client.subscribeAsync(topic, { qos: 1 });
      return { client, inbox: collect(client) };
    }
    /**
     * What reached the observer before a marker published on its topic now. The broker decides
     * about the will when it detaches the session, which it does before it closes the socket
     * (DISCONNECT) or on the close (abrupt): either way before the test sees the close, so a will
     * it published is routed before the marker.
     */
    async function beforeMarkerOn(client: MqttClient, inbox: ReturnType<typeof collect>, topic: string): Promise<string[]> {
      await client.publishAsync(topic, 'marker', { qos: 1 });
      return (await beforeMarker(inbox.messages, isPublish(topic, 'marker'))).map((m) => m.payload.toString());
    }
    const will = (topic: string, payload: string) => ({ topic, payload: Buffer.from(payload), qos: 0 as const, retain: false });

    for (const version of [4, 5] as const) {
      it(`v${version}: normal DISCONNECT does not publish the will`, async () => {
        const topic = `will/normal/${version}`;
        const { client: watcher, inbox } = await observer(topic);
        const { client } = await RawClient.open(server.mqtt.port, { clientId: `c-will-normal-${version}`, will: will(topic, 'gone') }, version);
        t.track(client);
        client.send(version === 5 ? { cmd: 'disconnect', reasonCode: 0 } : { cmd: 'disconnect' });
        await closedWithin(client, 2000);
        assert.deepEqual(await beforeMarkerOn(watcher, inbox, topic), [], 'no will after a normal DISCONNECT');
      });

      it(`v${version}: abrupt socket close publishes the will`, async () => {
        const topic = `will/abrupt/${version}`;
        const { client: watcher, inbox } = await observer(topic);
        const { client } = await RawClient.open(server.mqtt.port, { clientId: `c-will-abrupt-${version}`, will: will(topic, `lost-${version}`) }, version);
        client.close();
        const [m] = await inbox.take(1, 2000);
        assert.equal(m!.topic, topic);
        assert.equal(m!.payload.toString(), `lost-${version}`);
        assert.deepEqual(await beforeMarkerOn(watcher, inbox, topic), [`lost-${version}`], 'the will is published exactly once');
      });
    }

    it('v5: DISCONNECT with reason 0x04 publishes the will', async () => {
      const topic = 'will/with-will';
      const { inbox } = await observer(topic);
      const { client } = await RawClient.open(server.mqtt.port, { clientId: 'c-will-0x04', will: will(topic, 'asked') }, 5);
      t.track(client);
      client.send({ cmd: 'disconnect', reasonCode: 0x04 });
      const [m] = await inbox.take(1, 2000);
      assert.equal(m!.payload.toString(), 'asked');
      await closedWithin(client, 2000);
    });
  });

  describe('protocol violations at connect', () => {
    it('a first packet that is not CONNECT closes the connection without CONNACK', async () => {
      for (const version of [4, 5] as const) {
        const client = t.track(await RawClient.connect(server.mqtt.port, version));
        client.send({ cmd: 'pingreq' });
        await closedWithin(client, 2000);
        assert.deepEqual(client.packets.map((p) => p.cmd).filter((c) => c === 'connack' || c === 'pingresp'), []);
      }
    });

    it('v3.1.1 framing with an unsupported protocol level gets CONNACK return code 1, then close (MQTT-3.1.2-2)', async () => {
      const client = t.track(await RawClient.connect(server.mqtt.port, 4));
      // CONNECT, protocol name MQTT, level 6, clean session, keepalive 60, client id "".
      client.writeRaw(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x3c, 0x00, 0x00]));
      await closedWithin(client, 2000);
      const connack = client.packets.find((p) => p.cmd === 'connack') as IConnackPacket | undefined;
      assert.ok(connack, 'a CONNACK before the close');
      assert.equal(connack.returnCode, 1, 'unacceptable protocol version');
      assert.equal(connack.sessionPresent, false);
    });

    it('a PUBLISH before CONNECT is not routed', async () => {
      const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
      await sub.subscribeAsync('pre-connect/#', { qos: 0 });
      const inbox = collect(sub);
      const client = t.track(await RawClient.connect(server.mqtt.port, 4));
      client.send({ cmd: 'publish', topic: 'pre-connect/x', payload: Buffer.from('nope'), qos: 0, retain: false, dup: false });
      await closedWithin(client, 2000);
      // The broker handled that PUBLISH before it closed the socket: had it routed it, the
      // message would reach the subscriber before a marker sent once the close is seen.
      await sub.publishAsync('pre-connect/marker', 'marker', { qos: 1 });
      assert.deepEqual(await beforeMarker(inbox.messages, isPublish('pre-connect/marker', 'marker')), []);
    });

    it('v5: a second CONNECT on the same connection is a protocol error (DISCONNECT 0x82)', async () => {
      const { client } = await RawClient.open(server.mqtt.port, { clientId: 'c-double-connect' }, 5);
      t.track(client);
      client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'c-double-connect', clean: true, keepalive: 60 });
      const d = (await client.next('disconnect', 2000)) as IDisconnectPacket;
      assert.equal(d.reasonCode, 0x82);
      await closedWithin(client, 2000);
    });
  });
});
