/**
 * Crash-safety harness: runs `eddy broker --data-dir DIR` as a child process, publishes QoS 1
 * messages from several clients, SIGKILLs the broker at random moments and restarts it on the
 * same directory, then checks that every confirmed (PUBACKed) message reached every durable
 * subscriber.
 *
 * Used in short form by test/crash-recovery.test.ts; run by hand for the long form:
 *
 *   npx tsc -p . && node dist/test/crash/harness.js --rounds 200 --clients 4
 *
 * (see `--help` for all options; exit status 0 = no confirmed message lost, 1 = loss or error).
 */
import { prng } from '../helpers/prng.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { IConnackPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { EDDY_BIN } from '../helpers/broker.js';

// ---------------------------------------------------------------------------------------------
// Broker child processes
// ---------------------------------------------------------------------------------------------

/** The warning `eddy broker` prints while the durable engine is missing. */
export const NO_DURABLE_STORAGE = /durable storage is not available/;

const READY = /eddy ready mqtt=(\S+):(\d+) http=(\S+):(\d+)/;
const STDERR_KEEP = 16_384;

/** Every broker child this process started and that has not exited yet. */
const liveChildren = new Set<ChildProcess>();
/** Temporary data directories runCrashRounds made and has not removed yet. */
const ownDirs = new Set<string>();

function cleanUpSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of ownDirs) rmSync(dir, { recursive: true, force: true });
}
process.once('exit', cleanUpSync);
// A test runner that times a file out, or Ctrl-C on a long run, must not leave brokers behind.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    cleanUpSync();
    process.exit(code);
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CrashBroker {
  child: ChildProcess;
  host: string;
  mqttPort: number;
  url: string;
  /** Milliseconds from spawn to the ready line (includes recovery of the data directory). */
  readyMs: number;
  /** Settles when the process has exited. */
  exited: Promise<Exit>;
  stderr(): string;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<Exit>;
  /** SIGTERM, SIGKILL after `graceMs`; resolves with the exit and whether SIGKILL was needed. */
  stop(graceMs?: number): Promise<Exit & { forced: boolean }>;
}

/**
 * Like spawnBroker (test/helpers/broker.ts), but the child is killed if it does not get ready in
 * time, every child is tracked so `killAllBrokers()` can clean up, and the exit is a promise.
 */
export async function launchBroker(args: string[], readyTimeoutMs = 30_000): Promise<CrashBroker> {
  const started = Date.now();
  const child = spawn(process.execPath, [EDDY_BIN, 'broker', '--port', '0', '--http-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let out = '';
  let err = '';
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
  });
  child.stdout!.on('data', (d: Buffer) => {
    if (out.length < 4096) out += d;
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d;
    if (err.length > 2 * STDERR_KEEP) err = err.slice(-STDERR_KEEP);
  });
  let ready: RegExpMatchArray;
  try {
    ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broker not ready in ${readyTimeoutMs} ms; stderr: ${err.slice(-2000)}`)), readyTimeoutMs);
      const check = (): void => {
        const m = out.match(READY);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      };
      child.stdout!.on('data', check);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`broker exited (code ${code}, signal ${signal}) before ready; stderr: ${err.slice(-2000)}`));
      });
    });
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  }
  const host = ready[1]!;
  const mqttPort = Number(ready[2]);
  const kill = async (): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return exited;
  };
  return {
    child,
    host,
    mqttPort,
    url: `mqtt://${host}:${mqttPort}`,
    readyMs: Date.now() - started,
    exited,
    stderr: () => err,
    kill,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return { ...(await exited), forced: false };
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
      const result = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (result !== 'timeout') return { ...result, forced: false };
      return { ...(await kill()), forced: true };
    },
  };
}

/** SIGKILLs every broker child still running (for after hooks). */
export async function killAllBrokers(): Promise<void> {
  const waits: Array<Promise<unknown>> = [];
  for (const child of liveChildren) {
    waits.push(new Promise((r) => child.once('exit', r)));
    child.kill('SIGKILL');
  }
  await Promise.all(waits);
}

/**
 * Whether `eddy broker --data-dir` really persists: false while it warns that durable storage is
 * not available (the memory fallback).
 */
export async function probeDurableStorage(): Promise<boolean> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'eddy-probe-'));
  try {
    const broker = await launchBroker(['--data-dir', path.join(dir, 'data'), '--log-level', 'warn']);
    await broker.stop();
    return !NO_DURABLE_STORAGE.test(broker.stderr());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

export interface Opened {
  client: MqttClient;
  /** Set when CONNACK arrived. */
  connack?: IConnackPacket;
  /** Set when the connection failed (refused, closed before CONNACK, timed out). */
  error?: Error;
}

/**
 * Connects mqtt.js without automatic reconnects and never rejects: a failed connect is reported
 * in `error` (brokers get killed under these clients). Listeners in `beforeConnect` are attached
 * before CONNACK, so nothing the broker sends right after it is missed.
 */
export function openClient(url: string, options: IClientOptions, timeoutMs = 5000, beforeConnect?: (client: MqttClient) => void): Promise<Opened> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: timeoutMs, ...options });
  client.on('error', () => {}); // reported through the promise or irrelevant after a kill
  beforeConnect?.(client);
  return new Promise<Opened>((resolve) => {
    let settled = false;
    const settle = (result: Omit<Opened, 'client'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ client, ...result });
    };
    const timer = setTimeout(() => settle({ error: new Error(`no CONNACK within ${timeoutMs + 1000} ms`) }), timeoutMs + 1000);
    client.once('connect', (connack) => settle({ connack: connack as IConnackPacket }));
    client.once('error', (error) => settle({ error }));
    client.once('close', () => settle({ error: new Error('connection closed before CONNACK') }));
  });
}

/** Ends a client without waiting for anything: the socket is destroyed. */
export function destroyClient(client: MqttClient | undefined): void {
  if (!client) return;
  try {
    client.end(true);
  } catch {
    // already ended
  }
}

/** Ends a client with DISCONNECT, falling back to destroying it after `timeoutMs`. */
export async function endClient(client: MqttClient | undefined, timeoutMs = 2000): Promise<void> {
  if (!client) return;
  if (!client.connected) return destroyClient(client);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.endAsync(false).catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
  destroyClient(client);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Session options that make a client a durable subscriber, for MQTT 5 or 3.1.1. */
export function durableSessionOptions(clientId: string, protocolVersion: 4 | 5, cleanStart: boolean): IClientOptions {
  return protocolVersion === 5
    ? { clientId, protocolVersion, clean: cleanStart, properties: { sessionExpiryInterval: 3600 } }
    : { clientId, protocolVersion, clean: false };
}

// ---------------------------------------------------------------------------------------------
// The crash rounds
// ---------------------------------------------------------------------------------------------

/**
 * connected: stays connected while publishers run, reconnects after every restart.
 * offline: subscribes at the start, then stays away until the end.
 * intermittent: connects in even rounds and disconnects gracefully half way to the kill.
 */
export type SubscriberKind = 'connected' | 'offline' | 'intermittent';

export interface SubscriberSpec {
  clientId: string;
  kind: SubscriberKind;
  protocolVersion: 4 | 5;
  /** Member of this consumer group ($share/{group}/crash/#): the group as a whole must get every message. */
  group?: string;
}

/** Members of the harness's consumer group `crashers`: one always connected, one coming and going. */
export function groupMembers(count: number): SubscriberSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    clientId: `crash-grp-${i}`,
    kind: i % 2 === 0 ? ('connected' as const) : ('intermittent' as const),
    protocolVersion: i % 2 === 0 ? (5 as const) : (4 as const),
    group: 'crashers',
  }));
}

const SUBSCRIBER_PATTERN: Array<[SubscriberKind, 4 | 5]> = [
  ['connected', 5],
  ['offline', 5],
  ['intermittent', 4],
  ['offline', 4],
  ['connected', 4],
  ['intermittent', 5],
];

/** The default mix of subscriber kinds and protocol versions for `count` subscribers. */
export function defaultSubscribers(count: number): SubscriberSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const [kind, protocolVersion] = SUBSCRIBER_PATTERN[i % SUBSCRIBER_PATTERN.length]!;
    return { clientId: `crash-sub-${i}-${kind}-v${protocolVersion === 5 ? 5 : 311}`, kind, protocolVersion };
  });
}

export interface CrashOptions {
  rounds: number;
  publishers: number;
  /** A count (default mix, see defaultSubscribers) or explicit specs. Default 4. */
  subscribers?: number | SubscriberSpec[];
  /** Members of one consumer group, added to the subscribers (see groupMembers). Default 0. */
  groupMembers?: number;
  /** Must be empty or absent; a temporary directory (removed at the end) when not given. */
  dataDir?: string;
  /** Keep a temporary data directory instead of removing it (for post-mortems). */
  keepDataDir?: boolean;
  /** Range of the random delay between the start of publishing and SIGKILL. Default [50, 400]. */
  killDelayMs?: [number, number];
  /** Chance that a round's kill comes 0–30 ms after the broker is ready, while clients connect. Default 0.15. */
  earlyKillChance?: number;
  /** QoS 1 publishes in flight per publisher. Default 8. */
  window?: number;
  /** The final drain ends after this long without a message. Default 2000. */
  quietMs?: number;
  /** Longest final drain before giving up. Default 120000. */
  drainTimeoutMs?: number;
  /** Seed of the random kill moments (printed in the report). */
  seed?: number;
  /** Extra `eddy broker` arguments. */
  brokerArgs?: string[];
  /**
   * Replaces `--data-dir DIR`: e.g. ['--memory'] runs the harness against the memory engine, a
   * negative control that must report missing messages.
   */
  storageArgs?: string[];
  readyTimeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface SubscriberResult extends SubscriberSpec {
  /** Distinct messages received (confirmed or not). */
  delivered: number;
  /** Confirmed messages never received. */
  missing: number;
  /** Up to 10 missing ids as "publisher:n@round". */
  missingSamples: string[];
  /** Receptions beyond the first of the same message. */
  duplicates: number;
  /** First receptions of a message older than one already received from the same publisher. */
  reorderings: number;
  /** Messages received that were never published (bad payload or unknown id). */
  unexpected: number;
  /** Reconnects (clean start false) answered with sessionPresent = false. */
  sessionLost: number;
  /** Distinct messages received that were never confirmed (in flight at a kill). */
  unconfirmedDelivered: number;
}

export interface GroupResult {
  group: string;
  members: string[];
  delivered: number;
  missing: number;
  missingSamples: string[];
  /** Receptions beyond the first, across members (a member that left with messages in flight). */
  duplicates: number;
}

export interface CrashReport {
  ok: boolean;
  seed: number;
  rounds: number;
  publishers: number;
  /** False when the broker warned that durable storage is not available. */
  durableStorage: boolean;
  /** Publishes handed to the clients. */
  published: number;
  /** Publishes answered with a successful PUBACK. */
  confirmed: number;
  /** Confirmed with reason 0x10 "no matching subscribers" (MQTT 5 publishers): the broker had lost the subscriptions. */
  confirmedNoSubscribers: number;
  deliveredPerSubscriber: Record<string, number>;
  missingPerSubscriber: Record<string, number>;
  duplicatesPerSubscriber: Record<string, number>;
  reorderingsPerSubscriber: Record<string, number>;
  subscribers: SubscriberResult[];
  /** Consumer groups: what the members received together. */
  groups: GroupResult[];
  kills: { total: number; early: number; delaysMs: { min: number; max: number } };
  restarts: { count: number; maxReadyMs: number; avgReadyMs: number };
  /** Harness-level problems: a broker that exited on its own, failed to start, a drain that never went quiet... */
  errors: string[];
  elapsedMs: number;
}


// Message identity and the subscriber-side bookkeeping, shared with the cluster form (cluster-harness.ts).
const KEY_SPACE = 2 ** 32;
/** One number per message: publisher p's n-th publish (its payload is `{"p":p,"n":n}`). */
export const keyOf = (p: number, n: number): number => p * KEY_SPACE + n;
export const formatKey = (key: number): string => `${Math.floor(key / KEY_SPACE)}:${key % KEY_SPACE}`;
/** Publisher p publishes on this topic; the subscribers take `crash/#`. */
export const topicOf = (p: number): string => `crash/p${p}`;

/** What one durable subscriber received over the whole run. */
export class SubscriberTracker {
  readonly counts = new Map<number, number>();
  private readonly maxSeen = new Map<number, number>();
  duplicates = 0;
  reorderings = 0;
  unexpected = 0;
  unexpectedSamples: string[] = [];
  sessionLost = 0;
  lastMessageAt = 0;
  client: MqttClient | undefined;

  constructor(
    readonly spec: SubscriberSpec,
    private readonly published: (p: number) => number,
  ) {}

  /** Records every PUBLISH off the wire, before mqtt.js acknowledges it. */
  attach(client: MqttClient): void {
    client.on('packetreceive', (packet: Packet) => {
      if (packet.cmd === 'publish') this.record(packet as IPublishPacket);
    });
  }

  private record(packet: IPublishPacket): void {
    this.lastMessageAt = Date.now();
    let p: unknown;
    let n: unknown;
    try {
      ({ p, n } = JSON.parse(packet.payload.toString()) as { p: unknown; n: unknown });
    } catch {
      // falls through to unexpected
    }
    if (typeof p !== 'number' || typeof n !== 'number' || !Number.isInteger(p) || !Number.isInteger(n) || n < 0 || n >= this.published(p) || packet.topic !== topicOf(p)) {
      this.unexpected++;
      if (this.unexpectedSamples.length < 10) this.unexpectedSamples.push(`${packet.topic} ${packet.payload.toString().slice(0, 80)}`);
      return;
    }
    const key = keyOf(p, n);
    const count = this.counts.get(key) ?? 0;
    this.counts.set(key, count + 1);
    if (count > 0) {
      this.duplicates++;
      return;
    }
    const max = this.maxSeen.get(p) ?? -1;
    if (n < max) this.reorderings++;
    else this.maxSeen.set(p, n);
  }
}

export interface Stop {
  stopped: boolean;
  promise: Promise<void>;
  fire(): void;
}

export function stopSignal(): Stop {
  let fire!: () => void;
  const promise = new Promise<void>((r) => (fire = r));
  const stop: Stop = {
    stopped: false,
    promise,
    fire() {
      stop.stopped = true;
      fire();
    },
  };
  return stop;
}

/**
 * Runs `rounds` crash rounds and the final check. Never throws for a broker that loses data or
 * dies: that ends up in the report (`ok`, `missing…`, `errors`). Throws only for bad options.
 */
export async function runCrashRounds(options: CrashOptions): Promise<CrashReport> {
  const started = Date.now();
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = prng(seed);
  const between = (min: number, max: number): number => Math.floor(min + random() * (max - min + 1));
  const [minKill, maxKill] = options.killDelayMs ?? [50, 400];
  const earlyKillChance = options.earlyKillChance ?? 0.15;
  const window = options.window ?? 8;
  const quietMs = options.quietMs ?? 2000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 120_000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const log = options.log ?? (() => {});
  const specs = [
    ...(Array.isArray(options.subscribers) ? options.subscribers : defaultSubscribers(options.subscribers ?? 4)),
    ...groupMembers(options.groupMembers ?? 0),
  ];
  if (options.rounds < 0 || options.publishers < 1 || specs.length < 1) throw new Error('runCrashRounds: need rounds >= 0, publishers >= 1, subscribers >= 1');

  let dataDir = options.dataDir;
  let ownDir: string | undefined;
  if (dataDir === undefined) {
    ownDir = await mkdtemp(path.join(os.tmpdir(), 'eddy-crash-'));
    if (!options.keepDataDir) ownDirs.add(ownDir);
    dataDir = path.join(ownDir, 'data');
  } else {
    const entries = await readdir(dataDir).catch(() => []);
    if (entries.length > 0) throw new Error(`runCrashRounds: data directory ${dataDir} is not empty`);
  }
  const brokerArgs = [...(options.storageArgs ?? ['--data-dir', dataDir]), '--log-level', 'warn', '--max-queued', '100000000', ...(options.brokerArgs ?? [])];

  const errors: string[] = [];
  const nextN = new Array<number>(options.publishers).fill(0);
  const confirmed = new Map<number, number>(); // key -> round it was confirmed in
  let confirmedNoSubscribers = 0;
  const subs = specs.map((spec) => new SubscriberTracker(spec, (p) => (p >= 0 && p < nextN.length ? nextN[p]! : 0)));
  const readyTimes: number[] = [];
  const killDelays: number[] = [];
  let earlyKills = 0;
  let durableStorage = !(options.storageArgs ?? []).includes('--memory');
  let broker: CrashBroker | undefined;
  const openClients = new Set<MqttClient>();

  const launch = async (): Promise<CrashBroker> => {
    const b = await launchBroker(brokerArgs, readyTimeoutMs);
    readyTimes.push(b.readyMs);
    return b;
  };
  const track = (opened: Opened): Opened => {
    openClients.add(opened.client);
    opened.client.once('close', () => openClients.delete(opened.client));
    return opened;
  };
  const connectSubscriber = async (sub: SubscriberTracker, url: string): Promise<boolean> => {
    const opened = track(await openClient(url, durableSessionOptions(sub.spec.clientId, sub.spec.protocolVersion, false), 5000, (c) => sub.attach(c)));
    sub.client = opened.client;
    if (!opened.connack) {
      destroyClient(opened.client);
      return false;
    }
    if (!opened.connack.sessionPresent) sub.sessionLost++;
    return true;
  };
  const noteStderr = (b: CrashBroker): void => {
    if (NO_DURABLE_STORAGE.test(b.stderr())) durableStorage = false;
  };

  try {
    // --- setup: durable subscriptions before anything is published -------------------------
    broker = await launch();
    for (const sub of subs) {
      const opened = track(await openClient(broker.url, durableSessionOptions(sub.spec.clientId, sub.spec.protocolVersion, true), 5000, (c) => sub.attach(c)));
      if (!opened.connack) throw new Error(`setup: ${sub.spec.clientId} could not connect: ${opened.error?.message}`);
      const granted = await opened.client.subscribeAsync(sub.spec.group ? `$share/${sub.spec.group}/crash/#` : 'crash/#', { qos: 1 });
      if (granted[0]?.qos !== 1) throw new Error(`setup: ${sub.spec.clientId} subscription granted ${JSON.stringify(granted)}`);
      sub.client = opened.client;
      if (sub.spec.kind !== 'connected') await endClient(opened.client);
    }

    // --- rounds -----------------------------------------------------------------------------
    for (let round = 1; round <= options.rounds; round++) {
      const b: CrashBroker = broker!;
      const early = random() < earlyKillChance;
      const delay = early ? between(0, 30) : between(minKill, maxKill);
      if (early) earlyKills++;
      killDelays.push(delay);
      const stop = stopSignal();
      let killTimer: NodeJS.Timeout | undefined;
      let fireKill!: () => void;
      const killDue = new Promise<'kill'>((r) => (fireKill = () => r('kill')));
      const armKill = (): void => {
        killTimer = setTimeout(fireKill, delay);
      };
      if (early) armKill();
      const died = b.exited.then((exit) => ({ died: exit }));

      // Subscribers due this round and all publishers connect at once; publishing starts as soon
      // as a publisher's CONNACK arrives.
      const roundSubs = subs.filter((s) => s.spec.kind === 'connected' || (s.spec.kind === 'intermittent' && round % 2 === 0));
      const pumps: Array<Promise<void>> = [];
      const pubClients: MqttClient[] = [];
      const subConnects = roundSubs.map(async (sub) => {
        if (sub.client?.connected) return; // round 1: still connected since setup
        await connectSubscriber(sub, b.url);
        if (sub.spec.kind === 'intermittent' && !early && sub.client?.connected) {
          const client = sub.client;
          setTimeout(() => void endClient(client), Math.floor(delay / 2));
        }
      });
      const pubConnects = Array.from({ length: options.publishers }, async (_, p) => {
        const opened = track(await openClient(b.url, { clientId: `crash-pub-${p}`, clean: true, protocolVersion: p % 2 === 0 ? 5 : 4 }));
        pubClients.push(opened.client);
        if (opened.connack) pumps.push(pump(p, opened.client, stop, round));
      });
      const connected = Promise.all([...subConnects, ...pubConnects]);
      if (!early) void connected.then(armKill);

      const outcome = await Promise.race([killDue, died]);
      stop.fire();
      clearTimeout(killTimer);
      if (outcome !== 'kill') {
        errors.push(`round ${round}: broker exited on its own (code ${outcome.died.code}, signal ${outcome.died.signal}); stderr: ${b.stderr().slice(-2000)}`);
      }
      await b.kill();
      noteStderr(b);
      await connected; // every connect settles once the broker is gone
      for (const client of [...openClients]) destroyClient(client);
      await Promise.all(pumps);

      try {
        broker = await launch();
      } catch (e) {
        broker = undefined;
        errors.push(`round ${round}: restart failed: ${(e as Error).message}`);
        break;
      }
      log(`round ${round}/${options.rounds}: killed ${early ? 'early, ' : ''}${delay} ms in; ${confirmed.size} confirmed so far; restarted in ${broker.readyMs} ms`);
    }

    // --- final check ------------------------------------------------------------------------
    if (broker) {
      const b: CrashBroker = broker;
      const drainStart = Date.now();
      for (const sub of subs) {
        if (!(await connectSubscriber(sub, b.url))) errors.push(`final: ${sub.spec.clientId} could not connect`);
      }
      const quietSince = (): number => Math.max(drainStart, ...subs.map((s) => s.lastMessageAt));
      while (Date.now() - quietSince() < quietMs) {
        if (b.child.exitCode !== null || b.child.signalCode !== null) {
          errors.push(`final: broker exited during the drain; stderr: ${b.stderr().slice(-2000)}`);
          break;
        }
        if (Date.now() - drainStart > drainTimeoutMs) {
          errors.push(`final: messages still arriving after ${drainTimeoutMs} ms`);
          break;
        }
        await sleep(50);
      }
      log(`final drain took ${Date.now() - drainStart} ms`);
      await Promise.all(subs.map((s) => endClient(s.client)));
      const exit = await b.stop();
      noteStderr(b);
      if (exit.forced) errors.push('final: broker ignored SIGTERM for 5 s and was killed');
      broker = undefined;
    }
  } catch (e) {
    errors.push((e as Error).stack ?? String(e));
  } finally {
    for (const client of openClients) destroyClient(client);
    for (const sub of subs) destroyClient(sub.client);
    if (broker) {
      noteStderr(broker);
      await broker.kill();
    }
    if (ownDir && !options.keepDataDir) {
      await rm(ownDir, { recursive: true, force: true });
      ownDirs.delete(ownDir);
    }
    else if (ownDir) log(`data directory kept: ${dataDir}`);
  }

  // --- the verdict ------------------------------------------------------------------------------
  const groupResults: GroupResult[] = [];
  for (const group of new Set(subs.map((s) => s.spec.group).filter((g): g is string => g !== undefined))) {
    const members = subs.filter((s) => s.spec.group === group);
    const union = new Map<number, number>();
    for (const m of members) for (const [key, n] of m.counts) union.set(key, (union.get(key) ?? 0) + n);
    const missingKeys = [...confirmed].filter(([key]) => !union.has(key));
    groupResults.push({
      group,
      members: members.map((m) => m.spec.clientId),
      delivered: union.size,
      missing: missingKeys.length,
      missingSamples: missingKeys.slice(0, 10).map(([key, round]) => `${formatKey(key)}@${round}`),
      duplicates: [...union.values()].reduce((a, n) => a + n - 1, 0),
    });
  }
  const results: SubscriberResult[] = subs.filter((sub) => sub.spec.group === undefined).map((sub) => {
    let missing = 0;
    const missingSamples: string[] = [];
    for (const [key, round] of confirmed) {
      if (!sub.counts.has(key)) {
        missing++;
        if (missingSamples.length < 10) missingSamples.push(`${formatKey(key)}@${round}`);
      }
    }
    let unconfirmedDelivered = 0;
    for (const key of sub.counts.keys()) if (!confirmed.has(key)) unconfirmedDelivered++;
    return {
      ...sub.spec,
      delivered: sub.counts.size,
      missing,
      missingSamples,
      duplicates: sub.duplicates,
      reorderings: sub.reorderings,
      unexpected: sub.unexpected,
      sessionLost: sub.sessionLost,
      unconfirmedDelivered,
    };
  });
  for (const sub of subs) {
    if (sub.unexpectedSamples.length > 0) errors.push(`${sub.spec.clientId} received messages never published, e.g. ${sub.unexpectedSamples.join(' | ')}`);
  }
  const perSub = (f: (r: SubscriberResult) => number): Record<string, number> => Object.fromEntries(results.map((r) => [r.clientId, f(r)]));
  const ok =
    errors.length === 0 &&
    results.every((r) => r.missing === 0 && r.unexpected === 0 && r.sessionLost === 0) &&
    groupResults.every((g) => g.missing === 0);
  return {
    ok,
    seed,
    rounds: options.rounds,
    publishers: options.publishers,
    durableStorage,
    published: nextN.reduce((a, b) => a + b, 0),
    confirmed: confirmed.size,
    confirmedNoSubscribers,
    deliveredPerSubscriber: perSub((r) => r.delivered),
    missingPerSubscriber: perSub((r) => r.missing),
    duplicatesPerSubscriber: perSub((r) => r.duplicates),
    reorderingsPerSubscriber: perSub((r) => r.reorderings),
    subscribers: results,
    groups: groupResults,
    kills: { total: killDelays.length, early: earlyKills, delaysMs: { min: killDelays.length ? Math.min(...killDelays) : 0, max: killDelays.length ? Math.max(...killDelays) : 0 } },
    restarts: {
      count: Math.max(readyTimes.length - 1, 0),
      maxReadyMs: Math.max(...readyTimes.slice(1), 0),
      avgReadyMs: readyTimes.length > 1 ? Math.round(readyTimes.slice(1).reduce((a, b) => a + b, 0) / (readyTimes.length - 1)) : 0,
    },
    errors,
    elapsedMs: Date.now() - started,
  };

  /** Publishes QoS 1 from publisher `p` with up to `window` in flight until stopped or disconnected. */
  async function pump(p: number, client: MqttClient, stop: Stop, round: number): Promise<void> {
    const inflight = new Set<Promise<void>>();
    while (!stop.stopped && client.connected) {
      if (inflight.size >= window) {
        await Promise.race([stop.promise, ...inflight]);
        continue;
      }
      const n = nextN[p]!++;
      const key = keyOf(p, n);
      const sent: Promise<void> = client
        .publishAsync(topicOf(p), JSON.stringify({ p, n }), { qos: 1 })
        .then(
          (packet) => {
            confirmed.set(key, round);
            if ((packet as { reasonCode?: number } | undefined)?.reasonCode === 0x10) confirmedNoSubscribers++;
          },
          () => {}, // not confirmed: may or may not arrive
        )
        .finally(() => inflight.delete(sent));
      inflight.add(sent);
    }
  }
}

/** A few lines for humans. */
export function summarize(report: CrashReport): string {
  const lines = [
    `${report.ok ? 'OK' : 'FAILED'}: ${report.rounds} rounds, ${report.publishers} publishers, seed ${report.seed}, ${report.elapsedMs} ms` +
      `${report.durableStorage ? '' : ' (broker without durable storage: --memory, or it warned that durable storage is not available)'}`,
    `published ${report.published}, confirmed ${report.confirmed}${report.confirmedNoSubscribers ? ` (${report.confirmedNoSubscribers} with "no matching subscribers")` : ''}; ` +
      `kills ${report.kills.total} (${report.kills.early} early, ${report.kills.delaysMs.min}-${report.kills.delaysMs.max} ms); ` +
      `restarts ${report.restarts.count} (ready avg ${report.restarts.avgReadyMs} ms, max ${report.restarts.maxReadyMs} ms)`,
  ];
  for (const r of report.subscribers) {
    lines.push(
      `  ${r.clientId}: delivered ${r.delivered}, missing ${r.missing}${r.missing ? ` (e.g. ${r.missingSamples.join(', ')})` : ''}, ` +
        `duplicates ${r.duplicates}, reorderings ${r.reorderings}, unconfirmed delivered ${r.unconfirmedDelivered}` +
        `${r.unexpected ? `, UNEXPECTED ${r.unexpected}` : ''}${r.sessionLost ? `, SESSION LOST ${r.sessionLost}x` : ''}`,
    );
  }
  for (const g of report.groups) {
    lines.push(
      `  group ${g.group} (${g.members.join(', ')}): delivered ${g.delivered}, missing ${g.missing}${g.missing ? ` (e.g. ${g.missingSamples.join(', ')})` : ''}, duplicates ${g.duplicates}`,
    );
  }
  for (const e of report.errors) lines.push(`  error: ${e.split('\n')[0]}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// By hand: node dist/test/crash/harness.js --rounds 200 --clients 4
// ---------------------------------------------------------------------------------------------

const HELP = `Usage: node dist/test/crash/harness.js [options]

Kills "eddy broker --data-dir" with SIGKILL at random moments while QoS 1 publishers run,
restarts it on the same directory, and checks every PUBACKed message reached every durable
subscriber. Exit status 0 when nothing confirmed was lost, 1 otherwise.

  --rounds N            kill/restart rounds (default 200)
  --clients N           publishers (alias --publishers; default 4)
  --subscribers N       durable subscribers, mixed kinds/versions (default 4)
  --group-members N     members of one consumer group $share/crashers/crash/# (default 2)
  --seed N              replay the random kill moments of an earlier run
  --min-kill-ms MS      shortest delay from publishing to SIGKILL (default 50)
  --max-kill-ms MS      longest (default 400)
  --early-kill P        chance of a kill 0-30 ms after ready (default 0.15)
  --window N            QoS 1 publishes in flight per publisher (default 8)
  --quiet-ms MS         final drain ends after this long without messages (default 2000)
  --data-dir DIR        use DIR (must be empty; kept afterwards)
  --keep                keep the temporary data directory
  --memory              run against "eddy broker --memory" (negative control: must report losses)
  --broker-arg ARG      extra eddy broker argument (repeatable), e.g. --broker-arg=--fsync --broker-arg=always
  --json                print the full report as JSON
  --quiet               no per-round progress
`;

/** A numeric command-line value, or `fallback` when absent (both harnesses' CLIs). */
export function numberArg(v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`not a number: ${v}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      clients: { type: 'string' },
      publishers: { type: 'string' },
      subscribers: { type: 'string' },
      'group-members': { type: 'string' },
      seed: { type: 'string' },
      'min-kill-ms': { type: 'string' },
      'max-kill-ms': { type: 'string' },
      'early-kill': { type: 'string' },
      window: { type: 'string' },
      'quiet-ms': { type: 'string' },
      'data-dir': { type: 'string' },
      keep: { type: 'boolean' },
      memory: { type: 'boolean' },
      'broker-arg': { type: 'string', multiple: true },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = numberArg;
  const report = await runCrashRounds({
    rounds: num(values.rounds, 200),
    publishers: num(values.publishers ?? values.clients, 4),
    subscribers: num(values.subscribers, 4),
    groupMembers: num(values['group-members'], 2),
    seed: values.seed === undefined ? undefined : num(values.seed, 0),
    killDelayMs: [num(values['min-kill-ms'], 50), num(values['max-kill-ms'], 400)],
    earlyKillChance: num(values['early-kill'], 0.15),
    window: num(values.window, 8),
    quietMs: num(values['quiet-ms'], 2000),
    dataDir: values['data-dir'],
    keepDataDir: values.keep,
    brokerArgs: values['broker-arg'],
    storageArgs: values.memory ? ['--memory'] : undefined,
    log: values.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${summarize(report)}\n`);
  return report.ok ? 0 : 1;
}

// `node --test dist/test/` also runs every file under a test/ directory, this one included: only
// run the long form when started by hand, never inside the test runner (NODE_TEST_CONTEXT set).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && !process.env.NODE_TEST_CONTEXT) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
