import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { startBroker } from './helpers/broker.js';
import { connectClient } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { tracker } from './helpers/tracker.js';
import { admin, allPages, until, type Page } from './helpers/admin.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const t = tracker();
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker({ sys: { interval: 0 }, ...options });
  return server;
}

const codeUnitOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

describe('admin API: pages', () => {
  it('pages through connected clients in client id order, each once, with next null on the last page', async () => {
    const s = await start();
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const id = `page-${String((i * 37) % 60).padStart(2, '0')}`;
      ids.push(id);
      t.track((await RawClient.open(s.mqtt.port, { clientId: id })).client);
    }
    const { items, pages } = await allPages<{ clientId: string }>(s, 'clients', 7);
    assert.deepEqual(items.map((c) => c.clientId), [...ids].sort(codeUnitOrder));
    assert.equal(pages, 9);
    const first = await admin<Page>(s, 'clients?limit=7');
    assert.equal(first.body.total, 60);
    assert.equal(first.body.next, 'page-06');
    const last = await admin<Page>(s, 'clients?after=page-55');
    assert.deepEqual(last.body.items.map((c) => c.clientId), ['page-56', 'page-57', 'page-58', 'page-59']);
    assert.equal(last.body.next, null);
  });

  it('pages through thousands of retained messages and channels; a change between pages neither repeats nor skips what did not change', async () => {
    const s = await start();
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'many', protocolVersion: 5 }));
    const topics = Array.from({ length: 2500 }, (_, i) => `fleet/${String(i).padStart(4, '0')}/state`);
    for (const topic of topics) publisher.publish(topic, 'on', { qos: 0, retain: true });
    await publisher.publishAsync('fleet/last', 'x', { qos: 1, retain: true });
    await until(() => s.broker.storage.retainedCount === 2501, () => `${s.broker.storage.retainedCount} retained`);

    type Retained = { topic: string };
    const page1 = await admin<Page<Retained>>(s, 'retained?limit=1000');
    assert.equal(page1.body.items.length, 1000);
    assert.equal(page1.body.total, 2501);
    // Between pages: one topic of page 1 is cleared and one is added after the cursor.
    assert.equal((await admin(s, `retained/${encodeURIComponent(topics[10]!)}`, { method: 'DELETE' })).status, 200);
    await publisher.publishAsync('fleet/2000b/state', 'new', { qos: 1, retain: true });
    const page2 = await admin<Page<Retained>>(s, `retained?limit=1000&after=${encodeURIComponent(page1.body.next!)}`);
    const page3 = await admin<Page<Retained>>(s, `retained?limit=1000&after=${encodeURIComponent(page2.body.next!)}`);
    assert.equal(page3.body.next, null);
    assert.equal(page3.body.total, 2501);
    const seen = [...page1.body.items, ...page2.body.items, ...page3.body.items].map((r) => r.topic);
    assert.equal(new Set(seen).size, seen.length, 'no topic twice');
    const expected = [...topics, 'fleet/last', 'fleet/2000b/state'].sort(codeUnitOrder);
    assert.deepEqual(seen, expected, 'every topic once, in order: the one added after the cursor too');

    const channels = await allPages<{ channel: string; messagesIn: number; publishers: string[] }>(s, 'channels', 1000);
    assert.deepEqual(
      channels.items.map((c) => c.channel),
      expected,
      'each topic published on is one channel',
    );
    assert.deepEqual(channels.items[0]!.publishers, ['many']);

    for (const bad of ['limit=0', 'limit=1001', 'limit=abc', 'limit=5&limit=6', 'colour=red']) {
      const answer = await admin(s, `retained?${bad}`);
      assert.equal(answer.status, 400, bad);
      assert.equal(answer.body.error, 'bad_request');
    }
  });

  it('stays fast with 10,000 sessions and 10,000 channels: a page costs the page, not a sort of everything', async () => {
    const storage = new MemoryStorage();
    for (let i = 0; i < 10_000; i++) storage.saveSession({ clientId: `device-${String(i).padStart(5, '0')}`, expiryInterval: 3600, disconnectedAt: Date.now(), subscriptions: [{ filter: `cmd/${i}`, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    const s = await start({ storage });
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'scale-pub', protocolVersion: 5 }));
    for (let i = 0; i < 10_000; i++) publisher.publish(`telemetry/${i}`, 'x', { qos: 0 });
    await publisher.publishAsync('telemetry/done', 'x', { qos: 1 });
    await until(async () => (await admin<Page>(s, 'channels?limit=1')).body.total === 10_001, () => 'channels not all seen');

    const timed = async <T>(path: string): Promise<{ ms: number; body: Page<T> }> => {
      const started = performance.now();
      const { status, body } = await admin<Page<T>>(s, path);
      assert.equal(status, 200, path);
      return { ms: performance.now() - started, body };
    };
    // The first read of each index builds it; the ones timed are those an operator pages through.
    await timed('sessions?limit=1');
    await timed('channels?limit=1');
    for (let round = 0; round < 3; round++) {
      // Churn between reads: a session comes and goes, so the index is patched, not rebuilt.
      t.track((await RawClient.open(s.mqtt.port, { clientId: `churn-${round}` })).client);
      const sessions = await timed<{ clientId: string; subscriptions: number; connected: boolean }>('sessions?limit=1000&after=device-05000');
      assert.equal(sessions.body.items.length, 1000);
      assert.equal(sessions.body.items[0]!.clientId, 'device-05001');
      assert.equal(sessions.body.items[0]!.connected, false);
      assert.equal(sessions.body.total, 10_002 + round, "the restored sessions, the publisher and the churning clients");
      const channels = await timed<{ channel: string }>('channels?limit=1000&after=telemetry%2F5');
      assert.equal(channels.body.items[0]!.channel, 'telemetry/50');
      const subscriptions = await timed('subscriptions?limit=1000&after=device-09990');
      // A bare client id as cursor sorts before that client's own subscriptions (the cursor is client id, U+0000, filter).
      assert.equal(subscriptions.body.items.length, 10);
      for (const [what, ms] of [['sessions', sessions.ms], ['channels', channels.ms], ['subscriptions', subscriptions.ms]] as const) {
        // Generous for a shared 2-core machine; a sort per page or a quadratic walk takes far longer at this size.
        assert.ok(ms < 400, `${what}: a page of 1000 out of 10,000 took ${ms.toFixed(1)} ms`);
      }
    }
  });
});

describe('admin API: channels', () => {
  it('lists declared channels (AsyncAPI) and observed ones with rates, last message, schema, publishers and receivers', async () => {
    const s = await start({ asyncapi: [`${root}test/fixtures/asyncapi/signup.yaml`] });
    const subscriber = t.track(await connectClient(s.mqttUrl, { clientId: 'chan-sub', protocolVersion: 5 }));
    await subscriber.subscribeAsync(['fridge/+/level', 'user/#', 'misc/#'], { qos: 1 });
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'chan-pub', protocolVersion: 5 }));
    const json = { qos: 1 as const, properties: { contentType: 'application/json' } };
    await publisher.publishAsync('user/signedup', JSON.stringify({ userId: 'u1', email: 'ada@example.com' }), json);
    await publisher.publishAsync('misc/observed', JSON.stringify({ a: 1 }), json);
    await publisher.publishAsync('misc/observed', JSON.stringify({ a: 2 }), json);

    type Channel = {
      channel: string;
      declared: string | null;
      observed: boolean;
      messagesIn: number;
      messagesOut: number;
      rateIn: number;
      lastMessageAt: string | null;
      publishers: string[];
      receivers: { count: number; clients: string[]; groups: string[] };
      schema: { declared?: Array<{ schema: { required?: string[] } }>; inferred?: { schema: { type: string } } } | null;
    };
    await until(async () => (await admin<Channel>(s, 'channels/misc%2Fobserved')).body.messagesOut === 2, () => 'deliveries not counted');
    const { body } = await admin<Page<Channel>>(s, 'channels');
    const byName = new Map(body.items.map((c) => [c.channel, c]));
    assert.deepEqual(body.items.map((c) => c.channel), ['fridge/{fridgeId}/level', 'misc/observed', 'notes/{noteId}', 'user/signedup']);
    assert.equal(body.total, 4, 'a declared channel seen in traffic is listed once');

    const signup = byName.get('user/signedup')!;
    assert.equal(signup.declared, 'user/signedup');
    assert.equal(signup.observed, true);
    assert.equal(signup.messagesIn, 1);
    assert.deepEqual(signup.publishers, ['chan-pub']);
    assert.deepEqual(signup.receivers.clients, ['chan-sub']);
    assert.deepEqual(signup.schema?.declared?.[0]?.schema.required, ['userId', 'email']);
    assert.ok(signup.lastMessageAt && Date.now() - Date.parse(signup.lastMessageAt) < 10_000);

    const fridge = byName.get('fridge/{fridgeId}/level')!;
    assert.equal(fridge.observed, false);
    assert.equal(fridge.messagesIn, 0);
    assert.deepEqual(fridge.receivers.clients, ['chan-sub'], 'a subscription that can match the address receives it');
    assert.deepEqual(byName.get('notes/{noteId}')!.receivers.clients, []);

    const misc = byName.get('misc/observed')!;
    assert.equal(misc.declared, null);
    assert.equal(misc.messagesIn, 2);
    assert.equal(misc.messagesOut, 2);
    assert.ok(misc.rateIn > 0);
    assert.equal(misc.schema?.inferred?.schema.type, 'object', 'the schema inferred from its payloads');

    const detail = await admin<Channel>(s, `channels/${encodeURIComponent('fridge/{fridgeId}/level')}`);
    assert.equal(detail.status, 200);
    assert.equal((await admin(s, 'channels/never%2Fseen')).status, 404);
  });
});
