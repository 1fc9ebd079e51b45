import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from 'mqtt-packet';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { SseClient } from './helpers/sse.js';
import { beforeMarker, isPublish, wireInbox } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';
import { admin, connectWithInbox, until, type Page } from './helpers/admin.js';

type Disconnect = Extract<Packet, { cmd: 'disconnect' }>;

const t = tracker();
const streams: SseClient[] = [];
const tempDir = tempDirs('eddy-admin-');
let server: EddyServer | undefined;
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await t.closeAll();
  await server?.stop();
  server = undefined;
});

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker({ sys: { interval: 0 }, redelivery: { initialBackoffMs: 20, maxBackoffMs: 200 }, ...options });
  return server;
}

async function client(options: IClientOptions): Promise<MqttClient> {
  return t.track(await connectClient(server!.mqttUrl, { protocolVersion: 5, ...options }));
}

async function raw(connect: Partial<Extract<Packet, { cmd: 'connect' }>>, version: 4 | 5 = 5): Promise<RawClient> {
  const { client: r, connack } = await RawClient.open(server!.mqtt.port, connect, version);
  assert.equal(version === 5 ? connack.reasonCode : connack.returnCode, 0);
  return t.track(r);
}

describe('admin API: clients and sessions', () => {
  it('lists connected clients (MQTT 5, MQTT 3.1.1, SSE) with protocol, transport, keep-alive and their own counters', async () => {
    const s = await start();
    const v5 = await client({ clientId: 'list-v5', keepalive: 30 });
    const got = collect(v5);
    await v5.subscribeAsync('list/#', { qos: 1 });
    const v3 = await client({ clientId: 'list-v3', protocolVersion: 4, keepalive: 45 });
    const sse = await SseClient.open(`${s.httpUrl}/v1/subscribe?filter=list/%23`);
    streams.push(sse);
    for (const n of [1, 2, 3]) await v3.publishAsync('list/x', `m${n}`, { qos: 1 });
    await got.take(3);
    await sse.take(3);

    const { status, body } = await admin<Page>(s, 'clients');
    assert.equal(status, 200);
    assert.equal(body.total, 3);
    assert.equal(body.next, null);
    const ids = body.items.map((c) => c.clientId as string);
    assert.deepEqual(ids.slice(1), ['list-v3', 'list-v5'], 'ordered by client id');
    assert.match(ids[0]!, /^http-sse-/);
    const [stream, three, five] = body.items;
    assert.equal(three!.protocolVersion, '3.1.1');
    assert.equal(three!.transport, 'tcp');
    assert.equal(three!.keepAlive, 45);
    assert.equal(three!.messagesIn, 3);
    assert.equal(three!.messagesOut, 0);
    assert.ok((three!.bytesIn as number) > 3 * 'list/x'.length, 'whole packets are counted');
    assert.equal(five!.protocolVersion, '5.0');
    assert.equal(five!.keepAlive, 30);
    assert.equal(five!.messagesOut, 3);
    assert.equal(five!.messagesIn, 0);
    assert.ok((five!.bytesOut as number) > 0);
    assert.equal(stream!.protocol, 'sse');
    assert.equal(stream!.transport, 'http');
    assert.equal(stream!.messagesOut, 3);
    assert.match(String(five!.address), /^127\.0\.0\.1:\d+$/);

    const one = await admin(s, 'clients/list-v5');
    assert.equal(one.status, 200);
    assert.equal(one.body.clientId, 'list-v5');
    assert.equal((await admin(s, 'clients/nobody')).status, 404);
    assert.equal((await admin(s, 'clients?colour=red')).status, 400);
  });

  it('DELETE /v1/admin/clients/<id> disconnects with 0x98; a persistent session stays, offline, with its expiry counting down', async () => {
    const s = await start();
    const kicked = await raw({ clientId: 'kick-me', properties: { sessionExpiryInterval: 300 } });
    const v3 = await raw({ clientId: 'kick-me-too', clean: false }, 4);
    const { status } = await admin(s, 'clients/kick-me', { method: 'DELETE' });
    assert.equal(status, 200);
    const disconnect = (await kicked.next('disconnect')) as Disconnect;
    assert.equal(disconnect.reasonCode, 0x98);
    assert.match(disconnect.properties?.reasonString ?? '', /administrator/);
    await kicked.closed;
    // 3.1.1 has no DISCONNECT from the server: the connection just closes.
    assert.equal((await admin(s, `clients/${encodeURIComponent('kick-me-too')}`, { method: 'DELETE' })).status, 200);
    await v3.closed;

    const session = await admin(s, 'sessions/kick-me');
    assert.equal(session.body.connected, false);
    assert.equal(session.body.persistent, true);
    assert.equal(session.body.expiryInterval, 300);
    assert.ok((session.body.expiresIn as number) <= 300 && (session.body.expiresIn as number) > 290, `expiresIn ${session.body.expiresIn}`);
    assert.equal((await admin(s, 'clients/kick-me', { method: 'DELETE' })).status, 404, 'not connected any more');
    assert.equal((await admin<Page>(s, 'clients')).body.total, 0);
  });

  it('DELETE /v1/admin/sessions/<id> ends an offline persistent session: reconnecting finds no session and none of its queued messages', async () => {
    const s = await start();
    const subscriber = await client({ clientId: 'ender', protocolVersion: 4, clean: false });
    await subscriber.subscribeAsync('end/topic', { qos: 1 });
    await subscriber.endAsync();
    const publisher = await client({ clientId: 'end-pub' });
    await publisher.publishAsync('end/topic', 'queued-1', { qos: 1 });
    await publisher.publishAsync('end/topic', 'queued-2', { qos: 1 });
    const before = await admin<{ queue: { waiting: number }; connected: boolean }>(s, 'sessions/ender');
    assert.equal(before.body.queue.waiting, 2, 'the messages wait for the offline session');
    assert.equal(before.body.connected, false);

    assert.equal((await admin(s, 'sessions/ender', { method: 'DELETE' })).status, 200);
    assert.equal((await admin(s, 'sessions/ender')).status, 404);
    assert.equal((await admin(s, 'subscriptions?client=ender')).status, 404);

    const back = await connectWithInbox(s.mqttUrl, { clientId: 'ender', protocolVersion: 4, clean: false });
    t.track(back.client);
    assert.equal(back.connack.sessionPresent, false);
    await back.client.subscribeAsync('end/topic', { qos: 1 });
    await publisher.publishAsync('end/topic', 'sentinel', { qos: 1 });
    const early = await beforeMarker(back.inbox, isPublish('end/topic', 'sentinel'));
    assert.deepEqual(early.map((p) => p.payload.toString()), [], 'nothing of the ended session was delivered');
  });

  it('ending a connected session disconnects its client with 0x98 first, then removes it', async () => {
    const s = await start();
    const c = await raw({ clientId: 'end-connected', properties: { sessionExpiryInterval: 600 } });
    assert.equal((await admin(s, 'sessions/end-connected', { method: 'DELETE' })).status, 200);
    assert.equal(((await c.next('disconnect')) as Disconnect).reasonCode, 0x98);
    assert.equal((await admin(s, 'sessions/end-connected')).status, 404);
    assert.equal((await admin<Page>(s, 'sessions')).body.total, 0);
    assert.equal((await admin(s, 'sessions/never-was', { method: 'DELETE' })).status, 404);
  });
});

describe('admin API: groups, subscriptions, retained', () => {
  it('lists a group with members, waiting, lag; DELETE drops its queue and its members subscriptions; the dead-letter group is 409', async () => {
    const s = await start();
    const m1 = await client({ clientId: 'g-m1', properties: { sessionExpiryInterval: 300 } });
    await m1.subscribeAsync(['$share/workers/jobs/#', 'g/sentinel'], { qos: 1 });
    const m2 = await client({ clientId: 'g-m2', protocolVersion: 4, clean: false });
    await m2.subscribeAsync('$share/workers/jobs/#', { qos: 1 });
    await m1.endAsync();
    await m2.endAsync();
    const publisher = await client({ clientId: 'g-pub' });
    await publisher.publishAsync('jobs/1', 'waiting-1', { qos: 1 });
    await publisher.publishAsync('jobs/2', 'waiting-2', { qos: 1 });
    await new Promise((r) => setTimeout(r, 30));

    const view = await admin<{ members: number; connectedMembers: number; waiting: number; lag: number; memberIds: string[]; filter: string }>(s, 'groups/workers/jobs/%23');
    assert.equal(view.status, 200);
    assert.equal(view.body.members, 2);
    assert.equal(view.body.connectedMembers, 0);
    assert.deepEqual(view.body.memberIds, ['g-m1', 'g-m2']);
    assert.equal(view.body.waiting, 2);
    assert.equal(view.body.filter, 'jobs/#');
    assert.ok(view.body.lag >= 0.02, `lag ${view.body.lag}`);
    const listed = await admin<Page<{ name: string }>>(s, 'groups');
    assert.deepEqual(listed.body.items.map((g) => g.name), ['$share/eddy-dlq/$DLQ/#', '$share/workers/jobs/#']);

    const deleted = await admin(s, `groups/${encodeURIComponent('$share/workers/jobs/#')}`, { method: 'DELETE' });
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.body, { name: '$share/workers/jobs/#', members: 2, dropped: 2 });
    assert.equal((await admin(s, 'groups/workers/jobs/%23')).status, 404);
    const subs = await admin<Page<{ filter: string }>>(s, 'subscriptions?client=g-m1');
    assert.deepEqual(subs.body.items.map((x) => x.filter), ['g/sentinel']);
    assert.equal((await admin<Page>(s, 'subscriptions?client=g-m2')).body.total, 0);

    // The member comes back: neither the dropped messages nor new ones for the group reach it.
    const back = await connectWithInbox(s.mqttUrl, { clientId: 'g-m1', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
    t.track(back.client);
    assert.equal(back.connack.sessionPresent, true);
    await publisher.publishAsync('jobs/3', 'after-delete', { qos: 1 });
    await publisher.publishAsync('g/sentinel', 'sentinel', { qos: 1 });
    const early = await beforeMarker(back.inbox, isPublish('g/sentinel', 'sentinel'));
    assert.deepEqual(early.map((p) => p.payload.toString()), []);

    const dlq = await admin(s, `groups/${encodeURIComponent('$share/eddy-dlq/$DLQ/#')}`, { method: 'DELETE' });
    assert.equal(dlq.status, 409);
    assert.equal((await admin(s, 'groups/no/such', { method: 'DELETE' })).status, 404);
  });

  it('lists subscriptions by client, by filter and all, in client id then filter order', async () => {
    const s = await start();
    const a = await client({ clientId: 'sub-a' });
    await a.subscribeAsync(['z/#', 'a/+/b', '$share/g/q/#'], { qos: 1 });
    const b = await client({ clientId: 'sub-b' });
    await b.subscribeAsync('a/+/b', { qos: 0 });
    const all = await admin<Page<{ clientId: string; filter: string; qos: number; group: string | null }>>(s, 'subscriptions');
    assert.deepEqual(all.body.items.map((x) => `${x.clientId} ${x.filter}`), ['sub-a $share/g/q/#', 'sub-a a/+/b', 'sub-a z/#', 'sub-b a/+/b']);
    assert.equal(all.body.total, 4);
    assert.equal(all.body.items[0]!.group, 'g');
    const byFilter = await admin<Page<{ clientId: string; qos: number }>>(s, `subscriptions?filter=${encodeURIComponent('a/+/b')}`);
    assert.deepEqual(byFilter.body.items.map((x) => [x.clientId, x.qos]), [['sub-a', 1], ['sub-b', 0]]);
    assert.equal(byFilter.body.total, 2);
    const paged = await admin<Page<{ filter: string }>>(s, 'subscriptions?limit=2');
    assert.equal(paged.body.items.length, 2);
    const rest = await admin<Page<{ clientId: string; filter: string }>>(s, `subscriptions?after=${encodeURIComponent(paged.body.next!)}`);
    assert.deepEqual(rest.body.items.map((x) => `${x.clientId} ${x.filter}`), ['sub-a z/#', 'sub-b a/+/b']);
    assert.equal((await admin(s, 'subscriptions?filter=a/%23/b')).status, 400);
  });

  it('DELETE /v1/admin/retained/<topic> clears it: a new subscriber gets the other retained message but not the cleared one', async () => {
    const s = await start();
    const publisher = await client({ clientId: 'ret-pub' });
    await publisher.publishAsync('ret/cleared', 'old value', { qos: 1, retain: true });
    await publisher.publishAsync('ret/kept', 'kept value', { qos: 1, retain: true });
    const listed = await admin<Page<{ topic: string; payload: string; bytes: number }>>(s, 'retained');
    assert.deepEqual(listed.body.items.map((r) => `${r.topic}=${r.payload}`), ['ret/cleared=old value', 'ret/kept=kept value']);

    const cleared = await admin(s, `retained/${encodeURIComponent('ret/cleared')}`, { method: 'DELETE' });
    assert.equal(cleared.status, 200);
    assert.equal((await admin(s, 'retained/ret/cleared')).status, 404);
    assert.equal((await admin(s, 'retained/ret/cleared', { method: 'DELETE' })).status, 404);
    assert.deepEqual((await admin<Page<{ topic: string }>>(s, 'retained')).body.items.map((r) => r.topic), ['ret/kept']);

    // One SUBSCRIBE, the cleared topic's filter first: its retained message would come before the kept one.
    const fresh = await client({ clientId: 'ret-fresh' });
    const inbox = wireInbox(fresh);
    await fresh.subscribeAsync(['ret/cleared', 'ret/kept'], { qos: 1 });
    const early = await beforeMarker(inbox, isPublish('ret/kept', 'kept value'));
    assert.deepEqual(early.map((p) => p.topic), []);
    const full = await admin<{ payload: string; truncated: boolean }>(s, 'retained/ret/kept');
    assert.equal(full.body.payload, 'kept value');
    assert.equal(full.body.truncated, false);
  });
});

describe('admin API: dead letters', () => {
  it('lists dead letters in pages, purges by topic for good (across a restart) and redrives', async () => {
    const dir = tempDir();
    const disk = (): DiskStorage => new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger });
    const s = await start({ storage: disk(), channels: [{ pattern: 'jobs/#', maxDeliveries: 1 }] });
    const nacker = await client({ clientId: 'nacker', customHandleAcks: (_t, _p, _packet, ack) => ack(0x80) });
    await nacker.subscribeAsync('$share/w/jobs/#', { qos: 1 });
    const publisher = await client({ clientId: 'dlq-pub' });
    for (const [topic, payload] of [['jobs/a', 'a1'], ['jobs/a', 'a2'], ['jobs/b', 'b1']] as const) await publisher.publishAsync(topic, payload, { qos: 1 });
    await until(() => s.broker.deadLetters.queue.pendingCount === 3, () => `dlq holds ${s.broker.deadLetters.queue.pendingCount}`);

    type Letter = { seq: number; originalTopic: string; payload: string; group: string; deadLetteredAt: string };
    const all = await admin<Page<Letter>>(s, 'dlq');
    assert.deepEqual(all.body.items.map((l) => l.payload), ['a1', 'a2', 'b1']);
    assert.equal(all.body.total, 3);
    const first = await admin<Page<Letter>>(s, 'dlq?limit=1');
    assert.equal(first.body.next, String(first.body.items[0]!.seq));
    const second = await admin<Page<Letter>>(s, `dlq?limit=1&after=${first.body.next}`);
    assert.deepEqual(second.body.items.map((l) => l.payload), ['a2']);
    const onA = await admin<Page<Letter>>(s, `dlq?topic=${encodeURIComponent('jobs/a')}`);
    assert.equal(onA.body.total, 2);

    // Redriven to a plain subscriber (the nacking group goes first, or it would dead-letter it again).
    await nacker.unsubscribeAsync('$share/w/jobs/#');
    const receiver = await client({ clientId: 'dlq-receiver' });
    const got = collect(receiver);
    await receiver.subscribeAsync('jobs/#', { qos: 1 });
    const redriven = await admin(s, `dlq/redrive?topic=${encodeURIComponent('jobs/a')}&limit=1`, { method: 'POST' });
    assert.equal(redriven.status, 200);
    assert.equal(redriven.body.redriven, 1);
    const [copy] = await got.take(1);
    assert.equal(copy!.payload.toString(), 'a1');
    assert.equal(copy!.properties?.userProperties?.['eddy-redriven-from'], String(first.body.items[0]!.seq));

    // b1 lies after a2, which stays: a2 is stored again behind it so that b1 can go for good.
    const purged = await admin(s, `dlq/purge?topic=${encodeURIComponent('jobs/b')}`, { method: 'POST' });
    assert.deepEqual(purged.body, { purged: 1, moved: 1 });
    const left = await admin<Page<Letter>>(s, 'dlq');
    assert.deepEqual(left.body.items.map((l) => l.payload), ['a2']);
    assert.equal(left.body.items[0]!.deadLetteredAt, all.body.items[1]!.deadLetteredAt, 'the copy keeps its dead-letter time');
    assert.equal((await admin(s, 'dlq/shred', { method: 'POST' })).status, 404);
    assert.equal((await admin(s, 'dlq/purge?limit=0', { method: 'POST' })).status, 400);

    await t.closeAll();
    await s.stop();
    server = undefined;
    const again = await start({ storage: disk() });
    assert.deepEqual((await admin<Page<Letter>>(again, 'dlq')).body.items.map((l) => l.payload), ['a2'], 'the purged and the redriven ones stay gone after a restart');
    assert.deepEqual((await admin(again, 'dlq/purge', { method: 'POST' })).body, { purged: 1, moved: 0 });
    assert.equal((await admin<Page<Letter>>(again, 'dlq')).body.total, 0);
  });
  it('redrives one dead letter by seq (?seq=N, the console\'s row action), leaving the others; 404 for a seq not waiting, 400 for a bad one', async () => {
    const s = await start({ channels: [{ pattern: 'jobs/#', maxDeliveries: 1 }] });
    const nacker = await client({ clientId: 'nacker-seq', customHandleAcks: (_t, _p, _packet, ack) => ack(0x80) });
    await nacker.subscribeAsync('$share/w/jobs/#', { qos: 1 });
    const publisher = await client({ clientId: 'dlq-seq-pub' });
    for (const payload of ['j1', 'j2', 'j3']) await publisher.publishAsync('jobs/x', payload, { qos: 1 });
    await until(() => s.broker.deadLetters.queue.pendingCount === 3, () => `dlq holds ${s.broker.deadLetters.queue.pendingCount}`);
    await nacker.unsubscribeAsync('$share/w/jobs/#');
    type Letter = { seq: number; payload: string };
    const letters = (await admin<Page<Letter>>(s, 'dlq')).body.items;
    const middle = letters[1]!;
    assert.equal(middle.payload, 'j2');

    const receiver = await client({ clientId: 'dlq-seq-receiver' });
    const inbox = wireInbox(receiver);
    await receiver.subscribeAsync('jobs/#', { qos: 1 });
    const answer = await admin(s, `dlq/redrive?seq=${middle.seq}`, { method: 'POST' });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { redriven: 1, failed: 0, refused: 0 });
    // A marker after the redrive, by the same broker path: only j2 may come before it.
    await publisher.publishAsync('jobs/marker', 'marker', { qos: 1 });
    const before = await beforeMarker(inbox, isPublish('jobs/marker'));
    assert.deepEqual(before.map((m) => m.payload.toString()), ['j2']);
    assert.deepEqual((await admin<Page<Letter>>(s, 'dlq')).body.items.map((l) => l.payload), ['j1', 'j3'], 'the others stay, in order');

    const gone = await admin(s, `dlq/redrive?seq=${middle.seq}`, { method: 'POST' });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error, 'not_found');
    assert.equal((await admin(s, 'dlq/redrive?seq=abc', { method: 'POST' })).status, 400);
    assert.equal((await admin(s, 'dlq/purge?seq=1', { method: 'POST' })).status, 400, 'purge takes no seq');
  });
});
