// Starts each broker as its own child process on an ephemeral port and stops it again.
// Every child is tracked so that the bench never leaves a broker behind, whatever way it exits.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { startNatsCluster, type NatsCluster } from '../test/helpers/nats-cluster.js';
import type { BrokerProcesses } from './cpu.js';
import { repoRoot } from './paths.js';
import { CpuQuotaUnavailable, limitCpu, type CpuQuota } from './cpu-quota.js';

export type BrokerName = 'eddy' | 'eddy-disk' | 'eddy-jetstream' | 'eddy-jetstream-2' | 'eddy-jetstream-workers' | 'mosquitto' | 'aedes';
/** Every broker, in the table's column order. */
export const BROKER_NAMES: readonly BrokerName[] = ['eddy', 'eddy-disk', 'eddy-jetstream', 'eddy-jetstream-2', 'eddy-jetstream-workers', 'mosquitto', 'aedes'];
/** What runs without --brokers: the cluster rows start 3 nats-servers and are asked for by name. */
export const DEFAULT_BROKERS: readonly BrokerName[] = ['eddy', 'eddy-disk', 'mosquitto', 'aedes'];

export interface RunningBroker {
  name: BrokerName;
  /** Where the publishers connect (and the subscribers, unless subscribeUrl says otherwise). */
  url: string;
  /** eddy-jetstream-2: the second Eddy node, where the subscribers connect. */
  subscribeUrl?: string;
  /** The main process (the first Eddy node of a cluster row). */
  pid: number;
  /** Whose CPU the row is charged: every Eddy node, and the nats-server processes of a cluster row. */
  processes: BrokerProcesses;
  version: string;
  /** The configuration it runs with, where it has a file of its own (Mosquitto), to print with the results. */
  config?: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  cpuProf: boolean;
  profDir: string;
  /** Eddy only: authentication on, with an ACL of this many rules. */
  aclRules?: number;
  /** Serve MQTT over TLS with this certificate (PEM files), and nothing else. */
  tls?: { cert: string; key: string };
  /** Eddy: its --max-connections (the many-connections workload needs more than a few). */
  maxConnections?: number;
  /** Eddy: run bin/eddy.js of this (built) checkout instead of this one's. */
  eddyRoot?: string;
  /** eddy-jetstream-workers: its --workers. */
  workers?: number;
  /** Every Eddy broker process (each worker of --workers) limited to this fraction of a core (cgroup quota). */
  eddyCpu?: number;
}

/** Thrown when a broker cannot be run here at all (not installed), as opposed to failing to start. */
export class BrokerUnavailable extends Error {}

const READY_TIMEOUT_MS = 20_000;
const live = new Set<ChildProcess>();

/** Last-resort cleanup for 'exit' handlers, where only synchronous work is possible. */
export function killAllBrokersSync(): void {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}

export async function startBroker(name: BrokerName, opts: StartOptions): Promise<RunningBroker> {
  const broker = await startUnlimited(name, opts);
  if (opts.eddyCpu === undefined || !name.startsWith('eddy')) return broker;
  // The processes that run a broker: with --workers the workers, not the primary (it only accepts).
  const limited = broker.processes.broker.filter((pid) => childrenOf(pid).length === 0);
  let quota: CpuQuota;
  try {
    quota = limitCpu(limited, opts.eddyCpu);
  } catch (err) {
    await broker.stop();
    throw err instanceof CpuQuotaUnavailable ? new BrokerUnavailable(err.message) : err;
  }
  return { ...broker, version: `${broker.version}, ${opts.eddyCpu} core each for ${limited.length} process(es)`, stop: () => broker.stop().finally(() => quota.release()) };
}

async function startUnlimited(name: BrokerName, opts: StartOptions): Promise<RunningBroker> {
  switch (name) {
    case 'eddy': return startEddy(opts, false);
    case 'eddy-disk': return startEddy(opts, true);
    case 'eddy-jetstream': return startEddyCluster(opts, 1);
    case 'eddy-jetstream-2': return startEddyCluster(opts, 2);
    case 'eddy-jetstream-workers': return startEddyCluster(opts, 1, opts.workers ?? 2);
    case 'aedes': return startAedes(opts);
    case 'mosquitto': return startMosquitto(opts);
  }
}

/** `eddy` runs the memory engine; `eddy-disk` the durable one (fsync always) in a fresh temp dir, removed on stop. */
async function startEddy(opts: StartOptions, disk: boolean): Promise<RunningBroker> {
  const dataDir = disk ? mkdtempSync(path.join(os.tmpdir(), 'eddy-bench-disk-')) : undefined;
  const storage = dataDir ? ['--data-dir', dataDir, '--fsync', 'always'] : ['--memory'];
  const broker = await spawnEddy(disk ? 'eddy-disk' : 'eddy', opts, storage).catch((err: unknown) => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  return { ...broker, stop: () => broker.stop().finally(() => dataDir && rmSync(dataDir, { recursive: true, force: true })) };
}

/**
 * `eddy-jetstream`: one Eddy node `--cluster` on a 3-node NATS JetStream cluster started here on
 * free loopback ports (the tests' launcher); `eddy-jetstream-2`: two Eddy nodes on it, publishers
 * on the first and subscribers on the second (needs live fan-out between nodes). The row's CPU is
 * every Eddy node's plus the three nats-servers'. `eddy-jetstream-workers`: one Eddy with
 * `--workers N` on it, every client on its one port; its CPU is the primary's and every worker's.
 */
async function startEddyCluster(opts: StartOptions, nodes: 1 | 2, workers?: number): Promise<RunningBroker> {
  const name: BrokerName = workers !== undefined ? 'eddy-jetstream-workers' : nodes === 1 ? 'eddy-jetstream' : 'eddy-jetstream-2';
  let nats: NatsCluster;
  try {
    nats = await startNatsCluster({ name: 'eddy-bench' });
  } catch (err) {
    // No nats-server here is "not installed" (skipped), like a missing mosquitto.
    if (/not found on PATH/.test((err as Error).message)) throw new BrokerUnavailable((err as Error).message);
    throw err;
  }
  const eddies: RunningBroker[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(eddies.map((e) => e.stop()));
    await nats.stop();
  };
  try {
    // One after the other: the first creates the streams and buckets, the second finds them.
    const workerFlags = workers !== undefined ? ['--workers', String(workers)] : [];
    for (let i = 0; i < nodes; i++) eddies.push(await spawnEddy(name, opts, ['--cluster', nats.urls.join(','), ...workerFlags]));
  } catch (err) {
    await stopAll();
    throw err;
  }
  const [first, second] = eddies as [RunningBroker, RunningBroker | undefined];
  return {
    ...first,
    ...(second ? { subscribeUrl: second.url } : {}),
    version: `${first.version}${workers !== undefined ? ` --workers ${workers}` : ''} on ${nats.urls.length} x nats-server ${nats.version}`,
    processes: { broker: eddies.flatMap((e) => [e.pid, ...childrenOf(e.pid)]), store: nats.pids() },
    stop: stopAll,
  };
}

/** The child pids of `pid` (Linux: /proc/<pid>/task/<tid>/children); the workers of `--workers`. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function spawnEddy(name: BrokerName, opts: StartOptions, storage: string[]): Promise<RunningBroker> {
  // EDDY_BENCH_NODE_FLAGS: extra Node flags for the Eddy process only (e.g. --trace-gc), which NODE_OPTIONS would also give the bench.
  const extraFlags = (process.env['EDDY_BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
  const nodeFlags = [...extraFlags, ...(opts.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', opts.profDir] : [])];
  const aclDir = opts.aclRules ? aclFiles(opts.aclRules) : undefined;
  const security = aclDir ? ['--password-file', path.join(aclDir, 'passwd'), '--acl', path.join(aclDir, 'acl.yaml'), '--allow-anonymous'] : [];
  const removeDir = (): void => {
    if (aclDir) rmSync(aclDir, { recursive: true, force: true });
  };
  // With TLS the plain port is open too, and unused: the workloads connect to mqtts only.
  const tls = opts.tls ? ['--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key, '--tls-port', '0'] : [];
  const root = opts.eddyRoot ?? repoRoot;
  const limits = opts.maxConnections ? ['--max-connections', String(Math.max(opts.maxConnections, 10_000))] : [];
  const child = spawn(process.execPath, [
    ...nodeFlags, path.join(root, 'bin/eddy.js'), 'broker',
    '--host', '127.0.0.1', '--port', '0', '--http-port', '0', ...storage, ...tls, '--log-level', 'warn', ...security, ...limits,
  ], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  // Writing the CPU profile happens during shutdown and can take a while for a long run.
  const graceMs = opts.cpuProf ? 30_000 : 5_000;
  let addr: { host: string; port: number; secure: boolean };
  try {
    addr = await waitForReadyLine(name, child, opts.tls !== undefined);
  } catch (err) {
    removeDir();
    throw err;
  }
  const version = packageVersion(root) + (opts.eddyRoot ? ` (from ${opts.eddyRoot})` : '');
  const broker = adopt(name, child, version, addr, graceMs);
  return { ...broker, stop: () => broker.stop().finally(removeDir) };
}

/**
 * A password file (so that authentication is on) and an ACL of `rules` rules for the bench's
 * anonymous clients: every rule selects every client and none but the last matches a bench topic,
 * so each decision walks all of them (then it is cached per topic, as in production).
 */
function aclFiles(rules: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'eddy-bench-acl-'));
  writeFileSync(path.join(dir, 'passwd'), 'nobody:$scrypt$N=16384,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n');
  const lines: string[] = [];
  for (let i = 1; i < rules; i++) lines.push(`- { user: '*', deny: [${i % 2 ? 'publish' : 'subscribe'}], topics: ['other/${i}/#', '+/never-${i}'] }`);
  lines.push(`- { user: '*', allow: [all], topics: ['#'] }`);
  writeFileSync(path.join(dir, 'acl.yaml'), `${lines.join('\n')}\n`);
  return dir;
}

async function startAedes(opts: StartOptions): Promise<RunningBroker> {
  const script = path.join(repoRoot, 'dist/bench/aedes-server.js');
  const tls = opts.tls ? [opts.tls.cert, opts.tls.key] : [];
  const child = spawn(process.execPath, [script, '127.0.0.1', ...tls], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  const version = packageVersion(path.join(repoRoot, 'node_modules/aedes'));
  return adopt('aedes', child, version, await waitForReadyLine('aedes', child, opts.tls !== undefined), 5_000);
}

async function startMosquitto(opts: StartOptions): Promise<RunningBroker> {
  const bin = findMosquitto();
  if (!bin) throw new BrokerUnavailable('mosquitto binary not found (apt-get install mosquitto)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'eddy-bench-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  // Queue and in-flight limits are lifted so that Mosquitto drops nothing (its defaults, 1000 queued
  // and 20 in flight per client, shed QoS 0 and hold back QoS 1 where Eddy and Aedes do not).
  // Logging is narrowed, because per-connection notices cost Mosquitto CPU that the others don't spend.
  const text = [
    `listener ${port} 127.0.0.1`,
    // TLS on the same listener; Mosquitto's default minimum is TLS 1.2 too.
    ...(opts.tls ? [`certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`] : []),
    'allow_anonymous true',
    'persistence false',
    'max_queued_messages 0',
    'max_queued_bytes 0',
    'max_inflight_messages 0',
    'max_inflight_bytes 0',
    'max_connections -1',
    // Eddy sets TCP_NODELAY on its sockets; Mosquitto does not by default, and Nagle's delays would
    // then count against it in every latency column.
    'set_tcp_nodelay true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
  writeFileSync(conf, text);
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child, 'mosquitto');
  try {
    // Mosquitto cannot report its port, so readiness is "the port accepts connections".
    await waitForPort('mosquitto', child, port);
  } catch (err) {
    await terminate(child, 2_000);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const broker = adopt('mosquitto', child, mosquittoVersion(bin), { host: '127.0.0.1', port, secure: opts.tls !== undefined }, 5_000);
  return {
    ...broker,
    config: text,
    async stop() {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function adopt(name: BrokerName, child: ChildProcess, version: string,
  addr: { host: string; port: number; secure: boolean }, graceMs: number): RunningBroker {
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return {
    name,
    url: `${addr.secure ? 'mqtts' : 'mqtt'}://${host}:${addr.port}`,
    pid: child.pid ?? -1,
    processes: { broker: child.pid ? [child.pid] : [], store: [] },
    version,
    stop: () => terminate(child, graceMs),
  };
}

function track(child: ChildProcess, name: string): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A broker that cannot spawn must surface as a start failure, not an unhandled 'error'.
  child.once('error', (err) => process.stderr.write(`[${name}] spawn error: ${err.message}\n`));
  if (child.stderr) forwardLines(child.stderr, `[${name}:stderr] `);
}

/**
 * Waits for `<name> ready mqtt=HOST:PORT ...` on stdout (with `secure`, its `mqtts=HOST:PORT`), then
 * keeps draining stdout so the pipe never fills.
 */
function waitForReadyLine(name: string, child: ChildProcess, secure: boolean): Promise<{ host: string; port: number; secure: boolean }> {
  track(child, name);
  return new Promise((resolve, reject) => {
    let ready = false;
    const rl = createInterface({ input: child.stdout! });
    const fail = (msg: string): void => {
      if (ready) return;
      ready = true;
      clearTimeout(timer);
      void terminate(child, 1_000).finally(() => reject(new Error(msg)));
    };
    const timer = setTimeout(() => fail(`no ready line within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    rl.on('line', (line) => {
      const m = (secure ? /\bready .*\bmqtts=(\S+):(\d+)/ : /\bready mqtt=(\S+):(\d+)/).exec(line);
      if (!ready && m) {
        ready = true;
        clearTimeout(timer);
        resolve({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), secure });
      } else {
        process.stderr.write(`[${name}:stdout] ${line}\n`);
      }
    });
    child.once('exit', (code, signal) => fail(`exited before ready (code ${code}, signal ${signal})`));
    child.once('error', (err) => fail(err.message));
  });
}

async function waitForPort(name: string, child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited before listening (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} did not listen on port ${port} within ${READY_TIMEOUT_MS} ms`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

/** Asks the kernel for a free port; racy in theory, but fine on a bench machine. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** SIGTERM, then SIGKILL after graceMs so a wedged broker cannot hang the bench. */
function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(killer);
      live.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function forwardLines(stream: NodeJS.ReadableStream, prefix: string): void {
  createInterface({ input: stream }).on('line', (line) => process.stderr.write(prefix + line + '\n'));
}

function findMosquitto(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  return dirs.map((d) => path.join(d, 'mosquitto')).find((p) => p && existsSync(p));
}

function mosquittoVersion(bin: string): string {
  const out = spawnSync(bin, ['-h'], { encoding: 'utf8', timeout: 5_000 });
  return /mosquitto version (\S+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
}

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
