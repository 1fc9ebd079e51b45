// Runs a pairs workload across several client processes (bench/client-worker.ts), so that one
// mqtt.js process is not what limits the broker: every process connects and subscribes its share
// of the pairs, they all start publishing on one signal, and the broker's CPU and peak memory are
// taken from that signal until the last process has seen its last delivery. Results are merged:
// counts add up, msg/s is over the union of the processes' spans, latency histograms are merged.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import type { WorkerMessage, WorkerStart } from './client-worker.js';
import { cpuSpent, peakRssSum, resetPeakRssAll, sampleCpu, type BrokerProcesses } from './cpu.js';
import { latencyOf, newHistogram, type Progress, type RunConfig, type WorkloadResult } from './runner.js';
import { slice, type Workload } from './workloads.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'client-worker.js');

interface Worker {
  child: ChildProcess;
  progress: { published: number; delivered: number };
  result?: WorkloadResult;
}

export async function runParallel(url: string, w: Workload, cfg: RunConfig, procs: BrokerProcesses | null,
  onProgress: (p: Progress) => void): Promise<WorkloadResult> {
  const processes = Math.max(1, Math.min(w.processes ?? 1, w.publishers));
  const sizes = Array.from({ length: processes }, (_, i) => Math.floor(w.publishers / processes) + (i < w.publishers % processes ? 1 : 0));
  const workers: Worker[] = [];
  const events = new EventTarget();
  const waitAll = (has: (wk: Worker) => boolean, what: string, timeoutMs: number): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => {
      const dead = workers.find((wk) => !wk.result && wk.child.exitCode !== null);
      if (workers.every(has)) done(resolve);
      else if (dead) done(() => reject(new Error(`a client process exited (code ${dead.child.exitCode}) before ${what}`)));
    };
    const timer = setTimeout(() => done(() => reject(new Error(`client processes not ${what} within ${timeoutMs} ms`))), timeoutMs);
    const done = (fn: () => void): void => {
      clearTimeout(timer);
      events.removeEventListener('change', check);
      fn();
    };
    events.addEventListener('change', check);
    check();
  });

  const ready = new Set<Worker>();
  const measured = new Set<Worker>();
  let startedAt = 0;
  const ticker = setInterval(() => onProgress({
    published: workers.reduce((a, wk) => a + wk.progress.published, 0),
    delivered: workers.reduce((a, wk) => a + wk.progress.delivered, 0),
    expected: 0,
    elapsedMs: startedAt ? Date.now() - startedAt : 0,
  }), 1000);
  try {
    for (let i = 0; i < processes; i++) {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const wk: Worker = { child, progress: { published: 0, delivered: 0 } };
      workers.push(wk);
      child.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') ready.add(wk);
        else if (m.type === 'measured') measured.add(wk);
        else if (m.type === 'progress') wk.progress = { published: m.published, delivered: m.delivered };
        else if (m.type === 'result') wk.result = m.result;
        events.dispatchEvent(new Event('change'));
      });
      child.on('exit', () => events.dispatchEvent(new Event('change')));
      const { beforePublish: _b, afterMeasure: _a, exportHistogram: _e, ca, ...plain } = cfg;
      const start: WorkerStart = {
        type: 'start', url, workload: slice(w, sizes[i]!),
        cfg: {
          ...plain, tag: `${cfg.tag}-c${i}`,
          // --messages is split across the processes like the pairs are.
          messages: Math.max(sizes[i]!, Math.round((cfg.messages * sizes[i]!) / w.publishers)),
          ...(ca ? { ca: ca.toString('base64') } : {}),
        },
      };
      child.send(start);
    }
    await waitAll((wk) => ready.has(wk) || wk.result !== undefined, 'connected', cfg.timeoutMs);
    const rssReset = resetPeakRssAll(procs);
    const cpuStart = sampleCpu(procs);
    startedAt = Date.now();
    for (const wk of workers) wk.child.send({ type: 'go' });
    await waitAll((wk) => measured.has(wk) || wk.result !== undefined, 'done', cfg.timeoutMs + 30_000);
    const spent = cpuSpent(cpuStart, sampleCpu(procs));
    const peakRss = peakRssSum(procs);
    for (const wk of workers) wk.child.send({ type: 'teardown' });
    await waitAll((wk) => wk.result !== undefined, 'finished', 30_000);
    return merge(workers.map((wk) => wk.result!), spent.total, (procs?.store.length ?? 0) > 0 ? spent.store : null, peakRss, rssReset);
  } finally {
    clearInterval(ticker);
    for (const wk of workers) if (wk.child.exitCode === null) wk.child.kill('SIGKILL');
  }
}

/** brokerCpuMs: broker and store processes together; storeCpuMs: the store's share (null: no store). */
function merge(parts: WorkloadResult[], brokerCpuMs: number | null, storeCpuMs: number | null, peakRss: number | null, rssReset: boolean): WorkloadResult {
  const sum = (f: (r: WorkloadResult) => number): number => parts.reduce((a, r) => a + f(r), 0);
  const starts = parts.map((r) => r.firstPublishAtEpochMs).filter((t) => t > 0);
  const ends = parts.map((r) => r.lastDeliveryAtEpochMs).filter((t) => t > 0);
  const first = starts.length ? Math.min(...starts) : 0;
  const last = ends.length ? Math.max(...ends) : 0;
  const durationMs = first && last > first ? last - first : 0;
  const delivered = sum((r) => r.delivered);
  const published = sum((r) => r.published);
  const hist = newHistogram();
  const ackHist = newHistogram();
  for (const r of parts) {
    for (const [encoded, into] of [[r.histogram, hist], [r.pubackHistogram, ackHist]] as const) {
      if (!encoded) continue;
      const h = hdr.decodeFromCompressedBase64(encoded);
      into.add(h);
      h.destroy();
    }
  }
  const acked = parts.some((r) => r.acked !== null) ? sum((r) => r.acked ?? 0) : null;
  const round2 = (n: number): number => Math.round(n * 100) / 100;
  const result: WorkloadResult = {
    published,
    publishTarget: sum((r) => r.publishTarget),
    acked,
    expected: sum((r) => r.expected),
    delivered,
    duplicates: sum((r) => r.duplicates),
    deliveryRatio: published ? delivered / sum((r) => r.published * (r.expected / Math.max(1, r.publishTarget))) : 0,
    durationMs: Math.round(durationMs * 10) / 10,
    msgPerSec: durationMs > 0 ? Math.round(delivered / (durationMs / 1000)) : 0,
    publishMsgPerSec: sum((r) => r.publishMsgPerSec),
    latencyMs: delivered > 0 ? latencyOf(hist) : null,
    pubackLatencyMs: latencyOf(ackHist),
    cpuPercent: {
      // The busiest client process decides whether the client side was the limit.
      client: Math.max(...parts.map((r) => r.cpuPercent.client)),
      broker: brokerCpuMs !== null && durationMs > 0 ? Math.round((1000 * brokerCpuMs) / durationMs) / 10 : null,
    },
    brokerCpuUsPerMsg: brokerCpuMs !== null && delivered > 0 ? round2((brokerCpuMs * 1000) / delivered) : null,
    storeCpuUsPerMsg: storeCpuMs !== null && delivered > 0 ? round2((storeCpuMs * 1000) / delivered) : null,
    brokerPeakRssBytes: peakRss,
    peakRssScope: rssReset ? 'workload' : 'broker-lifetime',
    firstPublishAtEpochMs: first,
    lastDeliveryAtEpochMs: last,
    timedOut: parts.some((r) => r.timedOut),
  };
  const error = parts.find((r) => r.error)?.error;
  if (error) result.error = error;
  hist.destroy();
  ackHist.destroy();
  return result;
}
