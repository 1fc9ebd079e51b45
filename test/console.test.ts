import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Packet } from 'mqtt-packet';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { passwordFile } from './helpers/auth.js';
import { admin, until, type Page } from './helpers/admin.js';
import { basic, JWT_SECRET, signToken } from './helpers/auth.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';
import { beforeMarker, isPublish, wireInbox } from './helpers/sentinel.js';
import { browserSkip, logIn, openBrowser, screenshot, type ConsoleBrowser } from './helpers/browser.js';

type Disconnect = Extract<Packet, { cmd: 'disconnect' }>;

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/asyncapi/', import.meta.url));
const ROOT = { user: 'root', password: 'console-secret' };
const DEVICE = { username: 'device', password: 'device-secret' };
const rootAuth = basic(ROOT.user, ROOT.password);

const t = tracker();
const tempDir = tempDirs('eddy-console-');
let server: EddyServer;
let web: ConsoleBrowser;

async function client(options: IClientOptions): Promise<MqttClient> {
  return t.track(await connectClient(server.mqttUrl, { protocolVersion: 5, ...DEVICE, ...options }));
}

/** The channel's live tail is an SSE subscription of the broker: once it is there, a publish reaches it. */
async function tailSubscribed(filter: string): Promise<void> {
  await until(async () => (await adminAs<Page>(`subscriptions?filter=${encodeURIComponent(filter)}`)).body.total > 0, () => `the live tail of ${filter} never subscribed`);
}

const adminAs = <T = Record<string, unknown>>(path: string, method = 'GET') => admin<T>(server, path, { method, authorization: rootAuth });

describe('web console in Chromium', { skip: browserSkip() }, () => {
  before(async () => {
    const dir = tempDir();
    const file = await passwordFile(dir, { [ROOT.user]: { password: ROOT.password, roles: ['admin'] }, [DEVICE.username]: { password: DEVICE.password } });
    server = await startBroker({
      // The disk engine, so that the fsync chart has something to show.
      storage: new DiskStorage({ dir: tempDir(), fsync: { kind: 'always' }, logger: silentLogger }),
      auth: { passwordFile: file, jwt: { secret: JWT_SECRET } },
      asyncapi: [`${FIXTURES}console.yaml`, `${FIXTURES}console-billing.yaml`],
      channels: [{ pattern: 'jobs/#', maxDeliveries: 1 }],
      redelivery: { initialBackoffMs: 20, maxBackoffMs: 200 },
      sys: { interval: 0 },
    });
    web = await openBrowser(server.httpUrl);
  });
  afterEach(() => {
    // Anything the console fetched from another host fails the test that made it happen.
    assert.deepEqual(web.foreign.splice(0), [], 'requests to hosts other than the broker');
    assert.deepEqual(web.errors.splice(0), [], 'errors in the page');
    for (const challenge of web.challenges.splice(0)) assert.doesNotMatch(challenge, /basic/i, 'a 401 to the console must not open the Basic dialog');
  });
  after(async () => {
    await t.closeAll();
    await web?.close();
    await server?.stop();
  });

  it('asks for credentials, refuses a wrong password inline, and signs in an admin', async () => {
    const { page } = web;
    await page.goto(`${server.httpUrl}/`);
    await page.getByTestId('login').waitFor();
    assert.equal(web.challenges.length, 1, 'the first look at the admin API was a 401');
    await page.getByTestId('login-user').fill(ROOT.user);
    await page.getByTestId('login-password').fill('wrong');
    await screenshot(page, 'login');
    await page.getByTestId('login-submit').click();
    await page.getByTestId('login-error').filter({ hasText: 'did not accept' }).waitFor();
    await page.getByTestId('login-password').fill(ROOT.password);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('nav-overview').waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('eddy-console-authorization'));
    assert.equal(stored, rootAuth, 'credentials are kept in sessionStorage');
  });

  it('Overview: live figures and uPlot charts from the stats stream', async () => {
    const { page } = web;
    const reader = await client({ clientId: 'overview-reader' });
    await reader.subscribeAsync('metrics/#', { qos: 1 });
    const publisher = await client({ clientId: 'overview-pub' });
    const traffic = setInterval(() => publisher.publish('metrics/load', JSON.stringify({ at: Date.now() }), { qos: 1 }), 50);
    try {
      await page.goto(`${server.httpUrl}/#/overview`);
      await page.locator('[data-figure="connections"]').filter({ hasText: /^[1-9]/ }).waitFor();
      for (const chart of ['messages', 'connections', 'storage', 'fsync', 'delivery']) await page.getByTestId(`chart-${chart}`).locator('canvas').waitFor();
      // A few samples, with traffic in them, for the chart (each sample is one SSE event a second).
      await page.locator('[data-figure="messages in/s"]').filter({ hasText: /^[1-9]/ }).waitFor({ timeout: 10_000 });
      await page.waitForFunction(() => document.querySelectorAll('.u-legend').length === 5);
      await page.waitForTimeout(3000);
      await screenshot(page, 'overview');
    } finally {
      clearInterval(traffic);
    }
  });

  it('Clients: a client connected by the test shows up, and the kick button disconnects it with 0x98', async () => {
    const { page } = web;
    const victim = await client({ clientId: 'console-kick-me' });
    const disconnected = new Promise<Disconnect>((resolve) => victim.on('packetreceive', (p) => p.cmd === 'disconnect' && resolve(p as Disconnect)));
    await client({ clientId: 'console-bystander' });
    await page.goto(`${server.httpUrl}/#/clients`);
    await page.getByTestId('clients-search').fill('console-');
    const row = page.locator('[data-testid="clients"] .vtable-row[data-key="console-kick-me"]');
    await row.waitFor();
    await page.locator('[data-testid="clients"] .vtable-row[data-key="console-bystander"]').waitFor();
    await screenshot(page, 'clients');
    await page.getByTestId('kick-console-kick-me').click();
    const packet = await disconnected;
    assert.equal(packet.reasonCode, 0x98);
    await page.getByTestId('notice').filter({ hasText: 'console-kick-me disconnected' }).waitFor();
    // The list follows: the kicked client's row goes at the next refresh.
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal((await adminAs('clients/console-kick-me')).status, 404);
  });

  it('Sessions: an offline persistent session with its expiry and queue; ending it removes it', async () => {
    const { page } = web;
    const sleeper = await client({ clientId: 'console-sleeper', clean: false, properties: { sessionExpiryInterval: 3600 } });
    await sleeper.subscribeAsync('metrics/#', { qos: 1 });
    await sleeper.endAsync();
    const publisher = await client({ clientId: 'sessions-pub' });
    await publisher.publishAsync('metrics/queued', '{"n":1}', { qos: 1 });
    await page.goto(`${server.httpUrl}/#/sessions`);
    await page.getByTestId('sessions-search').fill('console-');
    const row = page.locator('[data-testid="sessions"] .vtable-row[data-key="console-sleeper"]');
    await row.filter({ hasText: 'offline' }).filter({ hasText: /in 5\d min|in 1 h/ }).waitFor();
    await row.filter({ hasText: /1 \(\d+ B\)/ }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'sessions');
    await page.getByTestId('end-console-sleeper').click();
    await page.getByTestId('notice').filter({ hasText: 'session console-sleeper ended' }).waitFor();
    assert.equal((await adminAs('sessions/console-sleeper')).status, 404);
  });

  it('Channels: the topic tree, and a message published to the channel appears in its live tail, pretty-printed, next to its schema', async () => {
    const { page } = web;
    const publisher = await client({ clientId: 'orders-service' });
    await publisher.publishAsync('orders/7/created', JSON.stringify({ orderId: '7', amount: 1 }), { qos: 1 });
    await page.goto(`${server.httpUrl}/#/channels`);
    await page.getByTestId('toggle-orders').click();
    await page.getByTestId('toggle-orders/7').click();
    await page.locator('[data-testid="channels"] .vtable-row[data-key="orders/7/created"]').click();
    await page.getByTestId('channel-detail').waitFor();
    await page.getByTestId('channel-schema').filter({ hasText: '"amount"' }).filter({ hasText: '"minimum": 0' }).waitFor();
    await tailSubscribed('orders/7/created');
    await publisher.publishAsync('orders/7/created', JSON.stringify({ orderId: '7', amount: 12.5 }), { qos: 1 });
    const message = page.getByTestId('tail-message').filter({ hasText: '"amount": 12.5' });
    await message.waitFor();
    assert.match((await message.textContent()) ?? '', /"orderId": "7",\n\s+"amount": 12.5/, 'pretty-printed JSON');
    await page.locator('.detail dd').filter({ hasText: 'orders-service' }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'channels');
  });

  it('Channels: a binary payload is shown as hex', async () => {
    const { page } = web;
    const publisher = await client({ clientId: 'raw-sensor' });
    await publisher.publishAsync('sensors/raw', Buffer.from([0, 1, 2, 0xff]), { qos: 1 });
    await page.goto(`${server.httpUrl}/#/channels/${encodeURIComponent('sensors/raw')}`);
    await page.getByTestId('channel-detail').waitFor();
    await tailSubscribed('sensors/raw');
    await publisher.publishAsync('sensors/raw', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00]), { qos: 1 });
    await page.getByTestId('tail-message').filter({ hasText: 'de ad be ef 00' }).waitFor();
  });

  it('Consumer groups: a group with no member reading shows its lag growing; delete removes it', async () => {
    const { page } = web;
    const member = await client({ clientId: 'billing-1', clean: false, properties: { sessionExpiryInterval: 3600 } });
    await member.subscribeAsync('$share/billing/orders/#', { qos: 1 });
    await member.endAsync();
    const publisher = await client({ clientId: 'orders-lag' });
    for (const n of [1, 2, 3]) await publisher.publishAsync(`orders/${n}/created`, JSON.stringify({ orderId: String(n), amount: n }), { qos: 1 });
    await page.goto(`${server.httpUrl}/#/groups/${encodeURIComponent('$share/billing/orders/#')}`);
    const lag = page.locator('[data-testid="group-detail"] dd[data-field="lag"]');
    await page.locator('[data-testid="group-detail"] dd[data-field="waiting"]').filter({ hasText: /^3 / }).waitFor();
    const seconds = async (): Promise<number> => Number(/^(\d+) s$/.exec((await lag.textContent()) ?? '')?.[1] ?? NaN);
    const first = await seconds();
    assert.ok(Number.isFinite(first), `lag reads ${await lag.textContent()}`);
    // The detail refreshes on each stats sample: the age of the oldest waiting message goes up.
    await until(async () => (await seconds()) >= first + 2, () => `lag stayed at ${first}`, 10_000);
    await page.locator('[data-testid="groups"] .vtable-row.selected').waitFor();
    await screenshot(page, 'groups');
    await page.getByTestId('delete-group').click();
    await until(async () => (await adminAs(`groups/${encodeURIComponent('$share/billing/orders/#')}`)).status === 404, () => 'the group is still there');
  });

  it('Dead letters: one redriven from its row reaches an MQTT subscriber; redrive all matching a filter; purge the rest', async () => {
    const { page } = web;
    const nacker = await client({ clientId: 'nacker', customHandleAcks: (_t, _p, _packet, ack) => ack(0x80) });
    await nacker.subscribeAsync('$share/workers/jobs/#', { qos: 1 });
    const publisher = await client({ clientId: 'jobs-pub' });
    for (const [topic, payload] of [['jobs/1', 'job-one'], ['jobs/2', 'job-two'], ['jobs/3', 'job-three']]) await publisher.publishAsync(topic!, payload!, { qos: 1 });
    await until(() => server.broker.deadLetters.queue.pendingCount === 3, () => `dlq holds ${server.broker.deadLetters.queue.pendingCount}`);
    await nacker.unsubscribeAsync('$share/workers/jobs/#');
    const worker = await client({ clientId: 'worker' });
    const inbox = wireInbox(worker);
    await worker.subscribeAsync('jobs/#', { qos: 1 });
    const letters = (await adminAs<Page<{ seq: number; payload: string }>>('dlq')).body.items;
    const two = letters.find((l) => l.payload === 'job-two')!;

    await page.goto(`${server.httpUrl}/#/dlq`);
    const row = page.locator(`[data-testid="dlq"] .vtable-row[data-key="${two.seq}"]`);
    await row.filter({ hasText: 'jobs/2' }).filter({ hasText: 'job-two' }).filter({ hasText: 'refused by' }).waitFor();
    await screenshot(page, 'dlq');
    await page.getByTestId(`redrive-${two.seq}`).click();
    await until(() => inbox.length === 1, () => `the worker got ${inbox.length} messages`);
    assert.equal(inbox[0]!.topic, 'jobs/2');
    assert.equal(inbox[0]!.payload.toString(), 'job-two');
    await page.getByTestId('notice').filter({ hasText: '1 redriven' }).waitFor();
    await row.waitFor({ state: 'detached' });

    await page.getByTestId('dlq-filter').fill('jobs/3');
    await page.getByTestId('dlq-filter').press('Enter');
    await page.getByTestId('dlq-count').filter({ hasText: '1 dead letters' }).waitFor();
    await page.getByTestId('redrive-all').click();
    await page.getByTestId('notice').filter({ hasText: '1 redriven' }).filter({ hasText: /^1 redriven$/ }).waitFor();
    await page.getByTestId('dlq-filter').fill('jobs/#');
    await page.getByTestId('dlq-filter').press('Enter');
    await page.getByTestId('purge').click();
    await page.getByTestId('notice').filter({ hasText: '1 purged' }).waitFor();
    assert.equal((await adminAs<Page>('dlq')).body.total, 0);
    // job-one was purged, not redriven: a marker after it by the same path comes after job-three alone.
    await publisher.publishAsync('jobs/marker', 'marker', { qos: 1 });
    const before = await beforeMarker(inbox, isPublish('jobs/marker'));
    assert.deepEqual(before.map((m) => m.payload.toString()), ['job-two', 'job-three']);
  });

  it('Publish: the form is prefilled from the AsyncAPI example; an invalid payload shows the schema error, a valid one is stored', async () => {
    const { page } = web;
    await page.goto(`${server.httpUrl}/#/publish?channel=${encodeURIComponent('orders/{orderId}/created')}`);
    await page.getByTestId('publish-hint').filter({ hasText: 'Prefilled' }).waitFor();
    const prefilled = JSON.parse(await page.getByTestId('publish-payload').inputValue()) as unknown;
    assert.deepEqual(prefilled, { orderId: 'A-1001', amount: 42.5 }, 'the example of the message');
    await page.getByTestId('publish-topic').fill('orders/9/created');
    await page.getByTestId('publish-payload').fill('{"orderId": 9, "amount": -1}');
    await page.getByTestId('publish-submit').click();
    const outcome = page.getByTestId('publish-outcome');
    await outcome.filter({ hasText: '422 invalid_payload' }).waitFor();
    const errors = (await page.getByTestId('publish-errors').textContent()) ?? '';
    assert.match(errors, /\/orderId must be string/);
    await screenshot(page, 'publish');
    const watcher = await client({ clientId: 'publish-watcher' });
    const got = collect(watcher);
    await watcher.subscribeAsync('orders/9/created', { qos: 1 });
    await page.getByTestId('publish-payload').fill('{"orderId": "9", "amount": 3}');
    await page.getByTestId('publish-submit').click();
    await outcome.filter({ hasText: 'Stored: seq' }).waitFor();
    const [message] = await got.take(1);
    assert.deepEqual(JSON.parse(message!.payload.toString()), { orderId: '9', amount: 3 });
  });

  it('AsyncAPI: the live document rendered, with the event-flow map of declared and observed senders and receivers', async () => {
    const { page } = web;
    await page.goto(`${server.httpUrl}/#/asyncapi`);
    await page.getByTestId('asyncapi').waitFor();
    const declared = page.getByTestId('flow-orders/{orderId}/created');
    await declared.filter({ hasText: 'Orders service (declared)' }).filter({ hasText: 'Billing service (declared)' }).waitFor();
    // Observed traffic: the channel the Channels test published on names its publisher.
    await page.getByTestId('flow-orders/7/created').filter({ hasText: 'orders-service' }).waitFor();
    await page.getByTestId('doc-channel-orders/{orderId}/created').locator('summary').click();
    await page.getByTestId('doc-channel-orders/{orderId}/created').filter({ hasText: 'OrderCreated' }).waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, 'asyncapi');
  });

  it('signs out: the credentials leave sessionStorage, and signing in again works', async () => {
    const { page } = web;
    await page.goto(`${server.httpUrl}/#/overview`);
    await page.getByTestId('signout').click();
    await page.getByTestId('login').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('eddy-console-authorization')), null);
    await logIn(page, server.httpUrl, ROOT.user, ROOT.password);
  });

  it('signs in with a JWT as Bearer; a token without the admin role is refused inline', async () => {
    const { page } = web;
    await page.getByTestId('signout').click();
    await page.getByTestId('login-token-tab').click();
    await page.getByTestId('login-jwt').fill(await signToken(JWT_SECRET, { sub: 'viewer', roles: [] }, { expiresIn: '1h' }));
    await page.getByTestId('login-submit').click();
    await page.getByTestId('login-error').filter({ hasText: 'admin role' }).waitFor();
    const token = await signToken(JWT_SECRET, { sub: 'operator', roles: ['admin'] }, { expiresIn: '1h' });
    await page.getByTestId('login-jwt').fill(token);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('nav-overview').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('eddy-console-authorization')), `Bearer ${token}`);
    await page.locator('[data-figure="connections"]').waitFor();
  });
});
