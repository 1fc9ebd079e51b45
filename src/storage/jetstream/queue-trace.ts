import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * A debugging trace of queue events (fetch, accept, ack, nak, purge, consumer recreation), for
 * finding which entry of a crash run was acknowledged or skipped without a delivery. Off unless
 * EDDY_QUEUE_TRACE names a file; each line is written at once (a write(2), no buffer), so it
 * survives the kill -9 of the process that wrote it.
 */
const path = process.env.EDDY_QUEUE_TRACE;
let fd: number | undefined;
if (path) {
  try {
    fd = openSync(path, 'a');
    process.once('exit', () => {
      if (fd !== undefined) closeSync(fd);
    });
  } catch {
    fd = undefined;
  }
}

export const queueTraceOn = fd !== undefined;

export function queueTrace(queue: string, event: string, detail = ''): void {
  if (fd === undefined) return;
  try {
    writeSync(fd, `${Date.now()} ${process.pid} ${queue.replace(/ /g, '_')} ${event} ${detail}\n`);
  } catch {
    // a trace must never break the broker
  }
}

/** A payload as the trace shows it (the crash harness's are short JSON). */
export function tracePayload(payload: Uint8Array): string {
  return Buffer.from(payload.subarray(0, 40)).toString('utf8').replace(/\s/g, '');
}
