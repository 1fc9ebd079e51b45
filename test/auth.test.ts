import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import type { Packet } from 'mqtt-packet';
import { pino } from 'pino';
import type { EddyServer } from '../src/server.js';
import type { AdmissionConfig } from '../src/core/admission/index.js';
import { startBroker, run } from './helpers/broker.js';
import { aclFile, basic, JWT_SECRET, keyPair, passwordFile, signToken } from './helpers/auth.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { isPublish } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';

type Connack = Extract<Packet, { cmd: 'connack' }>;

const tempDir = tempDirs('eddy-auth-');
const t = tracker();
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});
after(() => t.closeAll());

/** Log lines the broker writes, to check what is (and is never) in them. */
function capturedLogger(): { logger: pino.Logger; text: () => string } {
  let text = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => ((text += chunk.toString()), cb()) });
  return { logger: pino({ level: 'debug' }, sink), text: () => text };
}

async function start(auth: AdmissionConfig, extra: Parameters<typeof startBroker>[0] = {}): Promise<EddyServer> {
  server = await startBroker({ auth, ...extra });
  return server;
}

/** CONNECT with these credentials; the CONNACK. */
async function connack(port: number, connect: Record<string, unknown>, version: 4 | 5 = 5): Promise<Connack> {
  const { client, connack: ack } = await RawClient.open(port, { clientId: `c-${Math.random().toString(36).slice(2)}`, ...connect }, version);
  t.track(client);
  return ack;
}

const USERS = { alice: { password: 'alice-pw', roles: ['admin'] }, bob: { password: 'bob-pw' } };

describe('password file', () => {
  test('right credentials connect; a wrong password or unknown user gets 0x86 (v5) / 4 (v3.1.1); none gets 0x87 / 5', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS) });
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('bob-pw') })).reasonCode, 0);
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('bob-pw') }, 4)).returnCode, 0);
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('nope') })).reasonCode, 0x86);
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('nope') }, 4)).returnCode, 4);
    assert.equal((await connack(s.mqtt.port, { username: 'mallory', password: Buffer.from('x') })).reasonCode, 0x86);
    assert.equal((await connack(s.mqtt.port, {})).reasonCode, 0x87);
    assert.equal((await connack(s.mqtt.port, {}, 4)).returnCode, 5);
    const health = (await (await fetch(`${s.httpUrl}/healthz`)).json()) as { auth: { authFailures: Record<string, number> } };
    assert.deepEqual(health.auth.authFailures, { 'bad-credentials': 3, anonymous: 2 });
  });

  test('--allow-anonymous lets clients without credentials in, while bad credentials are still refused', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS), allowAnonymous: true });
    assert.equal((await connack(s.mqtt.port, {})).reasonCode, 0);
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('nope') })).reasonCode, 0x86);
  });

  test('mosquitto_pub and mosquitto_sub authenticate with -u/-P', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS) });
    const sub = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5, username: 'alice', password: 'alice-pw' }));
    const got: string[] = [];
    sub.on('message', (_t, p) => got.push(p.toString()));
    await sub.subscribeAsync('mosq/#', { qos: 1 });
    const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.mqtt.port), '-V', '5', '-u', 'bob', '-P', 'bob-pw', '-t', 'mosq/a', '-m', 'from mosquitto', '-q', '1']);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.mqtt.port), '-V', '5', '-u', 'bob', '-P', 'wrong', '-t', 'mosq/a', '-m', 'x', '-q', '1']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Bad user name or password|not authori[sz]ed/i);
    const deadline = Date.now() + 5000;
    while (got.length === 0 && Date.now() < deadline) await sleep(20);
    assert.deepEqual(got, ['from mosquitto']);
  });

  test('no log line holds a password or a hash', async () => {
    const dir = tempDir();
    const file = await passwordFile(dir, USERS);
    const hash = fs.readFileSync(file, 'utf8').split('\n')[0]!.split(':')[1]!;
    const { logger, text } = capturedLogger();
    const s = await start({ passwordFile: file }, { logger });
    await connack(s.mqtt.port, { username: 'alice', password: Buffer.from('alice-pw') });
    await connack(s.mqtt.port, { username: 'alice', password: Buffer.from('guessed-secret') });
    await fetch(`${s.httpUrl}/v1/publish/x`, { method: 'POST', body: 'b', headers: { authorization: basic('bob', 'http-guess') } });
    await sleep(50);
    const logged = text();
    assert.match(logged, /authentication refused/);
    for (const secret of ['alice-pw', 'guessed-secret', 'http-guess', hash.slice(10)]) assert.ok(!logged.includes(secret), `the log holds ${secret}`);
  });

  test('HTTP takes Basic: 202 with it, 401 (and WWW-Authenticate) without or with a wrong one', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS) });
    const good = await fetch(`${s.httpUrl}/v1/publish/http/a`, { method: 'POST', body: 'x', headers: { authorization: basic('bob', 'bob-pw') } });
    assert.equal(good.status, 202);
    const none = await fetch(`${s.httpUrl}/v1/publish/http/a`, { method: 'POST', body: 'x' });
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /Basic/);
    const wrong = await fetch(`${s.httpUrl}/v1/publish/http/a`, { method: 'POST', body: 'x', headers: { authorization: basic('bob', 'nope') } });
    assert.equal(wrong.status, 401);
    const sse = await fetch(`${s.httpUrl}/v1/subscribe?filter=http/%23`);
    assert.equal(sse.status, 401);
  });

  test('after repeated failures from one address, its answers slow down', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS) });
    const timed = async (): Promise<number> => {
      const started = performance.now();
      await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('guess') });
      return performance.now() - started;
    };
    for (let i = 0; i < 5; i++) await timed();
    const sixth = await timed();
    const seventh = await timed();
    assert.ok(sixth >= 90, `the 6th failure waited ${sixth} ms`);
    assert.ok(seventh >= 190, `the 7th waited longer (${seventh} ms)`);
  });
});

describe('JWT', () => {
  test('HS256: the token as the MQTT password (any user name) connects as its sub; expired, not yet valid, bad signature, wrong issuer or audience are refused', async () => {
    const s = await start({ jwt: { secret: JWT_SECRET, issuer: 'eddy-test', audience: 'devices' } });
    const good = await signToken(JWT_SECRET, { sub: 'dev-1' }, { expiresIn: '1h', issuer: 'eddy-test', audience: 'devices' });
    assert.equal((await connack(s.mqtt.port, { username: 'whatever', password: Buffer.from(good) })).reasonCode, 0);
    const refusedTokens = [
      await signToken(JWT_SECRET, { sub: 'dev-1' }, { expiresIn: -10, issuer: 'eddy-test', audience: 'devices' }),
      await signToken(JWT_SECRET, { sub: 'dev-1' }, { notBefore: '1h', issuer: 'eddy-test', audience: 'devices' }),
      await signToken(`${JWT_SECRET}-other`, { sub: 'dev-1' }, { issuer: 'eddy-test', audience: 'devices' }),
      await signToken(JWT_SECRET, { sub: 'dev-1' }, { issuer: 'someone-else', audience: 'devices' }),
      await signToken(JWT_SECRET, { sub: 'dev-1' }, { issuer: 'eddy-test', audience: 'browsers' }),
      await signToken(JWT_SECRET, { roles: ['admin'] }, { issuer: 'eddy-test', audience: 'devices' }),
    ];
    for (const token of refusedTokens) assert.equal((await connack(s.mqtt.port, { username: 'x', password: Buffer.from(token) })).reasonCode, 0x86);
  });

  test('RS256 from a public key file and ES256 from a JWKS file', async () => {
    const dir = tempDir();
    const rsa = await keyPair(dir, 'rsa');
    let s = await start({ jwt: { publicKeyFile: rsa.publicKeyFile } });
    assert.equal((await connack(s.mqtt.port, { username: 'x', password: Buffer.from(await signToken(rsa.privateKey, { sub: 'r' }, { alg: 'RS256' })) })).reasonCode, 0);
    await s.stop();
    const ec = await keyPair(dir, 'ec');
    s = server = await startBroker({ auth: { jwt: { jwksFile: ec.jwksFile } } });
    assert.equal((await connack(s.mqtt.port, { username: 'x', password: Buffer.from(await signToken(ec.privateKey, { sub: 'e' }, { alg: 'ES256', kid: ec.kid })) })).reasonCode, 0);
    // A token signed by another key of the same kind is refused.
    const other = await keyPair(tempDir(), 'ec');
    assert.equal((await connack(s.mqtt.port, { username: 'x', password: Buffer.from(await signToken(other.privateKey, { sub: 'e' }, { alg: 'ES256', kid: ec.kid })) })).reasonCode, 0x86);
  });

  test('a connection ends with 0xA0 when its token expires', async () => {
    const s = await start({ jwt: { secret: JWT_SECRET } });
    const token = await signToken(JWT_SECRET, { sub: 'short' }, { expiresIn: Math.floor(Date.now() / 1000) + 2 });
    const { client, connack: ack } = await RawClient.open(s.mqtt.port, { clientId: 'expiring', username: 'x', password: Buffer.from(token) });
    t.track(client);
    assert.equal(ack.reasonCode, 0);
    const disconnect = (await client.next('disconnect', 5000)) as Extract<Packet, { cmd: 'disconnect' }>;
    assert.equal(disconnect.reasonCode, 0xa0);
  });

  test('claims apply: roles (admin routes over Bearer) and acl (narrowing what the ACL file allows)', async () => {
    const dir = tempDir();
    const s = await start({ jwt: { secret: JWT_SECRET }, acl: aclFile(dir, [{ user: '*', allow: ['all'], topics: ['#'] }]) });
    const admin = await signToken(JWT_SECRET, { sub: 'ops', roles: ['admin'] });
    const plain = await signToken(JWT_SECRET, { sub: 'dev' });
    assert.equal((await fetch(`${s.httpUrl}/v1/dlq`, { headers: { authorization: `Bearer ${admin}` } })).status, 200);
    assert.equal((await fetch(`${s.httpUrl}/v1/dlq`, { headers: { authorization: `Bearer ${plain}` } })).status, 403);
    assert.equal((await fetch(`${s.httpUrl}/v1/dlq`)).status, 401);
    const narrowed = await signToken(JWT_SECRET, { sub: 'dev', acl: [{ user: '*', allow: ['publish'], topics: ['dev/%u/#'] }] });
    const { client } = await RawClient.open(s.mqtt.port, { clientId: 'narrow', username: 'x', password: Buffer.from(narrowed) });
    t.track(client);
    client.send({ cmd: 'publish', topic: 'dev/dev/temp', payload: 'ok', qos: 1, messageId: 1, retain: false, dup: false } as Packet);
    assert.equal(((await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>).reasonCode ?? 0, 0);
    client.send({ cmd: 'publish', topic: 'other/topic', payload: 'no', qos: 1, messageId: 2, retain: false, dup: false } as Packet);
    assert.equal(((await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>).reasonCode, 0x87);
  });
});

describe('quotas', () => {
  test('publishRate: past it a QoS 1 publish gets 0x97 (rate), a QoS 0 flood DISCONNECT 0x96; connectionsPerUser: past it CONNACK 0x97', async () => {
    const s = await start({ passwordFile: await passwordFile(tempDir(), USERS), quotas: { publishRate: 5, connectionsPerUser: 1 } });
    const { client } = await RawClient.open(s.mqtt.port, { clientId: 'rate', username: 'bob', password: Buffer.from('bob-pw') });
    t.track(client);
    const codes: number[] = [];
    for (let i = 1; i <= 7; i++) {
      client.send({ cmd: 'publish', topic: 'rate/x', payload: 'r', qos: 1, messageId: i, retain: false, dup: false } as Packet);
      codes.push(((await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>).reasonCode ?? 0);
    }
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0x97, 0x97]);
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('bob-pw') })).reasonCode, 0x97);
    // The quota frees with the connection.
    client.close();
    await client.closed;
    await sleep(50);
    const { client: flood } = await RawClient.open(s.mqtt.port, { clientId: 'flood', username: 'bob', password: Buffer.from('bob-pw') });
    t.track(flood);
    assert.equal(flood.isClosed, false);
    await sleep(1100); // a full bucket
    for (let i = 0; i < 10; i++) flood.send({ cmd: 'publish', topic: 'rate/x', payload: 'q0', qos: 0, retain: false, dup: false } as Packet);
    const disconnect = (await flood.next('disconnect')) as Extract<Packet, { cmd: 'disconnect' }>;
    assert.equal(disconnect.reasonCode, 0x96);
  });
});

describe('reload', () => {
  test('a user removed from the password file is disconnected (0x87) and refused from then on', async () => {
    const dir = tempDir();
    const file = await passwordFile(dir, USERS);
    const s = await start({ passwordFile: file });
    const { client } = await RawClient.open(s.mqtt.port, { clientId: 'bob-1', username: 'bob', password: Buffer.from('bob-pw') });
    t.track(client);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').split('\n').filter((l) => !l.startsWith('bob:')).join('\n'));
    const result = await s.reload({});
    assert.deepEqual(result.auth, ['password file']);
    const disconnect = (await client.next('disconnect')) as Extract<Packet, { cmd: 'disconnect' }>;
    assert.equal(disconnect.reasonCode, 0x87);
    assert.equal((await connack(s.mqtt.port, { username: 'bob', password: Buffer.from('bob-pw') })).reasonCode, 0x86);
  });

  test('a right revoked in the ACL stops deliveries at once, without a reconnect', async () => {
    const dir = tempDir();
    const file = aclFile(dir, [{ user: '*', allow: ['all'], topics: ['news/#'] }]);
    const s = await start({ acl: file });
    const { client: sub } = await RawClient.open(s.mqtt.port, { clientId: 'reader' });
    t.track(sub);
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'news/#', qos: 0 }] } as Packet);
    await sub.next('suback');
    aclFile(dir, [{ user: '*', deny: ['subscribe'], topics: ['news/secret/#'] }, { user: '*', allow: ['all'], topics: ['news/#'] }]);
    await s.reload({});
    const pub = t.track(await connectClient(s.mqttUrl, { protocolVersion: 5 }));
    await pub.publishAsync('news/secret/plan', 'hidden', { qos: 1 });
    await pub.publishAsync('news/public', 'marker', { qos: 1 });
    const before = await sub.until(isPublish('news/public', 'marker'));
    assert.deepEqual(before.filter((p) => p.cmd === 'publish'), [], 'the revoked topic is no longer delivered');
  });
});

describe('no authentication configured', () => {
  test('listening beyond loopback logs a warning at start and at each connection', async () => {
    const { logger, text } = capturedLogger();
    const s = await startBroker({ host: '0.0.0.0', logger });
    assert.match(text(), /no authentication is configured and the broker listens beyond loopback/);
    server = s;
    // Connect through a non-loopback address of this machine, if it has one.
    const os = await import('node:os');
    const address = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    if (address) {
      const client = t.track(await connectClient(`mqtt://${address}:${s.mqtt.port}`, { protocolVersion: 5 }));
      await sleep(50);
      assert.match(text(), /connected from beyond loopback to a broker with no authentication/);
      client.end(true);
    }
  });
});
