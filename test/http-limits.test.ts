import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import type { BrokerLimits } from '../src/core/limits.js';
import { DEFAULT_LIMITS } from '../src/core/limits.js';
import { checkDescriptorBudget, softFileLimit } from '../src/http/descriptor-budget.js';
import { checkingIntervalMs } from '../src/http/http-limits.js';
import type { EddyServer } from '../src/server.js';
import { ConfigError } from '../src/util/errors.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { SseClient } from './helpers/sse.js';

/**
 * The HTTP listener's limits against an in-process broker: Node's header, request and idle
 * timeouts as set from the limits, and `maxHttpConnections` counted from accept. Control requests
 * go over connections of their own (`agent: false`), so that no pooled keep-alive connection
 * takes a slot or shows up in the counts.
 */

let server: EddyServer | undefined;
const sockets: net.Socket[] = [];
const clients: MqttClient[] = [];
const streams: SseClient[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) c.end(true);
  for (const s of streams.splice(0)) s.close();
  await server?.stop();
  server = undefined;
});

async function start(limits: Partial<BrokerLimits>): Promise<EddyServer> {
  server = await startBroker({ limits });
  return server;
}

interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent, as text. */
  received(): string;
  /** Resolves with the milliseconds from connect to close. */
  closed: Promise<number>;
}

/** A plain socket to the HTTP port, that reads what comes (a socket that does not read never sees the FIN). */
async function connection(options: { allowHalfOpen?: boolean } = {}): Promise<RawConnection> {
  const socket = net.connect({ port: server!.http.port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
  sockets.push(socket);
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  const closedAt = once(socket, 'close').then(() => Date.now());
  await Promise.race([once(socket, 'connect'), closedAt]);
  const connectedAt = Date.now();
  return { socket, received: () => text, closed: closedAt.then((at) => at - connectedAt) };
}

/** Rejects when `promise` has not settled after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

/** One request on a connection of its own, closed after the answer. */
function request(method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server!.http.port, method, path, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface HttpCounts {
  connections: number;
  refusedConnections: number;
  headersTimeouts: number;
  requestTimeouts: number;
  idleTimeouts: number;
}

async function health(): Promise<{ http: HttpCounts; refusedPublishes: Record<string, number> }> {
  return JSON.parse((await request('GET', '/healthz')).body) as { http: HttpCounts; refusedPublishes: Record<string, number> };
}

async function metric(line: string): Promise<number> {
  const text = (await request('GET', '/metrics')).body;
  const escaped = line.replace(/[{}]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** True once a whole /healthz answer has come: it is sent chunked, so it ends with the last chunk. */
const answered = (text: string, count = 1): boolean => text.split('\r\n0\r\n\r\n').length > count;

/** The JSON body of a raw response (what follows the blank line). */
function jsonBody(response: string): { error: string; message: string } {
  return JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as { error: string; message: string };
}

describe('HTTP timeouts', () => {
  test('request headers that do not arrive within httpHeadersTimeout are answered 408 and the connection closed; a connection that sends nothing too', async () => {
    await start({ httpHeadersTimeout: 1, httpRequestTimeout: 5 });
    const dripping = await connection();
    dripping.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    // Still sending, a header line at a time: the limit is on the whole of the headers, not on silence.
    const drip = setInterval(() => dripping.socket.writable && dripping.socket.write('X-a: b\r\n'), 200);
    const silent = await connection();
    try {
      const [drippedMs, silentMs] = await within(Promise.all([dripping.closed, silent.closed]), 4000, 'slow headers cut');
      for (const [what, ms, conn] of [['dripping', drippedMs, dripping], ['silent', silentMs, silent]] as const) {
        assert.ok(ms >= 900 && ms < 2500, `${what} cut after ${ms} ms`);
        // Node's answer to a request timeout, 408 with Connection: close, here with the gateway's JSON error.
        assert.match(conn.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
        assert.match(conn.received(), /\r\nConnection: close\r\n/i);
        assert.deepEqual(jsonBody(conn.received()), { error: 'request_timeout', message: 'the request headers did not arrive within 1 s (httpHeadersTimeout)' });
      }
    } finally {
      clearInterval(drip);
    }
    const counts = (await health()).http;
    assert.equal(counts.headersTimeouts, 2);
    assert.equal(counts.requestTimeouts, 0);
    assert.equal(await metric('eddy_http_timeouts_total{kind="headers"}'), 2);
  });

  test('a publish body that stops midway is cut off at httpRequestTimeout with 408 and publishes nothing', async () => {
    const s = await start({ httpHeadersTimeout: 1, httpRequestTimeout: 2 });
    const subscriber = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(subscriber);
    const got = collect(subscriber);
    await subscriber.subscribeAsync('partial/#', { qos: 1 });
    const sized = await connection();
    sized.socket.write('POST /v1/publish/partial/sized HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b');
    const chunked = await connection();
    chunked.socket.write('POST /v1/publish/partial/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n');
    const [sizedMs, chunkedMs] = await within(Promise.all([sized.closed, chunked.closed]), 5000, 'unfinished bodies cut');
    for (const [what, ms, conn] of [['sized', sizedMs, sized], ['chunked', chunkedMs, chunked]] as const) {
      assert.ok(ms >= 1900 && ms < 3500, `${what} body cut after ${ms} ms`);
      assert.match(conn.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.deepEqual(jsonBody(conn.received()), { error: 'request_timeout', message: 'the request did not complete within 2 s (httpRequestTimeout)' });
    }
    // The sentinel, published after the cut: it must be the first and only message the subscriber sees.
    assert.equal((await request('POST', '/v1/publish/partial/sentinel', 'sentinel')).status, 202);
    const [first] = await got.take(1);
    assert.equal(first!.topic, 'partial/sentinel');
    assert.deepEqual(got.messages.map((m) => m.topic), ['partial/sentinel']);
    const h = await health();
    assert.equal(h.http.requestTimeouts, 2);
    assert.equal(h.http.headersTimeouts, 0);
    assert.equal(h.refusedPublishes['http-408'], 2, 'counted as refused publishes too');
    assert.equal(await metric('eddy_http_timeouts_total{kind="request"}'), 2);
  });

  test('an idle keep-alive connection is closed after httpIdleTimeout (Node adds a second of grace)', async () => {
    await start({ httpIdleTimeout: 1 });
    const idle = await connection();
    idle.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => answered(idle.received()), 'the first answer');
    assert.match(idle.received(), /\r\nKeep-Alive: timeout=1\r\n/i, 'the answer says how long the connection may idle');
    const ms = await within(idle.closed, 4000, 'idle connection closed');
    assert.ok(ms >= 1000 && ms < 3000, `closed after ${ms} ms`);
    assert.equal((await health()).http.idleTimeouts, 1);
    assert.equal(await metric('eddy_http_timeouts_total{kind="idle"}'), 1);
  });

  test('an SSE stream outlives httpRequestTimeout and httpIdleTimeout, and still receives a message published after them', async () => {
    const s = await start({ httpHeadersTimeout: 1, httpRequestTimeout: 1, httpIdleTimeout: 1 });
    const stream = await SseClient.open(`${s.httpUrl}/v1/subscribe?filter=live/%23`);
    streams.push(stream);
    const opened = Date.now();
    // A control on the same broker: an idle keep-alive connection is closed, so the timeouts are in force.
    const control = await connection();
    control.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(control.closed, 4000, 'the idle control connection closed');
    // Past the request timeout, the idle timeout and its grace, and a few of Node's checks.
    await sleep(Math.max(0, 3000 - (Date.now() - opened)));
    assert.equal((await request('POST', '/v1/publish/live/after', 'still here')).status, 202);
    const [event] = await stream.take(1);
    assert.equal(event!.event, 'live/after');
    assert.equal(event!.data, 'still here');
    const counts = (await health()).http;
    assert.equal(counts.idleTimeouts, 1, 'only the control was closed');
    assert.equal(counts.requestTimeouts + counts.headersTimeouts, 0);
  });

  test('an MQTT-over-WebSocket client outlives the HTTP timeouts', async () => {
    const s = await start({ httpHeadersTimeout: 1, httpRequestTimeout: 1, httpIdleTimeout: 1 });
    const ws = await connectClient(s.wsUrl, { protocolVersion: 5 });
    clients.push(ws);
    let closes = 0;
    ws.on('close', () => closes++);
    const got = collect(ws);
    await ws.subscribeAsync('ws/#', { qos: 1 });
    const opened = Date.now();
    // A control: slow headers on the same listener are cut, so the timeouts are in force.
    const control = await connection();
    control.socket.write('GET /healthz HTTP/1.1\r\n');
    await within(control.closed, 4000, 'the slow control connection cut');
    await sleep(Math.max(0, 3000 - (Date.now() - opened)));
    const publisher = await connectClient(s.mqttUrl, { protocolVersion: 5 });
    clients.push(publisher);
    await publisher.publishAsync('ws/after', 'still here', { qos: 1 });
    const [message] = await got.take(1);
    assert.equal(message!.topic, 'ws/after');
    assert.equal(closes, 0, 'the WebSocket client never lost its connection');
    assert.equal(ws.connected, true);
    assert.equal((await health()).http.headersTimeouts, 1, 'only the control was cut');
  });

  test("a request Node cannot parse is still answered as Node answers it (400, 431 for headers too large), and closed", async () => {
    await start({});
    const garbage = await connection();
    garbage.socket.write('NOT HTTP AT ALL\r\n\r\n');
    await within(garbage.closed, 2000, 'a malformed request closed');
    assert.equal(garbage.received(), 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    const huge = await connection();
    huge.socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await within(huge.closed, 2000, 'headers too large closed');
    assert.equal(huge.received(), 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
    const counts = (await health()).http;
    assert.equal(counts.headersTimeouts + counts.requestTimeouts, 0, 'not counted as timeouts');
  });

  test('an upgrade at a path other than /mqtt is answered 404 and closed, not left half-open', async () => {
    await start({});
    // The client keeps its side open after the server's FIN: the server must close its socket itself.
    const other = await connection({ allowHalfOpen: true });
    const ended = once(other.socket, 'end');
    other.socket.write('GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    await within(ended, 2000, 'the answer to the refused upgrade');
    assert.match(other.received(), /^HTTP\/1\.1 404 Not Found\r\n/);
    const deadline = Date.now() + 2000;
    let open = (await health()).http.connections;
    while (open > 1 && Date.now() < deadline) {
      await sleep(50);
      open = (await health()).http.connections;
    }
    assert.equal(open, 1, 'only the /healthz request itself is open');
  });

  test('limits that cannot work together stop start-up with a ConfigError naming them', async () => {
    await assert.rejects(startBroker({ limits: { httpHeadersTimeout: 10, httpRequestTimeout: 5 } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, /httpHeadersTimeout \(10 s\) must not be longer than httpRequestTimeout \(5 s\)/);
      return true;
    });
    await assert.rejects(startBroker({ limits: { maxHttpConnections: 0 } }), ConfigError);
  });

  test("Node's timeout check runs often enough for a 2 s timeout to fire within a second of it", () => {
    assert.equal(checkingIntervalMs({ ...DEFAULT_LIMITS, httpHeadersTimeout: 2, httpRequestTimeout: 3 }), 500);
    assert.equal(checkingIntervalMs(DEFAULT_LIMITS), 1000);
    assert.equal(checkingIntervalMs({ ...DEFAULT_LIMITS, httpHeadersTimeout: 0, httpRequestTimeout: 0 }), 1000);
  });
});

describe('maxHttpConnections', () => {
  /** Sends a keep-alive GET /healthz on a raw connection and waits for the answer: the connection is then surely accepted. */
  async function served(): Promise<RawConnection> {
    const conn = await connection();
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => answered(conn.received()) || conn.socket.destroyed, 'an answer');
    assert.match(conn.received(), /^HTTP\/1\.1 200 OK\r\n/);
    return conn;
  }

  /** A connection past the cap: closed at once, before a byte of its request is read or answered. */
  async function refused(): Promise<void> {
    const conn = await connection();
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const ms = await within(conn.closed, 2000, 'the connection past the cap closed');
    assert.equal(conn.received(), '', `nothing is answered (closed after ${ms} ms)`);
  }

  test('the connection past the cap is closed at accept; the open ones go on; a freed slot is reusable', async () => {
    await start({ maxHttpConnections: 3 });
    const open = [await served(), await served(), await served()];
    await refused();
    // The three open ones are unaffected: the first takes another request.
    open[0]!.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => answered(open[0]!.received(), 2), 'a second answer on an open connection');
    assert.equal(open[0]!.received().split('HTTP/1.1 200 OK').length, 3);
    // A slot freed is taken again (the server sees the close a moment later: retry until it has).
    open[0]!.socket.destroy();
    let counts: HttpCounts | undefined;
    const deadline = Date.now() + 3000;
    while (!counts && Date.now() < deadline) {
      counts = await health().then((h) => h.http, () => undefined);
      if (!counts) await sleep(20);
    }
    assert.ok(counts, 'a new connection is served once a slot is free');
    assert.equal(counts.connections, 3, 'the two still open and the one answering');
    assert.ok(counts.refusedConnections >= 1);
    assert.equal(await metric('eddy_http_connections_refused_total'), (await health()).http.refusedConnections);
  });

  test('SSE streams count against the cap; WebSockets upgraded at /mqtt do not (the MQTT connection limit counts them)', async () => {
    const s = await start({ maxHttpConnections: 2 });
    const ws = await connectClient(s.wsUrl, { protocolVersion: 5 });
    clients.push(ws);
    const stream = await SseClient.open(`${s.httpUrl}/v1/subscribe?filter=cap/%23`);
    streams.push(stream);
    await served();
    // Two HTTP connections (the stream, the keep-alive one) fill the cap; the WebSocket is not among them.
    await refused();
    // The WebSocket client and the stream both still work.
    const got = collect(ws);
    await ws.subscribeAsync('cap/#', { qos: 1 });
    await ws.publishAsync('cap/ws', 'over ws', { qos: 1 });
    assert.equal((await got.take(1))[0]!.topic, 'cap/ws');
    assert.equal((await stream.take(1))[0]!.data, 'over ws');
  });
});

describe('file descriptor budget', () => {
  const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             63459                63459                processes
Max open files            2048                 4096                 files
Max locked memory         8388608              8388608              bytes
`;

  test('the soft limit is read from /proc/self/limits', { skip: process.platform !== 'linux' }, () => {
    assert.equal(softFileLimit(() => LIMITS), 2048);
    assert.equal(softFileLimit(() => 'Max open files            unlimited            unlimited            files\n'), undefined);
    assert.equal(softFileLimit(() => {
      throw new Error('EACCES');
    }), undefined);
    assert.ok((softFileLimit() ?? 0) > 0, 'the real one is readable here');
  });

  test('a warning names the soft limit and both connection limits when they do not fit, and none when they do', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    assert.equal(checkDescriptorBudget({ maxConnections: 10_000, maxHttpConnections: 1000 }, log, 20_000), undefined);
    assert.deepEqual(lines, []);
    assert.deepEqual(checkDescriptorBudget({ maxConnections: 10_000, maxHttpConnections: 1000 }, log, 2048), { softLimit: 2048, needed: 11_128 });
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as { level: number; msg: string; softLimit: number; maxConnections: number; maxHttpConnections: number };
    assert.equal(entry.level, 40, 'warn');
    assert.match(entry.msg, /file descriptor limit \(2048\) is below maxConnections \(10000\) \+ maxHttpConnections \(1000\) \+ 128 = 11128/);
    assert.deepEqual([entry.softLimit, entry.maxConnections, entry.maxHttpConnections], [2048, 10_000, 1000]);
    assert.equal(checkDescriptorBudget({ maxConnections: 10_000, maxHttpConnections: 1000 }, log, undefined), undefined, 'skipped where the limit is unknown');
  });
});
