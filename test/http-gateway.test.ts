import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import type { ChannelPolicy } from '../src/core/channels.js';
import { Broker } from '../src/core/broker.js';
import { SubscribeRoute } from '../src/http/subscribe-route.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { silentLogger } from '../src/util/logger.js';
import { startBroker, spawnBroker, type BrokerProcess } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { SseClient, type SseEvent } from './helpers/sse.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';

const clients: MqttClient[] = [];
const streams: SseClient[] = [];
const processes: BrokerProcess[] = [];
const dirs: string[] = [];
let server: EddyServer | undefined;

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  for (const c of clients.splice(0)) c.end(true);
  for (const p of processes.splice(0)) await p.stop('SIGKILL');
  await server?.stop();
  server = undefined;
});
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const HISTORY: ChannelPolicy = { pattern: 'sensors/#', maxDeliveries: 5, retention: { maxAgeMs: 3_600_000 } };
const PERSISTENT: IClientOptions = { clean: false, properties: { sessionExpiryInterval: 600 } };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker(options);
  return server;
}

async function client(options: IClientOptions = {}, url = server!.mqttUrl): Promise<MqttClient> {
  const c = await connectClient(url, { protocolVersion: 5, ...options });
  clients.push(c);
  return c;
}

/** An MQTT 5 subscriber on `filter`, and what it receives. */
async function subscriber(filter: string, options: IClientOptions = {}): Promise<ReturnType<typeof collect>> {
  const c = await client(options);
  const got = collect(c);
  await c.subscribeAsync(filter, { qos: 1 });
  return got;
}

interface Answer {
  status: number;
  body: { id?: string; seq?: number; error?: string; message?: string };
  headers: Headers;
}

async function post(topicPath: string, body: string | Buffer | ReadableStream = '', headers: Record<string, string> = {}, base = server!.httpUrl): Promise<Answer> {
  const res = await fetch(`${base}/v1/publish/${topicPath}`, { method: 'POST', body, headers, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit);
  return { status: res.status, body: (await res.json()) as Answer['body'], headers: res.headers };
}

async function stream(query: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const s = await SseClient.open(`${server!.httpUrl}/v1/subscribe?${query}`, headers);
  streams.push(s);
  return s;
}

/** The status and JSON of a subscribe request that is expected to be refused. */
async function refusedStream(query: string, headers: Record<string, string> = {}): Promise<{ status: number; error: string; message: string }> {
  const res = await fetch(`${server!.httpUrl}/v1/subscribe?${query}`, { headers });
  assert.equal(res.headers.get('content-type'), 'application/json', `refused before the stream starts (${query})`);
  const body = (await res.json()) as { error: string; message: string };
  return { status: res.status, ...body };
}

async function health(): Promise<{ connections: number; sessions: number; refusedPublishes: Record<string, number> }> {
  return (await (await fetch(`${server!.httpUrl}/healthz`)).json()) as { connections: number; sessions: number; refusedPublishes: Record<string, number> };
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-http-'));
  dirs.push(dir);
  return dir;
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

const userProp = (p: IPublishPacket, key: string): string | string[] | undefined => p.properties?.userProperties?.[key];
const data = (events: SseEvent[]): string[] => events.map((e) => e.data);
const range = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

describe('HTTP publish', () => {
  it('answers 202 with id and seq; an MQTT 5 subscriber gets the payload, content type, ce-* and eddy-h-* headers as properties', async () => {
    await start();
    const got = await subscriber('user/#');
    const answer = await post('user/signedup', '{"email":"ada@example.com"}', {
      'content-type': 'application/json',
      'ce-id': 'evt-1',
      'ce-type': 'com.example.user.signedup',
      'ce-source': '/signup',
      'ce-specversion': '1.0',
      'eddy-h-tenant': 'acme',
      'eddy-h-Trace': 'abc',
      'eddy-response-topic': 'user/signedup/replies',
      'eddy-correlation-id': 'req-7',
      'x-ignored': 'not a property',
    });
    assert.equal(answer.status, 202);
    assert.equal(answer.body.id, 'evt-1', 'the id is ce-id when given');
    assert.equal(typeof answer.body.seq, 'number');
    const [message] = await got.take(1);
    assert.equal(message!.topic, 'user/signedup');
    assert.equal(message!.payload.toString(), '{"email":"ada@example.com"}');
    assert.equal(message!.properties?.contentType, 'application/json');
    assert.deepEqual({ ...message!.properties?.userProperties }, {
      'ce-id': 'evt-1',
      'ce-type': 'com.example.user.signedup',
      'ce-source': '/signup',
      'ce-specversion': '1.0',
      tenant: 'acme',
      trace: 'abc',
      'eddy-id': 'evt-1',
    });
    assert.equal(message!.properties?.responseTopic, 'user/signedup/replies');
    assert.equal(message!.properties?.correlationData?.toString(), 'req-7');
  });

  it('without ce-id the id is a new UUID carried as eddy-id; the topic may hold / and percent-encoding; retain and expiry apply', async () => {
    await start();
    const first = await post('site/caf%C3%A9/config', 'v1');
    // Header bytes are read as UTF-8 (curl sends them so; fetch takes them as Latin-1 characters).
    const second = await post('site%2Fcaf%C3%A9%2Fconfig?retain=true&expiry=60', 'v2', { 'eddy-h-chef': Buffer.from('Zoë').toString('latin1') });
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.match(second.body.id!, UUID);
    assert.notEqual(first.body.id, second.body.id);
    assert.ok(second.body.seq! > first.body.seq!, 'seqs increase');
    // A later subscriber gets the retained message, with what is left of its expiry.
    const got = await subscriber('site/#');
    const [retained] = await got.take(1);
    assert.equal(retained!.topic, 'site/café/config');
    assert.equal(retained!.payload.toString(), 'v2');
    assert.equal(retained!.retain, true);
    assert.equal(userProp(retained!, 'eddy-id'), second.body.id);
    assert.equal(userProp(retained!, 'chef'), 'Zoë');
    const expiry = retained!.properties?.messageExpiryInterval;
    assert.ok(expiry !== undefined && expiry > 0 && expiry <= 60, `expiry ${expiry}`);
  });

  it('qos=0 answers 202 with a seq only when the message is stored (on a channel with retention)', async () => {
    await start({ channels: [HISTORY] });
    const got = await subscriber('#');
    const unstored = await post('user/clicked?qos=0', 'c');
    const stored = await post('sensors/door?qos=0', 'open');
    assert.equal(unstored.status, 202);
    assert.match(unstored.body.id!, UUID);
    assert.equal(unstored.body.seq, undefined, 'a QoS 0 message that is not stored has no seq');
    assert.equal(stored.status, 202);
    assert.equal(typeof stored.body.seq, 'number');
    const messages = await got.take(2);
    assert.deepEqual(messages.map((m) => [m.topic, m.qos]), [['user/clicked', 0], ['sensors/door', 0]]);
  });

  it('refuses a bad topic or bad query values with 400 saying exactly what is wrong, and counts each refusal', async () => {
    await start();
    const got = await subscriber('#');
    const cases: Array<[string, string, RegExp]> = [
      ['user%2F%2B', 'invalid_topic', /"user\/\+" is not a valid topic name/],
      ['user%23', 'invalid_topic', /"user#" is not a valid topic name/],
      ['', 'invalid_topic', /"" is not a valid topic name/],
      ['user/%E0%A4%A', 'invalid_topic', /not valid percent-encoding/],
      ['user/x?qos=3', 'bad_request', /qos must be 0, 1 or 2, got "3"/],
      ['user/x?qos=one', 'bad_request', /qos must be 0, 1 or 2, got "one"/],
      ['user/x?retain=yes', 'bad_request', /retain must be true or false, got "yes"/],
      ['user/x?expiry=-5', 'bad_request', /expiry must be a whole number of seconds/],
      ['user/x?expiry=0', 'bad_request', /expiry must be a whole number of seconds from 1/],
      ['user/x?qso=1', 'bad_request', /unknown query parameter "qso" \(known: qos, retain, expiry\)/],
      ['user/x?qos=1&qos=2', 'bad_request', /"qos" is given more than once/],
    ];
    for (const [topicPath, error, message] of cases) {
      const answer = await post(topicPath, 'x');
      assert.equal(answer.status, 400, topicPath);
      assert.equal(answer.body.error, error, topicPath);
      assert.match(answer.body.message!, message, topicPath);
    }
    const badHeader = await post('user/x', 'x', { 'eddy-response-topic': 'replies/#' });
    assert.equal(badHeader.status, 400);
    assert.match(badHeader.body.message!, /eddy-response-topic must be a topic name/);
    assert.equal((await health()).refusedPublishes['http-400'], cases.length + 1);
    // A 202 comes once the message is routed; the requests went one after the other.
    assert.equal((await post('marker/ok', 'marker')).status, 202);
    assert.deepEqual(await beforeMarker(got.messages, isPublish('marker/ok', 'marker')), [], 'nothing refused was published');
  });

  it('refuses a topic denied by the access rules with 403', async () => {
    await start({ access: { denyPublish: ['secret/#'] } });
    const got = await subscriber('#');
    const answer = await post('secret/plans', 'x');
    assert.equal(answer.status, 403);
    assert.deepEqual(answer.body, { error: 'forbidden', message: 'secret/plans: publishing is not allowed on this topic' });
    assert.equal((await post('public/plans', 'y')).status, 202);
    const [message] = await got.take(1);
    assert.equal(message!.topic, 'public/plans');
    assert.equal((await health()).refusedPublishes['http-403'], 1);
  });

  it('refuses a payload larger than maxPacketSize with 413, whether declared or streamed; exactly maxPacketSize is taken', async () => {
    await start({ limits: { maxPacketSize: 1024 } });
    const got = await subscriber('big/#');
    const declared = await post('big/declared', Buffer.alloc(5000));
    assert.equal(declared.status, 413);
    assert.equal(declared.body.error, 'payload_too_large');
    assert.match(declared.body.message!, /the payload is 5000 bytes; the broker takes at most 1024/);
    const chunks = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(512));
      },
    });
    const streamed = await post('big/streamed', chunks as ReadableStream);
    assert.equal(streamed.status, 413);
    assert.match(streamed.body.message!, /more than 1024 bytes/);
    const fits = await post('big/fits', Buffer.alloc(1024, 'a'));
    assert.equal(fits.status, 202);
    const [message] = await got.take(1);
    assert.equal(message!.topic, 'big/fits');
    assert.equal(message!.payload.length, 1024);
  });

  it("answers 507 with the queue's reason when a persistent subscriber's queue is full; what was accepted arrives", async () => {
    await start({ limits: { maxQueued: 2 } });
    const sub = await client({ clientId: 'slow-http', ...PERSISTENT });
    await sub.subscribeAsync('jobs/#', { qos: 1 });
    await sub.endAsync();
    const statuses: number[] = [];
    let refusal: Answer['body'] | undefined;
    for (let i = 0; i < 4; i++) {
      const answer = await post('jobs/build', `j${i}`);
      statuses.push(answer.status);
      if (answer.status !== 202) refusal = answer.body;
    }
    assert.deepEqual(statuses, [202, 202, 507, 507]);
    assert.equal(refusal!.error, 'queue_full');
    assert.match(refusal!.message!, /queue of subscriber slow-http holds 2 messages \(maxQueued 2\)/);
    assert.equal((await health()).refusedPublishes['http-507'], 2);
    const back = mqtt.connect(server!.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'slow-http', ...PERSISTENT });
    clients.push(back);
    const got = collect(back);
    assert.deepEqual((await got.take(2)).map((m) => m.payload.toString()), ['j0', 'j1']);
    // The queue was sent on resume; a message accepted now comes after it.
    assert.equal((await post('jobs/build', 'marker')).status, 202);
    assert.deepEqual((await beforeMarker(got.messages, isPublish('jobs/build', 'marker'))).map((m) => m.payload.toString()), ['j0', 'j1'], 'exactly 2');
  });

  it("answers 507 when a consumer group's queue is full", async () => {
    await start({ limits: { maxQueued: 3 } });
    const member = await client({ clientId: 'grp-http', ...PERSISTENT });
    await member.subscribeAsync('$share/billing/invoices/#', { qos: 1 });
    await member.endAsync();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await post('invoices/new', `i${i}`)).status);
    assert.deepEqual(statuses, [202, 202, 202, 507]);
    const refusal = await post('invoices/new', 'i4');
    assert.equal(refusal.body.error, 'queue_full');
    assert.match(refusal.body.message!, /group \$share\/billing\/invoices\/# holds 3 messages/);
  });

  it('a 202 is durable: the message survives kill -9 of the broker and reaches a persistent MQTT subscriber', async () => {
    const dir = tempDir();
    const first = await spawnBroker(['--data-dir', dir, '--log-level', 'warn']);
    const mqttUrl = (p: BrokerProcess): string => `mqtt://127.0.0.1:${p.mqttPort}`;
    const sub = await client({ clientId: 'durable-http', ...PERSISTENT }, mqttUrl(first));
    await sub.subscribeAsync('orders/#', { qos: 1 });
    await sub.endAsync();
    let answer: Answer;
    try {
      answer = await post('orders/42', '{"sku":"milk"}', { 'content-type': 'application/json', 'eddy-h-origin': 'shop' }, `http://127.0.0.1:${first.httpPort}`);
    } finally {
      assert.equal(await first.stop('SIGKILL'), null, 'killed, not stopped');
    }
    assert.equal(answer.status, 202);

    const second = await spawnBroker(['--data-dir', dir, '--log-level', 'warn']);
    processes.push(second);
    const back = mqtt.connect(mqttUrl(second), { protocolVersion: 5, reconnectPeriod: 0, clientId: 'durable-http', ...PERSISTENT });
    clients.push(back);
    const [message] = await collect(back).take(1);
    assert.equal(message!.topic, 'orders/42');
    assert.equal(message!.payload.toString(), '{"sku":"milk"}');
    assert.equal(message!.properties?.contentType, 'application/json');
    assert.equal(userProp(message!, 'origin'), 'shop');
    assert.equal(userProp(message!, 'eddy-id'), answer.body.id);
  });

  it('answers 405 for other methods on the gateway routes, with Allow', async () => {
    await start();
    const get = await fetch(`${server!.httpUrl}/v1/publish/user/x`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    assert.equal(((await get.json()) as { error: string }).error, 'method_not_allowed');
    const postToStream = await fetch(`${server!.httpUrl}/v1/subscribe?filter=a`, { method: 'POST' });
    assert.equal(postToStream.status, 405);
    assert.equal(postToStream.headers.get('allow'), 'GET');
  });
});

describe('SSE subscribe', () => {
  it('streams MQTT- and HTTP-published messages: id is the seq, event the topic, data the payload lines; base64 when not UTF-8', async () => {
    await start();
    const s = await stream('filter=user/%23');
    assert.equal(s.response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const pub = await client();
    await pub.publishAsync('user/signedup', '{"user":"ada"}', { qos: 1 });
    const note = await post('user/note', 'first line\nsecond line\n', { 'content-type': 'text/plain' });
    await post('user/avatar', Buffer.from([0xff, 0xd8, 0x00, 0x01]));
    await pub.publishAsync('user/clicked', 'qos0', { qos: 0 });
    await pub.publishAsync('other/topic', 'not matched', { qos: 1 });
    const events = await s.take(4);
    assert.deepEqual(
      events.map((e) => [e.event, e.data]),
      [
        ['user/signedup', '{"user":"ada"}'],
        ['user/note', 'first line\nsecond line\n'],
        ['user/avatar', Buffer.from([0xff, 0xd8, 0x00, 0x01]).toString('base64')],
        ['user/clicked', 'qos0'],
      ],
    );
    assert.equal(events[1]!.id, String(note.body.seq), 'the id is the seq the publish answered with');
    assert.ok(Number(events[0]!.id) < Number(events[1]!.id) && Number(events[1]!.id) < Number(events[2]!.id));
    assert.deepEqual(events[2]!.comments, ['base64'], 'a binary payload is marked');
    assert.deepEqual(events[0]!.comments, []);
    assert.equal(events[3]!.id, undefined, 'a QoS 0 message that was not stored has no seq, so no id');
    // After other/topic (acknowledged) from the same publisher: had it matched, it would come first.
    await pub.publishAsync('user/marker', 'marker', { qos: 1 });
    assert.equal((await beforeMarker(s.events, (e) => e.event === 'user/marker')).length, 4);
  });

  it('acknowledges each event once it is flushed: far more messages than the window of 100 arrive, none stays in flight', async () => {
    await start();
    const s = await stream('filter=load/%23');
    const pub = await client();
    const sent = range('m', 0, 350);
    await Promise.all(sent.map((m) => pub.publishAsync('load/x', m, { qos: 1 })));
    assert.deepEqual(data(await s.take(350, 10_000)), sent);
    const session = [...server!.broker.sessions.values()].find((x) => x.clientId.startsWith('http-sse-'))!;
    await sleep(50);
    assert.equal(session.queue.inflight.size, 0);
    assert.equal(session.queue.pendingCount, 0);
  });

  it('two streams in one group split the messages between them', async () => {
    await start();
    const a = await stream('filter=tasks/%23&group=workers');
    const b = await stream('filter=tasks/%23&group=workers');
    const sent = range('t', 0, 10);
    for (const m of sent) assert.equal((await post('tasks/resize', m)).status, 202);
    // Each stream is reached only through the group: markers posted now queue in the group behind
    // every task (and any duplicate), so a stream that got a marker got its share before it.
    const isMarker = (e: SseEvent): boolean => e.data.startsWith('marker-');
    for (let k = 0; !(a.events.some(isMarker) && b.events.some(isMarker)); k++) {
      assert.ok(k < 20, `a marker for each stream: ${data(a.events)} | ${data(b.events)}`);
      assert.equal((await post('tasks/resize', `marker-${k}`)).status, 202);
      await waitFor(() => [...a.events, ...b.events].some((e) => e.data === `marker-${k}`), `marker-${k} reaches a member`);
    }
    const gotA = data(await beforeMarker(a.events, isMarker));
    const gotB = data(await beforeMarker(b.events, isMarker));
    assert.ok(gotA.length > 0 && gotB.length > 0, `both members work: ${gotA} | ${gotB}`);
    assert.deepEqual([...gotA, ...gotB].sort(), [...sent].sort(), 'each message once, to one member');
  });

  it('from=earliest replays the history of a channel with retention, then live messages, with no gap or duplicate', async () => {
    await start({ channels: [HISTORY] });
    for (const m of range('h', 0, 5)) await post('sensors/fridge', m);
    await post('user/not-history', 'x');
    const s = await stream('filter=sensors/%23&from=earliest');
    assert.deepEqual(data(await s.take(5)), range('h', 0, 5));
    for (const m of range('l', 0, 3)) await post('sensors/fridge', m);
    const all = await s.take(8);
    assert.deepEqual(data(all), [...range('h', 0, 5), ...range('l', 0, 3)]);
    const ids = all.map((e) => Number(e.id));
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), `ids increase: ${ids}`);
    const fromSeq = await stream(`filter=sensors/%23&from=seq:${ids[6]}`);
    assert.deepEqual(data(await fromSeq.take(2)), ['l1', 'l2']);
  });

  it('Last-Event-ID resumes after the last event seen: exactly the rest, then live, no gap and no duplicate', async () => {
    await start({ channels: [HISTORY] });
    const first = await stream('filter=sensors/%23');
    for (const m of range('m', 0, 5)) await post('sensors/door', m);
    const seen = (await first.take(3)).at(-1)!;
    assert.equal(seen.data, 'm2');
    first.close();
    for (const m of range('m', 5, 10)) await post('sensors/door', m);

    const resumed = await stream('filter=sensors/%23', { 'last-event-id': seen.id! });
    assert.deepEqual(data(await resumed.take(7)), range('m', 3, 10));
    // A live message waits behind the replayed history: what came before it is all of that.
    await post('sensors/door', 'm10');
    assert.deepEqual(data(await beforeMarker(resumed.events, (e) => e.data === 'm10')), range('m', 3, 10), 'nothing twice');
    const all = await resumed.take(8);
    assert.equal(all[7]!.data, 'm10');
    const ids = all.map((e) => Number(e.id));
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), `ids increase: ${ids}`);

    // The query parameter does the same for EventSource polyfills, and wins over `from` (an
    // EventSource reconnects to its original URL with Last-Event-ID added).
    const polyfill = await stream(`filter=sensors/%23&from=earliest&lastEventId=${all[6]!.id}`);
    assert.deepEqual(data(await polyfill.take(1)), ['m10']);
    await post('sensors/door', 'm11');
    assert.deepEqual(data(await beforeMarker(polyfill.events, (e) => e.data === 'm11')), ['m10']);
  });

  it('refuses bad requests with 400 or 403 JSON before the stream starts', async () => {
    await start({ access: { denySubscribe: ['secret/#'] } });
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      ['', {}, 400, /filter is required/],
      ['filter=a/%23/b', {}, 400, /filter must be a valid topic filter, got "a\/#\/b"/],
      ['filter=a&from=yesterday', {}, 400, /from must be earliest, seq:<n> or time:<RFC 3339>, got "yesterday"/],
      ['filter=a&group=g&from=earliest', {}, 400, /from applies to streams without a group/],
      ['filter=a&group=a%2Fb', {}, 400, /group must be a non-empty name without \/, \+ or #/],
      ['filter=a', { 'last-event-id': 'abc' }, 400, /Last-Event-ID must be the seq of an event/],
      ['filter=a&since=1', {}, 400, /unknown query parameter "since"/],
      ['filter=secret/plans', {}, 403, /secret\/plans: subscribing is not allowed/],
    ];
    for (const [query, headers, status, message] of cases) {
      const refusal = await refusedStream(query, headers);
      assert.equal(refusal.status, status, query);
      assert.match(refusal.message, message, query);
    }
    const after = await health();
    assert.equal(after.connections, 0, 'a refused stream leaves no connection');
    assert.equal(after.sessions, 0, 'and no session');
  });

  it('answers 503 when the broker has maxConnections connections, SSE streams counted', async () => {
    await start({ limits: { maxConnections: 1 } });
    await stream('filter=a/%23');
    const refusal = await refusedStream('filter=b/%23');
    assert.equal(refusal.status, 503);
    assert.equal(refusal.error, 'server_busy');
    assert.match(refusal.message, /connection limit 1 reached/);
  });

  it('a client that goes away ends its session and leaves its group; the other member then gets every message', async () => {
    await start();
    const leaving = await stream('filter=work/%23&group=crew');
    const staying = await stream('filter=work/%23&group=crew');
    const during = await health();
    assert.equal(during.connections, 2);
    assert.equal(during.sessions, 2);
    leaving.close();
    await waitFor(async () => (await health()).connections === 1, 'the stream is gone');
    const after = await health();
    assert.equal(after.connections, 1);
    assert.equal(after.sessions, 1);
    const sent = range('w', 0, 6);
    for (const m of sent) await post('work/item', m);
    assert.deepEqual(data(await staying.take(6)), sent);
    assert.equal(leaving.events.length, 0);
  });

  it('sends a ": ping" comment at its interval, so proxies keep an idle stream open', async () => {
    const broker = new Broker(new MemoryStorage(), { logger: silentLogger });
    await broker.start();
    const route = new SubscribeRoute(broker, silentLogger, 40);
    const httpServer = http.createServer((req, res) => route.handle(req, res, new URLSearchParams(req.url!.split('?')[1])));
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = httpServer.address() as net.AddressInfo;
      const s = await SseClient.open(`http://127.0.0.1:${port}/v1/subscribe?filter=quiet/%23`);
      streams.push(s);
      await sleep(250);
      assert.ok(s.comments.filter((c) => c === 'ping').length >= 3, `pings: ${s.comments}`);
      // A message published after the pings arrives as the stream's first event.
      await broker.publishConfirmed({ topic: 'quiet/marker', payload: Buffer.from('marker'), qos: 1, retain: false, properties: {}, publishedAt: Date.now() });
      assert.deepEqual(await beforeMarker(s.events, (e) => e.data === 'marker'), [], 'a ping is no event');
    } finally {
      httpServer.closeAllConnections();
      httpServer.close();
      await broker.stop();
    }
  });
});
