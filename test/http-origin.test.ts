import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import WebSocket from 'ws';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { validateConfig } from '../src/cli/config.js';
import { ConfigError } from '../src/util/errors.js';
import { run, spawnBroker, startBroker, EDDY_BIN } from './helpers/broker.js';
import { basic, passwordFile } from './helpers/auth.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';

const tempDir = tempDirs('eddy-origin-');
const t = tracker();
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});
after(() => t.closeAll());

const EVIL = 'http://evil.example';

function capturedLogger(): { logger: pino.Logger; lines: () => Array<{ msg: string }> } {
  let text = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => ((text += chunk.toString()), cb()) });
  return { logger: pino({ level: 'warn' }, sink), lines: () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string }) };
}

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker(options);
  return server;
}

/** The broker's own origin, as a browser on a page it served would send it. */
const own = (s: EddyServer): string => `http://127.0.0.1:${s.http.port}`;

/** Opens a WebSocket at /mqtt with this Origin (none when undefined): 'open', or the status of the refused handshake. */
function upgrade(s: EddyServer, origin: string | undefined): Promise<'open' | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(s.wsUrl, 'mqtt', origin === undefined ? {} : { origin });
    ws.once('open', () => {
      ws.terminate();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

async function metric(s: EddyServer, name: string): Promise<number> {
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is on /metrics`);
  return Number(line.split(' ')[1]);
}

async function mqttClient(s: EddyServer, options: IClientOptions = {}): Promise<MqttClient> {
  return t.track(await connectClient(s.mqttUrl, { protocolVersion: 5, ...options }));
}

describe('/mqtt: the Origin of a WebSocket upgrade', () => {
  it('by default: no Origin (native clients) and the broker\'s own origin are let in; another origin gets 403, counted and logged first and every 1000th', async () => {
    const { logger, lines } = capturedLogger();
    const s = await start({ logger });
    assert.equal(await upgrade(s, undefined), 'open');
    assert.equal(await upgrade(s, own(s)), 'open');
    assert.equal(await upgrade(s, `http://localhost:${s.http.port}`), 403, 'a different host name is a different origin');
    assert.equal(await upgrade(s, EVIL), 403);
    assert.equal(await upgrade(s, 'null'), 403, 'an opaque origin (sandboxed frame, file://)');
    assert.equal(await metric(s, 'eddy_http_origin_refused_total'), 3);
    const health = (await (await fetch(`${s.httpUrl}/healthz`)).json()) as { http: { originRefused: number } };
    assert.equal(health.http.originRefused, 3);
    assert.deepEqual(lines().filter((l) => /WebSocket upgrade refused/.test(l.msg)).length, 1, 'three refusals, one log line');
    // MQTT itself works through an allowed upgrade (mqtt.js hands wsOptions to ws).
    const viaOwn = t.track(await connectClient(s.wsUrl, { protocolVersion: 5, wsOptions: { origin: own(s) } }));
    const inbox = collect(viaOwn);
    await viaOwn.subscribeAsync('ws/origin', { qos: 1 });
    await viaOwn.publishAsync('ws/origin', 'hello', { qos: 1 });
    assert.equal((await inbox.take(1))[0]!.payload.toString(), 'hello');
  });

  it('http.allowedOrigins replaces the default: listed origins only (default ports and case normalised), or * for any', async () => {
    let s = await start({ http: { allowedOrigins: ['https://app.example.com', 'http://localhost:3000'] } });
    assert.equal(await upgrade(s, 'https://app.example.com'), 'open');
    assert.equal(await upgrade(s, 'https://APP.example.com:443'), 'open');
    assert.equal(await upgrade(s, 'http://localhost:3000'), 'open');
    assert.equal(await upgrade(s, 'http://app.example.com'), 403, 'the scheme is part of the origin');
    assert.equal(await upgrade(s, own(s)), 403, 'with a list, the broker\'s own origin only when listed');
    assert.equal(await upgrade(s, undefined), 'open');
    await s.stop();
    s = await start({ http: { allowedOrigins: ['*'] } });
    assert.equal(await upgrade(s, EVIL), 'open');
    assert.equal(await metric(s, 'eddy_http_origin_refused_total'), 0);
  });
});

describe('state-changing routes refuse cross-site requests', () => {
  /** An MQTT 5 subscriber of `filter`, with every PUBLISH it receives in arrival order. */
  async function watcher(s: EddyServer, filter: string): Promise<IPublishPacket[]> {
    const client = await mqttClient(s);
    const inbox = collect(client);
    await client.subscribeAsync(filter, { qos: 1 });
    return inbox.messages;
  }

  const post = (url: string, headers: Record<string, string>, body = 'payload'): Promise<Response> => fetch(url, { method: 'POST', headers, body });

  it('POST /v1/publish: a cross-site text/plain POST is refused 403 cross_site and publishes nothing; the same from the broker\'s own page with X-Eddy-Request or JSON, or with no Origin at all, is published', async () => {
    const s = await start();
    const inbox = await watcher(s, 'csrf/#');
    const url = (topic: string): string => `${s.httpUrl}/v1/publish/${topic}`;
    const refused: Array<Record<string, string>> = [
      { origin: EVIL, 'content-type': 'text/plain' },
      { origin: EVIL, 'content-type': 'application/json', 'x-eddy-request': '1' },
      { 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' },
      { 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' },
      { origin: own(s), 'content-type': 'text/plain' },
      { origin: own(s), 'content-type': 'application/x-www-form-urlencoded' },
      { origin: own(s), 'content-type': 'multipart/form-data; boundary=x' },
      { 'sec-fetch-site': 'same-origin', 'content-type': 'text/plain' },
      { origin: own(s), 'x-eddy-request': 'yes', 'content-type': 'text/plain' },
    ];
    for (const [i, headers] of refused.entries()) {
      const res = await post(url(`csrf/refused-${i}`), headers, '{}');
      assert.equal(res.status, 403, JSON.stringify(headers));
      const body = (await res.json()) as { error: string };
      assert.equal(body.error, 'cross_site');
      assert.equal(res.headers.get('access-control-allow-origin'), null);
    }
    const allowed: Array<Record<string, string>> = [
      { origin: own(s), 'content-type': 'text/plain', 'x-eddy-request': '1' },
      { origin: own(s), 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
      { 'content-type': 'text/plain' }, // Node's fetch: Sec-Fetch-Mode only, as curl, the SDK and the CLI send none
    ];
    for (const [i, headers] of allowed.entries()) {
      const res = await post(url(`csrf/allowed-${i}`), headers, '{}');
      assert.equal(res.status, 202, `${JSON.stringify(headers)}: ${await res.text()}`);
    }
    const marker = await post(url('csrf/marker'), {});
    assert.equal(marker.status, 202);
    const before = await beforeMarker(inbox, isPublish('csrf/marker'));
    assert.deepEqual(before.map((m) => m.topic), ['csrf/allowed-0', 'csrf/allowed-1', 'csrf/allowed-2'], 'no refused request published anything');
    assert.equal(await metric(s, 'eddy_http_cross_site_refused_total'), refused.length);
  });

  it('POST /v1/dlq/redrive: a cross-site text/plain POST is refused and the dead letter stays; same-origin with X-Eddy-Request, and eddy dlq redrive, redrive it', async () => {
    const s = await start({ channels: [{ pattern: 'dead/#', maxDeliveries: 1 }] });
    const refuser = await mqttClient(s, { customHandleAcks: (_topic, _payload, _packet, ack) => ack(0x80) });
    await refuser.subscribeAsync('$share/workers/dead/#', { qos: 1 });
    const publisher = await mqttClient(s);
    await publisher.publishAsync('dead/letter', 'd1', { qos: 1 });
    await publisher.publishAsync('dead/letter', 'd2', { qos: 1 });
    await waitFor(() => s.broker.deadLetters.queue.pendingCount === 2);
    await refuser.endAsync(true);
    const inbox = await watcher(s, 'dead/#');

    const redrive = `${s.httpUrl}/v1/dlq/redrive?limit=1`;
    const crossSite: Array<Record<string, string>> = [{ origin: EVIL, 'content-type': 'text/plain' }, { 'sec-fetch-site': 'cross-site' }, { origin: own(s) }];
    for (const headers of crossSite) {
      const res = await post(redrive, headers, '');
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.equal(((await res.json()) as { error: string }).error, 'cross_site');
    }
    await publisher.publishAsync('dead/marker-1', 'm', { qos: 1 });
    assert.deepEqual((await beforeMarker(inbox, isPublish('dead/marker-1'))).map((m) => m.topic), [], 'nothing was redriven');
    assert.equal(s.broker.deadLetters.queue.pendingCount, 2);

    const ok = await post(redrive, { origin: own(s), 'x-eddy-request': '1' }, '');
    assert.equal(ok.status, 200, await ok.text());
    const cli = await run(process.execPath, [EDDY_BIN, 'dlq', 'redrive', '--http', s.httpUrl]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /redriven 1/);
    await publisher.publishAsync('dead/marker-2', 'm', { qos: 1 });
    const redriven = await beforeMarker(inbox, isPublish('dead/marker-2'));
    assert.deepEqual(redriven.filter((m) => m.topic === 'dead/letter').map((m) => m.payload.toString()), ['d1', 'd2']);
  });

  it('an SSE stream, which can take messages from a consumer group, is refused to another origin too; other GETs are not concerned', async () => {
    const s = await start();
    const stream = await fetch(`${s.httpUrl}/v1/subscribe?filter=sse/%23&group=g`, { headers: { origin: EVIL } });
    assert.equal(stream.status, 403);
    assert.equal(((await stream.json()) as { error: string }).error, 'cross_site');
    const health = await fetch(`${s.httpUrl}/healthz`, { headers: { origin: EVIL, 'sec-fetch-site': 'cross-site' } });
    assert.equal(health.status, 200);
    assert.equal(s.broker.sessions.size, 0, 'no stream session was opened, no group joined');
  });

  it('no CORS headers anywhere: a preflight gets none, so a browser sends no non-simple cross-site request', async () => {
    const s = await start();
    const preflight = await fetch(`${s.httpUrl}/v1/publish/x`, {
      method: 'OPTIONS',
      headers: { origin: EVIL, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-eddy-request, content-type' },
    });
    const responses = [
      preflight,
      await fetch(`${s.httpUrl}/v1/publish/x`, { method: 'POST', body: '1' }),
      await fetch(`${s.httpUrl}/v1/publish/x`, { method: 'POST', headers: { origin: EVIL }, body: '1' }),
      await fetch(`${s.httpUrl}/v1/dlq/redrive`, { method: 'POST', headers: { origin: own(s), 'x-eddy-request': '1' } }),
      await fetch(`${s.httpUrl}/healthz`, { headers: { origin: EVIL } }),
    ];
    for (const res of responses) {
      await res.arrayBuffer();
      const cors = [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));
      assert.deepEqual(cors, [], `${res.url}: ${res.status}`);
    }
    assert.notEqual(preflight.status, 204);
  });
});

describe('http.protectStatus: /metrics and /healthz need credentials', () => {
  const USERS = { alice: { password: 'alice-pw' }, bob: { password: 'bob-pw', roles: ['admin'] } };

  it('without credentials (anonymous allowed or not) or with bad ones: 401 with WWW-Authenticate; any user: 200; off: open as before', async () => {
    const file = await passwordFile(tempDir(), USERS);
    for (const allowAnonymous of [false, true]) {
      const s = await start({ auth: { passwordFile: file, allowAnonymous }, http: { protectStatus: true } });
      for (const route of ['/metrics', '/healthz']) {
        const none = await fetch(`${s.httpUrl}${route}`);
        assert.equal(none.status, 401, `${route}, allowAnonymous ${allowAnonymous}`);
        assert.match(none.headers.get('www-authenticate') ?? '', /Basic realm="eddy"/);
        assert.equal(((await none.json()) as { error: string }).error, 'unauthorized');
        assert.equal((await fetch(`${s.httpUrl}${route}`, { headers: { authorization: basic('alice', 'nope') } })).status, 401);
        const ok = await fetch(`${s.httpUrl}${route}`, { headers: { authorization: basic('alice', 'alice-pw') } });
        assert.equal(ok.status, 200, route);
        if (route === '/metrics') assert.match(await ok.text(), /^eddy_connections /m);
        else assert.equal(((await ok.json()) as { status: string }).status, 'ok');
      }
      await s.stop();
      server = undefined;
    }
    const open = await start({ auth: { passwordFile: file } });
    assert.equal((await fetch(`${open.httpUrl}/metrics`)).status, 200);
    assert.equal((await fetch(`${open.httpUrl}/healthz`)).status, 200);
  });

  it('eddy broker --protect-status (and http.protectStatus in the config file), while publish keeps its own rules', async () => {
    const dir = tempDir();
    const file = await passwordFile(dir, USERS);
    const broker = await spawnBroker(['--memory', '--password-file', file, '--protect-status']);
    try {
      const url = `http://127.0.0.1:${broker.httpPort}`;
      assert.equal((await fetch(`${url}/healthz`)).status, 401);
      assert.equal((await fetch(`${url}/healthz`, { headers: { authorization: basic('bob', 'bob-pw') } })).status, 200);
      // curl, as examples/http-curl.sh and a Prometheus job with basic_auth do it.
      const curl = await run('curl', ['-sS', '-u', 'alice:alice-pw', `${url}/metrics`]);
      assert.match(curl.stdout, /^eddy_http_origin_refused_total 0$/m);
    } finally {
      await broker.stop();
    }
    const config = path.join(dir, 'eddy.yaml');
    fs.writeFileSync(config, `auth: { passwordFile: ${file} }\nhttp: { protectStatus: true, allowedOrigins: ['https://app.example.com'] }\n`);
    const fromFile = await spawnBroker(['--memory', '--config', config]);
    try {
      assert.equal((await fetch(`http://127.0.0.1:${fromFile.httpPort}/metrics`)).status, 401);
    } finally {
      await fromFile.stop();
    }
  });
});

describe('config: the http key', () => {
  const error = (http: unknown): string => {
    try {
      validateConfig({ http }, 'eddy.yaml');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.doesNotMatch(err.message, /\n/, 'one line');
      return err.message;
    }
    return 'accepted';
  };

  it('takes allowedOrigins (origins or *) and protectStatus, and says what is wrong in one line', async () => {
    assert.deepEqual(validateConfig({ http: { allowedOrigins: ['https://a.example', 'http://localhost:3000', '*'], protectStatus: true } }, 'eddy.yaml').http, {
      allowedOrigins: ['https://a.example', 'http://localhost:3000', '*'],
      protectStatus: true,
    });
    assert.match(error({ allowedOrigins: ['https://a.example/app'] }), /http\.allowedOrigins: "https:\/\/a\.example\/app" is not an origin/);
    assert.match(error({ allowedOrigins: ['a.example'] }), /is not an origin/);
    assert.match(error({ allowedOrigins: ['ws://a.example'] }), /is not an origin/);
    assert.match(error({ allowedOrigins: 'https://a.example' }), /must be a list/);
    assert.match(error({ protectStatus: 'yes' }), /http\.protectStatus must be true or false/);
    assert.match(error({ cors: true }), /unknown key http\.cors/);
    assert.match(error(['x']), /http must be a mapping/);
    const exit = await run(process.execPath, [EDDY_BIN, 'broker', '--memory', '--port', '0', '--http-port', '0', '--config', configWith(`http: { allowedOrigins: [evil] }\n`)]);
    assert.equal(exit.code, 2);
    assert.match(exit.stderr, /http\.allowedOrigins: "evil" is not an origin/);
  });
});

function configWith(text: string): string {
  const file = path.join(tempDir(), 'eddy.yaml');
  fs.writeFileSync(file, text);
  return file;
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
