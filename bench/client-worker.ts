// A bench client process: runs its share of a parallel workload (bench/parallel.ts) with mqtt.js
// and reports back over IPC. Publishers and subscribers of one pair live here, so latency is
// still measured on one clock; the parent decides when every process starts publishing.
import { runWorkload, type RunConfig, type WorkloadResult } from './runner.js';
import type { Workload } from './workloads.js';

/** What the parent sends first. */
export interface WorkerStart {
  type: 'start';
  url: string;
  workload: Workload;
  cfg: Omit<RunConfig, 'beforePublish' | 'afterMeasure' | 'exportHistogram' | 'ca'> & { ca?: string };
}

/** What a worker sends: connected and subscribed, measured (clients still open), progress, the result. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'measured' }
  | { type: 'progress'; published: number; delivered: number }
  | { type: 'result'; result: WorkloadResult };

function send(msg: WorkerMessage): void {
  process.send?.(msg);
}

/** Resolves on the parent's next message of this type. */
function await_(type: 'go' | 'teardown'): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: { type?: string }): void => {
      if (m?.type !== type) return;
      process.off('message', on);
      resolve();
    };
    process.on('message', on);
  });
}

process.once('message', (msg: WorkerStart) => {
  const { ca, ...cfg } = msg.cfg;
  void runWorkload(msg.url, msg.workload, {
    ...cfg,
    ...(ca ? { ca: Buffer.from(ca, 'base64') } : {}),
    exportHistogram: true,
    beforePublish: () => {
      const go = await_('go');
      send({ type: 'ready' });
      return go;
    },
    afterMeasure: () => {
      const teardown = await_('teardown');
      send({ type: 'measured' });
      return teardown;
    },
  }, null, (p) => send({ type: 'progress', published: p.published, delivered: p.delivered })).then(
    (result) => {
      send({ type: 'result', result });
      process.disconnect?.();
    },
    (err: unknown) => {
      process.stderr.write(`bench client process failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
});
