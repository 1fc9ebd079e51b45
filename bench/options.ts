// Command-line flags. Counts, not durations: every broker gets exactly the same work,
// and a per-workload timeout bounds the run when a broker is too slow or stuck.
import { parseArgs } from 'node:util';
import { BROKER_NAMES, DEFAULT_BROKERS, type BrokerName } from './brokers.js';
import { WORKLOAD_KEYS, type WorkloadKey } from './workloads.js';

export interface Options {
  messages: number;
  /** Deliveries per workload run first and discarded, so JIT warm-up of Node brokers is not measured. */
  warmup: number;
  brokers: BrokerName[];
  workloads: WorkloadKey[];
  window: number;
  qos0Window: number;
  fanoutWindow: number;
  fanoutSubscribers: number;
  faninPublishers: number;
  parallelPairs: number;
  connPairs: number;
  connRate: number;
  connProcesses: number;
  connSeconds: number;
  /** Another Eddy checkout (built) to run as `eddy`/`eddy-disk`, e.g. to compare a build before a change. */
  eddyRoot: string | undefined;
  /** eddy-jetstream-workers: how many worker processes (`eddy broker --workers N`). */
  workers: number;
  /** Each Eddy broker process (each worker) limited to this fraction of a core; undefined = no limit. */
  eddyCpu: number | undefined;
  payloadBytes: number;
  timeoutMs: number;
  settleMs: number;
  /** Run Eddy with authentication on and an ACL of this many rules (0: no authentication, no ACL). */
  aclRules: number;
  protocolVersion: 4 | 5;
  cpuProf: boolean;
  /** Every broker over MQTT over TLS (a throwaway CA and certificate, made with openssl). */
  tls: boolean;
  json: string | undefined;
}

export const USAGE = `Usage: node dist/bench/run.js [options]

  --messages N        deliveries per workload (fan-out publishes N/subscribers)  [200000]
  --warmup N          unmeasured deliveries before each workload, 0 = none      [messages/10]
  --brokers LIST      comma-separated: eddy,eddy-disk,eddy-jetstream,eddy-jetstream-2,eddy-jetstream-workers,mosquitto,aedes
                      [eddy,eddy-disk,mosquitto,aedes]
                      (eddy = memory engine; eddy-disk = disk engine, fsync always, temp dir;
                      eddy-jetstream = 1 Eddy node --cluster on 3 nats-servers started here;
                      eddy-jetstream-2 = 2 Eddy nodes, publishers on node 1, subscribers on node 2;
                      eddy-jetstream-workers = 1 Eddy --workers N on them, one port)
  --workers N         eddy-jetstream-workers: its worker processes                [2]
  --eddy-cpu CORES    limit each Eddy broker process (each worker) to CORES of a core, e.g. 0.4,
                      with a cgroup CPU quota (root): scaling over cores simulated on 2 cores
  --workloads LIST    comma-separated: qos0,qos1,fanout,fanin,pairs-qos1,pairs-qos0,conns [all]
  --window N          QoS 1 workload: most unacked publishes in flight           [100]
  --qos0-window N     QoS 0 workloads: most messages in flight to each subscriber [1000]
  --fanout-window N   fan-out: most messages in flight to each subscriber        [100]
  --fanout-subs N     subscribers in the fan-out workload                        [50]
  --fanin-pubs N      publishers in the fan-in workload                          [20]
  --pairs N           pairs-qos1/pairs-qos0: publisher/subscriber pairs, one client process each [4]
  --conns N           conns: publishers (and as many subscribers)                [1000]
  --conn-rate N       conns: msg/s per publisher                                 [10]
  --conn-procs N      conns: client processes the connections are spread over    [4]
  --conn-seconds S    conns: how long each publisher sends                       [10]
  --eddy-root DIR     run eddy/eddy-disk from another (built) checkout, e.g. the code before a change
  --payload N         payload bytes (>= 14)                                      [100]
  --timeout S         seconds per workload before reporting a partial result     [60]
  --settle S          seconds without deliveries after publishing = rest dropped [2]
  --mqtt-version V    4 (3.1.1) or 5; Aedes only speaks 4                        [4]
  --cpu-prof          run Eddy with --cpu-prof into bench/results/prof/
  --acl-rules N       run Eddy with a password file and an ACL of N rules that every
                      message is checked against (N-1 that match no bench topic, then allow)  [0]
  --tls               every broker over TLS (TLS 1.3, a P-256 certificate made with openssl;
                      Eddy --tls-*, Mosquitto listener certfile/keyfile, Aedes tls.createServer)
  --json PATH         where to write the results   [bench/results/latest.json, latest-tls.json]
  -h, --help
`;

export function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      messages: { type: 'string' },
      warmup: { type: 'string' },
      brokers: { type: 'string' },
      workloads: { type: 'string' },
      window: { type: 'string' },
      'qos0-window': { type: 'string' },
      'fanout-window': { type: 'string' },
      'fanout-subs': { type: 'string' },
      'fanin-pubs': { type: 'string' },
      pairs: { type: 'string' },
      conns: { type: 'string' },
      'conn-rate': { type: 'string' },
      'conn-procs': { type: 'string' },
      'conn-seconds': { type: 'string' },
      'eddy-root': { type: 'string' },
      workers: { type: 'string' },
      'eddy-cpu': { type: 'string' },
      payload: { type: 'string' },
      timeout: { type: 'string' },
      settle: { type: 'string' },
      'mqtt-version': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'acl-rules': { type: 'string' },
      tls: { type: 'boolean' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const version = int('mqtt-version', values['mqtt-version'], 4);
  if (version !== 4 && version !== 5) throw new Error('--mqtt-version must be 4 or 5');
  const messages = int('messages', values.messages, 200_000);
  return {
    messages,
    warmup: values.warmup === '0' ? 0 : int('warmup', values.warmup, Math.ceil(messages / 10)),
    brokers: values.brokers === undefined ? [...DEFAULT_BROKERS] : list('brokers', values.brokers, BROKER_NAMES),
    workloads: list('workloads', values.workloads, WORKLOAD_KEYS),
    window: int('window', values.window, 100),
    qos0Window: int('qos0-window', values['qos0-window'], 1000),
    fanoutWindow: int('fanout-window', values['fanout-window'], 100),
    fanoutSubscribers: int('fanout-subs', values['fanout-subs'], 50),
    faninPublishers: Math.min(int('fanin-pubs', values['fanin-pubs'], 20), 65_535),
    parallelPairs: int('pairs', values.pairs, 4),
    connPairs: int('conns', values.conns, 1000),
    connRate: int('conn-rate', values['conn-rate'], 10),
    connProcesses: int('conn-procs', values['conn-procs'], 4),
    connSeconds: int('conn-seconds', values['conn-seconds'], 10),
    eddyRoot: values['eddy-root'],
    workers: int('workers', values.workers, 2),
    eddyCpu: cores(values['eddy-cpu']),
    payloadBytes: Math.max(int('payload', values.payload, 100), 14),
    timeoutMs: seconds('timeout', values.timeout, 60),
    settleMs: seconds('settle', values.settle, 2),
    protocolVersion: version,
    cpuProf: values['cpu-prof'] ?? false,
    aclRules: values['acl-rules'] === '0' ? 0 : int('acl-rules', values['acl-rules'], 0),
    tls: values.tls ?? false,
    json: values.json,
  };
}

function cores(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > 64) throw new Error(`--eddy-cpu must be a number of cores above 0, got ${raw}`);
  return n;
}

function int(name: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return n;
}

function seconds(name: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt * 1000;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number of seconds, got ${raw}`);
  return Math.round(n * 1000);
}

function list<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T[] {
  if (raw === undefined) return [...allowed];
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.filter((s) => !allowed.includes(s as T));
  if (bad.length || items.length === 0) {
    throw new Error(`--${name}: unknown ${bad.join(', ') || '(empty)'}; choose from ${allowed.join(',')}`);
  }
  return [...new Set(items)] as T[];
}
