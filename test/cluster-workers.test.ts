import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { brokerConfigFromArgs } from '../src/cli/broker.js';
import { validateConfig } from '../src/cli/config.js';
import { ConfigError } from '../src/util/errors.js';
import { isAlive } from '../src/util/process.js';
import { killQuietly, readyPorts, start, type Running } from './helpers/cli-process.js';
import { collect, connectClient, publishWithAck, sleep } from './helpers/mqtt.js';
import { connectWithInbox } from './helpers/admin.js';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/**
 * `eddy broker --cluster … --workers 2` on a real 3-node JetStream cluster: one process tree, one
 * ready line, two worker processes accepting on the same ports; messages cross between workers, a
 * persistent session is found whichever worker takes the connection, /metrics merges both workers,
 * a killed worker is started again, SIGHUP reaches every worker, SIGTERM stops them all, and
 * workers whose primary is killed stop by themselves.
 */

interface LogLine {
  msg?: string;
  worker?: number;
  workerPid?: number;
}

const logLines = (running: Running): LogLine[] =>
  running
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

/** The pid of each worker as the primary last started it. */
const workerPids = (running: Running): Map<number, number> => {
  const pids = new Map<number, number>();
  for (const line of logLines(running)) if (line.msg === 'worker started' && line.worker && line.workerPid) pids.set(line.worker, line.workerPid);
  return pids;
};

const waitUntil = async (what: string, probe: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms`);
    await sleep(100);
  }
};

describe('eddy broker --workers: configuration', () => {
  test('--workers needs --cluster; bounds are checked in flags and in the file', () => {
    assert.throws(() => brokerConfigFromArgs(['--memory', '--workers', '2']), (err: unknown) => err instanceof ConfigError && /--workers needs --cluster/.test(err.message));
    assert.throws(() => brokerConfigFromArgs(['--workers', '2']), /--workers needs --cluster/);
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://127.0.0.1:4222', '--workers', '0']), /--workers/);
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://127.0.0.1:4222', '--workers', '65']), /--workers/);
    assert.throws(() => validateConfig({ workers: 0 }, 'eddy.yaml'), /workers must be a whole number 1\.\.64/);
    assert.throws(() => validateConfig({ workers: 'two' }, 'eddy.yaml'), /workers must be a whole number/);
    const config = brokerConfigFromArgs(['--cluster', 'nats://127.0.0.1:4222', '--workers', '3']);
    assert.equal(config !== 'help' && config.workers, 3);
    // One worker is the broker itself, whatever the engine.
    assert.equal((brokerConfigFromArgs(['--memory', '--workers', '1']) as { workers?: number }).workers, 1);
  });

  test('the CLI refuses --workers without --cluster with exit code 2', async () => {
    const running = start(['broker', '--memory', '--workers', '2', '--port', '0', '--http-port', '0']);
    const exit = await running.finished;
    assert.equal(exit.code, 2, running.stderr());
    assert.match(running.stderr(), /--workers needs --cluster/);
  });
});

describe('eddy broker --cluster --workers 2', () => {
  let nats: NatsCluster;
  let broker: Running;
  let ports: { mqtt: number; http: number };
  const clients: MqttClient[] = [];
  const client = async (options: Parameters<typeof connectClient>[1] = {}): Promise<MqttClient> => {
    const c = await connectClient(`mqtt://127.0.0.1:${ports.mqtt}`, { reconnectPeriod: 0, protocolVersion: 5, ...options });
    clients.push(c);
    return c;
  };
  const metrics = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${ports.http}/metrics`);
    assert.equal(res.status, 200);
    return res.text();
  };
  const connectionsByWorker = async (): Promise<Record<string, number>> => {
    const counts: Record<string, number> = {};
    for (const m of (await metrics()).matchAll(/^eddy_connections\{worker="(\d+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
    return counts;
  };

  before(async () => {
    nats = await startNatsCluster();
    broker = start(['broker', '--cluster', nats.urls.join(','), '--workers', '2', '--port', '0', '--http-port', '0', '--log-level', 'info']);
    ports = await readyPorts(broker, 60_000);
  });
  after(async () => {
    for (const c of clients) c.end(true);
    killQuietly(broker?.child.pid);
    for (const pid of workerPids(broker).values()) killQuietly(pid);
    await nats?.stop();
  });

  test('one ready line for two workers, both listening on its ports', async () => {
    assert.equal(broker.stdout().match(/eddy ready/g)?.length, 1, broker.stdout());
    const pids = workerPids(broker);
    assert.equal(pids.size, 2);
    for (const pid of pids.values()) assert.ok(isAlive(pid));
    // The primary prints the line as soon as the last worker says it is ready; its log line may come just after.
    await waitUntil('both workers logged as ready', () => logLines(broker).filter((l) => l.msg === 'worker ready').length === 2, 5_000);
  });

  test('connections spread over both workers, and every message reaches every subscriber', async () => {
    const subscribers: ReturnType<typeof collect>[] = [];
    for (let i = 0; i < 4; i++) {
      const sub = await client({ clientId: `w-sub-${i}` });
      await sub.subscribeAsync('wk/#', { qos: 1 });
      subscribers.push(collect(sub));
    }
    const publishers: MqttClient[] = [];
    for (let i = 0; i < 4; i++) publishers.push(await client({ clientId: `w-pub-${i}` }));
    const counts = await connectionsByWorker();
    assert.deepEqual(Object.keys(counts).sort(), ['1', '2']);
    assert.ok(counts['1']! > 0 && counts['2']! > 0, `both workers hold connections: ${JSON.stringify(counts)}`);
    for (let i = 0; i < 4; i++) assert.equal((await publishWithAck(publishers[i]!, `wk/${i}`, `m${i}`, { qos: 1 })).reasonCode, 0);
    for (const inbox of subscribers) {
      const got = (await inbox.take(4, 20_000)).map((m) => m.payload.toString()).sort();
      assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3']);
    }
  });

  test('/metrics holds each family once, with a sample per worker, and the primary’s own', async () => {
    const text = await metrics();
    assert.equal(text.match(/^# TYPE eddy_messages_in_total counter$/gm)?.length, 1);
    assert.equal(text.match(/^# TYPE eddy_connections gauge$/gm)?.length, 1);
    assert.match(text, /^eddy_workers\{state="configured"\} 2$/m);
    assert.match(text, /^eddy_workers\{state="answering"\} 2$/m);
    assert.match(text, /^eddy_worker_restarts_total 0$/m);
    // Family by family: no family's samples are split by another's header.
    const seen = new Set<string>();
    let current = '';
    for (const line of text.split('\n')) {
      const header = /^# TYPE (\S+)/.exec(line);
      if (header) {
        assert.ok(!seen.has(header[1]!), `family ${header[1]} appears twice`);
        seen.add(header[1]!);
        current = header[1]!;
      } else if (line && !line.startsWith('#')) {
        assert.ok(line.startsWith(current), `${line} sits under ${current}`);
      }
    }
  });

  test('a persistent session is found whichever worker takes the reconnection', async () => {
    const pub = await client({ clientId: 'w-persist-pub' });
    let sub = await client({ clientId: 'w-persist', clean: false, properties: { sessionExpiryInterval: 600 } });
    await sub.subscribeAsync('wp/#', { qos: 1 });
    for (let round = 0; round < 3; round++) {
      sub.end(true);
      for (let i = 0; i < 3; i++) assert.equal((await publishWithAck(pub, `wp/${round}`, `r${round}-${i}`, { qos: 1 })).reasonCode, 0);
      // Recorded from before CONNECT: a worker that holds the queue in memory sends it right after
      // CONNACK, in the same TCP chunk, before a listener added once connected would see it.
      const resumed = await connectWithInbox(`mqtt://127.0.0.1:${ports.mqtt}`, { protocolVersion: 5, clientId: 'w-persist', clean: false, properties: { sessionExpiryInterval: 600 } });
      sub = resumed.client;
      clients.push(sub);
      assert.equal(resumed.connack.sessionPresent, true, `round ${round}: the session was found`);
      // At least once: a message the old connection was sent as it died may come twice, never missing.
      const distinct = (): string[] => [...new Set(resumed.inbox.map((m) => m.payload.toString()))];
      await waitUntil(`round ${round}: 3 queued messages`, () => distinct().length >= 3);
      assert.deepEqual(distinct(), [`r${round}-0`, `r${round}-1`, `r${round}-2`]);
    }
  });

  test('a killed worker is started again; the other keeps its clients', async () => {
    const pidsBefore = workerPids(broker);
    // Which worker takes the survivor's connection: the one whose count of connections grows.
    const countsBefore = await connectionsByWorker();
    const survivor = await client({ clientId: 'w-survivor' });
    await survivor.subscribeAsync('ws/#', { qos: 1 });
    const inbox = collect(survivor);
    const countsAfter = await connectionsByWorker();
    const grown = Object.keys(countsAfter).filter((w) => countsAfter[w]! > (countsBefore[w] ?? 0));
    assert.equal(grown.length, 1, `one worker took the survivor: ${JSON.stringify({ countsBefore, countsAfter })}`);
    const kept = Number(grown[0]);
    const killed = kept === 1 ? 2 : 1;
    const victim = pidsBefore.get(killed)!;
    process.kill(victim, 'SIGKILL');
    await waitUntil(`worker ${killed} to be started again and ready`, () => {
      const pid = workerPids(broker).get(killed);
      return pid !== undefined && pid !== victim && logLines(broker).filter((l) => l.msg === 'worker ready' && l.worker === killed).length === 2;
    }, 30_000);
    assert.equal(workerPids(broker).get(kept), pidsBefore.get(kept), 'the other worker was not touched');
    assert.match(await metrics(), /^eddy_worker_restarts_total 1$/m);
    assert.ok(survivor.connected, `the survivor kept its connection (${JSON.stringify({ countsBefore, countsAfter, killed })})`);
    // Publishes through new connections, which land on both workers, all reach the survivor.
    for (let i = 0; i < 4; i++) {
      const pub = await client({ clientId: `w-after-${i}` });
      assert.equal((await publishWithAck(pub, `ws/${i}`, `after-${i}`, { qos: 1 })).reasonCode, 0);
    }
    const got = (await inbox.take(4, 20_000)).map((m) => m.payload.toString()).sort();
    assert.deepEqual(got, ['after-0', 'after-1', 'after-2', 'after-3']);
    assert.ok(survivor.connected, 'the survivor kept its connection');
  });

  test('SIGHUP reaches every worker', async () => {
    const reloadsBefore = logLines(broker).filter((l) => l.msg?.startsWith('reloaded')).length;
    broker.child.kill('SIGHUP');
    await waitUntil('both workers to reload', () => logLines(broker).filter((l) => l.msg?.startsWith('reloaded')).length === reloadsBefore + 2);
  });

  test('SIGTERM stops every worker and the primary exits 0', async () => {
    const pids = [...workerPids(broker).values()];
    broker.child.kill('SIGTERM');
    const exit = await broker.exited;
    assert.equal(exit.code, 0, broker.stderr());
    await waitUntil('every worker to exit', () => pids.every((pid) => !isAlive(pid)), 10_000);
  });
});

describe('eddy broker --workers: the primary killed', () => {
  let nats: NatsCluster;
  let broker: Running | undefined;
  before(async () => {
    nats = await startNatsCluster();
  });
  after(async () => {
    killQuietly(broker?.child.pid);
    for (const pid of broker ? workerPids(broker).values() : []) killQuietly(pid);
    await nats?.stop();
  });

  test('workers stop by themselves when their primary is SIGKILLed', async () => {
    broker = start(['broker', '--cluster', nats.urls.join(','), '--workers', '2', '--port', '0', '--http-port', '0', '--log-level', 'info']);
    await readyPorts(broker, 60_000);
    const pids = [...workerPids(broker).values()];
    assert.equal(pids.length, 2);
    broker.child.kill('SIGKILL');
    await waitUntil('both workers to exit after their primary', () => pids.every((pid) => !isAlive(pid)), 20_000);
  });
});
