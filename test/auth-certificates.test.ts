import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { EddyServer } from '../src/server.js';
import { run, startBroker } from './helpers/broker.js';
import { aclFile, passwordFile } from './helpers/auth.js';
import { connectClient } from './helpers/mqtt.js';
import { tempDirs } from './helpers/temp-dir.js';
import { TestPki, pem, type CertificateFiles } from './helpers/tls.js';

/** A verified client certificate is an identity: its CN (or a configured SAN) is the user, and the ACL applies. */
const tempDir = tempDirs('eddy-auth-cert-');

describe('client certificates authenticate', () => {
  let server: EddyServer;
  let pki: TestPki;
  let serverCert: CertificateFiles;
  let aliceCert: CertificateFiles;
  let malloryCert: CertificateFiles;

  before(async () => {
    const dir = tempDir();
    pki = new TestPki(dir, 'ca');
    const other = new TestPki(dir, 'other');
    serverCert = pki.server('server');
    aliceCert = pki.client('alice', 'alice');
    malloryCert = other.client('mallory', 'alice'); // the same CN, from a CA the broker does not trust
    const acl = aclFile(dir, [{ user: '*', allow: ['all'], topics: ['fridge/%u/#'] }]);
    // The password file gives roles to certificate users too.
    const passwd = await passwordFile(dir, { alice: { password: 'unused-by-certificates', roles: ['admin'] } });
    server = await startBroker({ tls: { cert: serverCert.cert, key: serverCert.key, ca: pki.ca.cert, port: 0, httpPort: 0 }, auth: { acl, passwordFile: passwd } });
  });
  after(() => server.stop());

  const options = (cert?: CertificateFiles): Record<string, unknown> => ({
    protocolVersion: 5,
    ca: pem(pki.ca.cert),
    ...(cert ? { cert: pem(cert.cert), key: pem(cert.key) } : {}),
  });

  test('alice by her certificate: connected as alice; %u rules apply to her', async () => {
    const client = await connectClient(server.mqttsUrl!, options(aliceCert));
    await client.publishAsync('fridge/alice/level', '40', { qos: 1 });
    const refused = await client.publishAsync('fridge/bob/level', '40', { qos: 1 }).then(
      () => 0,
      (err: Error & { code?: number }) => err.code,
    );
    assert.equal(refused, 0x87);
    const session = server.broker.sessions.get(client.options.clientId!);
    assert.deepEqual({ user: session?.identity.user, method: session?.identity.method, roles: session?.identity.roles }, { user: 'alice', method: 'certificate', roles: ['admin'] });
    client.end(true);
  });

  test('no certificate and no credentials: refused as anonymous (0x87); another CA\'s certificate: not an identity', async () => {
    const none = await connectClient(server.mqttsUrl!, options()).then(
      () => 'connected',
      (err: Error & { code?: number }) => err.code,
    );
    assert.equal(none, 0x87);
    const foreign = await connectClient(server.mqttsUrl!, options(malloryCert)).then(
      () => 'connected',
      (err: Error & { code?: number }) => err.code,
    );
    assert.equal(foreign, 0x87, 'an unverified certificate names nobody');
  });

  test('mosquitto_pub with --cafile/--cert/--key publishes as its certificate user', async () => {
    const sub = await connectClient(server.mqttsUrl!, options(aliceCert));
    const got: string[] = [];
    sub.on('message', (_t, p) => got.push(p.toString()));
    await sub.subscribeAsync('fridge/alice/#', { qos: 1 });
    const result = await run('mosquitto_pub', [
      '-h', '127.0.0.1', '-p', String(server.mqtts!.port), '-V', '5', '--cafile', pki.ca.cert, '--cert', aliceCert.cert, '--key', aliceCert.key,
      '-t', 'fridge/alice/door', '-m', 'closed', '-q', '1',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const deadline = Date.now() + 5000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got, ['closed']);
    sub.end(true);
  });

  test('HTTPS with the client certificate: the admin route answers for alice (admin by the password file)', async () => {
    const result = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.ca.cert, '--cert', aliceCert.cert, '--key', aliceCert.key, `${server.httpsUrl}/v1/dlq`]);
    assert.equal(result.stdout, '200');
    const anonymous = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.ca.cert, `${server.httpsUrl}/v1/dlq`]);
    assert.equal(anonymous.stdout, '401');
  });
});
