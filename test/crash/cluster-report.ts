/**
 * The verdict of the cluster crash harness (cluster-harness.ts): what each durable subscriber and
 * the consumer group received against what was confirmed, the kills and how long each took, and a
 * few lines for humans.
 */
import { formatKey, type SubscriberTracker } from './harness.js';

/**
 * Missing message ids as runs per publisher, e.g. "p0 8944-9222@15-16 (PUBACKed 101.2-103.9 s)":
 * ids, the rounds they were confirmed in and when, in seconds since `t0`; at most `max` runs.
 */
export function missingRuns(keys: Array<[number, number]>, at?: (key: number) => number | undefined, t0 = 0, max = 8): string[] {
  const runs: Array<{ p: number; from: number; to: number; r1: number; r2: number; t1: number; t2: number }> = [];
  for (const [key, round] of [...keys].sort((a, b) => a[0] - b[0])) {
    const [p, n] = formatKey(key).split(':').map(Number) as [number, number];
    const t = at?.(key) ?? 0;
    const last = runs[runs.length - 1];
    if (last && last.p === p && last.to === n - 1) {
      last.to = n;
      last.r1 = Math.min(last.r1, round);
      last.r2 = Math.max(last.r2, round);
      last.t1 = Math.min(last.t1, t);
      last.t2 = Math.max(last.t2, t);
    } else runs.push({ p, from: n, to: n, r1: round, r2: round, t1: t, t2: t });
  }
  const secs = (t: number): string => ((t - t0) / 1000).toFixed(1);
  const text = runs.map(
    (r) => `p${r.p} ${r.from}${r.to > r.from ? `-${r.to}` : ''}@${r.r1}${r.r2 > r.r1 ? `-${r.r2}` : ''}${at ? ` (PUBACKed ${secs(r.t1)}-${secs(r.t2)} s)` : ''}`,
  );
  return text.length > max ? [...text.slice(0, max), `(+${text.length - max} more runs)`] : text;
}

export interface KillRecord {
  round: number;
  /** When the kill was sent, ms since the epoch. */
  at: number;
  target: 'eddy' | 'nats';
  node: number;
  /** Random traffic time before the kill. */
  trafficMs: number;
  /** eddy: spawn of the new process to its ready line (includes JetStream open and replica catch-up). */
  readyMs?: number;
  /** nats: how long the node stayed down before its restart was started. */
  downMs?: number;
  /** nats: restart to a common meta leader (the helper's restart). */
  restartMs?: number;
  /** nats: meta leader to every stream's replicas current and every consumer led (waitForCaughtUp). */
  catchUpMs?: number;
  /** Kill to the first PUBACK of a publish sent after the kill; undefined: none by the deadline. */
  recoverMs?: number;
  /** eddy: how many starts it took (a start that fails is retried, as a supervisor would). */
  startAttempts?: number;
  /** Kill to the end of the round (ready again and recovered). */
  totalMs: number;
}

export interface DurableResult {
  clientId: string;
  /** connected: stays on; intermittent: off and on during the traffic. */
  kind: string;
  protocolVersion: 4 | 5;
  /** Index of the Eddy node it connects to first (and comes back to). */
  home: number;
  confirmed: number;
  /** Distinct messages received (confirmed or not). */
  received: number;
  /** Confirmed and never received: LOSS. */
  missing: number;
  missingSamples: string[];
  /** The missing ids as runs per publisher with the rounds they were confirmed in. */
  missingRuns: string[];
  /** Receptions beyond the first of the same message. */
  duplicates: number;
  /** Messages received that were never confirmed (in flight at a kill or refused after storing). */
  unconfirmedReceived: number;
  /** Reconnects that found no session (clean start false, sessionPresent false). */
  sessionLost: number;
  reconnects: number;
  unexpected: number;
  /** Only when something is missing: its connections as [CONNACK, close] in ms since the epoch. */
  connections?: Array<[number, number | undefined]>;
}

export interface GroupVerdict {
  group: string;
  filter: string;
  members: Array<{ clientId: string; kind: string; home: number; received: number; sessionLost: number; reconnects: number }>;
  confirmed: number;
  /** Distinct messages received by any member. */
  received: number;
  /** Confirmed and received by no member: LOSS. */
  missing: number;
  missingSamples: string[];
  missingRuns: string[];
  /** Messages received more than once in all (by one member twice, or by several). */
  duplicated: number;
  /** Of those, messages received by more than one member. */
  byMoreThanOneMember: number;
  /** Receptions beyond the first, summed over the group. */
  extraReceptions: number;
}

export interface ClusterCrashReport {
  ok: boolean;
  seed: number;
  eddyNodes: number;
  spread: boolean;
  natsVersion: string;
  /** ms since the epoch; kills' `at`, connections and the missing runs' times are relative to it (runs) or absolute (JSON). */
  startedAt: number;
  publishers: number;
  published: number;
  confirmed: number;
  /** PUBACKs with a reason >= 0x80 (not stored; not counted as confirmed). */
  refused: number;
  subscribers: DurableResult[];
  group: GroupVerdict | undefined;
  /** A subscriber on a clean session that never subscribes again (negative control: must miss messages after an Eddy kill). */
  control: DurableResult | undefined;
  kills: KillRecord[];
  /** Eddy starts that failed and were retried (e.g. its open timed out while NATS was catching up). */
  startFailures: string[];
  /** Harness-level problems (a node that would not start, a drain that never went quiet, ...). */
  errors: string[];
  drainMs: number;
  elapsedMs: number;
}

export interface Received {
  tracker: SubscriberTracker;
  home: number;
  sessionLost: number;
  reconnects: number;
  connections: Array<[number, number | undefined]>;
}

/** When each confirmed message was PUBACKed, and the run's start: times in the report are seconds since then. */
export interface Timing {
  confirmedAt: Map<number, number>;
  t0: number;
}

/** One durable subscriber's result against the confirmed set. */
export function durableResult(sub: Received, confirmed: Map<number, number>, timing?: Timing): DurableResult {
  const t = sub.tracker;
  const missingKeys = [...confirmed].filter(([key]) => !t.counts.has(key));
  let unconfirmedReceived = 0;
  for (const key of t.counts.keys()) if (!confirmed.has(key)) unconfirmedReceived++;
  return {
    clientId: t.spec.clientId,
    kind: t.spec.kind,
    protocolVersion: t.spec.protocolVersion,
    home: sub.home,
    confirmed: confirmed.size,
    received: t.counts.size,
    missing: missingKeys.length,
    missingSamples: missingKeys.slice(0, 10).map(([key, round]) => `${formatKey(key)}@${round}`),
    missingRuns: missingRuns(missingKeys, timing && ((k) => timing.confirmedAt.get(k)), timing?.t0),
    duplicates: t.duplicates,
    unconfirmedReceived,
    sessionLost: sub.sessionLost,
    reconnects: sub.reconnects,
    unexpected: t.unexpected,
    ...(missingKeys.length ? { connections: sub.connections } : {}),
  };
}

/** The group as a whole: every confirmed message must reach some member; once is the goal. */
export function groupVerdict(group: string, filter: string, members: Received[], confirmed: Map<number, number>, timing?: Timing): GroupVerdict {
  const total = new Map<number, number>(); // key -> receptions over all members
  const memberCount = new Map<number, number>(); // key -> members that received it
  for (const m of members) {
    for (const [key, n] of m.tracker.counts) {
      total.set(key, (total.get(key) ?? 0) + n);
      memberCount.set(key, (memberCount.get(key) ?? 0) + 1);
    }
  }
  const missingKeys = [...confirmed].filter(([key]) => !total.has(key));
  return {
    group,
    filter,
    members: members.map((m) => ({ clientId: m.tracker.spec.clientId, kind: m.tracker.spec.kind, home: m.home, received: m.tracker.counts.size, sessionLost: m.sessionLost, reconnects: m.reconnects })),
    confirmed: confirmed.size,
    received: total.size,
    missing: missingKeys.length,
    missingSamples: missingKeys.slice(0, 10).map(([key, round]) => `${formatKey(key)}@${round}`),
    missingRuns: missingRuns(missingKeys, timing && ((k) => timing.confirmedAt.get(k)), timing?.t0),
    duplicated: [...total.values()].filter((n) => n > 1).length,
    byMoreThanOneMember: [...memberCount.values()].filter((n) => n > 1).length,
    extraReceptions: [...total.values()].reduce((a, n) => a + n - 1, 0),
  };
}

/** True when no confirmed message was lost and nothing broke the run. */
export function verdict(report: Omit<ClusterCrashReport, 'ok'>): boolean {
  return (
    report.errors.length === 0 &&
    report.subscribers.every((s) => s.missing === 0 && s.sessionLost === 0 && s.unexpected === 0) &&
    (report.group === undefined || (report.group.missing === 0 && report.group.members.every((m) => m.sessionLost === 0)))
  );
}

const stats = (xs: Array<number | undefined>): string => {
  const v = xs.filter((x): x is number => x !== undefined);
  if (v.length === 0) return 'n/a';
  const avg = Math.round(v.reduce((a, b) => a + b, 0) / v.length);
  return `avg ${avg} ms, max ${Math.max(...v)} ms`;
};

export function summarize(r: ClusterCrashReport): string {
  const eddy = r.kills.filter((k) => k.target === 'eddy');
  const nats = r.kills.filter((k) => k.target === 'nats');
  const unrecovered = r.kills.filter((k) => k.recoverMs === undefined).length;
  const lines = [
    `${r.ok ? 'OK' : 'FAILED'}: ${r.eddyNodes} Eddy node(s)${r.spread ? ' (clients spread)' : ''} on 3 nats-server ${r.natsVersion}, ` +
      `${eddy.length} Eddy kills + ${nats.length} NATS kills, ${r.publishers} publishers, seed ${r.seed}, ${Math.round(r.elapsedMs / 1000)} s`,
    `published ${r.published}, confirmed ${r.confirmed}, refused (PUBACK >= 0x80) ${r.refused}; final drain ${r.drainMs} ms`,
    `Eddy kills: ready after ${stats(eddy.map((k) => k.readyMs))}; kill -> first new confirm ${stats(eddy.map((k) => k.recoverMs))}; round ${stats(eddy.map((k) => k.totalMs))}`,
    `NATS kills: restart ${stats(nats.map((k) => k.restartMs))}; caught up ${stats(nats.map((k) => k.catchUpMs))}; kill -> first new confirm ${stats(nats.map((k) => k.recoverMs))}; round ${stats(nats.map((k) => k.totalMs))}` +
      (unrecovered ? `; ${unrecovered} kill(s) without a confirm by the deadline` : ''),
  ];
  const line = (s: DurableResult, label = ''): string =>
    `  ${label}${s.clientId} (${s.kind}, node ${s.home}, MQTT ${s.protocolVersion === 5 ? '5' : '3.1.1'}): confirmed ${s.confirmed}, received ${s.received}, ` +
    `missing ${s.missing}${s.missing ? ` (${s.missingRuns.join(', ')})` : ''}, duplicates ${s.duplicates}, unconfirmed received ${s.unconfirmedReceived}, ` +
    `reconnects ${s.reconnects}${s.sessionLost ? `, SESSION LOST ${s.sessionLost}x` : ''}${s.unexpected ? `, UNEXPECTED ${s.unexpected}` : ''}`;
  for (const s of r.subscribers) lines.push(line(s));
  const g = r.group;
  if (g) {
    lines.push(
      `  group ${g.filter} (${g.members.map((m) => `${m.clientId}@node${m.home}: ${m.received}${m.sessionLost ? ` SESSION LOST ${m.sessionLost}x` : ''}`).join(', ')}): ` +
        `confirmed ${g.confirmed}, received ${g.received}, missing ${g.missing}${g.missing ? ` (${g.missingRuns.join(', ')})` : ''}, ` +
        `duplicated ${g.duplicated} (by more than one member ${g.byMoreThanOneMember}, extra receptions ${g.extraReceptions})`,
    );
  }
  if (r.control) lines.push(line(r.control, 'negative control, clean session, never resubscribes: '));
  for (const f of r.startFailures) lines.push(`  retried: ${f}`);
  for (const e of r.errors) lines.push(`  error: ${e.split('\n')[0]}`);
  return lines.join('\n');
}
