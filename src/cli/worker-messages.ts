/**
 * What the primary of `eddy broker --workers N` and its workers say to each other over Node's
 * cluster IPC channel. Every message carries `eddy` (its kind), so that anything else on the channel
 * (Node's own cluster messages, a library's) is told apart and ignored.
 */

/** The environment variable that makes a process a worker, holding its index (1…N). */
export const WORKER_ENV = 'EDDY_WORKER';

export type WorkerMessage =
  /** worker → primary: listening; `line` is the `eddy ready …` line it would have printed. */
  | { eddy: 'ready'; line: string }
  /** worker → primary: a client asked this worker for /metrics; answer with every worker's. */
  | { eddy: 'metrics'; id: number }
  /** worker → primary: this worker's own metrics, for the primary's scrape `id`. */
  | { eddy: 'scraped'; id: number; text: string };

export type PrimaryMessage =
  /** primary → worker: send your own metrics (`scraped`). */
  | { eddy: 'scrape'; id: number }
  /** primary → worker: the merged metrics of every worker, for the worker's request `id`. */
  | { eddy: 'merged'; id: number; text: string };

const WORKER_KINDS = new Set(['ready', 'metrics', 'scraped']);
const PRIMARY_KINDS = new Set(['scrape', 'merged']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** A message from a worker, checked field by field; undefined for anything else. */
export function asWorkerMessage(value: unknown): WorkerMessage | undefined {
  if (!isRecord(value) || typeof value.eddy !== 'string' || !WORKER_KINDS.has(value.eddy)) return undefined;
  if (value.eddy === 'ready') return typeof value.line === 'string' ? { eddy: 'ready', line: value.line } : undefined;
  if (typeof value.id !== 'number') return undefined;
  if (value.eddy === 'metrics') return { eddy: 'metrics', id: value.id };
  return typeof value.text === 'string' ? { eddy: 'scraped', id: value.id, text: value.text } : undefined;
}

/** A message from the primary, checked field by field; undefined for anything else. */
export function asPrimaryMessage(value: unknown): PrimaryMessage | undefined {
  if (!isRecord(value) || typeof value.eddy !== 'string' || !PRIMARY_KINDS.has(value.eddy) || typeof value.id !== 'number') return undefined;
  if (value.eddy === 'scrape') return { eddy: 'scrape', id: value.id };
  return typeof value.text === 'string' ? { eddy: 'merged', id: value.id, text: value.text } : undefined;
}
