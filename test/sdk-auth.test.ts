import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, ConnectError, type EddyClient } from '@eddy/client';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { RawBroker } from './helpers/raw-broker.js';
import { tempDirs } from './helpers/temp-dir.js';
import { TestPki, pem, type CertificateFiles } from './helpers/tls.js';

const tempDir = tempDirs('eddy-sdk-auth-');
const clients: EddyClient[] = [];
after(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
});

/** An unsigned JWT (the SDK only reads it; the broker would verify it). */
function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;
}

const fast = { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } };

describe('SDK credentials', () => {
  let raw: RawBroker;
  before(async () => {
    raw = await RawBroker.start();
  });
  after(() => raw.close());
  const url = (): string => `mqtt://127.0.0.1:${raw.port}`;
  const passwords = (from: number): string[] => raw.connects.slice(from).map((c) => c.password?.toString() ?? '');

  test('a password function is called before every connect, and its result goes in that CONNECT', async () => {
    const start = raw.connects.length;
    let calls = 0;
    const client = await connect(url(), { username: 'svc', password: async () => `token-${++calls}`, ...fast });
    clients.push(client);
    await raw.waitForConnects(start + 1);
    assert.deepEqual(passwords(start), ['token-1']);
    assert.equal(raw.connects[start]!.username, 'svc');
    raw.dropAll();
    await raw.waitForConnects(start + 2);
    assert.deepEqual(passwords(start), ['token-1', 'token-2']);
    assert.equal(calls, 2);
    await client.publish('after/reconnect', 'x');
    await client.close();
  });

  test('a JWT password is refreshed before its exp: DISCONNECT, then a CONNECT with a fresh token', async () => {
    const start = raw.connects.length;
    const issued: Array<{ token: string; exp: number }> = [];
    const token = (): string => {
      const exp = Math.floor(Date.now() / 1000) + 3;
      const t = jwt({ sub: 'svc', exp, n: issued.length });
      issued.push({ token: t, exp: exp * 1000 });
      return t;
    };
    const client = await connect(url(), { password: token, ...fast });
    clients.push(client);
    await raw.waitForConnects(start + 2, 5000);
    assert.deepEqual(passwords(start).slice(0, 2), [issued[0]!.token, issued[1]!.token]);
    assert.ok(Date.now() < issued[0]!.exp, 'the new CONNECT came before the first token expired');
    const firstDisconnect = raw.packets.findIndex((p, i) => p.cmd === 'disconnect' && i > raw.packets.indexOf(raw.connects[start]!));
    assert.ok(firstDisconnect >= 0 && firstDisconnect < raw.packets.indexOf(raw.connects[start + 1]!), 'the old connection ended with a DISCONNECT');
    const result = await client.publish('after/refresh', { ok: true });
    assert.ok(result.id);
    await client.close();
  });

  test('tokenExpiresAt: an opaque token is refreshed by the expiry it gives', async () => {
    const start = raw.connects.length;
    let n = 0;
    const client = await connect(url(), { password: () => `opaque-${++n}`, tokenExpiresAt: () => Date.now() + 2500, ...fast });
    clients.push(client);
    await raw.waitForConnects(start + 2, 5000);
    assert.deepEqual(passwords(start).slice(0, 2), ['opaque-1', 'opaque-2']);
    await client.close();
  });

  test('credentials in the URL, percent-decoded; the options win', async () => {
    const start = raw.connects.length;
    const withUrl = await connect(`mqtt://u%40x:p%2Fw@127.0.0.1:${raw.port}`, fast);
    clients.push(withUrl);
    const overridden = await connect(`mqtt://u%40x:p%2Fw@127.0.0.1:${raw.port}`, { password: 'from-options', ...fast });
    clients.push(overridden);
    await raw.waitForConnects(start + 2);
    assert.deepEqual(raw.connects.slice(start).map((c) => [c.username, c.password?.toString()]), [['u@x', 'p/w'], ['u@x', 'from-options']]);
    // Each subscription has its own connection: it carries them too.
    await withUrl.subscribe('creds/#', () => {});
    await raw.waitForConnects(start + 3);
    assert.deepEqual([raw.connects[start + 2]!.username, raw.connects[start + 2]!.password?.toString()], ['u@x', 'p/w']);
    await withUrl.close();
    await overridden.close();
  });

  test('a password function that fails: connect names it when it gives up', async () => {
    await assert.rejects(
      connect(url(), { password: () => Promise.reject(new Error('token service down')), connectTimeoutMs: 400, ...fast }),
      (err: Error) => err instanceof ConnectError && /the password function failed: token service down/.test(err.message),
    );
  });
});

describe('SDK over mqtts', () => {
  let pki: TestPki;
  let alice: CertificateFiles;
  let server: EddyServer;
  let strict: EddyServer;
  before(async () => {
    pki = new TestPki(tempDir());
    const cert = pki.server('server');
    alice = pki.client('alice', 'alice');
    server = await startBroker({ tls: { ...cert, port: 0 } });
    strict = await startBroker({ tls: { ...cert, ca: pki.ca.cert, requireClientCert: true, port: 0 } });
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
    await server.stop();
    await strict.stop();
  });

  test('the ca option: publish and subscribe round-trip over TLS', async () => {
    const client = await connect(server.mqttsUrl!, { ca: pem(pki.ca.cert) });
    clients.push(client);
    const got: unknown[] = [];
    let arrived!: () => void;
    const done = new Promise<void>((resolve) => (arrived = resolve));
    await client.subscribe('sdk/tls', (m) => {
      got.push(m.payload);
      arrived();
    });
    await client.publish('sdk/tls', { over: 'tls' });
    await done;
    assert.deepEqual(got, [{ over: 'tls' }]);
  });

  test('without the ca: a ConnectError at once, not after the connect timeout', async () => {
    const started = Date.now();
    await assert.rejects(connect(server.mqttsUrl!, { connectTimeoutMs: 8000 }), (err: Error) => err instanceof ConnectError && /TLS: .*certificate.*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/.test(err.message));
    assert.ok(Date.now() - started < 4000, 'failed fast');
  });

  test('a broker that requires a client certificate: cert and key connect; without them a ConnectError at once', async () => {
    const client = await connect(strict.mqttsUrl!, { ca: pem(pki.ca.cert), cert: pem(alice.cert), key: pem(alice.key) });
    clients.push(client);
    await client.publish('sdk/strict', 'x');
    const started = Date.now();
    await assert.rejects(connect(strict.mqttsUrl!, { ca: pem(pki.ca.cert), connectTimeoutMs: 8000 }), (err: Error) => err instanceof ConnectError && /CERTIFICATE_REQUIRED/.test(err.message));
    assert.ok(Date.now() - started < 4000, 'failed fast');
  });
});
