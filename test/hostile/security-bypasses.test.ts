import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { report, startProbeBroker, type ProbeBroker } from '../helpers/hostile.js';
import { SseClient } from '../helpers/sse.js';

/**
 * The access-control bypasses an anonymous client had before the admission pipeline, each run as
 * an attack against a broker child with `--deny-subscribe private/# --deny-publish control/#` and no
 * other security configured. Each prints `# probe bypass <name>: bypassed=<bool>` and fails when the
 * attack works, so `EDDY_PROBE_BIN` pointed at an older build shows which of them it let through.
 * Every "not received" is decided by a public marker published after the forbidden message.
 */

let broker: ProbeBroker;
const clients: MqttClient[] = [];
const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-bypass-'));
before(async () => {
  // Every channel keeps history, so that replay has something to leak.
  const config = path.join(configDir, 'eddy.yaml');
  fs.writeFileSync(config, "channels:\n  '#':\n    retention: { maxAge: 1h }\n");
  broker = await startProbeBroker(['--memory', '--config', config, '--deny-subscribe', 'private/#', '--deny-publish', 'control/#']);
});
after(async () => {
  for (const c of clients) c.end(true);
  await broker.stop();
  fs.rmSync(configDir, { recursive: true, force: true });
});

async function client(id: string, version: 4 | 5 = 5): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: id, protocolVersion: version, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(c);
  c.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
    c.once('close', () => reject(new Error(`${id}: closed before CONNACK`)));
  });
  return c;
}

/** Topics `c` receives until `marker` arrives (or 5 s pass: then the marker's absence fails the probe). */
function receivedUntil(c: MqttClient, marker: string): Promise<string[]> {
  const topics: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`marker ${marker} never arrived; got ${JSON.stringify(topics)}`)), 5000);
    c.on('message', (topic, payload) => {
      topics.push(topic);
      if (topic === marker || payload.toString() === marker) {
        clearTimeout(timer);
        resolve(topics);
      }
    });
  });
}

async function subscribe(c: MqttClient, filter: string, properties?: Record<string, unknown>): Promise<number> {
  try {
    const granted = await c.subscribeAsync(filter, { qos: 1, ...(properties ? { properties } : {}) } as mqtt.IClientSubscribeOptions);
    return granted[0]?.qos ?? 0x80;
  } catch (err) {
    // mqtt.js rejects a SUBACK whose reason code is a refusal.
    const code = (err as { packet?: { granted?: number[] } }).packet?.granted?.[0];
    if (code === undefined) throw err;
    return code;
  }
}

function verdict(name: string, bypassed: boolean, detail: string): void {
  report(`bypass ${name}`, { bypassed, detail });
  assert.equal(bypassed, false, `${name}: ${detail}`);
}

function httpRequest(method: string, path: string, headers: Record<string, string>, body = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: broker.httpPort, method, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('access-control bypasses of an anonymous client', () => {
  let publisher: MqttClient;
  before(async () => {
    publisher = await client('bypass-publisher');
  });

  for (const filter of ['#', '+/secret', '+/+', '$share/g/#']) {
    test(`--deny-subscribe private/# through ${filter}`, async () => {
      const c = await client(`bypass-${filter.replace(/[^a-z]/gi, '')}-${Math.random().toString(36).slice(2, 6)}`);
      const code = await subscribe(c, filter);
      await subscribe(c, 'public/marker');
      const got = receivedUntil(c, 'public/marker');
      await publisher.publishAsync('private/secret', 'the secret', { qos: 1 });
      await publisher.publishAsync('public/marker', 'public/marker', { qos: 1 });
      const topics = await got;
      verdict(`subscribe ${filter}`, topics.includes('private/secret'), `SUBACK 0x${code.toString(16)}, received ${JSON.stringify(topics)}`);
      c.end(true);
    });
  }

  test('--deny-subscribe private/# through replay (eddy-from earliest on #)', async () => {
    await publisher.publishAsync('private/history', 'old secret', { qos: 1 });
    const c = await client('bypass-replay');
    await subscribe(c, 'public/marker');
    const got = receivedUntil(c, 'public/replay-marker');
    const code = await subscribe(c, '#', { userProperties: { 'eddy-from': 'earliest' } });
    await publisher.publishAsync('public/replay-marker', 'public/replay-marker', { qos: 1 });
    const topics = await got;
    verdict('replay eddy-from=earliest', topics.includes('private/history') || topics.includes('private/secret'), `SUBACK 0x${code.toString(16)}, received ${JSON.stringify(topics.slice(0, 10))}`);
    c.end(true);
  });

  test('--deny-subscribe private/# through SSE ?filter=%23', async () => {
    let sse: SseClient | undefined;
    let status = 200;
    try {
      sse = await SseClient.open(`http://127.0.0.1:${broker.httpPort}/v1/subscribe?filter=%23`);
    } catch (err) {
      status = Number(/^(\d+)/.exec((err as Error).message)?.[1] ?? 0);
    }
    if (!sse) return verdict('SSE filter=#', false, `refused with ${status}`);
    await publisher.publishAsync('private/secret', 'the secret', { qos: 1 });
    await publisher.publishAsync('public/sse-marker', 'public/sse-marker', { qos: 1 });
    const topics: string[] = [];
    const deadline = Date.now() + 5000;
    while (!topics.includes('public/sse-marker') && Date.now() < deadline) {
      const events = await sse.take(topics.length + 1, deadline - Date.now());
      topics.length = 0;
      for (const e of events) topics.push(e.event);
    }
    sse.close();
    assert.ok(topics.includes('public/sse-marker'), `marker arrived: ${JSON.stringify(topics)}`);
    verdict('SSE filter=#', topics.includes('private/secret'), `received ${JSON.stringify(topics)}`);
  });

  test('--deny-publish control/# through a publish into $DLQ/… and a redrive', async () => {
    const watcher = await client('bypass-door');
    await subscribe(watcher, 'control/door');
    await subscribe(watcher, 'public/door-marker');
    const got = receivedUntil(watcher, 'public/door-marker');
    let puback = 'accepted';
    await publisher.publishAsync('$DLQ/control/door', 'OPEN-THE-DOOR', { qos: 1 }).catch((err: Error) => (puback = err.message));
    const redrive = await httpRequest('POST', '/v1/dlq/redrive', { 'content-type': 'application/json' });
    await publisher.publishAsync('public/door-marker', 'public/door-marker', { qos: 1 });
    const topics = await got;
    verdict('DLQ publish + redrive', topics.includes('control/door'), `PUBLISH $DLQ/control/door: ${puback}; redrive ${redrive}; received ${JSON.stringify(topics)}`);
  });

  test("joining the broker's eddy-dlq group", async () => {
    const c = await client('bypass-dlq-group');
    const code = await subscribe(c, '$share/eddy-dlq/$DLQ/#');
    verdict('join eddy-dlq', code < 0x80, `SUBACK 0x${code.toString(16)}`);
    c.end(true);
  });

  test('a cross-site text/plain POST (CSRF) to /v1/publish', async () => {
    const status = await httpRequest('POST', '/v1/publish/public/csrf', { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' }, 'forged');
    verdict('CSRF POST', status === 202 || status === 200, `answered ${status}`);
  });

  test('a WebSocket upgrade at /mqtt from another Origin', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: broker.httpPort,
        path: '/mqtt',
        headers: { connection: 'Upgrade', upgrade: 'websocket', origin: 'http://evil.example', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-protocol': 'mqtt' },
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    verdict('WebSocket Origin', status === 101, `answered ${status}`);
  });
});
