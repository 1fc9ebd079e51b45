import cluster, { type Worker } from 'node:cluster';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../util/logger.js';
import { mergeWorkerMetrics, type WorkerMetrics } from '../http/metrics-merge.js';
import { startedByNpm, watchAncestors } from './parent-watch.js';
import { asWorkerMessage, WORKER_ENV, type PrimaryMessage } from './worker-messages.js';

/** How long a scrape waits for the workers' own metrics; one that has not answered is left out. */
const SCRAPE_TIMEOUT_MS = 2_000;
/** A worker that exits is started again after this, doubling for each exit soon after a start. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran this long is healthy again: its next restart waits the first delay. */
const HEALTHY_RUN_MS = 30_000;
/** How long the workers have to drain at SIGTERM before they are killed. */
const STOP_GRACE_MS = 60_000;

interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  ready: boolean;
  /** Exits soon after a start, in a row: the restart delay's exponent. */
  quickExits: number;
  restartTimer?: NodeJS.Timeout;
}

/**
 * `eddy broker --workers N`: this process is the primary. It runs no broker of its own; it starts
 * N worker processes (Node's cluster module), each a full Eddy node of the same JetStream cluster,
 * which all accept on the same ports (the primary holds the listening sockets and hands each new
 * connection to the next worker). A message published through one worker reaches subscribers of
 * every other one the way it reaches other nodes of a cluster: through JetStream, which holds every
 * session, so that a client finds its session whichever worker takes its connection.
 *
 * The primary prints one ready line once every worker listens, forwards SIGHUP to each, drains them
 * all at SIGTERM/SIGINT, starts a worker that exits again (with a growing delay), and answers a
 * worker's /metrics with every worker's metrics, labelled `worker`.
 */
export function runWorkers(count: number, logger: Logger, print: (line: string) => void): void {
  const slots = new Map<number, Slot>();
  let stopping = false;
  let restarts = 0;
  let firstReadyLine: string | undefined;
  let printed = false;
  let scrapeId = 0;
  const scrapes = new Map<number, { parts: WorkerMetrics[]; expected: number; done: () => void }>();

  const send = (worker: Worker, message: PrimaryMessage): boolean => {
    if (!worker.isConnected()) return false;
    worker.send(message, undefined, (err) => {
      if (err) logger.debug({ err: err.message, worker: worker.id }, 'message to a worker not sent');
    });
    return true;
  };

  /**
   * Scrapes that arrive while one runs share it: a client polling /metrics costs each worker one
   * render per round, however many workers take its requests.
   */
  let runningScrape: Promise<string> | undefined;
  const sharedMetrics = (): Promise<string> => {
    runningScrape ??= mergedMetrics().finally(() => (runningScrape = undefined));
    return runningScrape;
  };

  /** Every answering worker's metrics, merged, with the primary's own two families. */
  const mergedMetrics = async (): Promise<string> => {
    const id = ++scrapeId;
    const parts: WorkerMetrics[] = [];
    let asked = 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, SCRAPE_TIMEOUT_MS);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      scrapes.set(id, { parts, expected: 0, done });
      for (const slot of slots.values()) if (slot.ready && send(slot.worker, { eddy: 'scrape', id })) asked++;
      scrapes.get(id)!.expected = asked;
      if (asked === 0) done();
    });
    scrapes.delete(id);
    parts.sort((a, b) => Number(a.worker) - Number(b.worker));
    answering = parts.length;
    return mergeWorkerMetrics(parts) + (await primaryMetrics.metrics());
  };
  // The primary's own metrics, in a registry of its own, rendered after the workers'.
  let answering = 0;
  const primaryMetrics = new Registry();
  new Gauge({
    name: 'eddy_workers',
    help: 'Worker processes of this broker (eddy broker --workers): configured, and answering this scrape',
    labelNames: ['state'],
    registers: [primaryMetrics],
    collect() {
      this.set({ state: 'configured' }, count);
      this.set({ state: 'answering' }, answering);
    },
  });
  new Counter({
    name: 'eddy_worker_restarts_total',
    help: 'Workers started again after they exited',
    registers: [primaryMetrics],
    collect() {
      this.reset();
      this.inc(restarts);
    },
  });

  const onMessage = (slot: Slot, raw: unknown): void => {
    const message = asWorkerMessage(raw);
    if (!message) return;
    if (message.eddy === 'ready') {
      slot.ready = true;
      if (firstReadyLine === undefined) firstReadyLine = message.line;
      else if (message.line !== firstReadyLine) logger.warn({ worker: slot.index, line: message.line, first: firstReadyLine }, 'a worker listens elsewhere than the others');
      logger.info({ worker: slot.index, workerPid: slot.worker.process.pid }, 'worker ready');
      if (!printed && [...slots.values()].every((s) => s.ready)) {
        printed = true;
        print(firstReadyLine);
      }
      return;
    }
    if (message.eddy === 'scraped') {
      const scrape = scrapes.get(message.id);
      if (!scrape) return;
      scrape.parts.push({ worker: String(slot.index), text: message.text });
      if (scrape.parts.length >= scrape.expected) scrape.done();
      return;
    }
    sharedMetrics().then(
      (text) => send(slot.worker, { eddy: 'merged', id: message.id, text }),
      (err: unknown) => logger.error({ err }, 'workers’ metrics not merged'),
    );
  };

  const fork = (index: number, quickExits: number): void => {
    const worker = cluster.fork({ [WORKER_ENV]: String(index) });
    const slot: Slot = { index, worker, startedAt: Date.now(), ready: false, quickExits };
    slots.set(index, slot);
    logger.info({ worker: index, workerPid: worker.process.pid }, 'worker started');
    worker.on('message', (raw: unknown) => onMessage(slot, raw));
    worker.on('error', (err) => logger.warn({ worker: index, err: err.message }, 'worker channel error'));
    worker.on('exit', (code, signal) => onExit(slot, code, signal));
  };

  const onExit = (slot: Slot, code: number | null, signal: string | null): void => {
    if (stopping) {
      // A worker that did not drain cleanly makes the broker's exit code 1, as a single broker's would be.
      if (code !== 0) exitCode = 1;
      slots.delete(slot.index);
      if (slots.size === 0) finish();
      return;
    }
    if (!printed && !slot.ready) {
      // A worker that cannot start (NATS unreachable, a port taken) would fail the same way again.
      logger.error({ worker: slot.index, code, signal }, 'a worker exited before it was ready: stopping');
      exitCode = 1;
      stop('worker failed to start');
      slots.delete(slot.index);
      if (slots.size === 0) finish();
      return;
    }
    const quick = Date.now() - slot.startedAt < HEALTHY_RUN_MS;
    const quickExits = quick ? slot.quickExits + 1 : 0;
    const delay = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** Math.max(0, quickExits - 1));
    logger.warn({ worker: slot.index, code, signal, restartInMs: delay }, `worker ${slot.index} exited; starting it again in ${delay} ms`);
    slot.restartTimer = setTimeout(() => {
      if (stopping) return;
      restarts++;
      fork(slot.index, quickExits);
    }, delay);
  };

  let exitCode = 0;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    stopWatching();
    logger.info(reason.startsWith('SIG') ? { signal: reason } : { reason }, 'shutting down the workers');
    for (const slot of [...slots.values()]) {
      if (slot.restartTimer) {
        // Waiting for a restart: nothing runs in this slot.
        clearTimeout(slot.restartTimer);
        slots.delete(slot.index);
      } else if (slot.worker.process.exitCode === null && slot.worker.process.signalCode === null) {
        slot.worker.process.kill('SIGTERM');
      } else {
        slots.delete(slot.index);
      }
    }
    if (slots.size === 0) return finish();
    killTimer = setTimeout(() => {
      logger.error({ workers: [...slots.keys()] }, `workers still running ${STOP_GRACE_MS} ms after SIGTERM: killed`);
      exitCode = 1;
      for (const slot of slots.values()) slot.worker.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
  };
  const finish = (): void => {
    if (killTimer) clearTimeout(killTimer);
    logger.info({ code: exitCode }, 'broker stopped');
    logger.flush?.();
    process.exit(exitCode);
  };

  const stopWatching = startedByNpm() ? watchAncestors((what) => stop(`${what} (npm does not pass signals on)`)) : () => {};
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    for (const slot of slots.values()) if (slot.worker.process.exitCode === null) slot.worker.process.kill('SIGHUP');
  });
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception in the primary: it keeps running'));
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection in the primary: it keeps running'));

  // The workers run this same CLI with the same arguments; WORKER_ENV makes each one a worker.
  cluster.setupPrimary({ exec: process.argv[1], args: process.argv.slice(2) });
  for (let index = 1; index <= count; index++) fork(index, 0);
}
