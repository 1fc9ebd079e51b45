import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import type { PeerInfo } from '../src/core/admission/peer.js';
import { peerOfRequest } from '../src/http/peer.js';
import { run, startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { tempDirs } from './helpers/temp-dir.js';
import { TestPki, pem, type CertificateFiles } from './helpers/tls.js';

const tempDir = tempDirs('eddy-tls-http-');

let pki: TestPki;
let serverCert: CertificateFiles;
let alice: CertificateFiles;
before(() => {
  pki = new TestPki(tempDir());
  serverCert = pki.server('server');
  alice = pki.client('alice', 'alice');
});

const curl = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => run('curl', ['-sS', '--max-time', '10', ...args]);

function peerOf(server: EddyServer, clientId: string): PeerInfo | undefined {
  return (server.broker.sessions.get(clientId)?.link as unknown as { peer?: PeerInfo } | undefined)?.peer;
}

describe('tls.http: the HTTP port serves HTTPS and WSS', () => {
  let server: EddyServer;
  const clients: MqttClient[] = [];
  before(async () => {
    // A CA makes certificates an identity, so clients without one are anonymous: let them in here.
    server = await startBroker({ tls: { ...serverCert, ca: pki.ca.cert, port: 0, http: true }, auth: { allowAnonymous: true } });
  });
  after(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {});
    await server.stop();
  });

  test('the URLs say https and wss', () => {
    assert.equal(server.httpUrl, `https://127.0.0.1:${server.http.port}`);
    assert.equal(server.httpsUrl, server.httpUrl);
    assert.equal(server.wsUrl, `wss://127.0.0.1:${server.http.port}/mqtt`);
    assert.equal(server.https, undefined, 'no second listener');
  });

  test('the live document lists the TLS listeners, and a client certificate only on them', async () => {
    const answer = await curl(['--cacert', pki.ca.cert, `${server.httpUrl}/asyncapi.json`]);
    assert.equal(answer.code, 0, answer.stderr);
    const doc = JSON.parse(answer.stdout) as { servers: Record<string, { host: string; protocol: string; security?: Array<{ $ref: string }> }> };
    assert.deepEqual(Object.keys(doc.servers).sort(), ['https', 'mqtt', 'mqtts', 'wss']);
    assert.equal(doc.servers.mqtts!.host, `127.0.0.1:${server.mqtts!.port}`);
    assert.equal(doc.servers.mqtts!.protocol, 'secure-mqtt');
    assert.equal(doc.servers.wss!.host, `127.0.0.1:${server.http.port}`);
    const x509 = { $ref: '#/components/securitySchemes/X509' };
    for (const name of ['mqtts', 'wss', 'https']) assert.ok(doc.servers[name]!.security?.some((s) => s.$ref === x509.$ref), `${name} takes a certificate`);
    assert.ok(!doc.servers.mqtt!.security?.some((s) => s.$ref === x509.$ref), 'plain MQTT takes none');
  });

  test('curl --cacert gets /healthz over HTTPS; plain HTTP on that port gets no answer', async () => {
    const health = await curl(['--cacert', pki.ca.cert, `${server.httpUrl}/healthz`]);
    assert.equal(health.code, 0, health.stderr);
    assert.equal((JSON.parse(health.stdout) as { status: string }).status, 'ok');
    const plain = await curl([`http://127.0.0.1:${server.http.port}/healthz`]);
    assert.notEqual(plain.code, 0);
    const untrusted = await curl([`${server.httpUrl}/healthz`]);
    assert.equal(untrusted.code, 60, 'curl: peer certificate cannot be authenticated with known CA certificates');
  });

  test('an HTTPS publish reaches an MQTT subscriber', async () => {
    const sub = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    clients.push(sub);
    const inbox = collect(sub);
    await sub.subscribeAsync('https/in', { qos: 1 });
    const res = await curl(['--cacert', pki.ca.cert, '-X', 'POST', '--data-binary', 'posted over https', '-w', '\n%{http_code}', `${server.httpUrl}/v1/publish/https/in`]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim().split('\n').pop(), '202');
    const [message] = await inbox.take(1);
    assert.equal(message!.payload.toString(), 'posted over https');
  });

  test('mqtt.js over WSS round-trips; its PeerInfo is wss with the client certificate', async () => {
    const sub = await connectClient(server.wsUrl, { protocolVersion: 5, clientId: 'wss-alice', ca: pem(pki.ca.cert), cert: pem(alice.cert), key: pem(alice.key) });
    clients.push(sub);
    const inbox = collect(sub);
    await sub.subscribeAsync('wss/echo', { qos: 1 });
    const pub = await connectClient(server.wsUrl, { protocolVersion: 4, clientId: 'wss-anonymous', ca: pem(pki.ca.cert) });
    clients.push(pub);
    await pub.publishAsync('wss/echo', 'over wss', { qos: 1 });
    assert.equal((await inbox.take(1))[0]!.payload.toString(), 'over wss');
    const peer = peerOf(server, 'wss-alice');
    assert.equal(peer?.transport, 'wss');
    assert.match(peer?.remote ?? '', /^wss:127\.0\.0\.1:\d+$/);
    assert.equal(peer?.certificate?.commonName, 'alice');
    assert.equal(peer?.certificate?.authorized, true);
    assert.equal(peerOf(server, 'wss-anonymous')?.certificate, undefined);
  });
});

describe('tls.httpPort: a second, HTTPS listener beside plain HTTP', () => {
  let server: EddyServer;
  before(async () => {
    server = await startBroker({ tls: { ...serverCert, port: 0, httpPort: 0 }, limits: { maxHttpConnections: 2, httpHeadersTimeout: 1, httpRequestTimeout: 2 } });
  });
  after(() => server.stop());

  const healthz = async (): Promise<{ http: Record<string, number> }> => (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { http: Record<string, number> };

  test('plain HTTP stays on the HTTP port, HTTPS answers on its own', async () => {
    assert.equal(server.httpUrl, `http://127.0.0.1:${server.http.port}`);
    assert.ok(server.https && server.https.port !== server.http.port);
    assert.equal(server.httpsUrl, `https://127.0.0.1:${server.https.port}`);
    assert.equal((await fetch(`${server.httpUrl}/healthz`)).status, 200);
    const secure = await curl(['--cacert', pki.ca.cert, `${server.httpsUrl}/healthz`]);
    assert.equal(secure.code, 0, secure.stderr);
    assert.equal((JSON.parse(secure.stdout) as { status: string }).status, 'ok');
  });

  test('WSS on the HTTPS listener: transport wss, no certificate asked for without a CA', async () => {
    const client = await connectClient(server.wssUrl!, { protocolVersion: 5, clientId: 'second-wss', ca: pem(pki.ca.cert) });
    try {
      const peer = peerOf(server, 'second-wss');
      assert.equal(peer?.transport, 'wss');
      assert.equal(peer?.certificate, undefined);
    } finally {
      await client.endAsync();
    }
  });

  test('a TLS handshake that never comes is cut at httpHeadersTimeout and counted with the HTTP timeouts', async () => {
    const before = (await healthz()).http.headersTimeouts!;
    const socket = net.connect(server.https!.port, '127.0.0.1');
    socket.on('error', () => {});
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 5000, `closed after ${took} ms`);
    assert.equal((await healthz()).http.headersTimeouts, before + 1);
  });

  test('maxHttpConnections holds on the HTTPS listener too', async () => {
    const before = (await healthz()).http.refusedConnections!;
    // Two TLS connections fill the HTTPS listener's cap (2); the third is closed at accept.
    const open: tls.TLSSocket[] = [];
    for (let i = 0; i < 2; i++) {
      const socket = tls.connect({ host: '127.0.0.1', port: server.https!.port, ca: pem(pki.ca.cert) });
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      open.push(socket);
    }
    try {
      const third = tls.connect({ host: '127.0.0.1', port: server.https!.port, ca: pem(pki.ca.cert) });
      const outcome = await new Promise<string>((resolve) => {
        third.once('secureConnect', () => resolve('connected'));
        third.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      });
      third.destroy();
      assert.equal(outcome, 'ECONNRESET');
      assert.equal((await healthz()).http.refusedConnections, before + 1);
    } finally {
      for (const socket of open) socket.destroy();
    }
  });
});

describe('peerOfRequest', () => {
  test('HTTPS with a client certificate: transport https and the certificate; plain HTTP: http', async () => {
    const seen: PeerInfo[] = [];
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      seen.push(peerOfRequest(req));
      res.end('ok');
    };
    const secure = https.createServer({ cert: pem(serverCert.cert), key: pem(serverCert.key), ca: pem(pki.ca.cert), requestCert: true, rejectUnauthorized: false }, handler);
    const plain = http.createServer(handler);
    await Promise.all([secure, plain].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    try {
      const get = (client: typeof http | typeof https, port: number, options: https.RequestOptions = {}): Promise<void> =>
        new Promise((resolve, reject) => client.get({ host: '127.0.0.1', port, path: '/', agent: false, ...options }, (res) => res.resume().on('end', resolve)).on('error', reject));
      await get(https, (secure.address() as net.AddressInfo).port, { ca: pem(pki.ca.cert), cert: pem(alice.cert), key: pem(alice.key) });
      await get(http, (plain.address() as net.AddressInfo).port);
      assert.equal(seen[0]?.transport, 'https');
      assert.equal(seen[0]?.certificate?.commonName, 'alice');
      assert.equal(seen[0]?.certificate?.authorized, true);
      assert.equal(seen[0]?.address, '127.0.0.1');
      assert.equal(seen[1]?.transport, 'http');
      assert.equal(seen[1]?.certificate, undefined);
    } finally {
      secure.close();
      plain.close();
    }
  });
});

test('stop() does not wait for TLS handshakes that never come (MQTT and HTTPS)', async () => {
  const server = await startBroker({ tls: { ...serverCert, port: 0, httpPort: 0 } });
  const sockets = [server.mqtts!.port, server.https!.port].map((port) => net.connect(port, '127.0.0.1').on('error', () => {}));
  await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('connect', resolve))));
  // Both listeners have accepted them (a served request proves the HTTPS accept loop ran past them).
  assert.equal((await curl(['--cacert', pki.ca.cert, `${server.httpsUrl}/healthz`])).code, 0);
  const started = Date.now();
  await server.stop();
  const took = Date.now() - started;
  // The handshake timeouts are 10 s; the shutdown grace is 1 s.
  assert.ok(took < 3000, `stop() took ${took} ms`);
  await Promise.all(sockets.map((s) => new Promise((resolve) => (s.closed ? resolve(null) : s.once('close', resolve)))));
});
