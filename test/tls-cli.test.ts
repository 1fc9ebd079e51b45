import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import type { EddyServer } from '../src/server.js';
import { EDDY_BIN, run, startBroker } from './helpers/broker.js';
import { killQuietly, start, type Running } from './helpers/cli-process.js';
import { sleep } from './helpers/mqtt.js';
import { RawBroker } from './helpers/raw-broker.js';
import { tempDirs } from './helpers/temp-dir.js';
import { TestPki, pem, type CertificateFiles } from './helpers/tls.js';

const tempDir = tempDirs('eddy-tls-cli-');
const eddy = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => run(process.execPath, [EDDY_BIN, ...args], { timeoutMs: 20_000 });
const children: Running[] = [];
after(() => {
  for (const c of children.splice(0)) killQuietly(c.child.pid);
});

/** Exactly one line on stderr, and what it says. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${stderr}`);
  return lines[0]!;
}

let pki: TestPki;
let serverCert: CertificateFiles;
let alice: CertificateFiles;
before(() => {
  pki = new TestPki(tempDir());
  serverCert = pki.server('server');
  alice = pki.client('alice', 'alice');
});

describe('eddy pub and eddy sub over mqtts', () => {
  let server: EddyServer;
  let strict: EddyServer;
  before(async () => {
    server = await startBroker({ tls: { ...serverCert, port: 0 } });
    strict = await startBroker({ tls: { ...serverCert, ca: pki.ca.cert, requireClientCert: true, port: 0 } });
  });
  after(async () => {
    await server.stop();
    await strict.stop();
  });

  test('--cafile: eddy sub prints what eddy pub sent, both over TLS', async () => {
    const sub = start(['sub', 'cli/tls', '--url', server.mqttsUrl!, '--cafile', pki.ca.cert, '--client-id', 'cli-tls-sub', '--count', '1']);
    children.push(sub);
    const deadline = Date.now() + 10_000;
    while (!server.broker.sessions.get('cli-tls-sub')?.subscriptions.has('cli/tls')) {
      assert.ok(Date.now() < deadline && sub.child.exitCode === null, `eddy sub did not subscribe: ${sub.stderr()}`);
      await sleep(20);
    }
    const pub = await eddy(['pub', 'cli/tls', 'hello over mqtts', '--url', server.mqttsUrl!, '--cafile', pki.ca.cert]);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal((await sub.finished).code, 0, sub.stderr());
    assert.equal(sub.stdout(), 'hello over mqtts\n');
  });

  test('without --cafile: one line saying the certificate is not trusted, exit 1; --insecure skips the check', async () => {
    const refused = await eddy(['pub', 'cli/tls', 'x', '--url', server.mqttsUrl!]);
    assert.equal(refused.code, 1);
    assert.match(oneLine(refused.stderr), /^eddy: cannot connect to mqtts:\/\/127\.0\.0\.1:\d+: TLS: the broker's certificate is not trusted \(unable to verify the first certificate\); give the CA that signed it with --cafile FILE/);
    const insecure = await eddy(['pub', 'cli/tls', 'x', '--url', server.mqttsUrl!, '--insecure']);
    assert.equal(insecure.code, 0, insecure.stderr);
  });

  test('a broker that requires a client certificate: one line without --cert, connected with --cert/--key', async () => {
    const refused = await eddy(['pub', 'cli/strict', 'x', '--url', strict.mqttsUrl!, '--cafile', pki.ca.cert]);
    assert.equal(refused.code, 1);
    assert.match(oneLine(refused.stderr), /TLS: the broker requires a client certificate; give one with --cert FILE --key FILE$/);
    const ok = await eddy(['pub', 'cli/strict', 'x', '--url', strict.mqttsUrl!, '--cafile', pki.ca.cert, '--cert', alice.cert, '--key', alice.key]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('a plain port under an mqtts:// URL: one line', async () => {
    const result = await eddy(['pub', 'cli/tls', 'x', '--url', `mqtts://127.0.0.1:${server.mqtt.port}`, '--cafile', pki.ca.cert]);
    assert.equal(result.code, 1);
    assert.match(oneLine(result.stderr), /TLS handshake failed: 127\.0\.0\.1 closed the connection before the handshake completed \(a plain port\?\)$/);
  });

  test('TLS flags on a plain URL, a --cert without --key, an unreadable --cafile: usage errors (exit 2)', async () => {
    for (const [args, expected] of [
      [['--url', server.mqttUrl, '--cafile', pki.ca.cert], /^eddy pub: --cafile is for TLS: use an mqtts:\/\/ or wss:\/\/ URL$/],
      [['--url', server.mqttsUrl!, '--cert', alice.cert], /^eddy pub: --cert needs --key, its private key$/],
      [['--url', server.mqttsUrl!, '--cafile', '/nonexistent/ca.pem'], /^eddy pub: cannot read --cafile \/nonexistent\/ca\.pem: ENOENT$/],
    ] as const) {
      const result = await eddy(['pub', 'cli/x', 'x', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(oneLine(result.stderr), expected);
    }
  });
});

describe('credentials on the CONNECT: -u/-P and in the URL', () => {
  let plain: RawBroker;
  let secure: RawBroker;
  let web: RawBroker;
  before(async () => {
    plain = await RawBroker.start();
    secure = await RawBroker.start({ tls: { cert: pem(serverCert.cert), key: pem(serverCert.key) } });
    web = await RawBroker.start({ tls: { cert: pem(serverCert.cert), key: pem(serverCert.key) }, websocket: true });
  });
  after(async () => {
    await plain.close();
    await secure.close();
    await web.close();
  });

  const lastConnect = async (broker: RawBroker, n: number): Promise<{ username?: string; password?: string }> => {
    const connect = (await broker.waitForConnects(n))[n - 1]!;
    return { username: connect.username, password: connect.password?.toString() };
  };

  test('eddy pub -u -P', async () => {
    const result = await eddy(['pub', 'creds/x', 'x', '--url', `mqtt://127.0.0.1:${plain.port}`, '-u', 'alice', '-P', 's3cret']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await lastConnect(plain, 1), { username: 'alice', password: 's3cret' });
  });

  test('eddy pub with user and password in the URL, percent-decoded; a flag wins over the URL', async () => {
    const url = `mqtt://bob:p%40ss%3Aw%2F@127.0.0.1:${plain.port}`;
    assert.equal((await eddy(['pub', 'creds/x', 'x', '--url', url])).code, 0);
    assert.deepEqual(await lastConnect(plain, 2), { username: 'bob', password: 'p@ss:w/' });
    assert.equal((await eddy(['pub', 'creds/x', 'x', '--url', url, '-P', 'from-flag'])).code, 0);
    assert.deepEqual(await lastConnect(plain, 3), { username: 'bob', password: 'from-flag' });
  });

  test('eddy pub -P alone (a JWT): the CONNECT carries it with an empty user name', async () => {
    const result = await eddy(['pub', 'creds/x', 'x', '--url', `mqtt://127.0.0.1:${plain.port}`, '-P', 'eyJhbGciOi.x.y']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await lastConnect(plain, 4), { username: '', password: 'eyJhbGciOi.x.y' });
  });

  test('eddy sub -u -P sends them too', async () => {
    const sub = start(['sub', 'creds/#', '--url', `mqtt://127.0.0.1:${plain.port}`, '-u', 'carol', '-P', 'pw']);
    children.push(sub);
    assert.deepEqual(await lastConnect(plain, 5), { username: 'carol', password: 'pw' });
    // Stopped once subscribed: before that, SIGTERM is not yet the command's to handle.
    const deadline = Date.now() + 10_000;
    while (!plain.packets.some((p) => p.cmd === 'subscribe' && p.subscriptions.some((s) => s.topic === 'creds/#'))) {
      assert.ok(Date.now() < deadline, 'eddy sub subscribes');
      await sleep(20);
    }
    sub.child.kill('SIGTERM');
    assert.equal((await sub.finished).code, 0, sub.stderr());
  });

  test('mqtts:// with credentials in the URL and --cafile', async () => {
    const result = await eddy(['pub', 'creds/x', 'x', '--url', `mqtts://dave:tls%20pw@127.0.0.1:${secure.port}`, '--cafile', pki.ca.cert]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await lastConnect(secure, 1), { username: 'dave', password: 'tls pw' });
  });

  test('wss:// with credentials in the URL and --cafile', async () => {
    const result = await eddy(['pub', 'creds/x', 'x', '--url', `wss://frank:w%2Bs@127.0.0.1:${web.port}/mqtt`, '--cafile', pki.ca.cert]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await lastConnect(web, 1), { username: 'frank', password: 'w+s' });
  });

  test('an error message never shows the password of the URL', async () => {
    const result = await eddy(['pub', 'creds/x', 'x', '--url', 'mqtt://erin:hunter2@127.0.0.1:1']);
    assert.equal(result.code, 1);
    const line = oneLine(result.stderr);
    assert.match(line, /^eddy: cannot connect to mqtt:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/);
    assert.doesNotMatch(line, /hunter2|erin/);
  });
});

describe('eddy dlq: Basic, Bearer and https', () => {
  let recorder: http.Server;
  const seen: Array<string | undefined> = [];
  let https: EddyServer;
  before(async () => {
    recorder = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ waiting: 0, count: 0, messages: [] }));
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    https = await startBroker({ tls: { ...serverCert, port: 0, http: true } });
  });
  after(async () => {
    recorder.close();
    await https.stop();
  });

  test('-u/-P send Basic, --token sends Bearer, URL credentials are Basic', async () => {
    const base = `http://127.0.0.1:${(recorder.address() as net.AddressInfo).port}`;
    assert.equal((await eddy(['dlq', 'list', '--http', base, '-u', 'admin', '-P', 'pa:ss'])).code, 0);
    assert.equal((await eddy(['dlq', 'list', '--http', base, '--token', 'eyJ.abc.def'])).code, 0);
    assert.equal((await eddy(['dlq', 'list', '--http', base.replace('//', '//ops:s%40fe@')])).code, 0);
    assert.deepEqual(seen, [`Basic ${Buffer.from('admin:pa:ss').toString('base64')}`, 'Bearer eyJ.abc.def', `Basic ${Buffer.from('ops:s@fe').toString('base64')}`]);
    const both = await eddy(['dlq', 'list', '--http', base, '-u', 'a', '--token', 't']);
    assert.equal(both.code, 2);
    assert.match(oneLine(both.stderr), /--token \(Bearer\) and a user name\/password \(Basic\) exclude each other/);
  });

  test('https with --cafile; without it one line and exit 1', async () => {
    const ok = await eddy(['dlq', 'list', '--http', https.httpUrl, '--cafile', pki.ca.cert]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, '0 shown, 0 waiting\n');
    const refused = await eddy(['dlq', 'list', '--http', https.httpUrl]);
    assert.equal(refused.code, 1);
    assert.match(oneLine(refused.stderr), /^eddy: cannot reach the broker at https:\/\/127\.0\.0\.1:\d+: TLS: the broker's certificate is not trusted/);
  });
  test('eddy admin takes the same flags: https with --cafile, --insecure, URL credentials', async () => {
    const ok = await eddy(['admin', 'stats', '--http', https.httpUrl, '--cafile', pki.ca.cert, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(typeof (JSON.parse(ok.stdout) as { connections: unknown }).connections, 'number');
    assert.equal((await eddy(['admin', 'clients', '--http', https.httpUrl, '--insecure'])).code, 0);
    const refused = await eddy(['admin', 'clients', '--http', https.httpUrl]);
    assert.equal(refused.code, 1);
    assert.match(oneLine(refused.stderr), /TLS: the broker's certificate is not trusted/);
    const base = `http://127.0.0.1:${(recorder.address() as net.AddressInfo).port}`;
    seen.length = 0;
    await eddy(['admin', 'clients', '--http', base.replace('//', '//ops:s%40fe@')]);
    assert.deepEqual(seen, [`Basic ${Buffer.from('ops:s@fe').toString('base64')}`]);
  });
});
