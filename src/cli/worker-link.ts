import cluster from 'node:cluster';
import type { EddyServer } from '../server.js';
import type { Logger } from '../util/logger.js';
import { asPrimaryMessage, WORKER_ENV, type WorkerMessage } from './worker-messages.js';

/** How long a worker's /metrics waits for the primary's merged answer. */
const MERGED_METRICS_TIMEOUT_MS = 5_000;

/** This process's worker index (1…N) under `eddy broker --workers N`, or undefined when it runs alone. */
export function workerIndex(): string | undefined {
  return cluster.isWorker ? process.env[WORKER_ENV] : undefined;
}

/**
 * Ties a started worker to its primary: tells it the ready line (the primary prints one for all),
 * answers its scrapes with this worker's own metrics, and answers /metrics with every worker's,
 * merged by the primary. When the primary is gone (the IPC channel closed: it was killed), the
 * listening sockets it held are gone too, so the worker stops through `onPrimaryGone`.
 */
export function linkWorker(server: EddyServer, readyLine: string, logger: Logger, onPrimaryGone: () => void): void {
  const send = (message: WorkerMessage): void => {
    // The channel may close at any time (the primary exits): a failed send is that, not a crash.
    if (!process.connected) return;
    process.send?.(message, undefined, undefined, (err) => {
      if (err) logger.debug({ err: err.message }, 'message to the primary not sent');
    });
  };
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 0;

  process.on('message', (raw: unknown) => {
    const message = asPrimaryMessage(raw);
    if (!message) return;
    if (message.eddy === 'scrape') {
      server.metrics.scrapeOwn().then(
        (text) => send({ eddy: 'scraped', id: message.id, text }),
        (err: Error) => logger.error({ err: err.message }, 'metrics not collected for the primary'),
      );
      return;
    }
    const request = waiting.get(message.id);
    if (!request) return;
    waiting.delete(message.id);
    clearTimeout(request.timer);
    request.resolve(message.text);
  });

  server.metrics.scrape = () =>
    new Promise<string>((resolve, reject) => {
      if (!process.connected) return reject(new Error('the primary process is gone'));
      const id = ++nextId;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the primary did not merge the workers' metrics within ${MERGED_METRICS_TIMEOUT_MS} ms`));
      }, MERGED_METRICS_TIMEOUT_MS);
      waiting.set(id, { resolve, reject, timer });
      send({ eddy: 'metrics', id });
    });

  process.once('disconnect', () => {
    for (const request of waiting.values()) {
      clearTimeout(request.timer);
      request.reject(new Error('the primary process is gone'));
    }
    waiting.clear();
    onPrimaryGone();
  });
  send({ eddy: 'ready', line: readyLine });
}
