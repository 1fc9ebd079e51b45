import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { basic, passwordFile } from './helpers/auth.js';
import { tempDirs } from './helpers/temp-dir.js';

const tempDir = tempDirs('eddy-console-route-');
let server: EddyServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker({ sys: { interval: 0 }, ...options });
  return server;
}

/** A raw GET (fetch would unpack gzip and hide the encoding; it would also resolve `..`). */
function rawGet(s: EddyServer, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const url = new URL(s.httpUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: target, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web console: the static route', () => {
  it('serves the page at / and its hashed assets with content types, ETags, 304, gzip and cache headers', async () => {
    const s = await start();
    const page = await rawGet(s, '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache', 'the page is revalidated: it names the current assets');
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    const html = page.body.toString();
    const script = /src="(\/console\/main-[A-Z0-9]{8}\.js)"/.exec(html)?.[1];
    const style = /href="(\/console\/main-[A-Z0-9]{8}\.css)"/.exec(html)?.[1];
    assert.ok(script && style, html);
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from another host');

    const plain = await rawGet(s, script);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(plain.headers['content-encoding'], undefined);
    const zipped = await rawGet(s, script, { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.equal(zipped.headers.vary, 'Accept-Encoding');
    assert.ok(zipped.body.length < plain.body.length / 2);
    assert.deepEqual(gunzipSync(zipped.body), plain.body);
    assert.equal((await rawGet(s, script, { 'accept-encoding': 'gzip;q=0' })).headers['content-encoding'], undefined);
    assert.equal((await rawGet(s, style)).headers['content-type'], 'text/css; charset=utf-8');

    const etag = String(plain.headers.etag);
    const again = await rawGet(s, script, { 'if-none-match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal((await rawGet(s, script, { 'if-none-match': '"other"' })).status, 200);
    const head = await rawGet(s, script, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(plain.body.length));
    assert.equal(head.body.length, 0);
  });

  it('serves only the files it found at start: no traversal, no directory, 404 for others, 405 for other methods', async () => {
    const s = await start();
    for (const target of ['/console/../package.json', '/console/%2e%2e/package.json', '/console/..%2fpackage.json', '/console/', '/console/index.html/..', '/console/nope.js', '/console//etc/passwd']) {
      const answer = await rawGet(s, target);
      assert.equal(answer.status, 404, target);
      assert.equal(JSON.parse(answer.body.toString()).error, 'not_found', target);
    }
    const post = await rawGet(s, '/', {}, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  it('answers 503 when the console is not built, and the rest of the broker goes on', async () => {
    const dir = tempDir();
    const s = await start({ consoleDir: path.join(dir, 'missing') });
    const answer = await rawGet(s, '/');
    assert.equal(answer.status, 503);
    assert.equal(JSON.parse(answer.body.toString()).error, 'console_not_built');
    assert.equal((await rawGet(s, '/healthz')).status, 200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the page needs no credentials (it holds no data); the admin API it reads answers its 401 without a Basic challenge', async () => {
    const file = await passwordFile(tempDir(), { root: { password: 'pw', roles: ['admin'] }, viewer: { password: 'pw' } });
    const s = await start({ auth: { passwordFile: file } });
    assert.equal((await rawGet(s, '/')).status, 200);
    const fromConsole = await rawGet(s, '/v1/admin/clients', { 'x-eddy-request': '1' });
    assert.equal(fromConsole.status, 401);
    assert.equal(fromConsole.headers['www-authenticate'], 'Bearer realm="eddy"', 'no Basic: the browser opens no dialog of its own');
    const fromCurl = await rawGet(s, '/v1/admin/clients');
    assert.equal(fromCurl.headers['www-authenticate'], 'Basic realm="eddy", Bearer realm="eddy"', 'other clients are told about Basic as before');
    const tail = await rawGet(s, '/v1/subscribe?filter=a', { 'x-eddy-request': '1' });
    assert.equal(tail.status, 401);
    assert.equal(tail.headers['www-authenticate'], 'Bearer realm="eddy"');
    assert.equal((await rawGet(s, '/v1/admin/clients', { 'x-eddy-request': '1', authorization: basic('viewer', 'pw') })).status, 403);
    assert.equal((await rawGet(s, '/v1/admin/clients', { 'x-eddy-request': '1', authorization: basic('root', 'pw') })).status, 200);
  });
});
