import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { killQuietly, readyPorts, start, type Running } from './helpers/cli-process.js';
import { collect, connectClient, publishWithAck, sleep } from './helpers/mqtt.js';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';
import { SseClient } from './helpers/sse.js';
import { tempDirs } from './helpers/temp-dir.js';

const tempDir = tempDirs('eddy-nodes-');

/**
 * Two Eddy nodes (`eddy broker --cluster`, two processes) on one real 3-node JetStream cluster: what
 * is published on one node reaches subscribers on the other (MQTT at QoS 0/1/2, SSE), a consumer
 * group with members on both nodes gets each message once, a persistent session moves between nodes
 * (the old connection gets 0x8E, the new node delivers what was queued), retained messages, replay
 * and dead letters work across nodes. "Not received" is always proven by a marker sent after it.
 */
describe('two Eddy nodes on one JetStream cluster', () => {
  let nats: NatsCluster;
  const nodes: Array<{ run: Running; mqtt: string; http: string }> = [];
  const clients: MqttClient[] = [];

  const client = async (node: number, options: IClientOptions = {}): Promise<MqttClient> => {
    const c = await connectClient(nodes[node]!.mqtt, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    clients.push(c);
    return c;
  };
  const persistent = (clientId: string, extra: IClientOptions = {}): IClientOptions => ({ clientId, clean: false, properties: { sessionExpiryInterval: 3600 }, ...extra });
  const text = (packets: IPublishPacket[]): string[] => packets.map((p) => p.payload.toString());
  /** Waits until a subscription made on one node is known to the other (its record reached the watch). */
  const propagated = async (): Promise<void> => sleep(300);

  before(async () => {
    nats = await startNatsCluster();
    const dir = tempDir();
    const config = path.join(dir, 'eddy.yaml');
    writeFileSync(
      config,
      ['channels:', "  'hist/#':", '    retention: { maxAge: 1h }', "  'jobs/#':", '    maxDeliveries: 2', 'redelivery:', '  initialBackoff: 50ms', ''].join('\n'),
    );
    for (let i = 0; i < 2; i++) {
      const run = start(['broker', '--config', config, '--cluster', nats.urls.join(','), '--port', '0', '--http-port', '0', '--log-level', 'warn']);
      const ports = await readyPorts(run, 30_000);
      nodes.push({ run, mqtt: `mqtt://127.0.0.1:${ports.mqtt}`, http: `http://127.0.0.1:${ports.http}` });
    }
  });
  afterEach((t) => {
    // A failure says what the nodes logged (warnings and errors), which is where a cluster problem shows.
    if ((t as unknown as { passed?: boolean }).passed === false) for (const [i, n] of nodes.entries()) console.log(`node ${i} stderr:\n${n.run.stderr()}`);
  });
  after(async () => {
    for (const c of clients) c.end(true);
    for (const n of nodes) killQuietly(n.run.child.pid);
    await nats?.stop();
  });

  test('published on node A, received on node B at QoS 0, 1 and 2, over MQTT and SSE', async () => {
    const sub = await client(1, { clientId: 'x-sub' });
    await sub.subscribeAsync('x/#', { qos: 2 });
    const inbox = collect(sub);
    const sse = await SseClient.open(`${nodes[1]!.http}/v1/subscribe?filter=${encodeURIComponent('x/#')}`);
    const pub = await client(0, { clientId: 'x-pub' });
    await pub.publishAsync('x/q0', 'zero', { qos: 0 });
    assert.equal((await publishWithAck(pub, 'x/q1', 'one', { qos: 1 })).reasonCode, 0);
    await pub.publishAsync('x/q2', 'two', { qos: 2 });
    const got = await inbox.take(3, 10_000);
    assert.deepEqual(text(got), ['zero', 'one', 'two']);
    assert.deepEqual(got.map((p) => p.qos), [0, 1, 2]);
    const events = await sse.take(3, 10_000);
    assert.deepEqual(events.map((e) => e.data), ['zero', 'one', 'two']);
    sse.close();
    // And back: published on B, received on A.
    const subA = await client(0, { clientId: 'x-sub-a' });
    await subA.subscribeAsync('back/#', { qos: 1 });
    const inboxA = collect(subA);
    const pubB = await client(1, { clientId: 'x-pub-b' });
    assert.equal((await publishWithAck(pubB, 'back/1', 'from B')).reasonCode, 0);
    assert.deepEqual(text(await inboxA.take(1, 10_000)), ['from B']);
  });

  test('a consumer group with members on both nodes gets every message exactly once among them', async () => {
    const seen = new Map<string, number>();
    const perMember = [0, 0];
    const members: MqttClient[] = [];
    for (const node of [0, 1]) {
      const m = await client(node, persistent(`grp-member-${node}`));
      m.on('message', (_t, payload) => {
        seen.set(payload.toString(), (seen.get(payload.toString()) ?? 0) + 1);
        perMember[node]!++;
      });
      await m.subscribeAsync('$share/workers/work/#', { qos: 1 });
      members.push(m);
    }
    await propagated();
    const pubs = [await client(0, { clientId: 'grp-pub-a' }), await client(1, { clientId: 'grp-pub-b' })];
    const total = 200;
    await Promise.all(Array.from({ length: total }, (_, i) => publishWithAck(pubs[i % 2]!, `work/${i}`, `job-${i}`)));
    const deadline = Date.now() + 20_000;
    while (seen.size < total && Date.now() < deadline) await sleep(100);
    // A marker through the group after the last job: once it arrives, any duplicate would have too.
    assert.equal((await publishWithAck(pubs[0]!, 'work/marker', 'marker')).reasonCode, 0);
    while (!seen.has('marker') && Date.now() < deadline + 10_000) await sleep(50);
    assert.ok(seen.has('marker'), 'the marker arrived');
    seen.delete('marker');
    assert.equal(seen.size, total, `every job arrived (${seen.size} of ${total})`);
    const twice = [...seen].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no job arrived twice');
    // The member on A leaves: what is published next (on A) reaches the member on B, once.
    members[0]!.end(true);
    await propagated();
    const before = perMember[1]!;
    await Promise.all(Array.from({ length: 20 }, (_, i) => publishWithAck(pubs[0]!, `work/late/${i}`, `late-${i}`)));
    const lateDeadline = Date.now() + 20_000;
    while (perMember[1]! - before < 20 && Date.now() < lateDeadline) await sleep(100);
    assert.equal(perMember[1]! - before, 20, `the member on B got the 20 later jobs (per member: ${perMember.join(' / ')})`);
    assert.deepEqual([...seen].filter(([, n]) => n > 1), [], 'still no job twice');
    members.shift();
    for (const m of members) await m.unsubscribeAsync('$share/workers/work/#');
  });

  test('a persistent session moves from A to B: A closes the old connection with 0x8E, B delivers what was queued', async () => {
    const first = await client(0, persistent('mover'));
    await first.subscribeAsync('move/#', { qos: 1 });
    await propagated();
    const pub = await client(0, { clientId: 'move-pub' });
    const pubB = await client(1, { clientId: 'move-pub-b' });
    first.end(true);
    await sleep(200);
    // Queued while offline, from both nodes.
    for (const p of ['m1', 'm2']) assert.equal((await publishWithAck(pub, 'move/a', p)).reasonCode, 0);
    assert.equal((await publishWithAck(pubB, 'move/b', 'm3')).reasonCode, 0);
    const onB = mqtt.connect(nodes[1]!.mqtt, { protocolVersion: 5, reconnectPeriod: 0, ...persistent('mover') });
    clients.push(onB);
    const inbox = collect(onB);
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      onB.once('connect', (p) => resolve(p as never));
      onB.once('error', reject);
    });
    assert.equal(connack.sessionPresent, true, 'node B found the session');
    assert.deepEqual(text(await inbox.take(3, 15_000)).sort(), ['m1', 'm2', 'm3']);

    // Now take it back to A while it is connected on B: B closes it with 0x8E.
    const disconnected = new Promise<number | undefined>((resolve) => onB.once('disconnect', (p) => resolve(p.reasonCode)));
    const back = await client(0, persistent('mover'));
    assert.equal(await Promise.race([disconnected, sleep(10_000).then(() => -1)]), 0x8e, 'the old connection on B got DISCONNECT 0x8E');
    const backInbox = collect(back);
    assert.equal((await publishWithAck(pubB, 'move/c', 'after takeover')).reasonCode, 0);
    // What B had not seen acknowledged may come again (QoS 1 allows it); the new message must come.
    const deadline = Date.now() + 10_000;
    while (!text(backInbox.messages).includes('after takeover') && Date.now() < deadline) await sleep(50);
    const got = text(backInbox.messages);
    assert.ok(got.includes('after takeover'), `node A delivers after the takeover (got ${got.join(', ')})`);
    assert.deepEqual(got.filter((p) => !['m1', 'm2', 'm3', 'after takeover'].includes(p)), []);
  });

  test('a retained message set on A is read on B; replay on B reads history published on A', async () => {
    const pub = await client(0, { clientId: 'ret-pub' });
    assert.equal((await publishWithAck(pub, 'ret/x', 'kept', { retain: true })).reasonCode, 0);
    for (const p of ['h1', 'h2', 'h3']) assert.equal((await publishWithAck(pub, 'hist/a', p)).reasonCode, 0);
    await sleep(300); // the retained bucket's watch on node B
    const reader = await client(1, { clientId: 'ret-reader' });
    const inbox = collect(reader);
    await reader.subscribeAsync('ret/x', { qos: 1 });
    const [r] = await inbox.take(1, 10_000);
    assert.equal(r!.payload.toString(), 'kept');
    assert.equal(r!.retain, true);
    const replayer = await client(1, { clientId: 'replayer' });
    const history = collect(replayer);
    await replayer.subscribeAsync('hist/#', { qos: 1, properties: { userProperties: { 'eddy-from': 'earliest' } } } as never);
    assert.deepEqual(text(await history.take(3, 10_000)), ['h1', 'h2', 'h3']);
  });

  test('a nack on node B dead-letters the message published on node A; a $DLQ subscriber on A gets it', async () => {
    const watcher = await client(0, { clientId: 'dlq-watch' });
    const letters = collect(watcher);
    await watcher.subscribeAsync('$DLQ/#', { qos: 1 });
    const refuser = await client(1, persistent('refuser', { customHandleAcks: (_t, _p, _packet, done) => done(0x80) }));
    await refuser.subscribeAsync('$share/jobs/jobs/#', { qos: 1 });
    await propagated();
    const pub = await client(0, { clientId: 'dlq-pub' });
    assert.equal((await publishWithAck(pub, 'jobs/1', 'cannot do')).reasonCode, 0);
    const [letter] = await letters.take(1, 15_000);
    assert.equal(letter!.topic, '$DLQ/jobs/1');
    assert.equal(letter!.payload.toString(), 'cannot do');
  });

  test('an unsubscribe on node B stops deliveries from node A (a marker proves it)', async () => {
    const sub = await client(1, persistent('unsub'));
    await sub.subscribeAsync('u/off', { qos: 1 });
    await sub.subscribeAsync('u/marker', { qos: 1 });
    await sub.unsubscribeAsync('u/off');
    await propagated();
    const inbox = collect(sub);
    const pub = await client(0, { clientId: 'unsub-pub' });
    assert.equal((await publishWithAck(pub, 'u/off', 'unwanted')).reasonCode, 0);
    assert.equal((await publishWithAck(pub, 'u/marker', 'marker')).reasonCode, 0);
    assert.deepEqual(text(await inbox.take(1, 10_000)), ['marker']);
    await sleep(100);
    assert.deepEqual(text(inbox.messages), ['marker']);
  });

  test('a node that starts keeps the clean sessions of clients connected to the others', async () => {
    // At start a node loads every session record; one with expiry 0 and no disconnect time is a
    // client connected elsewhere right now, not an expired leftover (it was deleted, which cut the
    // client off with 0x8E "taken over" on its node).
    const sub = await client(0, { clientId: 'kept-clean' });
    await sub.subscribeAsync('kept/#', { qos: 1 });
    const inbox = collect(sub);
    const reasons: number[] = [];
    sub.on('disconnect', (packet) => reasons.push(packet.reasonCode ?? -1));
    await propagated();
    const third = start(['broker', '--cluster', nats.urls.join(','), '--port', '0', '--http-port', '0', '--log-level', 'warn']);
    try {
      const ports = await readyPorts(third, 30_000);
      const pub = await connectClient(`mqtt://127.0.0.1:${ports.mqtt}`, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'kept-pub' });
      clients.push(pub);
      assert.equal((await publishWithAck(pub, 'kept/1', 'after-start')).reasonCode, 0);
      assert.deepEqual(text(await inbox.take(1, 10_000)), ['after-start']);
      assert.deepEqual(reasons, []);
      assert.ok(sub.connected, 'the client on node A is still connected');
    } finally {
      third.child.kill('SIGTERM');
      await third.exited;
    }
  });

  // Last: it kills node A.
  test('node A is killed holding group deliveries nobody acknowledged: the member on node B gets them', async () => {
    // The member on A never acknowledges (mqtt.js then takes no further message), so A holds every
    // job: the first in flight, the rest fetched from the group's queue and waiting behind it.
    const held: string[] = [];
    const stuck = await client(0, persistent('held-member-a', { customHandleAcks: (_t, payload, _packet) => void held.push(payload.toString()) }));
    await stuck.subscribeAsync('$share/held/held/#', { qos: 1 });
    await propagated();
    const pub = await client(1, { clientId: 'held-pub' });
    const jobs = Array.from({ length: 10 }, (_, i) => `held-${i}`);
    for (const job of jobs) assert.equal((await publishWithAck(pub, 'held/job', job)).reasonCode, 0);
    const deadline = Date.now() + 10_000;
    while (held.length === 0 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(held, ['held-0'], 'the member on A has the first job, unacknowledged');
    await sleep(200); // A's fetch of the rest
    nodes[0]!.run.child.kill('SIGKILL');
    const m = await client(1, persistent('held-member-b'));
    const inbox = collect(m);
    await m.subscribeAsync('$share/held/held/#', { qos: 1 });
    // They come again after the group's ack wait (10 s), then the marker behind them.
    assert.equal((await publishWithAck(pub, 'held/job', 'marker')).reasonCode, 0);
    const got = new Set<string>();
    const until = Date.now() + 30_000;
    while (!(jobs.every((j) => got.has(j)) && got.has('marker')) && Date.now() < until) {
      for (const p of inbox.messages.splice(0)) got.add(p.payload.toString());
      await sleep(100);
    }
    assert.deepEqual([...got].filter((j) => j !== 'marker').sort(), [...jobs].sort(), 'every job A held reached the member on B');
    assert.ok(got.has('marker'));
  });
});
