import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { ChannelTraffic, OTHER_CHANNEL } from '../src/http/metric-types.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { SseClient } from './helpers/sse.js';

const clients: MqttClient[] = [];
const raws: RawClient[] = [];
const streams: SseClient[] = [];
const servers: EddyServer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  for (const c of clients.splice(0)) c.end(true);
  for (const r of raws.splice(0)) r.close();
  for (const s of servers.splice(0)) await s.stop();
});
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  const server = await startBroker(options);
  servers.push(server);
  return server;
}

async function client(server: EddyServer, options: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectClient(server.mqttUrl, { protocolVersion: 5, ...options });
  clients.push(c);
  return c;
}

async function post(server: EddyServer, topic: string, body: string): Promise<number> {
  const res = await fetch(`${server.httpUrl}/v1/publish/${topic}`, { method: 'POST', body });
  await res.arrayBuffer();
  return res.status;
}

/** One sample line of the text format: `name{label="value",…} value`. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|\+Inf|-Inf))$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

interface Scrape {
  /** Value of the sample with exactly these labels; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
  types: Map<string, string>;
}

/** Scrapes /metrics and parses it strictly: a line that is neither a comment nor a sample fails the test. */
async function scrape(server: EddyServer): Promise<Scrape> {
  const res = await fetch(`${server.httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  const samples: Scrape['samples'] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (/^# HELP \S+ .+$/.test(line)) continue;
    const sample = SAMPLE.exec(line);
    assert.ok(sample, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (sample[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    samples.push({ name: sample[1]!, labels, value: Number(sample[3]) });
  }
  return {
    samples,
    types,
    value(name, labels = {}) {
      const wanted = JSON.stringify(Object.entries(labels).sort());
      return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted)?.value;
    },
  };
}

async function waitFor(cond: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

describe('GET /metrics', () => {
  it('is the Prometheus text format: every line parses, every sample belongs to a metric with a TYPE', async () => {
    const server = await start();
    await post(server, 'user/signedup', 'x');
    const { samples, types } = await scrape(server);
    assert.ok(samples.length > 20, `${samples.length} samples`);
    for (const { name } of samples) {
      const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(types.has(family), `${name} has a TYPE line`);
      assert.ok(name.startsWith('eddy_'), `${name} has the eddy_ prefix`);
    }
    assert.equal(types.get('eddy_messages_in_total'), 'counter');
    assert.equal(types.get('eddy_connections'), 'gauge');
    assert.equal(types.get('eddy_delivery_latency_seconds'), 'histogram');
    assert.equal(types.get('eddy_fsync_duration_seconds'), 'histogram');
  });

  it('eddy_event_loop_delay_seconds shows a blocked event loop, and starts again from zero after each scrape', async () => {
    const server = await start();
    await sleep(100);
    await scrape(server); // resets the window
    await sleep(50);
    const blockedAt = Date.now();
    while (Date.now() - blockedAt < 120); // the broker's thread is this test's thread
    await sleep(50);
    const blocked = await scrape(server);
    assert.ok(blocked.value('eddy_event_loop_delay_seconds', { quantile: 'max' })! >= 0.1, `max ${blocked.value('eddy_event_loop_delay_seconds', { quantile: 'max' })}`);
    await sleep(150);
    const calm = await scrape(server);
    assert.ok(calm.value('eddy_event_loop_delay_seconds', { quantile: 'max' })! < 0.1, `after a scrape the window starts again: max ${calm.value('eddy_event_loop_delay_seconds', { quantile: 'max' })}`);
    assert.ok(calm.value('eddy_event_loop_delay_seconds', { quantile: '0.5' })! < 0.05);
  });

  it('counts messages and payload bytes in and out per channel family (first topic level), over MQTT, HTTP and SSE', async () => {
    const server = await start();
    const before = await scrape(server);
    assert.equal(before.value('eddy_messages_in_total', { channel: 'user' }), undefined, 'no series before the first message');
    const mqttSubscriber = await client(server);
    const got = collect(mqttSubscriber);
    await mqttSubscriber.subscribeAsync('user/#', { qos: 1 });
    const sse = await SseClient.open(`${server.httpUrl}/v1/subscribe?filter=user/%23`);
    streams.push(sse);
    const pub = await client(server);
    for (const body of ['a', 'bb', 'ccc']) assert.equal(await post(server, 'user/signedup', body), 202);
    await pub.publishAsync('user/deleted/42', 'dddd', { qos: 1 });
    await pub.publishAsync('fridge/kitchen/level', '40', { qos: 1 });
    assert.equal(await post(server, '$app/events', 'e'), 202);
    await got.take(4);
    await sse.take(4);

    const m = await scrape(server);
    assert.equal(m.value('eddy_messages_in_total', { channel: 'user' }), 4);
    assert.equal(m.value('eddy_bytes_in_total', { channel: 'user' }), 1 + 2 + 3 + 4);
    assert.equal(m.value('eddy_messages_in_total', { channel: 'fridge' }), 1);
    assert.equal(m.value('eddy_messages_in_total', { channel: '$app' }), 1, '$-topics keep their first level');
    assert.equal(m.value('eddy_messages_out_total', { channel: 'user' }), 8, 'four to the MQTT subscriber, four to the SSE stream');
    assert.equal(m.value('eddy_bytes_out_total', { channel: 'user' }), 2 * 10);
    assert.equal(m.value('eddy_messages_out_total', { channel: 'fridge' }), 0);
    assert.equal(m.value('eddy_delivery_latency_seconds_count'), 8);
    assert.equal(m.value('eddy_delivery_latency_seconds_bucket', { le: '+Inf' }), 8);
    const buckets = m.samples.filter((s) => s.name === 'eddy_delivery_latency_seconds_bucket').map((s) => s.value);
    assert.ok(buckets.every((v, i) => i === 0 || v >= buckets[i - 1]!), `buckets are cumulative: ${buckets}`);
    assert.ok(m.value('eddy_delivery_latency_seconds_bucket', { le: '1' })! >= 1, 'local deliveries take well under a second');
    assert.equal(m.value('eddy_connections'), 3, 'two MQTT clients and one SSE stream');
  });

  it('reads queue depth and messages in flight by queue kind at scrape time', async () => {
    const server = await start();
    const offline = await client(server, { clientId: 'away', clean: false, properties: { sessionExpiryInterval: 600 } });
    await offline.subscribeAsync('jobs/#', { qos: 1 });
    const member = await client(server, { clientId: 'away-member', clean: false, properties: { sessionExpiryInterval: 600 } });
    await member.subscribeAsync('$share/crunch/batch/#', { qos: 1 });
    await offline.endAsync();
    await member.endAsync();
    // A connected client that never acknowledges holds what it was sent in flight.
    const { client: raw } = await RawClient.open(server.mqtt.port, { clientId: 'silent', properties: { receiveMaximum: 10 } });
    raws.push(raw);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alerts/#', qos: 1 }] } as Packet);
    await raw.next('suback');

    for (let i = 0; i < 3; i++) assert.equal(await post(server, 'jobs/x', `j${i}`), 202);
    for (let i = 0; i < 2; i++) assert.equal(await post(server, 'batch/x', `b${i}`), 202);
    for (let i = 0; i < 2; i++) assert.equal(await post(server, 'alerts/x', `a${i}`), 202);
    await raw.next('publish');
    const m = await scrape(server);
    assert.equal(m.value('eddy_queue_depth', { kind: 'session' }), 3);
    assert.equal(m.value('eddy_queue_depth', { kind: 'group' }), 2);
    assert.equal(m.value('eddy_messages_inflight', { kind: 'session' }), 2);
    assert.equal(m.value('eddy_sessions'), 3);
  });

  it('counts refused publishes and protocol errors by reason, and nacks, redeliveries and dead letters', async () => {
    const server = await start({
      access: { denyPublish: ['secret/#'] },
      channels: [{ pattern: 'orders/#', maxDeliveries: 2 }],
      redelivery: { initialBackoffMs: 10, maxBackoffMs: 20 },
    });
    assert.equal(await post(server, 'secret/x', 'no'), 403);
    assert.equal(await post(server, 'bad%23', 'no'), 400);
    const pub = await client(server);
    await assert.rejects(pub.publishAsync('secret/y', 'no', { qos: 1 }));
    const { client: raw } = await RawClient.open(server.mqtt.port, { clientId: 'twice' });
    raws.push(raw);
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'twice', clean: true, keepalive: 60 } as Packet);
    await raw.closed;

    const refuser = await client(server, { customHandleAcks: (_topic, _payload, _packet, done) => done(0x80) });
    await refuser.subscribeAsync('orders/#', { qos: 1 });
    await pub.publishAsync('orders/1', 'milk', { qos: 1 });
    await waitFor(async () => (await scrape(server)).value('eddy_dead_letters_total') === 1, 'the order is dead-lettered');

    const m = await scrape(server);
    assert.equal(m.value('eddy_publishes_refused_total', { reason: 'http-403' }), 1);
    assert.equal(m.value('eddy_publishes_refused_total', { reason: 'http-400' }), 1);
    assert.equal(m.value('eddy_publishes_refused_total', { reason: '0x87' }), 1);
    assert.equal(m.value('eddy_protocol_errors_total', { reason: '0x82' }), 1);
    assert.equal(m.value('eddy_nacks_total'), 2);
    assert.equal(m.value('eddy_redeliveries_total'), 1);
    assert.equal(m.value('eddy_messages_in_total', { channel: '$DLQ' }), 1, 'the dead letter is a message in, on its own channel family');
  });

  it('observes each fsync of the disk engine', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-metrics-'));
    dirs.push(dir);
    const server = await start({ storage: new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger }) });
    const before = (await scrape(server)).value('eddy_fsync_duration_seconds_count')!;
    for (let i = 0; i < 3; i++) assert.equal(await post(server, 'orders/x', `o${i}`), 202);
    const m = await scrape(server);
    const count = m.value('eddy_fsync_duration_seconds_count')!;
    assert.ok(count >= before + 3, `one fsync per sequential publish at least (${before} → ${count})`);
    assert.equal(m.value('eddy_fsync_duration_seconds_bucket', { le: '+Inf' }), count);
    assert.ok(m.value('eddy_fsync_duration_seconds_sum')! > 0);
    // Group commit: each fsync's batch size; the sequential publishes confirmed one record each at least.
    const batches = m.value('eddy_fsync_batch_records_count')!;
    assert.ok(batches >= 3 && batches <= count, `batches observed: ${batches} of ${count} fsyncs`);
    assert.ok(m.value('eddy_fsync_batch_records_sum')! >= 3);
  });

  it('keeps a registry per broker: two brokers in one process count separately', async () => {
    const one = await start();
    const two = await start();
    assert.equal(await post(one, 'user/a', 'x'), 202);
    assert.equal(await post(one, 'user/b', 'x'), 202);
    assert.equal(await post(two, 'user/c', 'x'), 202);
    assert.equal((await scrape(one)).value('eddy_messages_in_total', { channel: 'user' }), 2);
    assert.equal((await scrape(two)).value('eddy_messages_in_total', { channel: 'user' }), 1);
  });
});

describe('channel families', () => {
  it('bound the label values: past 1000 families, further ones are counted together', () => {
    const traffic = new ChannelTraffic();
    for (let i = 0; i < 1005; i++) traffic.countsFor(`device-${i}/status`).messagesIn++;
    assert.equal(traffic.channels.size, 1001);
    assert.equal(traffic.channels.get(OTHER_CHANNEL)?.messagesIn, 5);
    assert.equal(traffic.countsFor('device-3/other/level'), traffic.channels.get('device-3'), 'a known family keeps its own counts');
    assert.equal(traffic.countsFor('plain'), traffic.channels.get(OTHER_CHANNEL));
  });
});
