// The final Markdown table (stdout) and the JSON record (bench/results/latest.json).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrokerName } from './brokers.js';
import type { Options } from './options.js';
import type { WorkloadResult } from './runner.js';
import type { Workload } from './workloads.js';
import { fmtInt, fmtMs, fmtPct } from './progress.js';

export interface BrokerStatus {
  status: 'ok' | 'skipped' | 'failed';
  version?: string;
  url?: string;
  reason?: string;
  /** Mosquitto: its configuration file, printed with the results. */
  config?: string;
}

/** Eddy's figure divided by the other broker's, per row; null when either is missing. */
export interface RowRatios {
  /** msg/s: above 1 is better for Eddy. */
  throughput: number | null;
  /** Broker CPU µs per delivered message: below 1 is better for Eddy. */
  cpuPerMsg: number | null;
  /** p99 latency: below 1 is better for Eddy. */
  p99: number | null;
  /** Peak resident memory during the row. */
  peakRss: number | null;
}

export type RatioKey = 'eddyVsMosquitto' | 'eddyVsAedes' | 'eddyDiskVsMosquitto' | 'eddyDiskVsAedes';

export interface Report {
  generatedAt: string;
  wallClockSec: number;
  environment: { node: string; platform: string; cpus: number; cpuModel: string };
  options: Options;
  method: string[];
  brokers: Partial<Record<BrokerName, BrokerStatus>>;
  workloads: Array<Workload & { payloadBytes: number }>;
  results: Record<string, Partial<Record<BrokerName, WorkloadResult>>>;
  /** Eddy (memory engine; eddyDisk* = disk engine) against the other brokers, per workload. */
  ratios: Record<string, Record<RatioKey, RowRatios>>;
}

const CLIENT_BOUND_PCT = 90;
const CLIENT_BOUND_MARK = '†';

export const METHOD = [
  'All clients are mqtt.js in the bench process; each broker runs in its own child process.',
  'eddy runs the memory engine (--memory); eddy-disk the disk engine in a fresh temp dir with --fsync always (group commit), removed afterwards.',
  'msg/s = unique messages received by all subscribers / (first publish -> last delivery).',
  'Latency = receive time - send time embedded in the payload (performance.now, same process).',
  'QoS 0 publishers keep at most --qos0-window (fan-out: --fanout-window) messages in flight towards each subscriber (split across fan-in publishers) and respect socket backpressure.',
  `msg/s marked ${CLIENT_BOUND_MARK} means the bench client used >= ${CLIENT_BOUND_PCT}% of a core: the client, not the broker, may have been the limit.`,
  'Each workload is preceded by an unmeasured --warmup run on fresh connections.',
  'QoS 1 publisher keeps at most --window publishes without PUBACK in flight.',
  'Fan-in uses QoS 0.',
  'Broker CPU µs/msg = the broker process\'s utime + stime (/proc/<pid>/stat, all threads; Aedes runs in its own process) from the first publish to the last delivery, over the unique messages delivered.',
  'Peak RSS = VmHWM of /proc/<pid>/status, reset (clear_refs 5) when publishing starts, so it is the peak of that workload.',
  'Pairs workloads: publisher i -> subscriber i on a topic of its own, each pair in its own client process (bench/client-worker.ts); all start on one signal, counts add up, msg/s is over the union of their spans, latency histograms are merged.',
  'Every broker has TCP_NODELAY on its sockets (Eddy always; Mosquitto set_tcp_nodelay true; Aedes net/tls noDelay), as the bench clients do.',
  'conns: publishers on a timer at a fixed rate each, so msg/s is set by the bench; what it measures is broker CPU and memory with many connections, and latency.',
  'PUBACK latency (QoS 1 rows) = PUBLISH written -> PUBACK received at the publisher: how long a confirmed publish takes.',
  'eddy-jetstream: one Eddy node --cluster on a 3-node nats-server JetStream cluster (R3 file streams) started by the bench on loopback; eddy-jetstream-2: two Eddy nodes on it, publishers connected to node 1 and subscribers to node 2; eddy-jetstream-workers: one Eddy with --workers N on it, every client on its one port (the primary hands each connection to the next worker). Their broker CPU is every Eddy node plus the 3 nats-server processes; peak RSS is the Eddy nodes only.',
  'A QoS 1 row that delivered fewer messages than were PUBACKed is reported as an error (a failed row).',
];

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || a === 0 || b === 0) return null;
  return Math.round((a / b) * 1000) / 1000;
}

export function ratios(eddy?: WorkloadResult, other?: WorkloadResult): RowRatios {
  return {
    throughput: ratio(eddy?.msgPerSec, other?.msgPerSec),
    cpuPerMsg: ratio(eddy?.brokerCpuUsPerMsg, other?.brokerCpuUsPerMsg),
    p99: ratio(eddy?.latencyMs?.p99, other?.latencyMs?.p99),
    peakRss: ratio(eddy?.brokerPeakRssBytes, other?.brokerPeakRssBytes),
  };
}

/** Just the ratios, written next to the full JSON (`<name>-ratios.json`). */
export function ratiosJson(report: Report): Record<string, unknown> {
  return { generatedAt: report.generatedAt, environment: report.environment, brokers: report.brokers, ratios: report.ratios };
}

export function writeJson(file: string, report: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
}

export function environment(): Report['environment'] {
  const cpus = os.cpus();
  return { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown' };
}

export function markdown(report: Report, brokers: BrokerName[]): string {
  const o = report.options;
  const lines: string[] = [];
  lines.push(`## Eddy benchmark${o.tls ? ' (MQTT over TLS)' : ''}`, '');
  lines.push(`${fmtInt(o.messages)} deliveries per workload, ${o.payloadBytes}-byte payloads, MQTT ${o.protocolVersion === 4 ? '3.1.1' : '5.0'}, `
    + `${report.environment.cpus} x ${report.environment.cpuModel}, Node ${report.environment.node}. `
    + `Latency in ms (p50/p99/max). Fan-in is QoS 0. Ratios are Eddy (memory engine) msg/s divided by the other broker's; eddy-disk = disk engine, fsync always. `
    + `${CLIENT_BOUND_MARK} = bench client CPU-bound (>= ${CLIENT_BOUND_PCT}% of a core), the broker may be faster than shown.`);
  const ran = brokers.filter((b) => report.brokers[b]?.status === 'ok').map((b) => `${b} ${report.brokers[b]!.version}`);
  lines.push('', `Brokers: ${ran.join(', ') || 'none'}.`);
  if (o.aclRules > 0) lines.push('', `Eddy runs with authentication on (--password-file, --allow-anonymous) and an ACL of ${o.aclRules} rules.`);
  for (const b of brokers) {
    const s = report.brokers[b];
    if (s && s.status !== 'ok') lines.push('', `Note: ${b} ${s.status}: ${s.reason ?? ''}`);
  }
  lines.push('');

  const header = ['workload', 'broker', 'msg/s', 'latency ms p50/p99/max', 'PUBACK ms p50/p99', 'broker CPU µs/msg', 'broker CPU %', 'peak RSS MB', 'delivered'];
  lines.push(`| ${header.join(' | ')} |`);
  lines.push(`|${header.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`);
  for (const w of report.workloads) {
    const byBroker = report.results[w.id] ?? {};
    for (const b of brokers) {
      const r = byBroker[b];
      if (!r) {
        lines.push(`| ${w.id} | ${b} | n/a | n/a | n/a | n/a | n/a | n/a | n/a |`);
        continue;
      }
      const flag = r.timedOut ? ' (timeout)' : r.error ? ' (error)' : '';
      const bound = r.cpuPercent.client >= CLIENT_BOUND_PCT ? CLIENT_BOUND_MARK : '';
      lines.push(`| ${[
        w.id, b,
        fmtInt(r.msgPerSec) + bound + flag,
        r.latencyMs ? `${fmtMs(r.latencyMs.p50)}/${fmtMs(r.latencyMs.p99)}/${fmtMs(r.latencyMs.max)}` : 'n/a',
        r.pubackLatencyMs ? `${fmtMs(r.pubackLatencyMs.p50)}/${fmtMs(r.pubackLatencyMs.p99)}` : 'n/a',
        fmtCpu(r),
        r.cpuPercent.broker !== null ? `${r.cpuPercent.broker}%` : 'n/a',
        r.brokerPeakRssBytes !== null ? `${(r.brokerPeakRssBytes / 1048576).toFixed(0)}${r.peakRssScope === 'workload' ? '' : '*'}` : 'n/a',
        fmtPct(r.deliveryRatio) + (r.duplicates ? ` +${r.duplicates} dup` : ''),
      ].join(' | ')} |`);
    }
  }
  const cluster = brokers.filter((b) => b.startsWith('eddy-jetstream') && report.brokers[b]?.status === 'ok');
  if (cluster.length > 0) {
    lines.push('', `${cluster.join(', ')}: broker CPU µs/msg is the Eddy node process(es) plus the 3 nats-server processes; in parentheses Eddy alone. Peak RSS is the Eddy nodes only.`);
  }
  const failedRows = report.workloads.flatMap((w) => brokers.flatMap((b) => {
    const r = report.results[w.id]?.[b];
    return r?.error ? [`${w.id} / ${b}: ${r.error}`] : [];
  }));
  if (failedRows.length > 0) lines.push('', 'Rows with an error (partial or failed):', '', ...failedRows.map((f) => `- ${f}`));
  const pairs: Array<[RatioKey, string]> = [
    ['eddyVsMosquitto', 'eddy/mosquitto'], ['eddyDiskVsMosquitto', 'eddy-disk/mosquitto'],
    ['eddyVsAedes', 'eddy/aedes'], ['eddyDiskVsAedes', 'eddy-disk/aedes'],
  ];
  const shown = pairs.filter(([k]) => report.workloads.some((w) => report.ratios[w.id]?.[k]?.throughput != null));
  if (shown.length > 0) {
    lines.push('', 'Ratios (msg/s: higher is better for Eddy; CPU/msg and p99: lower is better for Eddy):', '');
    const rh = ['workload', ...shown.flatMap(([, n]) => [`${n} msg/s`, `${n} CPU/msg`, `${n} p99`])];
    lines.push(`| ${rh.join(' | ')} |`);
    lines.push(`|${rh.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);
    for (const w of report.workloads) {
      const r = report.ratios[w.id];
      lines.push(`| ${[w.id, ...shown.flatMap(([k]) => [fmtRatio(r?.[k]?.throughput ?? null), fmtRatio(r?.[k]?.cpuPerMsg ?? null), fmtRatio(r?.[k]?.p99 ?? null)])].join(' | ')} |`);
    }
  }
  const mosquitto = report.brokers.mosquitto;
  if (mosquitto?.config) {
    lines.push('', 'Mosquitto configuration (the listener port is chosen per run):', '', '```', mosquitto.config.trimEnd(), '```');
  }
  if (report.workloads.some((w) => brokers.some((b) => report.results[w.id]?.[b]?.peakRssScope === 'broker-lifetime'))) {
    lines.push('', '* peak RSS since the broker started (VmHWM could not be reset).');
  }
  return lines.join('\n') + '\n';
}

/** Broker CPU µs/msg; for a cluster row the total (Eddy + nats-server) and Eddy's part. */
function fmtCpu(r: WorkloadResult): string {
  if (r.brokerCpuUsPerMsg === null) return 'n/a';
  if (r.storeCpuUsPerMsg === null || r.storeCpuUsPerMsg === undefined) return r.brokerCpuUsPerMsg.toFixed(2);
  return `${r.brokerCpuUsPerMsg.toFixed(2)} (Eddy ${(r.brokerCpuUsPerMsg - r.storeCpuUsPerMsg).toFixed(2)})`;
}

function fmtRatio(r: number | null): string {
  return r === null ? 'n/a' : `${r.toFixed(2)}x`;
}
