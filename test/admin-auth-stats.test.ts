import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { basic, JWT_SECRET, passwordFile, signToken } from './helpers/auth.js';
import { connectClient } from './helpers/mqtt.js';
import { SseClient } from './helpers/sse.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';
import { admin, type Page } from './helpers/admin.js';

const t = tracker();
const tempDir = tempDirs('eddy-admin-auth-');
const streams: SseClient[] = [];
let server: EddyServer | undefined;
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await t.closeAll();
  await server?.stop();
  server = undefined;
});

const USERS = { root: { password: 'root-pw', roles: ['admin'] }, bob: { password: 'bob-pw' } };

describe('admin API: the admin role', () => {
  it('answers 401 without credentials, 403 without the admin role, and serves the admin role (Basic or Bearer)', async () => {
    const s = (server = await startBroker({ sys: { interval: 0 }, auth: { passwordFile: await passwordFile(tempDir(), USERS), jwt: { secret: JWT_SECRET } } }));
    const bobClient = t.track(await connectClient(s.mqttUrl, { clientId: 'bob-1', username: 'bob', password: 'bob-pw', protocolVersion: 5 }));
    const root = basic('root', 'root-pw');
    const bob = basic('bob', 'bob-pw');
    for (const [method, path] of [['GET', 'clients'], ['GET', 'sessions'], ['GET', 'stats'], ['GET', 'stats/stream'], ['DELETE', 'clients/bob-1'], ['POST', 'dlq/purge'], ['GET', 'nothing-here']]) {
      const anonymous = await admin(s, path!, { method });
      assert.equal(anonymous.status, 401, `${method} ${path} without credentials`);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /Basic/);
      const plain = await admin(s, path!, { method, authorization: bob });
      assert.equal(plain.status, 403, `${method} ${path} as bob`);
      assert.equal(plain.body.error, 'forbidden');
      assert.equal((await admin(s, path!, { method, authorization: basic('root', 'wrong') })).status, 401);
    }
    assert.equal(bobClient.connected, true, "bob's DELETE of his own connection was refused");
    const listed = await admin<Page<{ clientId: string; user: string }>>(s, 'clients', { authorization: root });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.items.map((c) => [c.clientId, c.user]), [['bob-1', 'bob']]);
    const token = await signToken(JWT_SECRET, { sub: 'ops', roles: ['admin'] }, { expiresIn: '5m' });
    assert.equal((await admin(s, 'sessions', { authorization: `Bearer ${token}` })).status, 200);
    const noRole = await signToken(JWT_SECRET, { sub: 'dev' }, { expiresIn: '5m' });
    assert.equal((await admin(s, 'sessions', { authorization: `Bearer ${noRole}` })).status, 403);
    assert.equal((await admin(s, 'nothing-here', { authorization: root })).status, 404);
    assert.equal((await admin(s, 'clients', { method: 'POST', authorization: root })).status, 405);
  });

  it('with no authentication configured every client is admin', async () => {
    const s = (server = await startBroker({ sys: { interval: 0 } }));
    assert.equal((await admin(s, 'clients')).status, 200);
  });
});

describe('admin API: live stats', () => {
  it('GET /v1/admin/stats gives one snapshot; the stream gives one a second with rates and latency percentiles', async () => {
    const s = (server = await startBroker({ sys: { interval: 0 } }));
    const subscriber = t.track(await connectClient(s.mqttUrl, { clientId: 'stats-sub', protocolVersion: 5 }));
    await subscriber.subscribeAsync('stats/#', { qos: 1 });
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'stats-pub', protocolVersion: 5 }));

    type Snapshot = {
      connections: number;
      sessions: number;
      uptime: number;
      messages: { in: number; out: number; inPerSecond: number; outPerSecond: number };
      bytes: { in: number; inPerSecond: number };
      storage: { engine: string; retained: number; storedMessages: number };
      latency: { delivery: { count: number; p50: number; p99: number } | null; fsync: unknown };
    };
    const one = await admin<Snapshot>(s, 'stats');
    assert.equal(one.status, 200);
    assert.equal(one.body.connections, 2);
    assert.equal(one.body.sessions, 2);
    assert.equal(one.body.storage.engine, 'memory');

    const stream = await SseClient.open(`${s.httpUrl}/v1/admin/stats/stream`);
    streams.push(stream);
    const [first] = await stream.take(1, 2000);
    assert.equal(first!.event, 'stats');
    const before = JSON.parse(first!.data) as Snapshot;
    // Publish for a little over a sample interval, so that a whole second of it is in one snapshot.
    const until = Date.now() + 1300;
    let sent = 0;
    while (Date.now() < until) {
      await Promise.all(Array.from({ length: 20 }, () => publisher.publishAsync('stats/x', 'y', { qos: 1 })));
      sent += 20;
    }
    const events = await stream.take(3, 4000);
    const snapshots = events.map((e) => JSON.parse(e.data) as Snapshot);
    const busy = snapshots.find((x) => x.messages.inPerSecond > 0 && x.latency.delivery !== null);
    assert.ok(busy, `no snapshot with traffic: ${events.map((e) => e.data).join('\n')}`);
    assert.ok(busy.messages.outPerSecond > 0);
    assert.ok(busy.bytes.inPerSecond > 0);
    assert.ok(busy.latency.delivery!.count > 0 && busy.latency.delivery!.p99 >= busy.latency.delivery!.p50);
    const last = snapshots[snapshots.length - 1]!;
    assert.ok(last.messages.in - before.messages.in >= sent, `in ${last.messages.in - before.messages.in} of ${sent}`);
    stream.close();
  });
});
