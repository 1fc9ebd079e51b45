// An Eddy broker as a child process for bench/backlog.ts, with what Linux tells about it:
// resident memory (/proc/<pid>/status), bytes read (/proc/<pid>/io) and the data dir's size.
import { spawn, type ChildProcess } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { repoRoot } from './paths.js';

const READY_TIMEOUT_MS = 600_000;
/** Broker stderr lines echoed as they come; the rest are only counted (by pino `msg`). */
const ECHO_STDERR_LINES = 5;

export interface EddyProcess {
  child: ChildProcess;
  pid: number;
  mqttUrl: string;
  httpUrl: string;
  /** spawn -> ready line. */
  readyMs: number;
  /** Bytes the process had read (read syscalls, page cache included) when it was ready. */
  readBytesAtReady: number | null;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops it with `signal`; resolves with the ms from the signal to the exit. */
  stop(signal: NodeJS.Signals): Promise<number>;
}

/** Broker stderr lines seen so far (across restarts), counted by log message. */
export const stderrCounts = new Map<string, number>();

export async function startEddy(dataDir: string, extraArgs: string[]): Promise<EddyProcess> {
  const started = performance.now();
  const child = spawn(process.execPath, [
    path.join(repoRoot, 'bin/eddy.js'), 'broker', '--data-dir', dataDir,
    '--port', '0', '--http-port', '0', '--log-level', 'warn', ...extraArgs,
  ], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })));
  createInterface({ input: child.stderr! }).on('line', countStderr);
  const ready = await new Promise<{ mqtt: string; http: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /ready mqtt=(\S+) http=(\S+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      resolve({ mqtt: m[1]!, http: m[2]! });
    });
    void exited.then(({ code, signal }) => reject(new Error(`eddy exited before ready (code ${code}, signal ${signal})`)));
    child.once('error', reject);
  });
  const readyMs = performance.now() - started;
  const pid = child.pid!;
  return {
    child, pid, readyMs, exited,
    mqttUrl: `mqtt://${ready.mqtt}`,
    httpUrl: `http://${ready.http}`,
    readBytesAtReady: readIoBytes(pid),
    async stop(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return 0;
      const t = performance.now();
      child.kill(signal);
      await exited;
      return performance.now() - t;
    },
  };
}

function countStderr(line: string): void {
  let key = line;
  try {
    key = String((JSON.parse(line) as { msg?: unknown }).msg ?? line);
  } catch { /* not JSON: count the raw line */ }
  const n = (stderrCounts.get(key) ?? 0) + 1;
  stderrCounts.set(key, n);
  const total = [...stderrCounts.values()].reduce((a, b) => a + b, 0);
  if (total <= ECHO_STDERR_LINES) process.stderr.write(`[eddy:stderr] ${line}\n`);
}

/** Resident set size in bytes (VmRSS), or null once the process is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** `rchar` of /proc/<pid>/io: bytes read through read-like syscalls (files, sockets, pipes). */
export function readIoBytes(pid: number): number | null {
  try {
    const m = /^rchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Samples RSS every `everyMs` until stopped; keeps the peak, the last and the count of samples. */
export class RssSampler {
  peak = 0;
  last = 0;
  samples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, everyMs = 200) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    const rss = rssBytes(this.pid);
    if (rss !== null) {
      this.last = rss;
      this.peak = Math.max(this.peak, rss);
      this.samples++;
    }
    return this.last;
  }

  stop(): { peakBytes: number; lastBytes: number; samples: number } {
    clearInterval(this.timer);
    this.sample();
    return { peakBytes: this.peak, lastBytes: this.last, samples: this.samples };
  }
}

/** Size of a directory tree: allocated on disk (st_blocks) and apparent (st_size), and file count. */
export function dirSize(dir: string): { diskBytes: number; apparentBytes: number; files: number } {
  const total = { diskBytes: 0, apparentBytes: 0, files: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const sub = dirSize(p);
      total.diskBytes += sub.diskBytes;
      total.apparentBytes += sub.apparentBytes;
      total.files += sub.files;
    } else {
      const st = lstatSync(p);
      total.diskBytes += st.blocks * 512;
      total.apparentBytes += st.size;
      total.files++;
    }
  }
  return total;
}

export async function healthz(eddy: EddyProcess): Promise<Record<string, unknown> | null> {
  try {
    const res = await fetch(`${eddy.httpUrl}/healthz`);
    return (await res.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}
