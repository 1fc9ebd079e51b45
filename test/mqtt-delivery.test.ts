import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { IConnackPacket, IPublishPacket, IPubrecPacket, IPubrelPacket, IPubcompPacket, IPubackPacket, ISubackPacket, IUnsubackPacket, Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { ENGINES, engineOptions } from './helpers/engines.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish, wireInbox } from './helpers/sentinel.js';
import { tracker } from './helpers/tracker.js';

type QoS = 0 | 1 | 2;

function rawPublish(client: RawClient, topic: string, payload: string, qos: QoS, messageId?: number, extra: Partial<IPublishPacket> = {}): void {
  client.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false, messageId, ...extra } as Packet);
}

async function rawSubscribe(client: RawClient, subscriptions: Array<{ topic: string; qos: QoS }>, messageId = 1): Promise<number[]> {
  client.send({ cmd: 'subscribe', messageId, subscriptions } as Packet);
  const suback = (await client.next('suback', 2000)) as ISubackPacket;
  assert.equal(suback.messageId, messageId);
  return suback.granted as number[];
}

/**
 * Publishes the given topics, then a sentinel on `end`, and returns the topics received before
 * the sentinel. The sentinel must match one of the subscriber's filters; one publisher and
 * QoS 0 keep the order, so everything routed arrives before it.
 */
async function received(pub: MqttClient, sub: MqttClient, topics: string[], end: string): Promise<string[]> {
  const inbox = collect(sub);
  for (const topic of topics) pub.publish(topic, topic, { qos: 0 });
  pub.publish(end, 'END', { qos: 0 });
  const deadline = Date.now() + 3000;
  while (!inbox.messages.some((m) => m.topic === end && m.payload.toString() === 'END')) {
    if (Date.now() > deadline) throw new Error(`sentinel ${end} never arrived; got ${inbox.messages.map((m) => m.topic).join(', ')}`);
    await sleep(10);
  }
  sub.removeAllListeners('message');
  const out: string[] = [];
  for (const m of inbox.messages) {
    if (m.topic === end && m.payload.toString() === 'END') break;
    out.push(m.topic);
  }
  return out;
}

for (const engine of ENGINES) {
  describe(`MQTT delivery (${engine} engine)`, () => {
    let server: EddyServer;
    const t = tracker();
    before(async () => {
      server = await startBroker(engineOptions(engine));
    });
    afterEach(() => t.closeAll());
    after(() => server.stop());

    describe('QoS matrix (publisher QoS x subscription QoS -> min)', () => {
      for (const pubVersion of [4, 5] as const) {
        for (const subVersion of [4, 5] as const) {
          it(`mqtt.js publisher v${pubVersion} -> subscriber v${subVersion}`, async () => {
            const prefix = `matrix/${pubVersion}${subVersion}`;
            const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: subVersion }));
            const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: pubVersion }));
            for (const s of [0, 1, 2] as const) {
              const grants = await sub.subscribeAsync(`${prefix}/sub${s}/#`, { qos: s });
              assert.equal(grants[0]!.qos, s, `granted QoS for subscription QoS ${s}`);
            }
            const inbox = collect(sub);
            const wire = wireInbox(sub);
            for (const p of [0, 1, 2] as const) {
              for (const s of [0, 1, 2] as const) {
                // publishAsync resolves on PUBACK (QoS 1) or PUBCOMP (QoS 2) from the broker.
                await pub.publishAsync(`${prefix}/sub${s}/pub${p}`, `p${p}s${s}`, { qos: p });
              }
            }
            const got = await inbox.take(9, 3000);
            // Every publish above was acknowledged, so routed, before this marker from the same publisher.
            await pub.publishAsync(`${prefix}/sub0/marker`, 'marker', { qos: 0 });
            assert.equal((await beforeMarker(wire, isPublish(`${prefix}/sub0/marker`, 'marker'))).length, 9, 'exactly one delivery per publish');
            const byPayload = new Map(got.map((m) => [m.payload.toString(), m]));
            for (const p of [0, 1, 2] as const) {
              for (const s of [0, 1, 2] as const) {
                const m = byPayload.get(`p${p}s${s}`);
                assert.ok(m, `message p${p}s${s} arrived`);
                assert.equal(m.topic, `${prefix}/sub${s}/pub${p}`);
                assert.equal(m.qos, Math.min(p, s), `publish QoS ${p} to subscription QoS ${s}`);
                assert.equal(m.retain, false);
                assert.equal(m.dup, false);
                if (m.qos === 0) assert.equal(m.messageId, undefined);
                else assert.ok(m.messageId! >= 1 && m.messageId! <= 65535, `packet id ${m.messageId}`);
              }
            }
          });
        }
      }
    });

    describe('QoS 2 flow with exact packets', () => {
      for (const version of [4, 5] as const) {
        it(`v${version}: inbound PUBLISH -> PUBREC -> PUBREL -> PUBCOMP, routed once`, async () => {
          const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
          await sub.subscribeAsync(`q2in/${version}`, { qos: 2 });
          const inbox = collect(sub);
          const wire = wireInbox(sub);
          const { client } = await RawClient.open(server.mqtt.port, { clientId: `q2in-pub-${version}` }, version);
          t.track(client);

          rawPublish(client, `q2in/${version}`, 'exactly-once', 2, 4242);
          const pubrec = (await client.next('pubrec', 2000)) as IPubrecPacket;
          assert.equal(pubrec.messageId, 4242);
          if (version === 5) assert.equal(pubrec.reasonCode ?? 0, 0);
          const [m] = await inbox.take(1, 2000);
          assert.equal(m!.payload.toString(), 'exactly-once');
          assert.equal(m!.qos, 2);

          client.send({ cmd: 'pubrel', messageId: 4242 });
          const pubcomp = (await client.next('pubcomp', 2000)) as IPubcompPacket;
          assert.equal(pubcomp.messageId, 4242);
          if (version === 5) assert.equal(pubcomp.reasonCode ?? 0, 0);
          // A marker from the same connection, after PUBCOMP: a second routing (at PUBREL) comes before it.
          rawPublish(client, `q2in/${version}`, 'marker', 0);
          assert.deepEqual((await beforeMarker(wire, isPublish(`q2in/${version}`, 'marker'))).map((p) => p.payload.toString()), ['exactly-once']);
        });

        it(`v${version}: a duplicate QoS 2 PUBLISH before PUBREL is routed only once`, async () => {
          const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
          await sub.subscribeAsync(`q2dup/${version}`, { qos: 2 });
          const wire = wireInbox(sub);
          const { client } = await RawClient.open(server.mqtt.port, { clientId: `q2dup-pub-${version}` }, version);
          t.track(client);
          const payloads = (ps: IPublishPacket[]): string[] => ps.map((m) => m.payload.toString());

          rawPublish(client, `q2dup/${version}`, 'first', 2, 9);
          assert.equal(((await client.next('pubrec', 2000)) as IPubrecPacket).messageId, 9);
          rawPublish(client, `q2dup/${version}`, 'first', 2, 9, { dup: true });
          assert.equal(((await client.next('pubrec', 2000)) as IPubrecPacket).messageId, 9, 'the resend is acknowledged again');
          // A QoS 0 marker on the same connection is routed after the resend, had that been routed.
          rawPublish(client, `q2dup/${version}`, 'marker', 0);
          assert.deepEqual(payloads(await beforeMarker(wire, isPublish(`q2dup/${version}`, 'marker'))), ['first'], 'the resend is not routed');

          client.send({ cmd: 'pubrel', messageId: 9 });
          assert.equal(((await client.next('pubcomp', 2000)) as IPubcompPacket).messageId, 9);

          // After PUBCOMP the id is free again: the same id is a new message.
          rawPublish(client, `q2dup/${version}`, 'second', 2, 9);
          assert.equal(((await client.next('pubrec', 2000)) as IPubrecPacket).messageId, 9);
          assert.deepEqual(payloads(await beforeMarker(wire, isPublish(`q2dup/${version}`, 'second'), 2000)), ['first', 'marker']);
          client.send({ cmd: 'pubrel', messageId: 9 });
          await client.next('pubcomp', 2000);
        });

        it(`v${version}: outbound QoS 2: broker PUBLISH -> client PUBREC -> broker PUBREL -> client PUBCOMP`, async () => {
          const clientId = `q2out-${version}`;
          const { client } = await RawClient.open(server.mqtt.port, { clientId }, version);
          t.track(client);
          assert.deepEqual(await rawSubscribe(client, [{ topic: `q2out/${version}`, qos: 2 }]), [2]);
          const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
          await pub.publishAsync(`q2out/${version}`, 'to-raw', { qos: 2 });

          const publish = (await client.next('publish', 2000)) as IPublishPacket;
          assert.equal(publish.qos, 2);
          assert.equal(publish.dup, false);
          assert.equal(publish.payload.toString(), 'to-raw');
          const id = publish.messageId!;
          assert.ok(id >= 1 && id <= 65535);

          client.send({ cmd: 'pubrec', messageId: id });
          const pubrel = (await client.next('pubrel', 2000)) as IPubrelPacket;
          assert.equal(pubrel.messageId, id);
          client.send({ cmd: 'pubcomp', messageId: id });
          // PINGRESP: the broker has handled the PUBCOMP sent before the PINGREQ.
          client.send({ cmd: 'pingreq' });
          await client.next('pingresp', 2000);
          const session = server.broker.sessions.get(clientId)!;
          assert.equal(session.queue.inflight.size, 0, 'PUBCOMP ends the delivery');
          // A resend or a second PUBREL caused by the PUBCOMP would be sent before this marker.
          await pub.publishAsync(`q2out/${version}`, 'marker', { qos: 0 });
          const before = await client.until(isPublish(`q2out/${version}`, 'marker'));
          assert.deepEqual(before.filter((p) => p.cmd === 'publish'), [], 'no resend');
          assert.deepEqual(before.filter((p) => p.cmd === 'pubrel'), [], 'no second PUBREL');
        });
      }

      it('outbound packet ids are non-zero and distinct while unacknowledged; acks echo the id', async () => {
        const { client } = await RawClient.open(server.mqtt.port, { clientId: 'ids-sub' }, 5);
        t.track(client);
        await rawSubscribe(client, [{ topic: 'ids/#', qos: 2 }]);
        const pub = await RawClient.open(server.mqtt.port, { clientId: 'ids-pub' }, 5);
        t.track(pub.client);
        // Inbound: whatever id the client picks comes back in PUBACK / PUBREC.
        for (const [id, qos] of [[1, 1], [65535, 1], [300, 2], [7, 1], [8, 2]] as const) {
          rawPublish(pub.client, `ids/${id}`, `m${id}`, qos, id);
          const ack = (await pub.client.next(qos === 1 ? 'puback' : 'pubrec', 2000)) as IPubackPacket | IPubrecPacket;
          assert.equal(ack.messageId, id);
        }
        const ids: number[] = [];
        for (let i = 0; i < 5; i++) {
          const p = (await client.next('publish', 2000)) as IPublishPacket;
          ids.push(p.messageId!);
        }
        assert.ok(ids.every((id) => id >= 1 && id <= 65535), `ids in range: ${ids}`);
        assert.equal(new Set(ids).size, 5, `distinct ids while in flight: ${ids}`);
      });
    });

    describe('resend on reconnect', () => {
      const cases: Array<{ name: string; version: 4 | 5; connect: Record<string, unknown> }> = [
        { name: 'v3.1.1 clean=false', version: 4, connect: { clean: false } },
        { name: 'v5 sessionExpiryInterval=60', version: 5, connect: { clean: false, properties: { sessionExpiryInterval: 60 } } },
      ];
      for (const { name, version, connect } of cases) {
        it(`${name}: an unacknowledged QoS 1 message is resent with dup=1 and the same payload and id`, async () => {
          const clientId = `resend-${version}`;
          const topic = `resend/${version}`;
          // Start from no session at all, then make it persistent.
          const first = await RawClient.open(server.mqtt.port, { clientId, clean: true }, version);
          t.track(first.client);
          first.client.send({ cmd: 'disconnect' });
          await first.client.closed;

          const a = await RawClient.open(server.mqtt.port, { clientId, ...connect }, version);
          t.track(a.client);
          assert.equal(a.connack.sessionPresent, false);
          assert.deepEqual(await rawSubscribe(a.client, [{ topic, qos: 1 }]), [1]);
          const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
          await pub.publishAsync(topic, 'unacked payload', { qos: 1 });
          const original = (await a.client.next('publish', 2000)) as IPublishPacket;
          assert.equal(original.dup, false);
          assert.equal(original.qos, 1);
          a.client.close(); // no PUBACK
          await a.client.closed;
          await sleep(50);

          const b = await RawClient.open(server.mqtt.port, { clientId, ...connect }, version);
          t.track(b.client);
          assert.equal(b.connack.sessionPresent, true);
          const again = (await b.client.next('publish', 2000)) as IPublishPacket;
          assert.equal(again.dup, true, 'resent with DUP');
          assert.equal(again.qos, 1);
          assert.equal(again.topic, topic);
          assert.equal(again.payload.toString(), 'unacked payload');
          assert.equal(again.messageId, original.messageId, 'same packet id');
          b.client.send({ cmd: 'puback', messageId: again.messageId });
          await sleep(100);
          b.client.send({ cmd: 'disconnect' });
          await b.client.closed;

          // Acknowledged now: a third connection gets nothing.
          const c = await RawClient.open(server.mqtt.port, { clientId, ...connect }, version);
          t.track(c.client);
          assert.equal(c.connack.sessionPresent, true);
          // The broker resends right after CONNACK; a marker to the kept subscription comes after that.
          await pub.publishAsync(topic, 'marker', { qos: 0 });
          assert.deepEqual(await c.client.until(isPublish(topic, 'marker')), [], 'not resent after PUBACK');
          // Clean up the persistent session.
          c.client.send({ cmd: 'disconnect' });
          await c.client.closed;
          const d = await RawClient.open(server.mqtt.port, { clientId, clean: true }, version);
          t.track(d.client);
        });
      }

      it('v5: an inbound QoS 2 PUBLISH resent after a reconnect (before PUBREL) is not routed again', async () => {
        const clientId = 'inbound-q2-resume';
        const connect = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } };
        const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await sub.subscribeAsync('q2resume/t', { qos: 2 });
        const wire = wireInbox(sub);
        const a = await RawClient.open(server.mqtt.port, { ...connect, clean: true }, 5);
        t.track(a.client);
        rawPublish(a.client, 'q2resume/t', 'once', 2, 77);
        assert.equal(((await a.client.next('pubrec', 2000)) as IPubrecPacket).messageId, 77);
        a.client.close(); // PUBREC lost, as far as the client knows
        await a.client.closed;
        await sleep(50);
        const b = await RawClient.open(server.mqtt.port, connect, 5);
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, true);
        rawPublish(b.client, 'q2resume/t', 'once', 2, 77, { dup: true });
        assert.equal(((await b.client.next('pubrec', 2000)) as IPubrecPacket).messageId, 77);
        b.client.send({ cmd: 'pubrel', messageId: 77 });
        const pubcomp = (await b.client.next('pubcomp', 2000)) as IPubcompPacket;
        assert.equal(pubcomp.messageId, 77);
        assert.equal(pubcomp.reasonCode ?? 0, 0, 'the packet id was known to the session');
        // A marker on the same connection, after PUBCOMP: the resend, had it been routed, comes before it.
        rawPublish(b.client, 'q2resume/t', 'marker', 0);
        assert.deepEqual((await beforeMarker(wire, isPublish('q2resume/t', 'marker'))).map((m) => m.payload.toString()), ['once']);
        b.client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await b.client.closed;
      });

      it('takeover of a persistent session resends its unacknowledged QoS 1 message on the new connection', async () => {
        const clientId = 'resend-takeover';
        const a = await RawClient.open(server.mqtt.port, { clientId, clean: false }, 4);
        t.track(a.client);
        await rawSubscribe(a.client, [{ topic: 'resend/takeover', qos: 1 }]);
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
        await pub.publishAsync('resend/takeover', 'in flight', { qos: 1 });
        const p = (await a.client.next('publish', 2000)) as IPublishPacket;
        const b = await RawClient.open(server.mqtt.port, { clientId, clean: false }, 4);
        t.track(b.client);
        assert.equal(b.connack.sessionPresent, true);
        const again = (await b.client.next('publish', 2000)) as IPublishPacket;
        assert.deepEqual([again.payload.toString(), again.messageId, again.dup, again.qos], ['in flight', p.messageId, true, 1]);
        b.client.send({ cmd: 'puback', messageId: again.messageId });
        b.client.send({ cmd: 'disconnect' });
        await b.client.closed;
        t.track((await RawClient.open(server.mqtt.port, { clientId, clean: true }, 4)).client);
      });

      it('v3.1.1: a QoS 2 delivery interrupted after PUBREC resumes with PUBREL', async () => {
        const clientId = 'resend-pubrel';
        const a = await RawClient.open(server.mqtt.port, { clientId, clean: false }, 4);
        t.track(a.client);
        await rawSubscribe(a.client, [{ topic: 'resend/pubrel', qos: 2 }]);
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
        await pub.publishAsync('resend/pubrel', 'q2', { qos: 2 });
        const p = (await a.client.next('publish', 2000)) as IPublishPacket;
        a.client.send({ cmd: 'pubrec', messageId: p.messageId });
        assert.equal(((await a.client.next('pubrel', 2000)) as IPubrelPacket).messageId, p.messageId);
        a.client.close(); // no PUBCOMP
        await a.client.closed;
        await sleep(50);
        const b = await RawClient.open(server.mqtt.port, { clientId, clean: false }, 4);
        t.track(b.client);
        assert.equal((b.connack as IConnackPacket).sessionPresent, true);
        assert.equal(((await b.client.next('pubrel', 2000)) as IPubrelPacket).messageId, p.messageId);
        // What the broker resends follows CONNACK at once; a marker to the kept subscription comes after.
        await pub.publishAsync('resend/pubrel', 'marker', { qos: 0 });
        assert.deepEqual((await b.client.until(isPublish('resend/pubrel', 'marker'))).filter((x) => x.cmd === 'publish'), [], 'the PUBLISH is not resent after PUBREC');
        b.client.send({ cmd: 'pubcomp', messageId: p.messageId });
        b.client.send({ cmd: 'disconnect' });
        await b.client.closed;
        t.track((await RawClient.open(server.mqtt.port, { clientId, clean: true }, 4)).client);
      });
    });

    describe('subscribe / unsubscribe and wildcards', () => {
      for (const version of [4, 5] as const) {
        it(`v${version}: + and # filters deliver exactly the matching topics`, async () => {
          const p = `wild${version}`;
          const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
          const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
          const grants = await sub.subscribeAsync({ [`${p}/a/+/c`]: { qos: 0 }, [`${p}/b/#`]: { qos: 1 }, [`${p}/+`]: { qos: 2 }, [`${p}/end`]: { qos: 0 } });
          assert.deepEqual(grants.map((g) => g.qos), [0, 1, 2, 0]);
          const topics = [
            `${p}/a/x/c`, // a/+/c
            `${p}/a/x/y/c`, // no: + is one level
            `${p}/a/c`, // no
            `${p}/a//c`, // a/+/c with an empty level
            `${p}/b`, // b/# matches the parent level too
            `${p}/b/1`,
            `${p}/b/1/2/3`,
            `${p}/bb/1`, // no
            `${p}/x`, // +
            `${p}/x/y`, // no
            `${p}`, // no
            `other/${p}/x`, // no
          ];
          const got = await received(pub, sub, topics, `${p}/end`);
          assert.deepEqual(got, [`${p}/a/x/c`, `${p}/a//c`, `${p}/b`, `${p}/b/1`, `${p}/b/1/2/3`, `${p}/x`]);
        });
      }

      it('$-topics are not matched by # or +/... at the root, but by explicit $ filters', async () => {
        const wild = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await wild.subscribeAsync({ '#': { qos: 0 }, '+/info': { qos: 0 }, '+/+/info': { qos: 0 } });
        const sys = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await sys.subscribeAsync({ '$ops/#': { qos: 0 }, '$app/+/info': { qos: 0 }, 'dollar/end': { qos: 0 } });
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));

        const wildInbox = collect(wild);
        const topics = ['$ops/info', '$ops/broker/info', '$app/x/info', '$other/info', 'plain/info', 'x/$y/info'];
        const sysGot = await received(pub, sys, topics, 'dollar/end');
        assert.deepEqual(sysGot, ['$ops/info', '$ops/broker/info', '$app/x/info']);
        // '#' matches the sentinel too: what it got before it is all it got of the topics above.
        assert.deepEqual(
          (await beforeMarker(wildInbox.messages, isPublish('dollar/end', 'END'))).map((m) => m.topic),
          ['plain/info', 'x/$y/info'],
          '# and + at the first level skip $ topics; a $ further down is an ordinary level',
        );
      });

      it('unsubscribe stops delivery, other filters keep working', async () => {
        const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
        await sub.subscribeAsync({ 'unsub/a': { qos: 1 }, 'unsub/b/#': { qos: 1 }, 'unsub/end': { qos: 0 } });
        assert.deepEqual(await received(pub, sub, ['unsub/a', 'unsub/b/1'], 'unsub/end'), ['unsub/a', 'unsub/b/1']);
        await sub.unsubscribeAsync('unsub/b/#');
        assert.deepEqual(await received(pub, sub, ['unsub/a', 'unsub/b/1', 'unsub/b'], 'unsub/end'), ['unsub/a']);
      });

      it('v5 UNSUBACK: 0x00 for an existing subscription, 0x11 for none; v3.1.1 delivery also stops', async () => {
        const { client } = await RawClient.open(server.mqtt.port, { clientId: 'unsuback-5' }, 5);
        t.track(client);
        await rawSubscribe(client, [{ topic: 'ua/x', qos: 1 }, { topic: 'ua/marker', qos: 0 }]);
        client.send({ cmd: 'unsubscribe', messageId: 5, unsubscriptions: ['ua/x', 'ua/none'] } as Packet);
        const unsuback = (await client.next('unsuback', 2000)) as IUnsubackPacket;
        assert.equal(unsuback.messageId, 5);
        assert.deepEqual(unsuback.granted, [0x00, 0x11]);

        const v4 = await RawClient.open(server.mqtt.port, { clientId: 'unsuback-4' }, 4);
        t.track(v4.client);
        await rawSubscribe(v4.client, [{ topic: 'ua/x', qos: 1 }, { topic: 'ua/marker', qos: 0 }]);
        v4.client.send({ cmd: 'unsubscribe', messageId: 6, unsubscriptions: ['ua/x'] } as Packet);
        assert.equal(((await v4.client.next('unsuback', 2000)) as IUnsubackPacket).messageId, 6);
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
        await pub.publishAsync('ua/x', 'after', { qos: 1 });
        // Both still subscribe to ua/marker: the marker, published after ua/x was acknowledged, arrives.
        await pub.publishAsync('ua/marker', 'marker', { qos: 0 });
        assert.deepEqual(await client.until(isPublish('ua/marker', 'marker')), []);
        assert.deepEqual(await v4.client.until(isPublish('ua/marker', 'marker')), []);
      });

      it('subscribing again to the same filter replaces its QoS and does not duplicate delivery', async () => {
        const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
        const inbox = collect(sub);
        const wire = wireInbox(sub);
        assert.equal((await sub.subscribeAsync('resub/t', { qos: 2 }))[0]!.qos, 2);
        assert.equal((await sub.subscribeAsync('resub/t', { qos: 0 }))[0]!.qos, 0);
        const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
        await pub.publishAsync('resub/t', 'x', { qos: 2 });
        await inbox.take(1, 2000);
        // A second copy (say at the old QoS 2) would be on the wire before this marker.
        await pub.publishAsync('resub/t', 'marker', { qos: 0 });
        assert.deepEqual((await beforeMarker(wire, isPublish('resub/t', 'marker'))).map((m) => [m.payload.toString(), m.qos]), [['x', 0]]);
      });

      it('overlapping subscriptions deliver one message per client at the highest granted QoS', async () => {
        for (const version of [4, 5] as const) {
          const { client } = await RawClient.open(server.mqtt.port, { clientId: `overlap-${version}` }, version);
          t.track(client);
          assert.deepEqual(
            await rawSubscribe(client, [
              { topic: `ov${version}/#`, qos: 0 },
              { topic: `ov${version}/+`, qos: 2 },
              { topic: `ov${version}/a`, qos: 1 },
            ]),
            [0, 2, 1],
          );
          const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
          await pub.publishAsync(`ov${version}/a`, 'q2', { qos: 2 });
          await pub.publishAsync(`ov${version}/a`, 'q1', { qos: 1 });
          await pub.publishAsync(`ov${version}/a/deep`, 'only#', { qos: 2 });
          const got: IPublishPacket[] = [];
          for (let i = 0; i < 3; i++) {
            const p = (await client.next('publish', 2000)) as IPublishPacket;
            got.push(p);
            if (p.qos === 1) client.send({ cmd: 'puback', messageId: p.messageId });
            if (p.qos === 2) client.send({ cmd: 'pubrec', messageId: p.messageId });
          }
          // The marker matches all three filters and comes after the acknowledged publishes.
          await pub.publishAsync(`ov${version}/marker`, 'marker', { qos: 0 });
          assert.deepEqual((await client.until(isPublish(`ov${version}/marker`, 'marker'))).filter((p) => p.cmd === 'publish'), [], 'no second copy');
          assert.deepEqual(
            got.map((p) => [p.payload.toString(), p.qos]),
            [
              ['q2', 2],
              ['q1', 1],
              ['only#', 0],
            ],
          );
        }
      });
    });
  });
}
