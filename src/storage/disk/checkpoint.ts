import fs from 'node:fs';
import path from 'node:path';
import type { SessionRecord } from '../types.js';
import type { QueueCheckpoint } from './disk-queue.js';
import type { HistoryIndexState } from './history-index.js';
import { syncDirectory } from './segmented-log.js';
import { StorageError } from '../../util/errors.js';

/**
 * A snapshot of broker state as of log position `position`. Recovery loads it and replays only
 * the log after `position`, so restart time depends on the time since the last checkpoint, not
 * on the size of the history or of the backlog.
 */
export interface Checkpoint {
  version: 1;
  position: number;
  seq: number;
  nextQueueId: number;
  sessions: Array<SessionRecord & { queueId: number }>;
  queues: QueueCheckpoint[];
  /** Retained messages as base64 log records (they carry everything a message has). */
  retained: string[];
  /** Sparse index for replay and retention (absent in checkpoints written before it existed). */
  history?: HistoryIndexState;
}

const FILE = 'checkpoint.json';

export function readCheckpoint(dir: string): Checkpoint | undefined {
  const file = path.join(dir, FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const checkpoint = JSON.parse(text) as Checkpoint;
    if (checkpoint.version !== 1) throw new Error(`unknown version ${String(checkpoint.version)}`);
    return checkpoint;
  } catch (err) {
    throw new StorageError('EDDY_STORAGE_CORRUPT', `checkpoint ${file} is unreadable: ${(err as Error).message}`);
  }
}

/** Writes the checkpoint atomically: a temporary file, fsync, rename, fsync of the directory. */
export function writeCheckpoint(dir: string, checkpoint: Checkpoint): void {
  const file = path.join(dir, FILE);
  const temp = `${file}.tmp`;
  const fd = fs.openSync(temp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(checkpoint));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  syncDirectory(dir);
}
