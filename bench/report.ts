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
}

export interface Report {
  generatedAt: string;
  wallClockSec: number;
  environment: { node: string; platform: string; cpus: number; cpuModel: string };
  options: Options;
  method: string[];
  brokers: Partial<Record<BrokerName, BrokerStatus>>;
  workloads: Array<Workload & { payloadBytes: number }>;
  results: Record<string, Partial<Record<BrokerName, WorkloadResult>>>;
  /** Throughput (msg/s) of Eddy (memory engine; eddyDisk* = disk engine) divided by the other broker's; null when either is missing. */
  ratios: Record<string, Record<'eddyVsMosquitto' | 'eddyVsAedes' | 'eddyDiskVsMosquitto' | 'eddyDiskVsAedes', number | null>>;
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
];

export function throughputRatio(eddy?: WorkloadResult, other?: WorkloadResult): number | null {
  if (!eddy || !other || !eddy.msgPerSec || !other.msgPerSec) return null;
  return Math.round((eddy.msgPerSec / other.msgPerSec) * 1000) / 1000;
}

export function writeJson(file: string, report: Report): void {
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

  const header = ['workload'];
  for (const b of brokers) header.push(`${b} msg/s`, `${b} latency`, `${b} delivered`);
  header.push('Eddy/Mosquitto', 'Eddy/Aedes');
  lines.push(`| ${header.join(' | ')} |`);
  lines.push(`|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);

  for (const w of report.workloads) {
    const row = [w.id];
    const byBroker = report.results[w.id] ?? {};
    for (const b of brokers) {
      const r = byBroker[b];
      if (!r) {
        row.push('n/a', 'n/a', 'n/a');
        continue;
      }
      const flag = r.timedOut ? ' (timeout)' : r.error ? ' (error)' : '';
      const bound = r.cpuPercent.client >= CLIENT_BOUND_PCT ? CLIENT_BOUND_MARK : '';
      row.push(
        fmtInt(r.msgPerSec) + bound + flag,
        r.latencyMs ? `${fmtMs(r.latencyMs.p50)}/${fmtMs(r.latencyMs.p99)}/${fmtMs(r.latencyMs.max)}` : 'n/a',
        fmtPct(r.deliveryRatio) + (r.duplicates ? ` +${r.duplicates} dup` : ''),
      );
    }
    const ratio = report.ratios[w.id];
    row.push(fmtRatio(ratio?.eddyVsMosquitto ?? null), fmtRatio(ratio?.eddyVsAedes ?? null));
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

function fmtRatio(r: number | null): string {
  return r === null ? 'n/a' : `${r.toFixed(2)}x`;
}
