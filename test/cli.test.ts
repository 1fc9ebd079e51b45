import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { EddyServer } from '../src/server.js';
import { EDDY_BIN, run, spawnBroker, startBroker, type BrokerProcess } from './helpers/broker.js';
import { sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const eddy = (args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  run(process.execPath, [EDDY_BIN, ...args], { input, timeoutMs: 20_000 });

/** Lines of a stream's text, without the trailing empty one. */
const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);

/** Starts a long-running `eddy …` child; the returned promise settles when it exits. */
function spawnEddy(args: string[], children: ChildProcess[]): { child: ChildProcess; finished: Promise<Finished> } {
  const child = spawn(process.execPath, [EDDY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const finished = new Promise<Finished>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, finished };
}

/** Fails if the child has not exited within `ms`. */
async function exitWithin(p: { child: ChildProcess; finished: Promise<Finished> }, ms = 10_000): Promise<Finished> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.finished,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          p.child.kill('SIGKILL');
          reject(new Error(`eddy did not exit within ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function freePortHeld(): Promise<{ port: number; close(): Promise<void> }> {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
  const port = (holder.address() as net.AddressInfo).port;
  return { port, close: () => new Promise((resolve) => holder.close(() => resolve())) };
}

describe('eddy broker', () => {
  const brokers: BrokerProcess[] = [];
  after(async () => {
    for (const b of brokers.splice(0)) await b.stop('SIGKILL');
  });

  test('prints the ready line with the real ports, serves them, and exits 0 on SIGTERM', async () => {
    const broker = await spawnBroker(['--memory']);
    brokers.push(broker);
    const out = broker.stdout();
    assert.match(out, /^eddy ready mqtt=127\.0\.0\.1:\d+ http=127\.0\.0\.1:\d+\n$/);
    assert.ok(broker.mqttPort > 0 && broker.httpPort > 0 && broker.mqttPort !== broker.httpPort);

    const { client, connack } = await RawClient.open(broker.mqttPort);
    assert.equal(connack.reasonCode, 0);
    client.close();
    const health = await fetch(`http://127.0.0.1:${broker.httpPort}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');

    assert.equal(await broker.stop('SIGTERM'), 0);
    assert.equal(lines(broker.stdout()).length, 1, `stdout holds only the ready line: ${broker.stdout()}`);
  });

  test('exits 0 on SIGINT, closing connected clients', async () => {
    const broker = await spawnBroker(['--memory', '--log-level', 'silent']);
    brokers.push(broker);
    const { client } = await RawClient.open(broker.mqttPort);
    assert.equal(await broker.stop('SIGINT'), 0);
    const disconnect = (await client.next('disconnect')) as { reasonCode?: number };
    assert.equal(disconnect.reasonCode, 0x8b);
    await client.closed;
    assert.equal(broker.stderr(), '');
  });

  test('a port already in use gives one stderr line saying so and a non-zero exit', async () => {
    const held = await freePortHeld();
    try {
      const result = await eddy(['broker', '--memory', '--port', String(held.port), '--http-port', '0']);
      assert.notEqual(result.code, 0);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '', 'no ready line when the broker cannot listen');
      const errLines = lines(result.stderr);
      assert.equal(errLines.length, 1, `exactly one stderr line, got: ${result.stderr}`);
      assert.match(errLines[0]!, /already in use/);
      assert.match(errLines[0]!, new RegExp(`:${held.port}\\b`));
    } finally {
      await held.close();
    }
  });

  test('an unknown flag gives a one-line error and exit 2', async () => {
    const result = await eddy(['broker', '--bogus']);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    const errLines = lines(result.stderr);
    assert.equal(errLines.length, 1, `one line, got: ${result.stderr}`);
    assert.match(errLines[0]!, /--bogus/);
  });

  test('--port abc gives a clear error and exit 2', async () => {
    const result = await eddy(['broker', '--port', 'abc']);
    assert.equal(result.code, 2);
    assert.deepEqual(lines(result.stderr), ['eddy: --port must be a whole number, got "abc"']);
  });

  test('--port out of range gives a clear error and exit 2', async () => {
    const result = await eddy(['broker', '--port', '70000']);
    assert.equal(result.code, 2);
    assert.deepEqual(lines(result.stderr), ['eddy: --port must be between 0 and 65535, got 70000']);
  });

  describe('--config FILE', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'eddy-cli-test-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('a YAML file setting limits and access rules takes effect', async () => {
      const file = path.join(dir, 'eddy.yaml');
      writeFileSync(file, ['limits:', '  maxKeepAlive: 7', '  topicAliasMaximum: 3', '  maxInflight: 5', 'access:', '  denyPublish:', '    - cfg/locked/#', ''].join('\n'));
      const broker = await spawnBroker(['--memory', '--config', file]);
      brokers.push(broker);
      const { client, connack } = await RawClient.open(broker.mqttPort, { keepalive: 60 });
      try {
        assert.equal(connack.reasonCode, 0);
        assert.equal(connack.properties?.serverKeepAlive, 7);
        assert.equal(connack.properties?.topicAliasMaximum, 3);
        assert.equal(connack.properties?.receiveMaximum, 5);
      } finally {
        client.close();
      }
      const url = `mqtt://127.0.0.1:${broker.mqttPort}`;
      const refused = await eddy(['pub', 'cfg/locked/x', 'no', '--url', url]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /0x87/);
      const allowed = await eddy(['pub', 'cfg/open/x', 'yes', '--url', url]);
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.equal(await broker.stop(), 0);
    });

    test('flags override the config file', async () => {
      const file = path.join(dir, 'override.yaml');
      writeFileSync(file, 'limits:\n  maxKeepAlive: 7\n');
      const broker = await spawnBroker(['--memory', '--config', file, '--max-keepalive', '4']);
      brokers.push(broker);
      const { client, connack } = await RawClient.open(broker.mqttPort, { keepalive: 60 });
      client.close();
      assert.equal(connack.properties?.serverKeepAlive, 4);
      assert.equal(await broker.stop(), 0);
    });

    test('an unknown top-level key gives a clear one-line error and exit 2', async () => {
      const file = path.join(dir, 'bad-key.yaml');
      writeFileSync(file, 'port: 0\nbogus: 1\n');
      const result = await eddy(['broker', '--memory', '--config', file]);
      assert.equal(result.code, 2);
      const errLines = lines(result.stderr);
      assert.equal(errLines.length, 1, result.stderr);
      assert.match(errLines[0]!, /unknown key "bogus"/);
      assert.ok(errLines[0]!.includes(file), 'the error names the file');
    });

    test('an unknown limit gives a clear one-line error and exit 2', async () => {
      const file = path.join(dir, 'bad-limit.yaml');
      writeFileSync(file, 'limits:\n  maxInflite: 5\n');
      const result = await eddy(['broker', '--memory', '--config', file]);
      assert.equal(result.code, 2);
      const errLines = lines(result.stderr);
      assert.equal(errLines.length, 1, result.stderr);
      assert.match(errLines[0]!, /unknown limit "maxInflite"/);
    });

    test('a missing config file gives a clear error and exit 2', async () => {
      const result = await eddy(['broker', '--memory', '--config', path.join(dir, 'nope.yaml')]);
      assert.equal(result.code, 2);
      assert.match(lines(result.stderr)[0] ?? '', /cannot read config file .*nope\.yaml: ENOENT/);
    });
  });

  test('eddy pub to a topic denied by --deny-publish exits 1 with the reason code', async () => {
    const broker = await spawnBroker(['--memory', '--log-level', 'silent', '--deny-publish', 'secret/#']);
    brokers.push(broker);
    const url = `mqtt://127.0.0.1:${broker.mqttPort}`;
    const result = await eddy(['pub', 'secret/plans', 'x', '--url', url]);
    assert.equal(result.code, 1);
    const errLines = lines(result.stderr);
    assert.equal(errLines.length, 1, result.stderr);
    assert.match(errLines[0]!, /secret\/plans/);
    assert.match(errLines[0]!, /0x87/);
    // A retained publish through the spawned broker reaches a later `eddy sub`.
    assert.equal((await eddy(['pub', 'public/news', 'hello', '--retain', '--url', url])).code, 0);
    const sub = await eddy(['sub', 'public/news', '--count', '1', '--json', '--url', url]);
    assert.equal(sub.code, 0, sub.stderr);
    assert.deepEqual(JSON.parse(sub.stdout), { channel: 'public/news', qos: 1, retain: true, payload: 'hello' });
    assert.equal(await broker.stop(), 0);
  });
});

describe('eddy pub / eddy sub', () => {
  let server: EddyServer;
  let url: string;
  const children: ChildProcess[] = [];
  before(async () => {
    server = await startBroker();
    url = server.mqttUrl;
  });
  after(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    await server.stop();
  });

  /** Starts `eddy sub` with a fixed client id and waits until its subscription exists in the broker. */
  async function startSub(clientId: string, filter: string, args: string[]): Promise<{ child: ChildProcess; finished: Promise<Finished> }> {
    const sub = spawnEddy(['sub', filter, '--url', url, '--client-id', clientId, ...args], children);
    const group = args.includes('--group') ? args[args.indexOf('--group') + 1] : undefined;
    const key = group ? `$share/${group}/${filter}` : filter;
    const deadline = Date.now() + 10_000;
    while (!server.broker.sessions.get(clientId)?.subscriptions.has(key) && sub.child.exitCode === null) {
      if (Date.now() > deadline) {
        sub.child.kill('SIGKILL');
        const result = await sub.finished;
        assert.fail(`eddy sub ${clientId} did not subscribe: ${result.stderr}`);
      }
      await sleep(20);
    }
    return sub;
  }

  async function pub(args: string[], input?: string): Promise<string> {
    const result = await eddy(['pub', ...args, '--url', url], input);
    assert.equal(result.code, 0, `eddy pub ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  async function jsonLines(sub: { child: ChildProcess; finished: Promise<Finished> }): Promise<Array<Record<string, unknown>>> {
    const result = await exitWithin(sub);
    assert.equal(result.code, 0, `eddy sub failed: ${result.stderr}`);
    return lines(result.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  test('--json prints {channel, payload, qos, retain, headers}; --header k=v arrives as user properties', async () => {
    const sub = await startSub('cli-json', 'cli/json', ['--json', '--count', '1', '--qos', '2']);
    await pub(['cli/json', 'hello world', '--qos', '2', '--header', 'trace=abc', '--header', 'tag=one', '--header', 'tag=two', '--header', 'eq=a=b']);
    const [msg] = await jsonLines(sub);
    assert.deepEqual(msg, {
      channel: 'cli/json',
      qos: 2,
      retain: false,
      payload: 'hello world',
      headers: { trace: 'abc', tag: ['one', 'two'], eq: 'a=b' },
    });
  });

  test('QoS is the lower of the publish and subscription QoS', async () => {
    const sub = await startSub('cli-qos', 'cli/qos/+', ['--json', '--count', '3', '--qos', '1']);
    await Promise.all([pub(['cli/qos/a', 'zero', '--qos', '0']), pub(['cli/qos/b', 'one', '--qos', '1']), pub(['cli/qos/c', 'two', '--qos', '2'])]);
    const got = await jsonLines(sub);
    assert.deepEqual(
      got.map((m) => [m.channel, m.payload, m.qos]).sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
      [
        ['cli/qos/a', 'zero', 0],
        ['cli/qos/b', 'one', 1],
        ['cli/qos/c', 'two', 1],
      ],
    );
  });

  test('--retain stores the message for later subscribers', async () => {
    await pub(['cli/retained', 'kept', '--retain']);
    const result = await eddy(['sub', 'cli/retained', '--url', url, '--json', '--count', '1']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { channel: 'cli/retained', qos: 1, retain: true, payload: 'kept' });
  });

  test('pub --count N publishes N messages; sub --count N exits after N', async () => {
    const all = await startSub('cli-count-all', 'cli/count', ['--count', '25']);
    const two = await startSub('cli-count-two', 'cli/count', ['--count', '2', '-v']);
    const out = await pub(['cli/count', 'tick', '--count', '25', '--json']);
    const confirmations = lines(out).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(confirmations.length, 25);
    assert.deepEqual(confirmations[0], { channel: 'cli/count', index: 0, qos: 1, bytes: 4 });
    assert.deepEqual(confirmations.map((c) => c.index).sort((a, b) => Number(a) - Number(b)), Array.from({ length: 25 }, (_, i) => i));

    const allResult = await exitWithin(all);
    assert.equal(allResult.code, 0, allResult.stderr);
    assert.deepEqual(lines(allResult.stdout), Array(25).fill('tick'));
    const twoResult = await exitWithin(two);
    assert.equal(twoResult.code, 0, twoResult.stderr);
    assert.deepEqual(lines(twoResult.stdout), ['cli/count tick', 'cli/count tick']);
  });

  test('pub reads the payload from standard input when it is omitted', async () => {
    const sub = await startSub('cli-stdin', 'cli/stdin', ['--json', '--count', '1']);
    await pub(['cli/stdin'], 'from stdin\nsecond line');
    const [msg] = await jsonLines(sub);
    assert.equal(msg!.payload, 'from stdin\nsecond line');
  });

  test('--group NAME: two members of a shared subscription split the messages', async () => {
    const a = await startSub('cli-group-a', 'cli/group', ['--group', 'workers', '--count', '3', '--json']);
    const b = await startSub('cli-group-b', 'cli/group', ['--group', 'workers', '--count', '3', '--json']);
    const everyone = await startSub('cli-group-all', 'cli/group', ['--count', '6']);
    await Promise.all(Array.from({ length: 6 }, (_, i) => pub(['cli/group', `job-${i}`])));
    const gotA = (await jsonLines(a)).map((m) => m.payload as string);
    const gotB = (await jsonLines(b)).map((m) => m.payload as string);
    assert.equal(gotA.length, 3);
    assert.equal(gotB.length, 3);
    assert.deepEqual([...gotA, ...gotB].sort(), Array.from({ length: 6 }, (_, i) => `job-${i}`), 'each message goes to exactly one member');
    const all = await exitWithin(everyone);
    assert.equal(lines(all.stdout).length, 6, 'a non-shared subscriber still gets every message');
  });

  test('eddy sub to a denied filter exits 1 with the reason code', async () => {
    const denied = await startBroker({ access: { denySubscribe: ['hidden/#'] } });
    try {
      const result = await eddy(['sub', 'hidden/x', '--url', denied.mqttUrl, '--count', '1']);
      assert.equal(result.code, 1);
      const errLines = lines(result.stderr);
      assert.equal(errLines.length, 1, result.stderr);
      assert.match(errLines[0]!, /hidden\/x/);
      assert.match(errLines[0]!, /0x8[07]/, 'the SUBACK reason code is in the message');
    } finally {
      await denied.stop();
    }
  });

  test('eddy pub to a broker that is not there exits 1 with one line', async () => {
    const held = await freePortHeld();
    await held.close(); // nothing listens on this port now
    const result = await eddy(['pub', 'x', 'y', '--url', `mqtt://127.0.0.1:${held.port}`]);
    assert.equal(result.code, 1);
    const errLines = lines(result.stderr);
    assert.equal(errLines.length, 1, result.stderr);
    assert.match(errLines[0]!, /cannot connect to mqtt:\/\/127\.0\.0\.1/);
  });

  test('bad pub/sub flags exit 2 with a one-line error', async () => {
    const cases = [['pub', 'x', 'y', '--qos', '3'], ['sub', 'x', '--count', '0'], ['pub', 'x', 'y', '--header', 'novalue'], ['sub'], ['pub', 'x', 'y', '--bogus']];
    const results = await Promise.all(cases.map((args) => eddy([...args, '--url', url])));
    cases.forEach((args, i) => {
      assert.equal(results[i]!.code, 2, `${args.join(' ')}: ${results[i]!.stderr}`);
      assert.equal(lines(results[i]!.stderr).length, 1, `${args.join(' ')}: ${results[i]!.stderr}`);
    });
  });
});
