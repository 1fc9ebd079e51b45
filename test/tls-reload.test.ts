import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { EDDY_BIN, run } from './helpers/broker.js';
import { killQuietly, start, type Running } from './helpers/cli-process.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { tempDirs } from './helpers/temp-dir.js';
import { TestPki, attemptTls, pem } from './helpers/tls.js';

const tempDir = tempDirs('eddy-tls-reload-');
const children: Running[] = [];
const clients: MqttClient[] = [];
after(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {});
  for (const c of children.splice(0)) killQuietly(c.child.pid);
});

/** Starts `eddy broker` with these TLS flags and waits for the ready line; resolves with the MQTT-over-TLS port. */
async function tlsBroker(args: string[], cwd?: string): Promise<{ broker: Running; mqtts: number }> {
  const broker = start(['broker', '--memory', '--port', '0', '--http-port', '0', '--tls-port', '0', ...args], { cwd });
  children.push(broker);
  const ready = /eddy ready mqtt=\S+ http=\S+ mqtts=127\.0\.0\.1:(\d+)/;
  await broker.waitFor(({ stdout }) => ready.test(stdout), 'ready line with mqtts=', 15_000);
  return { broker, mqtts: Number(ready.exec(broker.stdout())![1]) };
}

const count = (broker: Running, pattern: RegExp): number => (broker.stderr().match(new RegExp(pattern.source, 'g')) ?? []).length;

describe('SIGHUP reloads the TLS certificate without dropping connections', () => {
  let pki: TestPki;
  let dir: string;
  before(() => {
    dir = tempDir();
    pki = new TestPki(dir);
  });

  test('a new certificate is in force for new connections; an open one keeps working; a broken file keeps the new one', async () => {
    const first = pki.server('first', 'eddy-first', 1000);
    const cert = path.join(dir, 'live.crt');
    const key = path.join(dir, 'live.key');
    fs.copyFileSync(first.cert, cert);
    fs.copyFileSync(first.key, key);
    const { broker, mqtts } = await tlsBroker(['--tls-cert', cert, '--tls-key', key]);
    const trust = { ca: pem(pki.ca.cert) };
    assert.equal((await attemptTls(mqtts, trust)).serverSerial, '03E8');

    const existing = await connectClient(`mqtts://127.0.0.1:${mqtts}`, { protocolVersion: 5, ...trust });
    clients.push(existing);
    let closes = 0;
    existing.on('close', () => closes++);
    const inbox = collect(existing);
    await existing.subscribeAsync('reload/echo', { qos: 1 });

    const second = pki.server('second', 'eddy-second', 2000);
    fs.copyFileSync(second.cert, cert);
    fs.copyFileSync(second.key, key);
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => count(broker, /"msg":"reloaded the TLS certificate/) === 1, 'TLS reload line');
    assert.match(broker.stderr(), /reloaded the TLS certificate \(CN=eddy-second, serial 07D0, valid until /);

    await existing.publishAsync('reload/echo', 'after the reload', { qos: 1 });
    assert.equal((await inbox.take(1))[0]!.payload.toString(), 'after the reload');
    const fresh = await attemptTls(mqtts, trust);
    assert.equal(fresh.connack, true, fresh.error);
    assert.equal(fresh.serverSerial, '07D0', 'a new connection sees the new certificate');
    assert.equal(fresh.socket.getPeerCertificate().subject.CN, 'eddy-second');
    fresh.socket.destroy();

    // A broken certificate file: logged, and the certificate in force stays.
    fs.writeFileSync(cert, 'not a certificate\n');
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => count(broker, /"msg":"TLS reload failed/) === 1, 'TLS reload failure line');
    assert.match(broker.stderr(), /TLS reload failed, keeping the current certificate and key: TLS certificate \S+live\.crt holds no PEM certificate/);
    // A key that is not the certificate's: the same.
    fs.copyFileSync(second.cert, cert);
    fs.copyFileSync(first.key, key);
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => count(broker, /"msg":"TLS reload failed/) === 2, 'second TLS reload failure line');
    assert.match(broker.stderr(), /TLS key \S+live\.key does not belong to the certificate/);

    const still = await attemptTls(mqtts, trust);
    assert.equal(still.connack, true, still.error);
    assert.equal(still.serverSerial, '07D0');
    still.socket.destroy();
    await existing.publishAsync('reload/echo', 'after the failed reloads', { qos: 1 });
    assert.equal((await inbox.take(2))[1]!.payload.toString(), 'after the failed reloads');
    assert.equal(closes, 0, 'the open connection was never dropped');

    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
  });
});

describe('TLS in the config file and flags', () => {
  let pki: TestPki;
  const dir = tempDir();
  before(() => {
    fs.mkdirSync(path.join(dir, 'certs'));
    pki = new TestPki(path.join(dir, 'certs'));
    pki.server('server');
  });

  test('tls paths are relative to the config file, wherever the broker starts', async () => {
    const config = path.join(dir, 'eddy.yaml');
    fs.writeFileSync(config, 'tls:\n  cert: certs/server.crt\n  key: certs/server.key\n  ca: certs/ca.crt\n  port: 0\n');
    const { broker, mqtts } = await tlsBroker(['--config', config], tempDir());
    assert.equal((await attemptTls(mqtts, { ca: pem(pki.ca.cert) })).connack, true);
    assert.match(broker.stderr(), /"clientCertificates":"requested"/);
    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
  });

  const c = (file: string): string => path.join(dir, 'certs', file);
  const cases: Array<[string, string[], string | undefined, RegExp]> = [
    ['a certificate without its key', ['--tls-cert', c('server.crt')], undefined, /^eddy: --tls-cert \(tls\.cert\) needs --tls-key \(tls\.key\)/],
    ['a missing file', ['--tls-cert', c('nope.crt'), '--tls-key', c('server.key')], undefined, /^eddy: cannot read TLS certificate \S+nope\.crt: ENOENT$/],
    ['a key for another certificate', ['--tls-cert', c('server.crt'), '--tls-key', c('ca.key')], undefined, /^eddy: TLS key \S+ca\.key does not belong to the certificate/],
    ['--require-client-cert without a CA', ['--tls-cert', c('server.crt'), '--tls-key', c('server.key'), '--require-client-cert'], undefined, /needs --tls-ca \(tls\.ca\)/],
    ['a CA file with no certificate', ['--tls-cert', c('server.crt'), '--tls-key', c('server.key'), '--tls-ca', c('server.key')], undefined, /TLS CA \S+ holds no PEM certificate/],
    ['tls.http with tls.httpPort', ['--tls-cert', c('server.crt'), '--tls-key', c('server.key'), '--tls-http', '--tls-http-port', '0'], undefined, /exclude each other/],
    ['one port twice', ['--tls-cert', c('server.crt'), '--tls-key', c('server.key'), '--port', '18830', '--tls-port', '18830'], undefined, /--port \(port\) and --tls-port \(tls\.port\) are both 18830/],
    ['an unknown tls key', [], 'tls:\n  cert: certs/server.crt\n  key: certs/server.key\n  verify: true\n', /unknown key tls\.verify \(known: cert, key, ca, port, requireClientCert, http, httpPort\)/],
    ['a tls port that is not a number', [], 'tls:\n  cert: certs/server.crt\n  key: certs/server.key\n  port: "8883"\n', /tls\.port must be a port number/],
  ];
  for (const [name, args, file, expected] of cases) {
    test(`refused with one line and exit 2: ${name}`, async () => {
      const extra = file === undefined ? [] : ['--config', path.join(dir, `bad-${cases.findIndex((c) => c[0] === name)}.yaml`)];
      if (file !== undefined) fs.writeFileSync(extra[1]!, file);
      const result = await run(process.execPath, [EDDY_BIN, 'broker', '--memory', ...args, ...extra], { timeoutMs: 15_000 });
      assert.equal(result.code, 2, result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, expected);
      assert.equal(result.stdout, '', 'no ready line');
    });
  }
});
