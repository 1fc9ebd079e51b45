import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Message } from '../../core/message.js';
import type { SessionRecord } from '../../core/storage.js';
import type { QueueCheckpoint } from './disk-queue.js';
import type { HistoryIndexState } from './history-index.js';
import { decodeRecord, RecordType } from './record.js';
import type { RetainedState } from './retained.js';
import { StorageError } from '../../util/errors.js';

/**
 * A snapshot of broker state as of log position `position`. Recovery loads it and replays only
 * the log after `position`, so restart time depends on the time since the last checkpoint, not
 * on the size of the history or of the backlog.
 *
 * On disk it is a small manifest, `checkpoint.json`, naming one file per part. A part is written
 * again only when it changed since the last checkpoint (retained messages rarely change as often
 * as queue cursors), and everything is written asynchronously, off the event loop's critical path:
 * new part files first, then the manifest that names them (the atomic step), then the old parts go.
 */
export interface Checkpoint {
  position: number;
  seq: number;
  nextQueueId: number;
  sessions: Array<SessionRecord & { queueId: number }>;
  queues: QueueCheckpoint[];
  /** Where each retained message lies in the log. */
  retained: RetainedState;
  /** Sparse index for replay and retention (absent in checkpoints written before it existed). */
  history?: HistoryIndexState;
  /** Retained messages of a version 1 checkpoint, which kept them whole: written to the log again at open. */
  legacyRetained?: Message[];
}

interface Manifest {
  version: 2;
  position: number;
  seq: number;
  nextQueueId: number;
  /** Part name → file name (in the data directory). */
  parts: Record<PartName, string>;
}

type PartName = 'state' | 'retained' | 'history';

/** A version 1 checkpoint: one JSON file with retained messages as base64 log records. */
interface CheckpointV1 {
  version: 1;
  position: number;
  seq: number;
  nextQueueId: number;
  sessions: Checkpoint['sessions'];
  queues: QueueCheckpoint[];
  retained: string[];
  history?: HistoryIndexState;
}

const FILE = 'checkpoint.json';
const PART_FILE = /^checkpoint-(state|retained|history)-(\d+)\.json$/;

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
    const parsed = JSON.parse(text) as Manifest | CheckpointV1;
    if (parsed.version === 1) return fromV1(parsed);
    if (parsed.version !== 2) throw new Error(`unknown version ${String((parsed as { version: unknown }).version)}`);
    const part = <T>(name: PartName): T => JSON.parse(fs.readFileSync(path.join(dir, parsed.parts[name]), 'utf8')) as T;
    const state = part<{ sessions: Checkpoint['sessions']; queues: QueueCheckpoint[] }>('state');
    return {
      position: parsed.position,
      seq: parsed.seq,
      nextQueueId: parsed.nextQueueId,
      sessions: state.sessions,
      queues: state.queues,
      retained: part<RetainedState>('retained'),
      history: part<HistoryIndexState>('history'),
    };
  } catch (err) {
    throw new StorageError('EDDY_STORAGE_CORRUPT', `checkpoint ${file} is unreadable: ${(err as Error).message}`);
  }
}

function fromV1(v1: CheckpointV1): Checkpoint {
  const legacyRetained: Message[] = [];
  for (const r of v1.retained) {
    const decoded = decodeRecord(Buffer.from(r, 'base64'), 0, Number.MAX_SAFE_INTEGER);
    if (decoded.kind === 'record' && decoded.record.type === RecordType.Message) legacyRetained.push(decoded.record.message);
  }
  return { position: v1.position, seq: v1.seq, nextQueueId: v1.nextQueueId, sessions: v1.sessions, queues: v1.queues, retained: [], history: v1.history, legacyRetained };
}

/** What one checkpoint writes; `retained` is undefined when the retained part has not changed. */
export interface CheckpointSnapshot {
  position: number;
  seq: number;
  nextQueueId: number;
  state: { sessions: Checkpoint['sessions']; queues: QueueCheckpoint[] };
  retained: RetainedState | undefined;
  history: HistoryIndexState;
}

/** Writes checkpoints into one data directory, one at a time, rewriting only the parts that changed. */
export class CheckpointWriter {
  /** Part → its current file and the text it holds (to tell whether it changed). */
  private readonly current = new Map<PartName, { file: string; text: string | undefined }>();
  private generation = 0;

  constructor(private readonly dir: string) {
    // Part files a crash left behind, named by no manifest, are removed at the first write.
    for (const name of safeReaddir(dir)) {
      const m = PART_FILE.exec(name);
      if (m) this.generation = Math.max(this.generation, Number(m[2]));
    }
  }

  /**
   * Serialises the snapshot now (so it is consistent), then writes it asynchronously. Resolves once
   * the manifest naming it is durable; the data it replaces may be deleted from then on.
   */
  async write(snapshot: CheckpointSnapshot): Promise<void> {
    const texts: Array<[PartName, string | undefined]> = [
      ['state', JSON.stringify(snapshot.state)],
      ['retained', snapshot.retained === undefined ? undefined : JSON.stringify(snapshot.retained)],
      ['history', JSON.stringify(snapshot.history)],
    ];
    const generation = ++this.generation;
    const written: Array<[PartName, string, string]> = [];
    for (const [name, text] of texts) {
      const known = this.current.get(name);
      if (known && (text === undefined || text === known.text)) continue;
      if (text === undefined) throw new StorageError('EDDY_STORAGE_WRITE', `checkpoint part ${name} was never written`);
      const file = `checkpoint-${name}-${generation}.json`;
      await writeDurably(path.join(this.dir, file), text);
      written.push([name, file, text]);
    }
    if (written.length > 0) await syncDir(this.dir);
    const parts = Object.fromEntries((['state', 'retained', 'history'] as PartName[]).map((n) => [n, written.find((w) => w[0] === n)?.[1] ?? this.current.get(n)!.file])) as Record<PartName, string>;
    const manifest: Manifest = { version: 2, position: snapshot.position, seq: snapshot.seq, nextQueueId: snapshot.nextQueueId, parts };
    await writeDurably(path.join(this.dir, FILE), JSON.stringify(manifest));
    await syncDir(this.dir);
    for (const [name, file, text] of written) this.current.set(name, { file, text: name === 'retained' ? undefined : text });
    await this.removeUnnamed(new Set(Object.values(parts)));
  }

  /** Removes part files no manifest names any more (replaced ones, or left by a crash). */
  private async removeUnnamed(named: Set<string>): Promise<void> {
    for (const name of safeReaddir(this.dir)) {
      if (PART_FILE.test(name) && !named.has(name)) await fsp.rm(path.join(this.dir, name), { force: true });
    }
  }
}

/** Writes a file atomically: a temporary file, fsync, rename. */
async function writeDurably(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await fsp.open(temp, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(temp, file);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
