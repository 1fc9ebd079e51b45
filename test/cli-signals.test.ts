import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { connectClient, sleep } from './helpers/mqtt.js';
import { run, EDDY_BIN } from './helpers/broker.js';
import { BIN_EDDY, REPO_ROOT, killQuietly, readyPorts, start, type Running } from './helpers/cli-process.js';
import { tempDirs } from './helpers/temp-dir.js';

const tempDir = tempDirs('eddy-cli-signals-');
const SEED = fs.readFileSync(path.join(REPO_ROOT, 'examples/seed/asyncapi.yaml'), 'utf8');
/** The seed document without `format: email`: any string is an email. */
const LENIENT = SEED.replace(/^ +format: email\n/m, '');
assert.notEqual(LENIENT, SEED, 'the seed document checks the email format');
/** Valid under LENIENT, invalid under SEED. */
const ODD_EMAIL = JSON.stringify({ userId: 'u1', email: 'not-an-email' });
/** Invalid under both: no userId. */
const NO_USER = JSON.stringify({ email: 'a@example.com' });

const pids: number[] = [];
const clients: MqttClient[] = [];
after(() => {
  for (const c of clients.splice(0)) c.end(true);
  for (const pid of pids.splice(0)) killQuietly(pid);
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, what: string | (() => string), ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${typeof what === 'string' ? what : what()} within ${ms} ms`);
    await sleep(50);
  }
}

/** Whether something accepts TCP connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Publishes at QoS 1; resolves with the PUBACK's reason code and reason string. */
function publish(client: MqttClient, topic: string, payload: string): Promise<{ code: number; reason?: string }> {
  return new Promise((resolve) => {
    client.publish(topic, payload, { qos: 1 }, (err, ack) => {
      const code = (err as (Error & { code?: number }) | undefined)?.code ?? 0;
      resolve({ code, reason: (ack as { properties?: { reasonString?: string } } | undefined)?.properties?.reasonString });
    });
  });
}

const reloads = (broker: Running): number => (broker.stderr().match(/"msg":"reloaded /g) ?? []).length;
const failedReloads = (broker: Running): number => (broker.stderr().match(/"msg":"reload failed/g) ?? []).length;

describe('eddy broker under npm', () => {
  test('TERM to the npm process of `npx eddy broker` stops the broker: its port is freed and LOCK removed', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const npx = start(['eddy', 'broker', '--port', '0', '--http-port', '0', '--data-dir', dataDir], {
      command: 'npx',
      cwd: REPO_ROOT,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    pids.push(npx.child.pid!);
    const ports = await readyPorts(npx, 30_000);
    const lock = path.join(dataDir, 'LOCK');
    const brokerPid = Number(fs.readFileSync(lock, 'utf8'));
    pids.push(brokerPid);
    assert.notEqual(brokerPid, npx.child.pid, 'npm runs the broker in a process of its own');

    npx.child.kill('SIGTERM');
    await npx.exited;
    await until(() => !isAlive(brokerPid), () => `the broker exits after npm (its stderr: ${npx.stderr().slice(-2000).replace(/\n/g, ' ')})`);
    assert.equal(fs.existsSync(lock), false, 'the broker removed its LOCK file');
    assert.equal(await listening(ports.mqtt), false, 'the MQTT port is free');
    assert.equal(await listening(ports.http), false, 'the HTTP port is free');
    assert.match(npx.stderr(), /"msg":"shutting down"/);
    assert.match(npx.stderr(), /"msg":"broker stopped"/, 'a graceful shutdown');
  });
});

describe('SIGHUP reloads the broker', () => {
  /** Starts node_modules/.bin/eddy broker on the document file and connects one MQTT 5 client. */
  async function brokerWith(args: string[]): Promise<{ broker: Running; client: MqttClient; closes: () => number }> {
    const broker = start(['broker', '--memory', '--port', '0', '--http-port', '0', ...args], { command: BIN_EDDY });
    pids.push(broker.child.pid!);
    const ports = await readyPorts(broker);
    const client = await connectClient(`mqtt://127.0.0.1:${ports.mqtt}`, { protocolVersion: 5, clientId: 'reload-watcher' });
    clients.push(client);
    let closed = 0;
    client.on('close', () => closed++);
    return { broker, client, closes: () => closed };
  }

  test('a changed AsyncAPI file: a valid message becomes invalid and back, on the same connection', async () => {
    const doc = path.join(tempDir(), 'signup.yaml');
    fs.writeFileSync(doc, LENIENT);
    const { broker, client, closes } = await brokerWith(['--asyncapi', doc]);
    assert.deepEqual(await publish(client, 'user/signedup', ODD_EMAIL), { code: 0, reason: undefined });

    fs.writeFileSync(doc, SEED);
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => reloads(broker) === 1, 'reload log line');
    assert.match(broker.stderr(), /"msg":"reloaded 1 AsyncAPI document \(3 channels\)/);
    const refused = await publish(client, 'user/signedup', ODD_EMAIL);
    assert.equal(refused.code, 0x99);
    assert.match(refused.reason ?? '', /email must match format "email"/);

    fs.writeFileSync(doc, LENIENT);
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => reloads(broker) === 2, 'second reload log line');
    assert.deepEqual(await publish(client, 'user/signedup', ODD_EMAIL), { code: 0, reason: undefined });

    assert.equal(closes(), 0, 'the client was not disconnected');
    assert.equal(client.connected, true);
    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
  });

  test('a broken AsyncAPI file: the error is logged and the old documents stay in force', async () => {
    const doc = path.join(tempDir(), 'signup.yaml');
    fs.writeFileSync(doc, LENIENT);
    const { broker, client, closes } = await brokerWith(['--asyncapi', doc]);

    fs.writeFileSync(doc, `${SEED}\nbroken: [\n`);
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => failedReloads(broker) === 1, 'reload failure log line');
    const line = broker.stderr().split('\n').find((l) => l.includes('"msg":"reload failed'))!;
    const logged = JSON.parse(line) as { level: number; err: string; diagnostics: string[] };
    assert.equal(logged.level, 50, 'logged as an error');
    assert.match(logged.err, /signup\.yaml is not a valid AsyncAPI document/);
    assert.ok(logged.diagnostics.some((d) => /signup\.yaml:\d+:\d+/.test(d)), logged.diagnostics.join('\n'));

    // The lenient document still decides: not "no documents", not the broken one.
    assert.deepEqual(await publish(client, 'user/signedup', ODD_EMAIL), { code: 0, reason: undefined });
    assert.equal((await publish(client, 'user/signedup', NO_USER)).code, 0x99);
    assert.equal(closes(), 0);
    assert.equal(broker.child.exitCode, null, 'the broker is still running');
    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
  });

  test('the config file: channel policies (retention) are reloaded; a bad file keeps them', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'eddy.yaml');
    fs.writeFileSync(config, 'logLevel: info\n');
    const { broker, client } = await brokerWith(['--config', config]);
    const url = `mqtt://127.0.0.1:${(client.options as { port: number }).port}`;
    assert.equal((await publish(client, 'hist/x', 'before')).code, 0);

    fs.writeFileSync(config, "logLevel: info\nchannels:\n  'hist/#':\n    retention: { maxAge: 1d }\n");
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => reloads(broker) === 1, 'reload log line');
    assert.match(broker.stderr(), /channel policies \(hist\/#, \$DLQ\/#\)/);
    assert.equal((await publish(client, 'hist/x', 'after')).code, 0);

    fs.writeFileSync(config, 'logLevel: info\nbogus: 1\n');
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => failedReloads(broker) === 1, 'reload failure log line');
    assert.match(broker.stderr(), /reload failed, keeping the current AsyncAPI documents and channel policies: .*unknown key \\"bogus\\"/);
    assert.equal((await publish(client, 'hist/x', 'later')).code, 0);

    // History starts at the reload: the first replayed message is "after", not "before".
    const replay = await run(process.execPath, [EDDY_BIN, 'sub', 'hist/x', '--from', 'earliest', '--count', '2', '--url', url]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.deepEqual(replay.stdout.split('\n').filter(Boolean), ['after', 'later']);
    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
  });
});

describe('SIGHUP reloads the security files', () => {
  test('a right removed from the ACL stops deliveries to a connected subscriber at once; a removed user is disconnected', async () => {
    const dir = tempDir();
    const acl = path.join(dir, 'acl.yaml');
    const passwd = path.join(dir, 'passwd');
    for (const [user, password] of [['reader', 'r'], ['writer', 'w']] as const) {
      const added = await run(process.execPath, [EDDY_BIN, 'passwd', passwd, user], { input: `${password}\n` });
      assert.equal(added.code, 0, added.stderr);
    }
    fs.writeFileSync(acl, "- { user: '*', allow: [all], topics: ['news/#'] }\n");
    const broker = start(['broker', '--memory', '--port', '0', '--http-port', '0', '--password-file', passwd, '--acl', acl], { command: BIN_EDDY });
    pids.push(broker.child.pid!);
    const ports = await readyPorts(broker);
    const url = `mqtt://127.0.0.1:${ports.mqtt}`;
    const reader = await connectClient(url, { protocolVersion: 5, username: 'reader', password: 'r' });
    const writer = await connectClient(url, { protocolVersion: 5, username: 'writer', password: 'w' });
    clients.push(reader, writer);
    const got: string[] = [];
    reader.on('message', (topic) => got.push(topic));
    await reader.subscribeAsync('news/#', { qos: 1 });

    fs.writeFileSync(acl, "- { user: reader, deny: [subscribe], topics: ['news/secret/#'] }\n- { user: '*', allow: [all], topics: ['news/#'] }\n");
    broker.child.kill('SIGHUP');
    await broker.waitFor(() => reloads(broker) === 1, 'reload log line');
    assert.match(broker.stderr(), /"msg":"reloaded the password file, ACL, /);
    await writer.publishAsync('news/secret/x', 'hidden', { qos: 1 });
    await writer.publishAsync('news/open', 'marker', { qos: 1 });
    await until(() => got.includes('news/open'), 'the marker arrives');
    assert.deepEqual(got, ['news/open'], 'the revoked topic was not delivered, without a reconnect');

    // The writer is removed from the password file: it is disconnected (0x87) at the next reload.
    const writerGone = new Promise<number | undefined>((resolve) => writer.once('disconnect', (p) => resolve(p.reasonCode)));
    fs.writeFileSync(passwd, fs.readFileSync(passwd, 'utf8').split('\n').filter((l) => !l.startsWith('writer:')).join('\n'));
    broker.child.kill('SIGHUP');
    assert.equal(await writerGone, 0x87);
    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
  });
});
