import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { versionAtLeast } from '../../src/storage/jetstream/features.js';

/**
 * A real three-node (by default) NATS JetStream cluster on loopback, for tests: one `nats-server -c`
 * process per node, every port picked free, JetStream store directories in one temporary directory.
 * In the spirit of nats.js's own small test-server launcher, but for Eddy's cluster tests: it writes
 * the config files, waits until the JetStream meta group has a leader, and lets a test SIGKILL and
 * restart single nodes (same ports, same store directory, so a restarted node catches up by Raft).
 */

export const NATS_SERVER = process.env.EDDY_NATS_SERVER ?? 'nats-server';

export interface NatsNodePorts {
  client: number;
  cluster: number;
  monitor: number;
}

export interface NatsCluster {
  /** `nats://127.0.0.1:PORT` for each node, in node order. */
  readonly urls: string[];
  readonly ports: NatsNodePorts[];
  /** The temporary directory holding configs, store dirs and logs. */
  readonly dir: string;
  /** The server's version string as printed by `nats-server --version` (e.g. "2.9.10"). */
  readonly version: string;
  /** Whether node i's process is running. */
  running(i: number): boolean;
  /** The process ids of the running nodes (the bench charges their CPU to the cluster rows). */
  pids(): number[];
  /** Sends `signal` to node i and resolves when its process has exited. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts node i again with its config and store; resolves once it serves and JetStream has a meta leader. */
  restart(i: number): Promise<void>;
  /** Resolves once every running node reports a JetStream meta leader (and, if asked, this many peers). */
  waitForMetaLeader(timeoutMs?: number): Promise<string>;
  /**
   * Resolves once every stream has a running leader and, as that leader reports it, every replica
   * is current, and every consumer has a running leader; rejects after `timeoutMs` naming what is
   * still behind. A node restarted by `restart(i)` is in the meta group again but may still be
   * catching its streams up, and the consumers it led elect new leaders only after Raft's election
   * timeout (4-9 s in nats-server): JetStream API calls on them time out meanwhile.
   */
  waitForCaughtUp(timeoutMs?: number): Promise<void>;
  /** Node i's log so far (nats-server writes its log to stderr). */
  log(i: number): string;
  /** Stops every node (SIGTERM, then SIGKILL) and removes the temporary directory (unless `keep`, for a post-mortem). */
  stop(options?: { keep?: boolean }): Promise<void>;
}

export interface NatsClusterOptions {
  nodes?: number;
  /** Cluster name in `cluster { name }`. */
  name?: string;
  /** How long to wait for the meta leader at start; nats-server elects within a few seconds. */
  readyTimeoutMs?: number;
}

/** Picks `count` free loopback ports by binding port-0 sockets, all held open until every one is picked. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** The version of the nats-server binary, or undefined when it is not installed. */
/**
 * Why a test that kills NATS nodes under writes is a todo on the installed nats-server: before 2.10
 * (Debian's 2.9.10) such a kill can lose confirmed entries inside the server (docs/cluster.md,
 * "Data safety on 2.9.10"). False on 2.10 or newer, where the test is a plain one.
 */
export function lossyNatsServer(): string | false {
  const version = natsServerVersion();
  if (!version || versionAtLeast(version, '2.10.0')) return false;
  return `nats-server ${version} can lose confirmed entries when a NATS node is killed (docs/cluster.md, "Data safety on 2.9.10")`;
}

export function natsServerVersion(): string | undefined {
  try {
    const out = execFileSync(NATS_SERVER, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const m = /v?(\d+\.\d+\.\d+)/.exec(out);
    return m?.[1];
  } catch {
    return undefined;
  }
}

function nodeConfig(i: number, name: string, dir: string, ports: NatsNodePorts[]): string {
  const own = ports[i]!;
  const routes = ports
    .filter((_, j) => j !== i)
    .map((p) => `    "nats-route://127.0.0.1:${p.cluster}"`)
    .join('\n');
  // Quoted paths: the temp dir may hold characters the config parser would otherwise read as syntax.
  return [
    `server_name: "n${i}"`,
    `listen: "127.0.0.1:${own.client}"`,
    `http: "127.0.0.1:${own.monitor}"`,
    // Eddy's topics may be long (MQTT allows 65,535 bytes); the default 4 KiB control line would refuse them.
    `max_control_line: 65536`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(path.join(dir, `n${i}`))}`,
    `  max_memory_store: 64MB`,
    `  max_file_store: 1GB`,
    `}`,
    `cluster {`,
    `  name: ${JSON.stringify(name)}`,
    `  listen: "127.0.0.1:${own.cluster}"`,
    // A killed peer is redialled quickly, so a restart rejoins within a test's patience.
    `  connect_retries: 120`,
    `  routes: [`,
    routes,
    `  ]`,
    `}`,
    '',
  ].join('\n');
}

interface JszReplica {
  name: string;
  current?: boolean;
  offline?: boolean;
}

interface Jsz {
  server_id?: string;
  meta_cluster?: { name?: string; leader?: string; cluster_size?: number };
  account_details?: Array<{
    stream_detail?: Array<{
      name: string;
      cluster?: { leader?: string; replicas?: JszReplica[] };
      consumer_detail?: Array<{ name: string; cluster?: { leader?: string } }>;
    }>;
  }>;
}

async function fetchJsz(monitorPort: number, query = ''): Promise<Jsz | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/jsz${query}`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return undefined;
    return (await res.json()) as Jsz;
  } catch {
    return undefined; // not listening yet, or just killed
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every cluster still running when the test process exits is killed, so no nats-server outlives a crashed test. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const nodes = options.nodes ?? 3;
  const name = options.name ?? 'eddy-test';
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const version = natsServerVersion();
  if (!version) throw new Error(`${NATS_SERVER} not found on PATH (Debian: apt-get install nats-server; .ci/run installs it)`);
  installExitHook();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-nats-'));
  const flat = await freePorts(nodes * 3);
  const ports: NatsNodePorts[] = [];
  for (let i = 0; i < nodes; i++) ports.push({ client: flat[i * 3]!, cluster: flat[i * 3 + 1]!, monitor: flat[i * 3 + 2]! });
  const configs = ports.map((_, i) => {
    const file = path.join(dir, `n${i}.conf`);
    fs.writeFileSync(file, nodeConfig(i, name, dir, ports));
    return file;
  });

  const children: (ChildProcess | undefined)[] = new Array(nodes).fill(undefined);
  const exits: (Promise<void> | undefined)[] = new Array(nodes).fill(undefined);
  const logs: string[] = new Array(nodes).fill('');
  const LOG_LIMIT = 256 * 1024;

  const spawnNode = (i: number): void => {
    const child = spawn(NATS_SERVER, ['-c', configs[i]!], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    children[i] = child;
    const append = (d: Buffer): void => {
      logs[i] = (logs[i]! + d.toString('utf8')).slice(-LOG_LIMIT);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    // A spawn failure (ENOENT) arrives as 'error'; recorded in the log so the readiness timeout says why.
    child.on('error', (err) => append(Buffer.from(`\n[launcher] spawn error: ${err.message}\n`)));
    exits[i] = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        if (children[i] === child) children[i] = undefined;
        append(Buffer.from(`\n[launcher] exited code=${code} signal=${signal}\n`));
        resolve();
      });
    });
  };

  const running = (i: number): boolean => children[i] !== undefined;

  const waitForMetaLeader = async (timeoutMs = readyTimeoutMs): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const up = ports.map((_, i) => i).filter(running);
      const reports = await Promise.all(up.map((i) => fetchJsz(ports[i]!.monitor)));
      const leaders = reports.map((r) => r?.meta_cluster?.leader ?? '');
      last = JSON.stringify(leaders);
      // Every running node must know the same leader: a just-restarted node that has not rejoined yet
      // reports none, and a client connected to it would get "JetStream not available".
      // Survivors of a killed leader keep naming it until Raft's election timeout passes, so the
      // leader must also be one of the running nodes.
      const leader = leaders[0] ?? '';
      const leaderRunning = up.some((i) => `n${i}` === leader);
      if (up.length > 0 && leaderRunning && leaders.every((l) => l === leader)) return leader;
      await sleep(100);
    }
    const tails = ports.map((_, i) => `--- n${i} ---\n${logs[i]!.slice(-2000)}`).join('\n');
    throw new Error(`NATS cluster: no common JetStream meta leader within ${timeoutMs} ms (last: ${last})\n${tails}`);
  };

  const waitForCaughtUp = async (timeoutMs = readyTimeoutMs): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let behind: string[] = [];
    while (Date.now() < deadline) {
      const up = ports.map((_, i) => i).filter(running);
      const reports = await Promise.all(up.map((i) => fetchJsz(ports[i]!.monitor, '?accounts=true&streams=true&consumers=true')));
      // Only a stream's leader knows whether its followers are current, and a follower may still name
      // a dead leader: each node speaks for the streams and consumers it leads itself.
      const assets = new Map<string, string | undefined>(); // asset -> why it is not ready (undefined: ready)
      reports.forEach((report, k) => {
        const self = `n${up[k]}`;
        for (const account of report?.account_details ?? []) {
          for (const stream of account.stream_detail ?? []) {
            if (!assets.has(stream.name)) assets.set(stream.name, 'no running leader');
            if (stream.cluster?.leader === self) {
              const lagging = (stream.cluster.replicas ?? []).filter((r) => r.offline || !r.current).map((r) => r.name);
              assets.set(stream.name, lagging.length ? `replicas ${lagging.join(',')} not current` : undefined);
            }
            for (const consumer of stream.consumer_detail ?? []) {
              const name = `${stream.name}/${consumer.name}`;
              if (!assets.has(name)) assets.set(name, 'no running leader');
              if (consumer.cluster?.leader === self) assets.set(name, undefined);
            }
          }
        }
      });
      behind = [...assets].filter(([, why]) => why !== undefined).map(([name, why]) => `${name}: ${why}`);
      if (reports.every((r) => r !== undefined) && behind.length === 0) return;
      await sleep(200);
    }
    throw new Error(`NATS cluster: not caught up within ${timeoutMs} ms: ${behind.join('; ')}`);
  };

  const kill = async (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const child = children[i];
    if (!child) return;
    const exited = exits[i]!;
    child.kill(signal);
    await exited;
  };

  const stopAll = async (): Promise<void> => {
    await Promise.all(
      ports.map(async (_, i) => {
        const child = children[i];
        if (!child) return;
        const exited = exits[i]!;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  };

  for (let i = 0; i < nodes; i++) spawnNode(i);
  try {
    await waitForMetaLeader();
  } catch (err) {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    urls: ports.map((p) => `nats://127.0.0.1:${p.client}`),
    ports,
    dir,
    version,
    running,
    pids: () => children.flatMap((c) => (c?.pid ? [c.pid] : [])),
    kill,
    async restart(i: number): Promise<void> {
      if (running(i)) await kill(i, 'SIGKILL');
      spawnNode(i);
      await waitForMetaLeader();
    },
    waitForMetaLeader,
    waitForCaughtUp,
    log: (i: number) => logs[i] ?? '',
    async stop(options?: { keep?: boolean }): Promise<void> {
      await stopAll();
      if (!options?.keep) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
