/**
 * Crash harness, cluster form: a real 3-node NATS JetStream cluster, N `eddy broker --cluster`
 * nodes on it, durable QoS 1 subscribers (persistent sessions) and a consumer group of persistent
 * members, publishers at QoS 1 with a unique id in every payload. Each round: random traffic, then
 * `kill -9` of one Eddy node (restarted on new ports; its clients reconnect to a live node, with one
 * node they wait for the restart) or of one NATS node (restarted with the same ports and store).
 * At the end a drain, then per subscriber and for the group: confirmed, received, missing
 * (confirmed, never received = LOSS), duplicates. Exit status 0 iff nothing confirmed was lost.
 *
 * The pieces it shares with the single-node harness (harness.ts) are imported from there: the
 * broker launcher, the client helpers, message ids and the subscriber-side tracker.
 *
 *   npm run build && node dist/test/crash/cluster-harness.js --eddy-kills 20 --nats-kills 20
 *
 * Short form: test/cluster-crash.test.ts. `--help` lists the options.
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js';
import { prng } from '../helpers/prng.js';
import { PublishLedger, startPublisher, startSubscriber, type SubscriberAgent } from './cluster-clients.js';
import { durableResult, groupVerdict, summarize, verdict, type ClusterCrashReport, type KillRecord, type Received } from './cluster-report.js';
import { destroyClient, launchBroker, numberArg, sleep, stopSignal, SubscriberTracker, type CrashBroker, type SubscriberSpec } from './harness.js';

export interface ClusterCrashOptions {
  eddyNodes?: number;
  eddyKills: number;
  natsKills: number;
  publishers?: number;
  /** Durable subscribers on `crash/#` (MQTT 5 and 3.1.1 alternating). Default 2. */
  subscribers?: number;
  /** Persistent members of `$share/g/crash/#`. Default 2. */
  groupMembers?: number;
  /** Spread subscribers and group members over the Eddy nodes, publishers on other nodes than their subscribers. */
  spread?: boolean;
  /** A clean-session subscriber that never resubscribes, reported apart (it must miss messages after an Eddy kill). */
  negativeControl?: boolean;
  seed?: number;
  /** QoS 1 publishes in flight per publisher. Default 8. */
  window?: number;
  /** Publishes per second per publisher, 0 = as fast as the window allows. Default 100. */
  rate?: number;
  /** Random traffic time before each kill. Default [1000, 4000]. */
  trafficMs?: [number, number];
  /** How long a killed NATS node stays down. Default [0, 2000]. */
  natsDownMs?: [number, number];
  /** Longest wait, per kill, for a publish sent after it to be confirmed. Default 60000. */
  recoverTimeoutMs?: number;
  /** The drain ends after this long without a new message. Default 15000: longer than the ack wait of a group's entries (10 s), after which one a node lost comes again. */
  quietMs?: number;
  drainTimeoutMs?: number;
  readyTimeoutMs?: number;
  brokerArgs?: string[];
  /** Keep the NATS store directory (configs, stores, logs) when something confirmed is missing. */
  keepStoreOnLoss?: boolean;
  log?: (line: string) => void;
}

interface EddyNode {
  index: number;
  /** Undefined while the node is down (killed, restarting): clients then pick another node or wait. */
  broker: CrashBroker | undefined;
  /** The process we expect to die (a kill we sent): any other exit is an error. */
  killing: CrashBroker | undefined;
}

/** Every NATS store directory still on disk, removed at exit (also on Ctrl-C: harness.ts's signal handlers exit). */
const natsDirs = new Set<string>();
let dirHook = false;
function removeAtExit(dir: string): void {
  natsDirs.add(dir);
  if (dirHook) return;
  dirHook = true;
  // Installed after startNatsCluster's own exit hook, which SIGKILLs the servers first.
  process.once('exit', () => {
    for (const d of natsDirs) rmSync(d, { recursive: true, force: true });
  });
}

export async function runClusterCrash(options: ClusterCrashOptions): Promise<ClusterCrashReport> {
  const started = Date.now();
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = prng(seed);
  const between = ([min, max]: [number, number]): number => Math.floor(min + random() * (max - min + 1));
  const eddyNodes = options.eddyNodes ?? 1;
  const publishers = options.publishers ?? 2;
  const spread = options.spread ?? false;
  const window = options.window ?? 8;
  const rate = options.rate ?? 100;
  const recoverTimeoutMs = options.recoverTimeoutMs ?? 60_000;
  const quietMs = options.quietMs ?? 15_000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 180_000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const log = options.log ?? (() => {});
  if (eddyNodes < 1 || publishers < 1 || options.eddyKills < 0 || options.natsKills < 0) throw new Error('runClusterCrash: need eddyNodes >= 1, publishers >= 1, kills >= 0');

  // Both kinds of kill, in a seeded random order, so that a run of 50 + 50 does each 50 times.
  const plan: Array<'eddy' | 'nats'> = [...new Array<'eddy'>(options.eddyKills).fill('eddy'), ...new Array<'nats'>(options.natsKills).fill('nats')];
  for (let i = plan.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }

  const errors: string[] = [];
  /** Eddy starts that failed and were retried: not a loss, but worth knowing. */
  const startFailures: string[] = [];
  const kills: KillRecord[] = [];
  const ledger = new PublishLedger(publishers);
  const published = (p: number): number => (p >= 0 && p < ledger.next.length ? ledger.next[p]! : 0);
  const pubStop = stopSignal();
  const subStop = stopSignal();
  const nodes: EddyNode[] = Array.from({ length: eddyNodes }, (_, index) => ({ index, broker: undefined, killing: undefined }));
  let nats: NatsCluster | undefined;
  let natsVersion = 'unknown';
  const subs: SubscriberAgent[] = [];
  let control: SubscriberAgent | undefined;
  const pumps: Array<Promise<void>> = [];
  let drainMs = 0;

  const received = (a: SubscriberAgent): Received => ({ tracker: a.tracker, home: a.home, sessionLost: a.sessionLost, reconnects: a.reconnects, connections: a.connections });
  /**
   * --spread: the client's home node if it is up, else the next one up. Otherwise every client
   * shares one active node, which moves to the next live node only when it is killed (so publishers
   * and subscribers are always on the same node, which works before live fan-out between nodes).
   * With one node: nothing until it is back.
   */
  let active = 0;
  const pick = (home: number): string | undefined => {
    const start = spread ? home : active;
    for (let k = 0; k < eddyNodes; k++) {
      const i = (start + k) % eddyNodes;
      const url = nodes[i]!.broker?.url;
      if (!url) continue;
      if (!spread) active = i;
      return url;
    }
    return undefined;
  };
  const launch = async (node: EddyNode): Promise<number> => {
    const args = ['--cluster', nats!.urls.join(','), '--host', '127.0.0.1', '--log-level', 'warn', '--max-queued', '100000000', ...(options.brokerArgs ?? [])];
    const b = await launchBroker(args, readyTimeoutMs);
    void b.exited.then((exit) => {
      if (node.killing === b || subStop.stopped) return;
      errors.push(`Eddy node ${node.index} exited on its own (code ${exit.code}, signal ${exit.signal}); stderr: ${b.stderr().slice(-1500)}`);
      if (node.broker === b) node.broker = undefined;
    });
    node.broker = b;
    return b.readyMs;
  };
  const home = (i: number, shift = 0): number => (spread ? (i + shift) % eddyNodes : 0);
  // Even: connected, MQTT 5; odd: intermittent, MQTT 3.1.1 (off and on, so its queue lives in JetStream meanwhile).
  const specs = (prefix: string, count: number, group?: string): SubscriberSpec[] =>
    Array.from({ length: count }, (_, i) => ({
      clientId: `${prefix}-${i}`,
      kind: i % 2 === 0 ? ('connected' as const) : ('intermittent' as const),
      protocolVersion: i % 2 === 0 ? (5 as const) : (4 as const),
      ...(group ? { group } : {}),
    }));
  const steady = { value: false };
  const start = (spec: SubscriberSpec, node: number, k: number): SubscriberAgent =>
    startSubscriber(new SubscriberTracker(spec, published), node, pick, subStop, true, spec.kind === 'intermittent' ? { random: prng(seed + 1 + k), steady } : undefined);

  try {
    // --- setup: NATS, Eddy, the durable subscriptions before anything is published -------------
    nats = await startNatsCluster({ readyTimeoutMs: 60_000 });
    removeAtExit(nats.dir);
    natsVersion = nats.version;
    for (const node of nodes) await launch(node);
    log(`NATS ${natsVersion} on ${nats.urls.join(',')}; Eddy: ${nodes.map((n) => n.broker!.url).join(', ')}`);
    const durable = specs('ccrash-sub', options.subscribers ?? 2);
    const members = specs('ccrash-grp', options.groupMembers ?? 2, 'g');
    durable.forEach((spec, i) => subs.push(start(spec, home(i), subs.length)));
    members.forEach((spec, i) => subs.push(start(spec, home(i, 1), subs.length)));
    if (options.negativeControl) {
      const spec: SubscriberSpec = { clientId: 'ccrash-control', kind: 'connected', protocolVersion: 5 };
      control = startSubscriber(new SubscriberTracker(spec, published), 0, pick, subStop, false);
    }
    await Promise.all([...subs, ...(control ? [control] : [])].map((s) => s.subscribed));
    for (let p = 0; p < publishers; p++) pumps.push(startPublisher(p, home(p, 1), pick, pubStop, ledger, window, rate));

    // --- rounds -------------------------------------------------------------------------------
    for (let round = 1; round <= plan.length; round++) {
      const target = plan[round - 1]!;
      const trafficMs = between(options.trafficMs ?? [1000, 4000]);
      await sleep(trafficMs);
      ledger.round = round;
      const node = Math.floor(random() * (target === 'eddy' ? eddyNodes : 3));
      const killAt = Date.now();
      ledger.watchFrom(killAt);
      const record: KillRecord = { round, at: killAt, target, node, trafficMs, totalMs: 0 };
      if (target === 'eddy') {
        const n = nodes[node]!;
        const b = n.broker;
        n.broker = undefined; // clients stop picking it before it dies
        n.killing = b;
        await b?.kill();
        // A process supervisor would start it again: so does the harness, and reports each failed start.
        for (let attempt = 1; record.readyMs === undefined; attempt++) {
          try {
            record.readyMs = await launch(n);
          } catch (e) {
            const why = `round ${round}: Eddy node ${node} start ${attempt} failed: ${(e as Error).message.split('\n')[0]!.slice(0, 300)}`;
            startFailures.push(why);
            log(why);
            if (attempt === 5) break;
          }
        }
        record.startAttempts = startFailures.filter((f) => f.startsWith(`round ${round}:`)).length + 1;
        if (record.readyMs === undefined) {
          errors.push(`round ${round}: Eddy node ${node} did not start in 5 attempts`);
          break;
        }
      } else {
        await nats.kill(node, 'SIGKILL');
        record.downMs = between(options.natsDownMs ?? [0, 2000]);
        await sleep(record.downMs);
        const restartAt = Date.now();
        try {
          await nats.restart(node);
          record.restartMs = Date.now() - restartAt;
          const caughtUpFrom = Date.now();
          // One failure at a time, as R3 promises: the next kill waits until every stream is whole
          // again and every consumer has a leader.
          await nats.waitForCaughtUp(60_000);
          record.catchUpMs = Date.now() - caughtUpFrom;
        } catch (e) {
          errors.push(`round ${round}: NATS node ${node}: ${(e as Error).message.split('\n')[0]}`);
        }
      }
      const deadline = killAt + recoverTimeoutMs;
      while (ledger.firstConfirmAfterSince === undefined && Date.now() < deadline) await sleep(20);
      if (ledger.firstConfirmAfterSince !== undefined) record.recoverMs = ledger.firstConfirmAfterSince - killAt;
      else errors.push(`round ${round}: no publish confirmed within ${recoverTimeoutMs} ms after the ${target} kill`);
      record.totalMs = Date.now() - killAt;
      kills.push(record);
      const times = target === 'eddy' ? `ready ${record.readyMs} ms` : `down ${record.downMs} ms, restart ${record.restartMs} ms, caught up ${record.catchUpMs} ms`;
      const dups = subs.map((s) => s.tracker.duplicates).join('/');
      const members = subs.filter((s) => s.tracker.spec.group !== undefined);
      const groupDups = members.length ? groupVerdict('g', '', members.map(received), ledger.confirmed).byMoreThanOneMember : 0;
      log(`round ${round}/${plan.length} (t+${((killAt - started) / 1000).toFixed(1)} s): ${target} node ${node} killed after ${trafficMs} ms of traffic; ${times}; first new confirm ${record.recoverMs ?? 'never'} ms after the kill; ${ledger.confirmed.size} confirmed, ${ledger.refused} refused, duplicates per subscriber ${dups}, group messages received by more than one member ${groupDups} so far`);
    }

    // --- drain: publishers stop, subscribers take what is left ----------------------------------
    pubStop.fire();
    steady.value = true;
    await Promise.all(pumps);
    const drainStart = Date.now();
    const everyone = [...subs, ...(control ? [control] : [])];
    while (everyone.some((s) => !s.client?.connected) && Date.now() - drainStart < 30_000) await sleep(50);
    // Every confirmed message received (by each durable subscriber; by some member for the group).
    // Not a count: unconfirmed messages that arrived would make up for missing ones.
    const has = (s: SubscriberAgent, key: number): boolean => s.tracker.counts.has(key);
    const groupAgents = subs.filter((s) => s.tracker.spec.group !== undefined);
    const complete = (): boolean => {
      for (const key of ledger.confirmed.keys()) {
        for (const s of subs) if (s.tracker.spec.group === undefined && !has(s, key)) return false;
        if (groupAgents.length > 0 && !groupAgents.some((m) => has(m, key))) return false;
      }
      return true;
    };
    const quietSince = (): number => Math.max(drainStart, ...everyone.map((s) => s.tracker.lastMessageAt));
    // Done once nothing new came for quietMs (or for 1 s when everyone has everything, to still see late duplicates).
    while (Date.now() - quietSince() < (complete() ? 1000 : quietMs)) {
      if (Date.now() - drainStart > drainTimeoutMs) {
        errors.push(`final: messages still arriving after ${drainTimeoutMs} ms`);
        break;
      }
      await sleep(50);
    }
    drainMs = Date.now() - drainStart;
    log(`drain took ${drainMs} ms`);
  } catch (e) {
    errors.push((e as Error).stack ?? String(e));
  } finally {
    pubStop.fire();
    subStop.fire();
    for (const s of [...subs, ...(control ? [control] : [])]) destroyClient(s.client);
    await Promise.all([...pumps, ...subs.map((s) => s.done), ...(control ? [control.done] : [])]);
    for (const n of nodes) {
      n.killing = n.broker;
      await n.broker?.stop();
    }
    if (nats) {
      const members = subs.filter((s) => s.tracker.spec.group !== undefined);
      const lost = [...ledger.confirmed.keys()].some(
        (key) =>
          subs.some((s) => s.tracker.spec.group === undefined && !s.tracker.counts.has(key)) ||
          (members.length > 0 && !members.some((m) => m.tracker.counts.has(key))),
      );
      const keep = (options.keepStoreOnLoss ?? false) && lost;
      if (keep) {
        // nats-server logs to stderr, which only the launcher holds: written beside the stores.
        for (let i = 0; i < 3; i++) writeFileSync(path.join(nats.dir, `n${i}.log`), nats.log(i));
        log(`something confirmed is missing: NATS configs, stores and logs kept in ${nats.dir}`);
      }
      await nats.stop({ keep });
      natsDirs.delete(nats.dir);
    }
  }

  const durableSubs = subs.filter((s) => s.tracker.spec.group === undefined);
  const groupSubs = subs.filter((s) => s.tracker.spec.group !== undefined);
  for (const s of [...subs, ...(control ? [control] : [])]) {
    if (s.tracker.unexpectedSamples.length > 0) errors.push(`${s.tracker.spec.clientId} received messages never published, e.g. ${s.tracker.unexpectedSamples.join(' | ')}`);
  }
  const timing = { confirmedAt: ledger.confirmedAt, t0: started };
  const partial: Omit<ClusterCrashReport, 'ok'> = {
    seed,
    eddyNodes,
    spread,
    natsVersion,
    publishers,
    published: ledger.next.reduce((a, b) => a + b, 0),
    confirmed: ledger.confirmed.size,
    refused: ledger.refused,
    startedAt: started,
    subscribers: durableSubs.map((s) => durableResult(received(s), ledger.confirmed, timing)),
    group: groupSubs.length ? groupVerdict('g', groupSubs[0]!.filter, groupSubs.map(received), ledger.confirmed, timing) : undefined,
    control: control ? durableResult(received(control), ledger.confirmed) : undefined,
    kills,
    startFailures,
    errors,
    drainMs,
    elapsedMs: Date.now() - started,
  };
  return { ok: verdict(partial), ...partial };
}

// ---------------------------------------------------------------------------------------------
// By hand: node dist/test/crash/cluster-harness.js --eddy-kills 20 --nats-kills 20
// ---------------------------------------------------------------------------------------------

const HELP = `Usage: node dist/test/crash/cluster-harness.js [options]

Starts a 3-node NATS JetStream cluster and N "eddy broker --cluster" nodes, runs QoS 1 publishers,
durable subscribers and a consumer group ($share/g/crash/#) of persistent members, and kills an
Eddy node or a NATS node with SIGKILL each round (restarting it). Then checks that every PUBACKed
message reached every durable subscriber and the group. Exit status: 0 nothing confirmed was lost,
1 loss (or a lost session), 2 the run itself failed (a node that would not start, no recovery, ...).

  --eddy-nodes N        Eddy nodes on the cluster (default 1)
  --eddy-kills N        rounds that kill -9 an Eddy node and restart it on new ports (default 5)
  --nats-kills N        rounds that kill -9 a NATS node and restart it, same ports and store (default 5)
  --publishers N        QoS 1 publishers, MQTT 5 and 3.1.1 alternating (default 2)
  --subscribers N       durable subscribers on crash/# (default 2)
  --group-members N     persistent members of $share/g/crash/# (default 2; 0 = no group)
  --spread              subscribers and group members on different nodes, publishers elsewhere
                        (needs live fan-out and session moves between nodes)
  --seed N              replay the kill order, targets and timings of an earlier run
  --rate N              publishes per second per publisher, 0 = window only (default 100)
  --window N            QoS 1 publishes in flight per publisher (default 8)
  --min-traffic-ms MS   shortest traffic time before a kill (default 1000)
  --max-traffic-ms MS   longest (default 4000)
  --max-nats-down-ms MS longest a killed NATS node stays down (default 2000)
  --quiet-ms MS         the final drain ends after this long without a new message (default 15000: longer than a group entry's ack wait, 10 s)
  --negative-control    add a clean-session subscriber that never resubscribes (reported apart;
                        it must miss messages once an Eddy node was killed)
  --broker-arg ARG      extra eddy broker argument (repeatable)
  --keep-on-loss        keep the NATS configs, stores and logs when something confirmed is missing
  --json                print the full report as JSON on stdout
  --quiet               no per-round progress on stderr
`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'eddy-nodes': { type: 'string' },
      'eddy-kills': { type: 'string' },
      'nats-kills': { type: 'string' },
      publishers: { type: 'string' },
      subscribers: { type: 'string' },
      'group-members': { type: 'string' },
      spread: { type: 'boolean' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      window: { type: 'string' },
      'min-traffic-ms': { type: 'string' },
      'max-traffic-ms': { type: 'string' },
      'max-nats-down-ms': { type: 'string' },
      'quiet-ms': { type: 'string' },
      'negative-control': { type: 'boolean' },
      'broker-arg': { type: 'string', multiple: true },
      'keep-on-loss': { type: 'boolean' },
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
  const report = await runClusterCrash({
    eddyNodes: num(values['eddy-nodes'], 1),
    eddyKills: num(values['eddy-kills'], 5),
    natsKills: num(values['nats-kills'], 5),
    publishers: num(values.publishers, 2),
    subscribers: num(values.subscribers, 2),
    groupMembers: num(values['group-members'], 2),
    spread: values.spread ?? false,
    negativeControl: values['negative-control'] ?? false,
    seed: values.seed === undefined ? undefined : num(values.seed, 0),
    rate: num(values.rate, 100),
    window: Math.max(1, num(values.window, 8)),
    trafficMs: [num(values['min-traffic-ms'], 1000), num(values['max-traffic-ms'], 4000)],
    natsDownMs: [0, num(values['max-nats-down-ms'], 2000)],
    quietMs: num(values['quiet-ms'], 15_000),
    brokerArgs: values['broker-arg'],
    keepStoreOnLoss: values['keep-on-loss'] ?? false,
    log: values.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${summarize(report)}\n`);
  if (values.json) process.stderr.write(`${summarize(report)}\n`);
  const lost = report.subscribers.some((s) => s.missing > 0 || s.sessionLost > 0) || (report.group?.missing ?? 0) > 0;
  return lost ? 1 : report.ok ? 0 : 2;
}

// `node --test dist/test/` also runs every file under test/, this one included: only run the long
// form when started by hand, never inside the test runner (NODE_TEST_CONTEXT set).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && !process.env.NODE_TEST_CONTEXT) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
