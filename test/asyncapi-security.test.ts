import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import asyncapiParser from '@asyncapi/parser';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import type { AdmissionConfig } from '../src/core/admission/index.js';
import { loadDocument } from '../src/asyncapi/load.js';
import { generateClient } from '../src/asyncapi/codegen/generate.js';
import { run, startBroker } from './helpers/broker.js';
import { basic, JWT_SECRET, passwordFile, signToken } from './helpers/auth.js';
import { collect, connectClient, publishWithAck } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';

const { Parser } = asyncapiParser;
const root = fileURLToPath(new URL('../../', import.meta.url));
const SECURED = path.join(root, 'test/fixtures/asyncapi/secured.yaml');
const TSC = path.join(root, 'node_modules/typescript/bin/tsc');

const tempDir = tempDirs('eddy-asyncapi-security-');
const t = tracker();
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});
after(() => t.closeAll());

const USERS = { alice: { password: 'alice-pw' }, bob: { password: 'bob-pw' } };

async function start(auth: AdmissionConfig | undefined, extra: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker({ asyncapi: [SECURED], ...(auth ? { auth } : {}), ...extra });
  return server;
}

/** Password file users, a JWT secret, and anonymous clients let in: every kind of identity at once. */
async function startMixed(): Promise<EddyServer> {
  return start({ passwordFile: await passwordFile(tempDir(), USERS), jwt: { secret: JWT_SECRET }, allowAnonymous: true });
}

async function client(s: EddyServer, options: IClientOptions = {}): Promise<MqttClient> {
  return t.track(await connectClient(s.mqttUrl, { protocolVersion: 5, ...options }));
}
const alice = (s: EddyServer, options: IClientOptions = {}): Promise<MqttClient> => client(s, { username: 'alice', password: 'alice-pw', ...options });

function capturedLogger(): { logger: pino.Logger; messages: () => string[] } {
  let text = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => ((text += chunk.toString()), cb()) });
  return { logger: pino({ level: 'warn' }, sink), messages: () => text.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

const ORDER = JSON.stringify({ item: 'tea' });

describe('AsyncAPI security: send operations', () => {
  it('MQTT: an anonymous publisher is refused 0x87 on a channel whose send operation requires userPassword, a password user is accepted, and nothing refused is delivered', async () => {
    const s = await startMixed();
    const watcher = await alice(s);
    const inbox = collect(watcher);
    await watcher.subscribeAsync('orders/#', { qos: 1 });
    const anonymous = await client(s);
    const refused = await publishWithAck(anonymous, 'orders/1/placed', ORDER);
    assert.equal(refused.reasonCode, 0x87);
    assert.match(refused.reasonString ?? '', /orders\/1\/placed: not authorized: the AsyncAPI document requires authentication \(userPassword\) for publishing here/);
    // MQTT 3.1.1 cannot refuse: acknowledged, not delivered.
    const legacy = await client(s, { protocolVersion: 4 });
    await legacy.publishAsync('orders/2/placed', ORDER, { qos: 1 });
    assert.equal((await publishWithAck(anonymous, 'public/news', '{}')).reasonCode, 0, 'an unsecured channel takes anonymous publishes');
    const publisher = await alice(s);
    assert.equal((await publishWithAck(publisher, 'orders/3/placed', ORDER)).reasonCode, 0);
    const before = await beforeMarker(inbox.messages, isPublish('orders/3/placed'));
    assert.deepEqual(before.map((m) => m.topic), [], 'the refused publishes were not delivered');
  });

  it('MQTT: a channel requiring httpBearerToken takes a JWT and refuses a password user (0x87) and an anonymous one; a will is held to the same', async () => {
    const s = await startMixed();
    const token = await signToken(JWT_SECRET, { sub: 'device-7' }, { expiresIn: '1h' });
    const device = await client(s, { username: 'device-7', password: token });
    assert.equal((await publishWithAck(device, 'telemetry/d7', '{"value":1}')).reasonCode, 0);
    const byPassword = await publishWithAck(await alice(s), 'telemetry/d7', '{"value":2}');
    assert.equal(byPassword.reasonCode, 0x87);
    assert.match(byPassword.reasonString ?? '', /requires http bearer for publishing here, not a password/);
    assert.equal((await publishWithAck(await client(s), 'telemetry/d7', '{"value":3}')).reasonCode, 0x87);
    await assert.rejects(client(s, { will: { topic: 'orders/9/placed', payload: Buffer.from(ORDER), qos: 1, retain: false } }), /Not authorized/i);
  });

  it('HTTP: anonymous 401 with WWW-Authenticate, a password user (Basic) 202, a password user on a JWT channel 403, a Bearer JWT 202', async () => {
    const s = await startMixed();
    const watcher = await alice(s);
    const inbox = collect(watcher);
    await watcher.subscribeAsync('orders/#', { qos: 1 });
    const post = (topic: string, headers: Record<string, string> = {}, body = ORDER): Promise<Response> =>
      fetch(`${s.httpUrl}/v1/publish/${topic}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const anonymous = await post('orders/1/placed');
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /Basic/);
    assert.match(((await anonymous.json()) as { message: string }).message, /requires authentication \(userPassword\)/);
    const wrongKind = await post('telemetry/d1', { authorization: basic('alice', 'alice-pw') }, '{"value":1}');
    assert.equal(wrongKind.status, 403);
    assert.equal(((await wrongKind.json()) as { error: string }).error, 'forbidden');
    const token = await signToken(JWT_SECRET, { sub: 'device-1' }, { expiresIn: '1h' });
    assert.equal((await post('telemetry/d1', { authorization: `Bearer ${token}` }, '{"value":1}')).status, 202);
    assert.equal((await post('orders/2/placed', { authorization: basic('alice', 'alice-pw') })).status, 202);
    const before = await beforeMarker(inbox.messages, isPublish('orders/2/placed'));
    assert.deepEqual(before.map((m) => m.topic), []);
  });
});

describe('AsyncAPI security: receive operations', () => {
  it('an anonymous SUBSCRIBE to a filter only matching a secured channel is refused 0x87; a wider filter is granted and skips that channel, live and retained; a password user receives', async () => {
    const s = await startMixed();
    const publisher = await client(s); // raiseAlert has no security: anyone may publish alerts
    await publisher.publishAsync('alerts/north', '{"text":"retained"}', { qos: 1, retain: true });
    await publisher.publishAsync('alerts/x/y', 'undeclared, retained', { qos: 1, retain: true });

    const { client: raw } = await RawClient.open(s.mqtt.port, { clientId: 'anonymous-raw' });
    t.track(raw);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: ['alerts/north', 'alerts/+', '$share/g/alerts/+', 'public/news'].map((topic) => ({ topic, qos: 1 as const })) });
    const suback = (await raw.next('suback')) as Extract<Packet, { cmd: 'suback' }>;
    assert.deepEqual(suback.granted, [0x87, 0x87, 0x87, 1]);
    assert.match(suback.properties?.reasonString ?? '', /not authorized: the AsyncAPI document requires authentication \(userPassword\) for receiving here/);
    const anonymous = await client(s);
    const anonymousInbox = collect(anonymous);
    const [wide] = await anonymous.subscribeAsync('alerts/#', { qos: 1 });
    assert.equal(wide!.qos, 1, 'alerts/# also matches undeclared topics: granted');
    const reader = await alice(s);
    const aliceInbox = collect(reader);
    await reader.subscribeAsync('alerts/#', { qos: 1 });

    // Retained first (the live marker is held until they are sent), then live.
    await publisher.publishAsync('alerts/z/marker-1', 'm', { qos: 1 });
    assert.deepEqual((await beforeMarker(anonymousInbox.messages, isPublish('alerts/z/marker-1'))).map((m) => m.topic), ['alerts/x/y'], 'no retained alert for the anonymous client');
    await publisher.publishAsync('alerts/south', '{"text":"live"}', { qos: 1 });
    await publisher.publishAsync('alerts/z/marker-2', 'm', { qos: 1 });
    const live = (await beforeMarker(anonymousInbox.messages, isPublish('alerts/z/marker-2'))).map((m) => m.topic);
    assert.deepEqual(live, ['alerts/x/y', 'alerts/z/marker-1'], 'no live alert for the anonymous client');
    const got = (await beforeMarker(aliceInbox.messages, isPublish('alerts/z/marker-2'))).map((m) => m.topic).sort();
    assert.deepEqual(got, ['alerts/north', 'alerts/south', 'alerts/x/y', 'alerts/z/marker-1']);

    const sse = await fetch(`${s.httpUrl}/v1/subscribe?filter=alerts/north`);
    assert.equal(sse.status, 403, 'an anonymous SSE stream is refused the same way');
    await sse.arrayBuffer();
  });

  it('a consumer group gives a secured channel\'s messages to a member that may receive them, not to an anonymous member', async () => {
    const s = await startMixed();
    const anonymous = await client(s);
    const anonymousInbox = collect(anonymous);
    await anonymous.subscribeAsync('$share/team/alerts/#', { qos: 1 });
    const member = await alice(s);
    const memberInbox = collect(member);
    await member.subscribeAsync('$share/team/alerts/#', { qos: 1 });
    const publisher = await client(s);
    for (let i = 0; i < 4; i++) await publisher.publishAsync(`alerts/site-${i}`, '{}', { qos: 1 });
    await publisher.publishAsync('alerts/z/marker', 'm', { qos: 1 });
    await memberInbox.take(4);
    assert.ok(anonymousInbox.messages.every((m) => !/^alerts\/site-/.test(m.topic)), 'the anonymous member got no alert');
    assert.deepEqual(memberInbox.messages.slice(0, 4).map((m) => m.topic), ['alerts/site-0', 'alerts/site-1', 'alerts/site-2', 'alerts/site-3']);
  });
});

describe('AsyncAPI security: what is not configured', () => {
  it('no authentication at all: nothing is refused, and a warning at start says the documents require security the broker does not configure', async () => {
    const { logger, messages } = capturedLogger();
    const s = await start(undefined, { logger });
    assert.ok(messages().some((m) => /require security \(userPassword, http bearer, X509\) but the broker configures no authentication/.test(m)), messages().join('\n'));
    const anyone = await client(s);
    const inbox = collect(anyone);
    const [granted] = await anyone.subscribeAsync('alerts/+', { qos: 1 });
    assert.equal(granted!.qos, 1);
    assert.equal((await publishWithAck(anyone, 'orders/1/placed', ORDER)).reasonCode, 0);
    assert.equal((await publishWithAck(anyone, 'alerts/north', '{}')).reasonCode, 0);
    assert.equal((await inbox.take(1))[0]!.topic, 'alerts/north');
  });

  it('a password file only: the warning names the channels no client can publish to (JWT, X509)', async () => {
    const { logger, messages } = capturedLogger();
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS) }, { logger });
    assert.ok(messages().some((m) => /no client may do this: telemetry\/\{device\} \(publish: http bearer\), signed\/documents \(publish: X509\)/.test(m)), messages().join('\n'));
    assert.equal((await publishWithAck(await alice(s), 'signed/documents', '{}')).reasonCode, 0x87);
  });
});

type LiveDoc = {
  servers: Record<string, { protocol: string; security?: Array<{ $ref: string }> }>;
  components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> };
};

describe('AsyncAPI security: the live document lists the schemes the broker applies', () => {
  async function live(s: EddyServer): Promise<LiveDoc> {
    const json = (await (await fetch(`${s.httpUrl}/asyncapi.json`, { headers: { authorization: basic('alice', 'alice-pw') } })).json()) as LiveDoc;
    const parsed = await new Parser().parse(json as never);
    assert.deepEqual(parsed.diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`), []);
    return json;
  }

  it('password file and JWT: userPassword and httpBearerToken on every server; client certificates: X509, for TLS listeners only; nothing configured: none', async () => {
    const file = await passwordFile(tempDir(), USERS);
    let doc = await live(await start({ passwordFile: file, jwt: { secret: JWT_SECRET } }));
    assert.deepEqual(Object.keys(doc.components?.securitySchemes ?? {}), ['userPassword', 'httpBearerToken']);
    const { type, scheme, bearerFormat } = doc.components!.securitySchemes!.httpBearerToken as { type: string; scheme?: string; bearerFormat?: string };
    assert.deepEqual([type, scheme, bearerFormat], ['http', 'bearer', 'JWT']);
    for (const name of ['mqtt', 'ws', 'http']) {
      assert.deepEqual(doc.servers[name]!.security, [{ $ref: '#/components/securitySchemes/userPassword' }, { $ref: '#/components/securitySchemes/httpBearerToken' }], name);
    }
    await server!.stop();
    doc = await live(await start({ passwordFile: file, certificates: { user: 'cn', required: false } }));
    assert.deepEqual(Object.keys(doc.components!.securitySchemes!), ['userPassword', 'X509']);
    for (const name of ['mqtt', 'ws', 'http']) {
      assert.deepEqual(doc.servers[name]!.security, [{ $ref: '#/components/securitySchemes/userPassword' }], `${name}: a listener without TLS takes no certificate`);
    }
    await server!.stop();
    doc = await live(await start(undefined));
    assert.equal(doc.components?.securitySchemes, undefined);
    assert.ok(Object.values(doc.servers).every((srv) => srv.security === undefined));
  });
});

describe('AsyncAPI security: the generated client passes credentials', () => {
  let dir: string;
  type Connected = { bus: { close(): Promise<void> }; api: Record<string, { publish(...args: unknown[]): Promise<unknown> }> };
  let generated: { connectClient(url: string, connection?: Record<string, unknown>, options?: Record<string, unknown>): Promise<Connected> };

  before(async () => {
    fs.mkdirSync(path.join(root, '.tmp'), { recursive: true });
    dir = fs.mkdtempSync(path.join(root, '.tmp', 'codegen-security-'));
    fs.writeFileSync(path.join(dir, 'orders.ts'), generateClient(await loadDocument(SECURED), { fileName: 'orders.ts' }).code);
    // Typed use: credentials (a password function too) and TLS files compile; a wrong type does not.
    fs.writeFileSync(
      path.join(dir, 'usage.ts'),
      `import { connectClient, type ApplicationApi, type ClientApi, type Connected } from './orders.js';
export async function usage(token: () => Promise<string>): Promise<void> {
  const app: Connected<ApplicationApi> = await connectClient('mqtts://broker:8883', { username: 'alice', password: 'pw', ca: 'PEM', cert: Buffer.from('PEM'), key: ['PEM'], clientId: 'orders' });
  await app.api.placeOrder.publish({ orderId: '1' }, { item: 'tea' });
  const peer: Connected<ClientApi> = await connectClient('mqtt://broker', { password: token }, { perspective: 'client' });
  await peer.api.watchOrders.publish({ orderId: '1' }, { item: 'tea' });
  // @ts-expect-error a password is a string or a function giving one
  await connectClient('mqtt://broker', { password: 42 });
  await app.bus.close();
}
`,
    );
    const tsconfig = { compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, skipLibCheck: true, outDir: 'out' }, include: ['*.ts'] };
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    const result = await run(process.execPath, [TSC, '-p', dir], { timeoutMs: 120_000 });
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    generated = (await import(pathToFileURL(path.join(dir, 'out', 'orders.js')).href)) as typeof generated;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('connectClient with username and password publishes where the document requires userPassword; without, the broker refuses it; a wrong password does not connect', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS), allowAnonymous: true });
    const watcher = await alice(s);
    const inbox = collect(watcher);
    await watcher.subscribeAsync('orders/#', { qos: 1 });
    const authed = await generated.connectClient(s.mqttUrl, { username: 'bob', password: 'bob-pw' });
    const anonymous = await generated.connectClient(s.mqttUrl);
    try {
      await assert.rejects(anonymous.api.placeOrder!.publish({ orderId: 'a' }, { item: 'tea' }), (err: Error & { reasonCode?: number }) => err.reasonCode === 0x87);
      await authed.api.placeOrder!.publish({ orderId: 'b' }, { item: 'milk' });
      const [got] = await inbox.take(1);
      assert.equal(got!.topic, 'orders/b/placed', 'only the authenticated publish arrived');
      await assert.rejects(generated.connectClient(s.mqttUrl, { username: 'bob', password: 'wrong', reconnect: { initialDelayMs: 10, maxDelayMs: 10 }, connectTimeoutMs: 500 }));
    } finally {
      await authed.bus.close();
      await anonymous.bus.close();
    }
  });
});
