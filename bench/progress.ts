// Progress goes to stderr so stdout stays a clean Markdown report that can be piped to a file.
import type { Progress, WorkloadResult } from './runner.js';

const tty = process.stderr.isTTY === true;

export function note(msg: string): void {
  process.stderr.write(`${tty ? '\r\x1b[K' : ''}${msg}\n`);
}

/** Called once a second by the runner; the rate shown is over the last interval. */
export function progressReporter(broker: string, workload: string): (p: Progress) => void {
  let last = { delivered: 0, elapsedMs: 0 };
  return (p) => {
    const dt = p.elapsedMs - last.elapsedMs;
    const rate = dt > 0 ? Math.round(((p.delivered - last.delivered) * 1000) / dt) : 0;
    last = { delivered: p.delivered, elapsedMs: p.elapsedMs };
    const pct = p.expected ? Math.floor((100 * p.delivered) / p.expected) : 0;
    const line = p.published === 0
      ? `[${broker}] ${workload} ... connecting clients`
      : `[${broker}] ${workload} ... ${pct}% delivered, ${fmtInt(rate)} msg/s`;
    // On a terminal the line updates in place; in a log every tick gets its own line.
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  };
}

export function resultLine(broker: string, workload: string, r: WorkloadResult): string {
  const lat = r.latencyMs ? `p50 ${fmtMs(r.latencyMs.p50)} p99 ${fmtMs(r.latencyMs.p99)} max ${fmtMs(r.latencyMs.max)} ms` : 'no latency';
  const ack = r.pubackLatencyMs ? `, PUBACK p50 ${fmtMs(r.pubackLatencyMs.p50)} p99 ${fmtMs(r.pubackLatencyMs.p99)} ms` : '';
  const cpu = `cpu client ${r.cpuPercent.client}%` + (r.cpuPercent.broker !== null ? ` broker ${r.cpuPercent.broker}%` : '');
  const extra = [r.duplicates ? `${r.duplicates} duplicates` : '', r.error ?? ''].filter(Boolean).join('; ');
  return `[${broker}] ${workload} ... ${fmtInt(r.msgPerSec)} msg/s, ${lat}${ack}, delivered ${fmtPct(r.deliveryRatio)}, ${cpu}`
    + (extra ? ` (${extra})` : '');
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtMs(n: number): string {
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Rounds down so that a single lost message never shows as 100%. */
export function fmtPct(ratio: number): string {
  if (ratio === 1) return '100%';
  return `${(Math.floor(ratio * 10_000) / 100).toFixed(2)}%`;
}
