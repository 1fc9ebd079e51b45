import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, ClientConfigError, OfflineQueueFullError, PublishError, RemoteError, RequestTimeoutError, type Delivery, type EddyClient } from '@eddy/client';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDirs } from './helpers/temp-dir.js';
import { spawnBroker, startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { beforeMarker } from './helpers/sentinel.js';

const clients: EddyClient[] = [];
let server: EddyServer | undefined;

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await server?.stop();
  server = undefined;
});

const tempDir = tempDirs('eddy-sdk-');

type Engine = 'memory' | 'disk';

async function start(engine: Engine, options: EddyServerOptions = {}, dir = engine === 'disk' ? tempDir() : undefined): Promise<EddyServer> {
  const storage = dir ? new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger }) : undefined;
  server = await startBroker({ redelivery: { initialBackoffMs: 10, maxBackoffMs: 100 }, ...(storage ? { storage } : {}), ...options });
  return server;
}

async function bus(options: Parameters<typeof connect>[1] = {}): Promise<EddyClient> {
  const client = await connect(server!.mqttUrl, { reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...options });
  clients.push(client);
  return client;
}

async function waitFor(cond: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(10);
  }
}

for (const engine of ['memory', 'disk'] as const) {
  describe(`SDK (${engine} broker)`, () => {
    it('publish resolves with id and seq once confirmed; JSON by default, strings and Buffers as they are', async () => {
      await start(engine);
      const watcher = await connectClient(server!.mqttUrl, { protocolVersion: 5 });
      const seen = collect(watcher);
      await watcher.subscribeAsync('user/#', { qos: 1 });
      const b = await bus();
      const result = await b.publish('user/signedup', { email: 'ada@example.com' }, { headers: { source: 'web' } });
      assert.match(result.id, /^[0-9a-f-]{36}$/);
      assert.ok(Number.isInteger(result.seq) && result.seq! > 0, `seq ${result.seq}`);
      await b.publish('user/note', 'plain text', { contentType: 'text/plain' });
      await b.publish('user/raw', Buffer.from([1, 2, 3]));
      const [json, text, raw] = await seen.take(3);
      watcher.end(true);
      assert.equal(json!.payload.toString(), '{"email":"ada@example.com"}');
      assert.equal(json!.properties?.contentType, 'application/json');
      assert.equal(json!.properties?.userProperties?.source, 'web');
      assert.equal(json!.properties?.userProperties?.['eddy-id'], result.id);
      assert.equal(text!.payload.toString(), 'plain text');
      assert.deepEqual([...raw!.payload], [1, 2, 3]);
      assert.equal(raw!.properties?.contentType, undefined);
    });

    it('a refused publish rejects with a typed error carrying the reason code and string', async () => {
      await start(engine, { access: { denyPublish: ['secret/#'] } });
      const b = await bus();
      const err = await b.publish('secret/x', { a: 1 }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof PublishError, String(err));
      assert.equal(err.code, 'EDDY_PUBLISH_REJECTED');
      assert.equal(err.reasonCode, 0x87);
      assert.match(err.reason ?? '', /not allowed/);
    });

    it('a handler that returns acks; one that throws nacks: redelivered with its count, then dead-lettered', async () => {
      await start(engine, { channels: [{ pattern: 'jobs/#', maxDeliveries: 3 }] });
      const b = await bus();
      const attempts: number[] = [];
      const flaky: number[] = []; // payload n of every delivery, marker (n 0) included
      await b.subscribe<{ n: number }>('jobs/flaky', async (m) => {
        flaky.push(m.payload.n);
        if (m.payload.n === 0) return;
        attempts.push(m.deliveryCount);
        if (m.deliveryCount < 2) throw new Error('not yet');
      });
      const dead: Array<Delivery<{ n: number }>> = [];
      await b.subscribe<{ n: number }>('$DLQ/#', (m) => void dead.push(m));
      const poisonSeen: string[] = [];
      await b.subscribe('jobs/poison', (m) => {
        poisonSeen.push(String(m.deliveryCount));
        throw new Error('cannot parse order');
      });
      await b.publish('jobs/flaky', { n: 1 });
      await b.publish('jobs/poison', { n: 2 });
      await waitFor(() => dead.length === 1 && attempts.length >= 2, () => `attempts ${attempts}, dead ${dead.length}`);
      assert.deepEqual(attempts, [1, 2], 'ack on the second attempt ends it');
      assert.deepEqual(poisonSeen, ['1', '2', '3']);
      assert.equal(dead[0]!.channel, '$DLQ/jobs/poison');
      assert.deepEqual(dead[0]!.payload, { n: 2 });
      // A redelivery waits out a backoff of at most maxBackoffMs (100): had the ack not ended it, its
      // timer (in this process) fires before this sleep ends, and the copy comes before the marker.
      await sleep(250);
      await b.publish('jobs/flaky', { n: 0 });
      assert.deepEqual(await beforeMarker(flaky, (n) => n === 0), [1, 1], 'no delivery after the ack');
      assert.deepEqual(attempts, [1, 2]);
    });

    it('a consumer group spreads messages across two clients, each message once', async () => {
      await start(engine);
      const got: Record<string, string[]> = { a: [], b: [] };
      for (const name of ['a', 'b'] as const) {
        const member = await bus();
        await member.subscribe<string>('mail/send', (m) => void got[name]!.push(m.payload), { group: 'mailer' });
      }
      const pub = await bus();
      for (let i = 0; i < 20; i++) await pub.publish('mail/send', `m${i}`, { contentType: 'text/plain' });
      // Each member has its own connection, reached only through the group: markers published
      // now queue in the group behind everything above (duplicates included), so a member that
      // got a marker got its share before it. Publish markers until both got one.
      const isMarker = (p: string): boolean => p.startsWith('marker-');
      for (let k = 0; !(got.a!.some(isMarker) && got.b!.some(isMarker)); k++) {
        assert.ok(k < 20, `a marker for each member: ${JSON.stringify(got)}`);
        await pub.publish('mail/send', `marker-${k}`, { contentType: 'text/plain' });
        await waitFor(() => [...got.a!, ...got.b!].includes(`marker-${k}`), () => `marker-${k}`);
      }
      const [a, b] = await Promise.all([beforeMarker(got.a!, isMarker), beforeMarker(got.b!, isMarker)]);
      assert.ok(a.length > 0 && b.length > 0, `both members worked: ${a.length}/${b.length}`);
      assert.equal(new Set([...a, ...b]).size, 20);
      assert.equal(a.length + b.length, 20);
    });

    it('replay: from earliest gets history, then live, with seqs', async () => {
      await start(engine, { channels: [{ pattern: 'fridge/#', maxDeliveries: 5, retention: { maxAgeMs: 60_000 } }] });
      const b = await bus();
      for (const level of [90, 60, 30]) await b.publish('fridge/kitchen/level', { level });
      const seen: Array<Delivery<{ level: number }>> = [];
      await b.subscribe<{ level: number }>('fridge/#', (m) => void seen.push(m), { from: 'earliest' });
      await b.publish('fridge/kitchen/level', { level: 10 });
      await waitFor(() => seen.length >= 4, () => `${seen.length}`);
      assert.deepEqual(seen.map((m) => m.payload.level), [90, 60, 30, 10]);
      assert.ok(seen.every((m, i) => i === 0 || m.seq! > seen[i - 1]!.seq!));
    });

    it('request/reply: a reply, a remote error, a timeout, and a late reply dropped', async () => {
      await start(engine);
      const shop = await bus();
      await shop.respond<{ item: string }>('shop/order', (order) => {
        if (order.item === 'caviar') throw new Error('out of stock');
        return { ordered: order.item, eta: '1h' };
      });
      let slowDelay = 300;
      await shop.respond('shop/slow', async () => {
        await sleep(slowDelay);
        return 'late';
      });
      const fridge = await bus();
      assert.deepEqual(await fridge.request('shop/order', { item: 'milk' }), { ordered: 'milk', eta: '1h' });
      const remote = await fridge.request('shop/order', { item: 'caviar' }).then(() => undefined, (e: unknown) => e);
      assert.ok(remote instanceof RemoteError);
      assert.match(remote.message, /out of stock/);
      const timeout = await fridge.request('shop/slow', {}, { timeout: 100 }).then(() => undefined, (e: unknown) => e);
      assert.ok(timeout instanceof RequestTimeoutError);
      assert.equal(timeout.code, 'EDDY_REQUEST_TIMEOUT');
      await waitFor(() => fridge.lateReplies === 1, () => `late replies ${fridge.lateReplies}`);
      slowDelay = 0;
      assert.equal(await fridge.request('shop/slow', {}), 'late', 'the client still works after a late reply');
    });

    it('concurrency bounds the handlers running at once; close waits for them', async () => {
      await start(engine);
      const b = await bus();
      let running = 0;
      let peak = 0;
      let finished = 0;
      await b.subscribe(
        'work/#',
        async () => {
          running++;
          peak = Math.max(peak, running);
          await sleep(50);
          running--;
          finished++;
        },
        { concurrency: 3 },
      );
      const pub = await bus();
      await Promise.all(Array.from({ length: 9 }, (_, i) => pub.publish(`work/${i}`, i)));
      await waitFor(() => finished >= 3 && running === 3, () => `finished ${finished}, running ${running}`);
      const runningAtClose = running;
      await b.close();
      assert.equal(peak, 3);
      assert.ok(runningAtClose > 0, 'close came while handlers ran');
      assert.equal(running, 0, 'close resolved only after the running handlers finished');
    });

    it('an async iterator acknowledges by asking for the next message, and can nack', async () => {
      await start(engine, { channels: [{ pattern: 'it/#', maxDeliveries: 5 }] });
      const b = await bus();
      const sub = await b.subscribe<string>('it/x');
      const pub = await bus();
      for (const p of ['a', 'b']) await pub.publish('it/x', p, { contentType: 'text/plain' });
      const seen: string[] = [];
      for await (const m of sub) {
        seen.push(`${m.payload}${m.deliveryCount}`);
        if (m.payload === 'a' && m.deliveryCount === 1) m.nack('try again');
        if (seen.length === 3) break;
      }
      assert.deepEqual(seen, ['a1', 'b1', 'a2']);
    });
  });
}

describe('SDK connection handling', () => {
  it('publishes made while disconnected go out after reconnect, up to offlineQueueSize', async () => {
    await start('memory');
    const port = server!.mqtt.port;
    const b = await bus({ offlineQueueSize: 2 });
    await server!.stop();
    server = undefined;
    await waitFor(() => !b.connected, () => 'still connected');
    const first = b.publish('offline/a', 1);
    const second = b.publish('offline/b', 2);
    const third = await b.publish('offline/c', 3).then(() => undefined, (e: unknown) => e);
    assert.ok(third instanceof OfflineQueueFullError);
    server = await startBroker({ port });
    const [r1, r2] = await Promise.all([first, second]);
    assert.ok(r1.seq !== undefined && r2.seq !== undefined, 'confirmed by the new broker');
  });

  it('kill -9 and restart of the broker mid-stream: no confirmed publish is lost', async () => {
    const dir = tempDir();
    let broker = await spawnBroker(['--data-dir', dir, '--log-level', 'warn']);
    const url = `mqtt://127.0.0.1:${broker.mqttPort}`;
    try {
      const consumer = await connect(url, { clientId: 'sdk-audit' });
      await consumer.subscribe('audit/#', () => {}, { durable: true });
      await consumer.close();
      const b = await connect(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      clients.push(b);
      const confirmed = new Set<number>();
      let failed = 0;
      let stop = false;
      const pump = (async () => {
        const inflight = new Set<Promise<void>>();
        for (let n = 0; !stop; n++) {
          const p = b.publish('audit/event', { n }).then(
            () => void confirmed.add(n),
            () => void failed++,
          );
          inflight.add(p);
          void p.finally(() => inflight.delete(p));
          if (inflight.size >= 50) await Promise.race(inflight);
        }
        await Promise.all(inflight);
      })();
      await waitFor(() => confirmed.size > 300, () => `${confirmed.size} confirmed`);
      await broker.stop('SIGKILL');
      const atKill = confirmed.size;
      broker = await spawnBroker(['--data-dir', dir, '--log-level', 'warn', '--port', String(broker.mqttPort)]);
      await waitFor(() => confirmed.size > atKill + 500, () => `${confirmed.size} confirmed after restart`, 15_000);
      stop = true;
      await pump;
      assert.equal(failed, 0, 'publishes in flight at the kill were resent and confirmed, not failed');
      const reader = await connect(url, { clientId: 'sdk-audit' });
      clients.push(reader);
      const got = new Set<number>();
      await reader.subscribe<{ n: number }>('audit/#', (m) => void got.add(m.payload.n), { durable: true, concurrency: 100 });
      await waitFor(() => [...confirmed].every((n) => got.has(n)), () => `${[...confirmed].filter((n) => !got.has(n)).length} of ${confirmed.size} confirmed not delivered`, 20_000);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
      await broker.stop('SIGKILL');
    }
  });

  it('a durable subscription without a clientId is a configuration error', async () => {
    await start('memory');
    const b = await bus();
    await assert.rejects(b.subscribe('x', () => {}, { durable: true }), ClientConfigError);
  });
});
