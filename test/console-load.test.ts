import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EddyServer } from '../src/server.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { startBroker } from './helpers/broker.js';
import { connectClient } from './helpers/mqtt.js';
import { basic, passwordFile } from './helpers/auth.js';
import { admin, until, type Page } from './helpers/admin.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';
import { browserSkip, logIn, openBrowser, type ConsoleBrowser } from './helpers/browser.js';

/**
 * The console against a large broker: 10,000 offline sessions, 10,000 channels and a couple of
 * hundred connected clients. It reports what the first load costs (JavaScript transferred, gzip,
 * and times) and how long the lists take to show their first rows; it asserts what must hold
 * whatever the machine (the JavaScript budget, rows rendered bounded by the virtual tables), never
 * a timing.
 */
const SESSIONS = 10_000;
const CHANNELS = 10_000;
const CLIENTS = 200;
/** The brief's budget for the first load's JavaScript, gzip. */
const JS_BUDGET = 300 * 1024;

const t = tracker();
const tempDir = tempDirs('eddy-console-load-');
let server: EddyServer;
let web: ConsoleBrowser;
const ROOT = { user: 'root', password: 'load-secret' };

describe('web console with 10,000 sessions and 10,000 channels', { skip: browserSkip() }, () => {
  before(async () => {
    const storage = new MemoryStorage();
    for (let i = 0; i < SESSIONS; i++) {
      storage.saveSession({ clientId: `device-${String(i).padStart(5, '0')}`, expiryInterval: 3600, disconnectedAt: Date.now(), subscriptions: [{ filter: `cmd/${i}`, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    }
    const file = await passwordFile(tempDir(), { [ROOT.user]: { password: ROOT.password, roles: ['admin'] } });
    server = await startBroker({ storage, auth: { passwordFile: file }, sys: { interval: 0 } });
    const auth = { username: ROOT.user, password: ROOT.password, protocolVersion: 5 as const };
    const publisher = t.track(await connectClient(server.mqttUrl, { clientId: 'load-pub', ...auth }));
    for (let i = 0; i < CHANNELS; i++) publisher.publish(`telemetry/${Math.floor(i / 100)}/${i % 100}`, '{"v":1}', { qos: 0 });
    await publisher.publishAsync('telemetry/done', 'x', { qos: 1 });
    for (let i = 0; i < CLIENTS; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, k) => connectClient(server.mqttUrl, { clientId: `live-${String(i + k).padStart(4, '0')}`, ...auth }).then((c) => t.track(c))));
    }
    await until(async () => (await admin<Page>(server, 'channels?limit=1', { authorization: basic(ROOT.user, ROOT.password) })).body.total >= CHANNELS, () => 'channels not all seen');
    web = await openBrowser(server.httpUrl);
  });
  after(async () => {
    await web?.close();
    await t.closeAll();
    await server?.stop();
  });

  it('first load: JavaScript within the budget (gzip), nothing from other hosts; figures reported', async (ctx) => {
    const { page } = web;
    const started = Date.now();
    await page.goto(`${server.httpUrl}/`);
    await page.getByTestId('login').waitFor();
    const shown = Date.now() - started;
    const resources = await page.evaluate(() =>
      performance.getEntriesByType('resource').map((e) => {
        const r = e as PerformanceResourceTiming;
        return { name: r.name, type: r.initiatorType, encoded: r.encodedBodySize, decoded: r.decodedBodySize, transfer: r.transferSize };
      }),
    );
    const navigation = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      return { domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd };
    });
    const scripts = resources.filter((r) => r.name.endsWith('.js'));
    const jsGzip = scripts.reduce((n, r) => n + r.encoded, 0);
    const jsRaw = scripts.reduce((n, r) => n + r.decoded, 0);
    const css = resources.filter((r) => r.name.endsWith('.css')).reduce((n, r) => n + r.encoded, 0);
    ctx.diagnostic(`first load: JavaScript ${jsGzip} bytes gzip (${jsRaw} bytes unpacked) in ${scripts.length} file(s); CSS ${css} bytes gzip`);
    ctx.diagnostic(`first load: DOMContentLoaded ${navigation.domContentLoaded.toFixed(0)} ms, load ${navigation.load.toFixed(0)} ms, login form shown after ${shown} ms`);
    assert.equal(scripts.length, 1);
    assert.ok(jsGzip > 0 && jsGzip < JS_BUDGET, `JavaScript ${jsGzip} bytes gzip, budget ${JS_BUDGET}`);
    assert.ok(jsRaw > jsGzip, 'the script came gzip-encoded');

    const signedIn = Date.now();
    await logIn(page, server.httpUrl, ROOT.user, ROOT.password);
    await page.locator('[data-figure="sessions"]').filter({ hasText: '10,' }).waitFor();
    ctx.diagnostic(`overview with live figures ${Date.now() - signedIn} ms after signing in`);
    assert.deepEqual(web.foreign, []);
    assert.deepEqual(web.errors, []);
  });

  it('Sessions: 10,000 sessions page in as the table scrolls, with a bounded number of rows in the DOM', async (ctx) => {
    const { page } = web;
    const started = Date.now();
    await page.goto(`${server.httpUrl}/#/sessions`);
    await page.locator('[data-testid="sessions"] .vtable-row[data-key="device-00000"]').waitFor();
    ctx.diagnostic(`sessions: first rows ${Date.now() - started} ms`);
    await page.getByTestId('sessions-count').filter({ hasText: /10,2\d\d sessions/ }).waitFor();
    // Scrolling to the end reads the following pages (200 each) through the cursors.
    const scrolled = Date.now();
    for (let i = 0; i < 600; i++) {
      await page.locator('[data-testid="sessions"] .vtable-body').evaluate((el) => (el.scrollTop = el.scrollHeight));
      // The last session in client id order: the connected publisher's.
      if (await page.locator('[data-testid="sessions"] .vtable-row[data-key="load-pub"]').count()) break;
      await page.waitForTimeout(50);
    }
    await page.locator('[data-testid="sessions"] .vtable-row[data-key="load-pub"]').waitFor();
    ctx.diagnostic(`sessions: scrolled to the last of 10,201 sessions (every page of 200 read) in ${Date.now() - scrolled} ms`);
    const rows = await page.locator('[data-testid="sessions"] .vtable-row').count();
    ctx.diagnostic(`sessions: ${rows} rows in the DOM for 10,201 sessions`);
    assert.ok(rows < 100, `the table renders the rows in view only, not ${rows}`);
    const search = Date.now();
    await page.getByTestId('sessions-search').fill('device-0777');
    await page.locator('[data-testid="sessions"] .vtable-row[data-key="device-07770"]').waitFor();
    assert.equal(await page.locator('[data-testid="sessions"] .vtable-row').count(), 10, 'the prefix search shows device-07770 … device-07779');
    ctx.diagnostic(`sessions: prefix search ${Date.now() - search} ms`);
  });

  it('Clients: the connected clients listed with 10,000 offline sessions around them', async (ctx) => {
    const { page } = web;
    const started = Date.now();
    await page.goto(`${server.httpUrl}/#/clients`);
    await page.locator('[data-testid="clients"] .vtable-row[data-key="live-0000"]').waitFor();
    await page.getByTestId('clients-count').filter({ hasText: `${CLIENTS + 1} clients` }).waitFor();
    ctx.diagnostic(`clients: ${CLIENTS + 1} connected among 10,000 sessions, first rows ${Date.now() - started} ms`);
  });

  it('Channels: the topic tree over 10,000 channels, built from pages', async (ctx) => {
    const { page } = web;
    const started = Date.now();
    await page.goto(`${server.httpUrl}/#/channels`);
    await page.getByTestId('toggle-telemetry').waitFor();
    ctx.diagnostic(`channels: tree shown ${Date.now() - started} ms`);
    await page.getByTestId('channels-count').filter({ hasText: /^5,000 of 10,00\d channels loaded/ }).waitFor({ timeout: 60_000 });
    ctx.diagnostic(`channels: 5,000 channels (5 pages of 1000) in the tree ${Date.now() - started} ms; the rest on "load 1000 more"`);
    await page.getByTestId('channels-more').click();
    await page.getByTestId('channels-count').filter({ hasText: /^6,000 of/ }).waitFor();
    await page.getByTestId('toggle-telemetry').click();
    await page.getByTestId('toggle-telemetry/0').click();
    await page.locator('[data-testid="channels"] .vtable-row[data-key="telemetry/0/1"]').waitFor();
    const rows = await page.locator('[data-testid="channels"] .vtable-row').count();
    ctx.diagnostic(`channels: ${rows} tree rows in the DOM with 6,000 channels loaded and two levels open`);
    assert.ok(rows > 10 && rows < 100, `the tree renders the rows in view only, not ${rows}`);
    // A search reads the matching range alone (its cursor starts right before it) and opens it up.
    const search = Date.now();
    await page.getByTestId('channels-search').fill('telemetry/42/9');
    await page.locator('[data-testid="channels"] .vtable-row[data-key="telemetry/42/99"]').waitFor();
    ctx.diagnostic(`channels: prefix search ${Date.now() - search} ms`);
    assert.equal(await page.getByTestId('channels-count').textContent(), '11 of 10,001 channels loaded');
    await page.getByTestId('channels-search').fill('');
    await page.getByTestId('toggle-telemetry').waitFor();
    const json = await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/v1/admin/channels?'))
        .reduce((n, e) => n + (e as PerformanceResourceTiming).encodedBodySize, 0),
    );
    ctx.diagnostic(`channels: ${json} bytes of channel pages read`);
    assert.deepEqual(web.foreign, []);
    assert.deepEqual(web.errors, []);
  });
});
