import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import tls from 'node:tls';
import pino from 'pino';
import type { MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import type { PeerInfo } from '../src/core/admission/peer.js';
import { splitAltNames } from '../src/transport/tls.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { onPath } from './helpers/path.js';
import { tempDirs } from './helpers/temp-dir.js';
import { TestPki, attemptTls, pem, type CertificateFiles } from './helpers/tls.js';

const tempDir = tempDirs('eddy-tls-mqtt-');

/** A logger whose lines the test reads (the broker's debug line for each TLS client names its certificate). */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { logger: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) }), lines };
}

/** The PeerInfo of the connection that holds `clientId`'s session (what the admission pipeline will read). */
function peerOf(server: EddyServer, clientId: string): PeerInfo | undefined {
  return (server.broker.sessions.get(clientId)?.link as unknown as { peer?: PeerInfo } | undefined)?.peer;
}

let pki: TestPki;
let other: TestPki;
let serverCert: CertificateFiles;
let alice: CertificateFiles;
let mallory: CertificateFiles;
before(() => {
  const dir = tempDir();
  pki = new TestPki(dir, 'ca');
  other = new TestPki(dir, 'other-ca');
  serverCert = pki.server('server');
  alice = pki.client('alice', 'alice');
  mallory = other.client('mallory', 'mallory');
});

describe('MQTT over TLS, client certificates requested (--tls-ca) but not required', () => {
  let server: EddyServer;
  let lines: Array<Record<string, unknown>>;
  const clients: MqttClient[] = [];
  before(async () => {
    const captured = capturingLogger();
    lines = captured.lines;
    // A CA makes certificates an identity, so clients without one are anonymous: let them in here.
    server = await startBroker({ tls: { ...serverCert, ca: pki.ca.cert, port: 0 }, auth: { allowAnonymous: true }, logger: captured.logger });
  });
  after(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {});
    await server.stop();
  });

  test('the server names the TLS listener, next to plain TCP', () => {
    assert.ok(server.mqtts && server.mqtts.port > 0 && server.mqtts.port !== server.mqtt.port);
    assert.equal(server.mqttsUrl, `mqtts://127.0.0.1:${server.mqtts.port}`);
  });

  for (const protocolVersion of [4, 5] as const) {
    test(`mqtt.js v${protocolVersion} round-trips a message over mqtts`, async () => {
      const options = { protocolVersion, ca: pem(pki.ca.cert) };
      const sub = await connectClient(server.mqttsUrl!, { ...options, clientId: `tls-sub-${protocolVersion}` });
      clients.push(sub);
      const inbox = collect(sub);
      await sub.subscribeAsync(`tls/${protocolVersion}`, { qos: 1 });
      const pub = await connectClient(server.mqttsUrl!, options);
      clients.push(pub);
      await pub.publishAsync(`tls/${protocolVersion}`, 'over TLS', { qos: 1 });
      const [message] = await inbox.take(1);
      assert.equal(message!.payload.toString(), 'over TLS');
      const peer = peerOf(server, `tls-sub-${protocolVersion}`);
      assert.equal(peer?.transport, 'tls');
      assert.equal(peer?.certificate, undefined, 'no client certificate was sent');
    });
  }

  test('a client that does not trust the CA is refused by its own verification', async () => {
    await assert.rejects(connectClient(server.mqttsUrl!, { protocolVersion: 5 }), (err: NodeJS.ErrnoException) => err.code === 'SELF_SIGNED_CERT_IN_CHAIN');
  });

  test('TLS 1.1 is refused; TLS 1.2 and 1.3 are accepted', async () => {
    const old = { ca: pem(pki.ca.cert), minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
    // Control: this client can speak TLS 1.1, to a server that allows it.
    const lenient = tls.createServer({ cert: pem(serverCert.cert), key: pem(serverCert.key), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
    await new Promise<void>((resolve) => lenient.listen(0, '127.0.0.1', resolve));
    const control = await new Promise<string | null>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: (lenient.address() as { port: number }).port, ...old }, () => resolve(c.getProtocol()));
      c.on('error', reject);
    });
    lenient.close();
    assert.equal(control, 'TLSv1.1');

    const refused = await attemptTls(server.mqtts!.port, old);
    assert.equal(refused.connack, false);
    assert.match(refused.error ?? '', /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const ok = await attemptTls(server.mqtts!.port, { ca: pem(pki.ca.cert), minVersion: version, maxVersion: version });
      assert.equal(ok.connack, true, `${version}: ${ok.error}`);
      assert.equal(ok.protocol, version);
      ok.socket.destroy();
    }
  });

  test('a verified client certificate reaches the connection: CN, alt names, fingerprint', async () => {
    const client = await connectClient(server.mqttsUrl!, { protocolVersion: 5, clientId: 'tls-alice', ca: pem(pki.ca.cert), cert: pem(alice.cert), key: pem(alice.key) });
    clients.push(client);
    const peer = peerOf(server, 'tls-alice');
    assert.equal(peer?.transport, 'tls');
    assert.equal(peer?.certificate?.authorized, true);
    assert.equal(peer?.certificate?.commonName, 'alice');
    assert.deepEqual(peer?.certificate?.altNames, ['email:alice@example.com', 'URI:spiffe://eddy.test/alice']);
    assert.match(peer?.certificate?.fingerprint256 ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    // And the broker's debug line says so, for the socket of this client.
    const port = (client.stream as unknown as tls.TLSSocket).localPort;
    const line = lines.find((l) => l.remote === `127.0.0.1:${port}` && String(l.msg).startsWith('TLS client connected'));
    assert.equal((line?.certificate as { commonName?: string } | undefined)?.commonName, 'alice');
    assert.match(String(line?.msg), /CN=alice \(verified\)/);
  });

  test('a certificate from another CA connects, marked as not verified', async () => {
    const client = await connectClient(server.mqttsUrl!, { protocolVersion: 5, clientId: 'tls-mallory', ca: pem(pki.ca.cert), cert: pem(mallory.cert), key: pem(mallory.key) });
    clients.push(client);
    const certificate = peerOf(server, 'tls-mallory')?.certificate;
    assert.equal(certificate?.authorized, false);
    assert.equal(certificate?.commonName, 'mallory');
    assert.match(certificate?.authorizationError ?? '', /UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
  });
});

describe('--require-client-cert', () => {
  let server: EddyServer;
  let lines: Array<Record<string, unknown>>;
  const trust = (): { ca: Buffer } => ({ ca: pem(pki.ca.cert) });
  before(async () => {
    const captured = capturingLogger();
    lines = captured.lines;
    server = await startBroker({ tls: { ...serverCert, ca: pki.ca.cert, requireClientCert: true, port: 0 }, logger: captured.logger });
  });
  after(() => server.stop());

  test('no certificate: the handshake is refused', async () => {
    const attempt = await attemptTls(server.mqtts!.port, trust());
    assert.equal(attempt.connack, false);
    assert.match(attempt.error ?? '', /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|ECONNRESET/);
  });

  test('a certificate from another CA: refused', async () => {
    const attempt = await attemptTls(server.mqtts!.port, { ...trust(), cert: pem(mallory.cert), key: pem(mallory.key) });
    assert.equal(attempt.connack, false);
    // Node ends the socket without an alert when the certificate does not verify.
    assert.match(attempt.error ?? '', /UNKNOWN_CA|BAD_CERTIFICATE|ECONNRESET|closed/);
    await waitFor(() => lines.some((l) => String(l.msg).startsWith('TLS handshake failed: client certificate not verified') && /UNABLE_TO_(VERIFY|GET_ISSUER)/.test(String(l.certificate))), 'the refusal in the log');
  });

  test('a certificate the CA signed: connected, and the PeerInfo carries its CN', async () => {
    const client = await connectClient(server.mqttsUrl!, { protocolVersion: 5, clientId: 'required-alice', ...trust(), cert: pem(alice.cert), key: pem(alice.key) });
    try {
      const peer = peerOf(server, 'required-alice');
      assert.equal(peer?.certificate?.commonName, 'alice');
      assert.equal(peer?.certificate?.authorized, true);
    } finally {
      await client.endAsync();
    }
  });
});

describe('mosquitto_pub and mosquitto_sub over TLS', { skip: ['mosquitto_pub', 'mosquitto_sub'].some((t) => !onPath(t)) && 'mosquitto clients not installed' }, () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker({ tls: { ...serverCert, ca: pki.ca.cert, requireClientCert: true, port: 0 } });
  });
  after(() => server.stop());

  test('--cafile, --cert and --key: a message goes from mosquitto_pub to mosquitto_sub', async () => {
    const tlsArgs = ['-h', 'localhost', '-p', String(server.mqtts!.port), '--cafile', pki.ca.cert, '--cert', alice.cert, '--key', alice.key];
    const sub = spawn('mosquitto_sub', ['-V', '5', ...tlsArgs, '-i', 'mosq-tls-sub', '-t', 'mosq/tls', '-C', '1', '-W', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    sub.stdout.on('data', (d: Buffer) => (out += d));
    sub.stderr.on('data', (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => sub.once('close', resolve));
    await waitFor(() => server.broker.sessions.get('mosq-tls-sub')?.subscriptions.has('mosq/tls') === true || sub.exitCode !== null, 'mosquitto_sub to subscribe');
    const pub = spawn('mosquitto_pub', ['-V', '311', ...tlsArgs, '-t', 'mosq/tls', '-m', 'from mosquitto over TLS', '-q', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let pubErr = '';
    pub.stderr.on('data', (d: Buffer) => (pubErr += d));
    assert.equal(await new Promise((resolve) => pub.once('close', resolve)), 0, pubErr);
    assert.equal(await exited, 0, err);
    assert.equal(out.trim(), 'from mosquitto over TLS');
  });

  test('without --cert the broker refuses mosquitto_sub', async () => {
    const sub = spawn('mosquitto_sub', ['-h', 'localhost', '-p', String(server.mqtts!.port), '--cafile', pki.ca.cert, '-t', 'x', '-C', '1', '-W', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const code = await new Promise<number | null>((resolve) => sub.once('close', resolve));
    assert.notEqual(code, 0);
  });
});

test('subjectAltName entries are split without cutting quoted values', () => {
  assert.deepEqual(splitAltNames('DNS:a.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1'), ['DNS:a.example', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']);
  assert.deepEqual(splitAltNames('URI:"http://a/,b", email:x@y'), ['URI:http://a/,b', 'email:x@y']);
  assert.deepEqual(splitAltNames(undefined), []);
});

async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await sleep(20);
  }
}
