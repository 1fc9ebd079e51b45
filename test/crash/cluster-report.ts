/**
 * The verdict of the cluster crash harness (cluster-harness.ts): what each durable subscriber and
 * the consumer group received against what was confirmed, the kills and how long each took, and a
 * few lines for humans.
 */
import { formatKey, type SubscriberTracker } from './harness.js';

export interface KillRecord {
  round: number;
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
  /** Receptions beyond the first of the same message. */
  duplicates: number;
  /** Messages received that were never confirmed (in flight at a kill or refused after storing). */
  unconfirmedReceived: number;
  /** Reconnects that found no session (clean start false, sessionPresent false). */
  sessionLost: number;
  reconnects: number;
  unexpected: number;
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
}

/** One durable subscriber's result against the confirmed set. */
export function durableResult(sub: Received, confirmed: Map<number, number>): DurableResult {
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
    duplicates: t.duplicates,
    unconfirmedReceived,
    sessionLost: sub.sessionLost,
    reconnects: sub.reconnects,
    unexpected: t.unexpected,
  };
}

/** The group as a whole: every confirmed message must reach some member; once is the goal. */
export function groupVerdict(group: string, filter: string, members: Received[], confirmed: Map<number, number>): GroupVerdict {
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
    `missing ${s.missing}${s.missing ? ` (e.g. ${s.missingSamples.join(', ')})` : ''}, duplicates ${s.duplicates}, unconfirmed received ${s.unconfirmedReceived}, ` +
    `reconnects ${s.reconnects}${s.sessionLost ? `, SESSION LOST ${s.sessionLost}x` : ''}${s.unexpected ? `, UNEXPECTED ${s.unexpected}` : ''}`;
  for (const s of r.subscribers) lines.push(line(s));
  const g = r.group;
  if (g) {
    lines.push(
      `  group ${g.filter} (${g.members.map((m) => `${m.clientId}@node${m.home}: ${m.received}${m.sessionLost ? ` SESSION LOST ${m.sessionLost}x` : ''}`).join(', ')}): ` +
        `confirmed ${g.confirmed}, received ${g.received}, missing ${g.missing}${g.missing ? ` (e.g. ${g.missingSamples.join(', ')})` : ''}, ` +
        `duplicated ${g.duplicated} (by more than one member ${g.byMoreThanOneMember}, extra receptions ${g.extraReceptions})`,
    );
  }
  if (r.control) lines.push(line(r.control, 'negative control, clean session, never resubscribes: '));
  for (const f of r.startFailures) lines.push(`  retried: ${f}`);
  for (const e of r.errors) lines.push(`  error: ${e.split('\n')[0]}`);
  return lines.join('\n');
}
