import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { tracker } from './helpers/tracker.js';
import { beforeMarker, isPublish, wireInbox } from './helpers/sentinel.js';

const MARKER = 'snapshot/marker';

/**
 * What a fresh subscriber on `filter` gets when it subscribes: [topic, payload, retain, qos] tuples.
 * The broker sends the retained messages as it writes the SUBACK; a marker the client publishes to
 * itself once it has the SUBACK is queued after them, so everything sent for the subscription
 * comes before it (in wire order: QoS 2 ones included).
 */
async function snapshot(url: string, t: ReturnType<typeof tracker>, filter: string, opts: { version?: 4 | 5; qos?: 0 | 1 | 2 } = {}): Promise<Array<[string, string, boolean, number]>> {
  const client = t.track(await connectClient(url, { protocolVersion: opts.version ?? 5 }));
  const wire = wireInbox(client);
  await client.subscribeAsync(MARKER, { qos: 1 });
  await client.subscribeAsync(filter, { qos: opts.qos ?? 1 });
  await client.publishAsync(MARKER, 'marker', { qos: 1 });
  return (await beforeMarker(wire, isPublish(MARKER, 'marker'))).map((m) => [m.topic, m.payload.toString(), m.retain, m.qos]);
}

const byTopic = (a: [string, ...unknown[]], b: [string, ...unknown[]]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

describe('retained messages', () => {
  let server: EddyServer;
  const t = tracker();
  before(async () => {
    server = await startBroker();
  });
  afterEach(() => t.closeAll());
  after(() => server.stop());

  for (const version of [4, 5] as const) {
    it(`v${version}: a new subscriber gets the retained message with retain=1`, async () => {
      const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: version }));
      await pub.publishAsync(`ret${version}/set`, 'kept', { qos: 1, retain: true });
      assert.deepEqual(await snapshot(server.mqttUrl, t, `ret${version}/set`, { version }), [[`ret${version}/set`, 'kept', true, 1]]);
      // It stays retained for the next subscriber too.
      assert.deepEqual(await snapshot(server.mqttUrl, t, `ret${version}/set`, { version, qos: 0 }), [[`ret${version}/set`, 'kept', true, 0]]);
    });
  }

  it('a later retained publish replaces the earlier one', async () => {
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await pub.publishAsync('ret/replace', 'v1', { qos: 1, retain: true });
    await pub.publishAsync('ret/replace', 'v2', { qos: 0, retain: true });
    await sleep(50);
    assert.deepEqual(await snapshot(server.mqttUrl, t, 'ret/replace', { qos: 2 }), [['ret/replace', 'v2', true, 0]]);
  });

  it('a non-retained publish neither replaces nor clears the retained message', async () => {
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
    await pub.publishAsync('ret/keep', 'retained', { qos: 1, retain: true });
    await pub.publishAsync('ret/keep', 'live', { qos: 1, retain: false });
    assert.deepEqual(await snapshot(server.mqttUrl, t, 'ret/keep'), [['ret/keep', 'retained', true, 1]]);
  });

  it('an empty retained payload clears it: current subscribers get it once, later ones get nothing', async () => {
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await pub.publishAsync('ret/clear', 'soon gone', { qos: 1, retain: true });
    const current = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
    const inbox = collect(current);
    await current.subscribeAsync('ret/clear', { qos: 1 });
    await inbox.take(1, 2000);
    await pub.publishAsync('ret/clear', '', { qos: 1, retain: true });
    await inbox.take(2, 2000);
    assert.deepEqual(
      inbox.messages.map((m) => [m.payload.toString(), m.retain]),
      [
        ['soon gone', true],
        ['', false],
      ],
    );
    assert.deepEqual(await snapshot(server.mqttUrl, t, 'ret/clear'), [], 'nothing retained any more');
    assert.deepEqual(await snapshot(server.mqttUrl, t, 'ret/#').then((l) => l.filter(([tp]) => tp === 'ret/clear')), []);
  });

  it('v3.1.1: live delivery of a retained publish to an existing subscriber has retain=0', async () => {
    const sub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
    await sub.subscribeAsync('ret/live4', { qos: 1 });
    const inbox = collect(sub);
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 4 }));
    await pub.publishAsync('ret/live4', 'now', { qos: 1, retain: true });
    const [m] = await inbox.take(1, 2000);
    assert.equal(m!.payload.toString(), 'now');
    assert.equal(m!.retain, false);
    // …while a new subscriber gets the stored copy with retain=1.
    assert.deepEqual(await snapshot(server.mqttUrl, t, 'ret/live4', { version: 4 }), [['ret/live4', 'now', true, 1]]);
  });

  it('v5: live delivery keeps retain=1 only with Retain As Published', async () => {
    const plain = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await plain.subscribeAsync('ret/rap', { qos: 1, rap: false });
    const rap = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await rap.subscribeAsync('ret/rap', { qos: 1, rap: true });
    const plainInbox = collect(plain);
    const rapInbox = collect(rap);
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await pub.publishAsync('ret/rap', 'x', { qos: 1, retain: true });
    await pub.publishAsync('ret/rap', 'y', { qos: 1, retain: false });
    const [p1, p2] = await plainInbox.take(2, 2000);
    const [r1, r2] = await rapInbox.take(2, 2000);
    assert.deepEqual([p1!.retain, p2!.retain], [false, false]);
    assert.deepEqual([r1!.retain, r2!.retain], [true, false]);
  });

  it('a wildcard subscription gets every matching retained message and only those', async () => {
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    const retained: Array<[string, string, 0 | 1 | 2]> = [
      ['wr/a', 'A', 0],
      ['wr/b/c', 'BC', 1],
      ['wr/d', 'D', 2],
      ['wr/b/c/d', 'BCD', 1],
      ['wrx/a', 'X', 1],
      ['$wr/a', 'DOLLAR', 1],
    ];
    for (const [topic, payload, qos] of retained) await pub.publishAsync(topic, payload, { qos, retain: true });

    const all = await snapshot(server.mqttUrl, t, 'wr/#', { qos: 2 });
    assert.deepEqual(all.sort(byTopic), [
      ['wr/a', 'A', true, 0],
      ['wr/b/c', 'BC', true, 1],
      ['wr/b/c/d', 'BCD', true, 1],
      ['wr/d', 'D', true, 2],
    ]);
    const plus = await snapshot(server.mqttUrl, t, 'wr/+', { qos: 1 });
    assert.deepEqual(plus.sort(byTopic), [
      ['wr/a', 'A', true, 0],
      ['wr/d', 'D', true, 1],
    ]);
    const mid = await snapshot(server.mqttUrl, t, '+/b/+', { qos: 2 });
    assert.deepEqual(mid, [['wr/b/c', 'BC', true, 1]]);
    const root = (await snapshot(server.mqttUrl, t, '#', { qos: 0 })).filter(([tp]) => tp.includes('wr'));
    assert.deepEqual(root.map(([tp]) => tp).sort(), ['wr/a', 'wr/b/c', 'wr/b/c/d', 'wr/d', 'wrx/a'], '# does not return $ topics');
  });

  it('v5 retain handling: 1 sends retained only for a new subscription, 2 never', async () => {
    const pub = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    await pub.publishAsync('ret/rh', 'r', { qos: 1, retain: true });
    const c = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    const inbox = collect(c);
    await c.subscribeAsync('ret/rh', { qos: 1, rh: 1 });
    await inbox.take(1, 2000);
    await c.subscribeAsync('ret/rh', { qos: 1, rh: 1 }); // already exists: no retained
    // A live (not retained) marker on the same topic, published after the SUBACK, comes after any retained copy.
    await c.publishAsync('ret/rh', 'marker', { qos: 1 });
    assert.equal((await beforeMarker(inbox.messages, isPublish('ret/rh', 'marker'))).length, 1);
    const never = await snapshot(server.mqttUrl, t, 'ret/rh'); // rh 0 control
    assert.equal(never.length, 1);
    const c2 = t.track(await connectClient(server.mqttUrl, { protocolVersion: 5 }));
    const inbox2 = collect(c2);
    await c2.subscribeAsync('ret/rh', { qos: 1, rh: 2 });
    await c2.publishAsync('ret/rh', 'marker', { qos: 1 });
    assert.deepEqual(await beforeMarker(inbox2.messages, isPublish('ret/rh', 'marker')), []);
  });
});
