// CPU time of the broker child, so a result can say whether the broker or the bench
// client was the one saturating a core. Linux only; elsewhere the figure is just absent.
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2_000 });
    const n = Number(out.stdout?.trim());
    ticksPerSecond = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/** utime + stime of a process (all threads) in milliseconds, or null if unreadable. */
export function readProcessCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces, so fields are counted from after its closing paren.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return null;
  }
}

/** Peak resident set size (VmHWM of /proc/<pid>/status) in bytes, or null if unreadable. */
export function readPeakRssBytes(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Resets VmHWM to the current RSS (writing 5 to /proc/<pid>/clear_refs, Linux >= 4.0), so the next
 * read is the peak of one workload, not of the broker's life. False where that is not allowed.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * The processes a row's broker CPU is charged to: the broker's own (one, or every Eddy node of a
 * cluster row) and the store's (the nats-server processes behind `--cluster`; empty otherwise).
 */
export interface BrokerProcesses {
  broker: number[];
  store: number[];
}

export interface CpuSample {
  /** utime + stime of the broker processes, ms; null if any was unreadable. */
  broker: number | null;
  /** The same for the store processes (0 when there are none). */
  store: number | null;
}

function sumCpuMs(pids: number[]): number | null {
  let total = 0;
  for (const pid of pids) {
    const ms = readProcessCpuMs(pid);
    if (ms === null) return null;
    total += ms;
  }
  return total;
}

export function sampleCpu(procs: BrokerProcesses | null): CpuSample {
  if (!procs) return { broker: null, store: null };
  return { broker: sumCpuMs(procs.broker), store: sumCpuMs(procs.store) };
}

/** CPU ms spent between two samples: broker, store, and both together; null where unreadable. */
export function cpuSpent(a: CpuSample, b: CpuSample): { broker: number | null; store: number | null; total: number | null } {
  const broker = a.broker !== null && b.broker !== null ? b.broker - a.broker : null;
  const store = a.store !== null && b.store !== null ? b.store - a.store : null;
  return { broker, store, total: broker !== null && store !== null ? broker + store : null };
}

/** Resets the broker processes' VmHWM; false if any could not be reset. */
export function resetPeakRssAll(procs: BrokerProcesses | null): boolean {
  if (!procs || procs.broker.length === 0) return false;
  return procs.broker.map(resetPeakRss).every(Boolean);
}

/** Sum of the broker processes' peak RSS (the store's is not included). */
export function peakRssSum(procs: BrokerProcesses | null): number | null {
  if (!procs) return null;
  let total = 0;
  for (const pid of procs.broker) {
    const bytes = readPeakRssBytes(pid);
    if (bytes === null) return null;
    total += bytes;
  }
  return total;
}
