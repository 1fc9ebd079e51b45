import fs from 'node:fs';
import path from 'node:path';
import type { Message } from '../../core/message.js';
import type { Logger } from '../../util/logger.js';
import { StorageError } from '../../util/errors.js';
import { isAlive } from '../../util/process.js';
import type { ChannelPolicyLookup, DurableDelivery, HistoryQuery, HistoryReader, SessionQueue, SessionRecord, Storage, StorageContext } from '../../core/storage.js';
import { NO_CHANNEL_POLICIES, READ_BATCH_BYTES } from '../read-batch.js';
import { LogPositions } from './log-positions.js';
import { HistoryIndex } from './history-index.js';
import { CheckpointWriter, readCheckpoint } from './checkpoint.js';
import { DiskRetained } from './retained.js';
import { DiskSpace } from './space.js';
import { DiskSessionQueue, type QueueCheckpoint } from './disk-queue.js';
import { encodeMessageRecord, encodeStateRecord, RecordType, type LogRecord, type StateChange } from './record.js';
import { SegmentedLog, type FsyncPolicy } from './segmented-log.js';

export interface DiskStorageOptions {
  dir: string;
  fsync: FsyncPolicy;
  logger: Logger;
  /** Size of a log segment; by default a sixteenth of the file system, between 64 KiB and 64 MiB. */
  segmentBytes?: number;
  checkpointIntervalMs?: number;
  /** How often queue positions that moved (acknowledgements) are logged between checkpoints. */
  cursorIntervalMs?: number;
}

type QueueState = { cursor: number; unacked: number };

/** Bytes of retained records copied forward per checkpoint round, so compaction never stalls the broker. */
const COMPACTION_BYTES = 16 * 1024 * 1024;

type StoredSession = SessionRecord & { queueId: number };

const GROUP_KEY = '\u0000group:';

/**
 * The durable engine: one segmented log holds every stored message (with the durable queues it
 * goes to) and every session change, so one group commit orders and protects them all; a
 * checkpoint file bounds how much of the log a restart reads. See docs/storage.md.
 */
export class DiskStorage implements Storage {
  readonly kind = 'disk';
  private log!: SegmentedLog;
  private seq = 0;
  private nextQueueId = 1;
  private readonly sessions = new Map<string, StoredSession>();
  private readonly queues = new Map<string, DiskSessionQueue>();
  private readonly retainedMessages = new DiskRetained(() => this.log);
  private checkpointTimer: NodeJS.Timeout | undefined;
  private cursorTimer: NodeJS.Timeout | undefined;
  /** Per queue id, the cursor and count last written to the log or the checkpoint. */
  private readonly loggedCursors = new Map<number, string>();
  private checkpointedAt = -1;
  private checkpointedQueues = '';
  /** The checkpoint being written, if one is (they are written one at a time). */
  private checkpointing: Promise<void> | undefined;
  /** Compaction copies of retained messages being written (one round at a time). */
  private compacting = false;
  private writer!: CheckpointWriter;
  private readonly space: DiskSpace;
  /** Spill files of queues that need no durability: they belong to the sessions of this run only. */
  private readonly spillDir: string;
  private readonly lockFile: string;
  private channels: ChannelPolicyLookup = NO_CHANNEL_POLICIES;
  /** Where each message this run stored or read for a queue lies in the log (see LogPositions). */
  private readonly positions = new LogPositions();
  private index!: HistoryIndex;
  private fsyncObserver: ((durationMs: number, records?: number) => void) | undefined;

  constructor(private readonly options: DiskStorageOptions) {
    this.lockFile = path.join(options.dir, 'LOCK');
    this.spillDir = path.join(options.dir, 'spill');
    this.space = new DiskSpace(options.dir, options.logger);
  }

  get logStats(): SegmentedLog['stats'] {
    return this.log.stats;
  }

  get failures(): number {
    return this.log?.stats.failures ?? 0;
  }

  observeFsync(observer: (durationMs: number, records?: number) => void): void {
    this.fsyncObserver = observer;
  }

  async open(context?: StorageContext): Promise<void> {
    const started = performance.now();
    if (context) this.channels = context.channels;
    fs.mkdirSync(this.options.dir, { recursive: true });
    this.lock();
    fs.rmSync(this.spillDir, { recursive: true, force: true });
    const checkpoint = readCheckpoint(this.options.dir);
    this.writer = new CheckpointWriter(this.options.dir);
    this.index = HistoryIndex.restore(this.channels, checkpoint?.history);
    const pendingQueues = new Map<number, QueueState>();
    if (checkpoint) {
      this.seq = checkpoint.seq;
      this.nextQueueId = checkpoint.nextQueueId;
      for (const s of checkpoint.sessions) this.sessions.set(s.clientId, s);
      for (const q of checkpoint.queues) pendingQueues.set(q.id, { cursor: q.cursor, unacked: q.unacked });
      this.retainedMessages.restore(checkpoint.retained);
    }
    let replayed = 0;
    /** Deliveries found past the checkpoint, per queue: the first one's position and how many. */
    const found = new Map<number, { first: number; count: number }>();
    this.log = await SegmentedLog.open(
      path.join(this.options.dir, 'log'),
      {
        // Sizing also sizes the reserve to the disk, so it runs whether or not segments are sized by it.
        segmentBytes: ((sized) => this.options.segmentBytes ?? sized)(this.space.segmentBytesFor()),
        fsync: this.options.fsync,
        logger: this.options.logger,
        maxRecordBytes: 512 * 1024 * 1024,
        onFsync: this.fsyncObserver,
        onFull: () => this.onDiskFull(),
        hasRoom: () => this.space.hasRoom(),
      },
      checkpoint?.position ?? 0,
      (record, position, size) => {
        replayed++;
        if (record.type === RecordType.Message && !record.copy) this.index.note(record.message, position, size);
        this.replay(record, position, size, found, pendingQueues);
      },
    );
    // A version 1 checkpoint kept retained messages whole: they go to the log, where they live now.
    for (const message of checkpoint?.legacyRetained ?? []) await this.appendRetainedCopy(message);
    this.space.ensureReserve();
    for (const session of this.sessions.values()) {
      const queue = this.createQueue(session.clientId, session.queueId);
      const restored = pendingQueues.get(session.queueId);
      if (restored) queue.restore(restored.cursor, restored.unacked);
      const more = found.get(session.queueId);
      if (more) queue.restore(more.first, more.count);
    }
    this.checkpointedAt = checkpoint?.position ?? -1;
    const interval = this.options.checkpointIntervalMs ?? 1000;
    this.checkpointTimer = setInterval(() => this.checkpointSafely(), interval);
    this.checkpointTimer.unref();
    this.cursorTimer = setInterval(() => {
      try {
        this.logCursors();
      } catch (err) {
        this.options.logger.warn({ err: (err as Error).message }, 'queue cursors not logged');
      }
    }, this.options.cursorIntervalMs ?? 100);
    this.cursorTimer.unref();
    this.options.logger.info(
      { dir: this.options.dir, sessions: this.sessions.size, retained: this.retainedMessages.count, replayedRecords: replayed, logBytes: this.log.end - this.log.start, ms: Math.round(performance.now() - started) },
      'storage recovered',
    );
  }

  async close(): Promise<void> {
    clearInterval(this.checkpointTimer);
    clearInterval(this.cursorTimer);
    await this.checkpointing;
    await this.log.close();
    try {
      await this.checkpoint();
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'last checkpoint not written; the log still holds everything');
    }
    fs.rmSync(this.lockFile, { force: true });
    openDirs.delete(this.options.dir);
  }

  append(message: Message, deliveries: DurableDelivery[]): Promise<void> {
    message.seq = ++this.seq;
    const record = encodeMessageRecord(message, deliveries);
    return this.log.append(record).then((position) => {
      this.positions.set(message, position);
      this.index.note(message, position, record.length);
      if (message.retain) this.retainedMessages.note(message, position, record.length);
    });
  }

  get lastSeq(): number {
    return this.seq;
  }

  settled(): Promise<void> {
    return this.log.settled();
  }

  /**
   * Reads a replay's history from the log, starting at the index point before its start, in
   * batches read through the thread pool, like queue refills. The messages it returns carry no log
   * position: a replay's delivery does not hold back the session's queue cursor.
   */
  history(query: HistoryQuery): HistoryReader {
    let position = this.index.startPosition(query.start, this.log.start);
    const floors = this.index.byteFloors();
    let done = false;
    return {
      next: async (max) => {
        if (done) return [];
        const found: Message[] = [];
        let bytes = 0;
        const now = Date.now();
        let full = false;
        position = await this.log.readAsync(position, (record, at) => {
          if (found.length >= max || bytes >= READ_BATCH_BYTES) {
            full = true;
            return false;
          }
          if (record.type !== RecordType.Message || record.copy) return;
          const { message } = record;
          if ((message.seq ?? 0) > query.untilSeq) {
            done = true;
            return false;
          }
          if (at < (floors.get(this.channels.for(message.topic).pattern) ?? 0)) return;
          if (!query.includes(message, now)) return;
          found.push(message);
          bytes += message.payload.length;
        }, 256 * 1024);
        if (!full) done = true;
        return found;
      },
    };
  }

  retainedMatching(filter: string): HistoryReader {
    return this.retainedMessages.matching(filter);
  }

  get retainedCount(): number {
    return this.retainedMessages.count;
  }

  get retainedBytes(): number {
    return this.retainedMessages.bytes;
  }

  retainedSize(topic: string): number | undefined {
    return this.retainedMessages.sizeOf(topic);
  }

  retainedTopics(): Iterable<string> {
    return this.retainedMessages.topics();
  }

  /** The log's live segments, from the oldest byte still needed to the end. */
  get bytesUsed(): number {
    // Before open there is no log yet.
    return this.log ? this.log.end - this.log.start : 0;
  }

  async loadSessions(): Promise<SessionRecord[]> {
    // The records as saved: the queue id is this engine's own bookkeeping.
    return [...this.sessions.values()].filter((s) => !s.clientId.startsWith(GROUP_KEY)).map(({ queueId: _queueId, ...record }) => record);
  }

  async loadGroups(): Promise<string[]> {
    return [...this.sessions.keys()].filter((k) => k.startsWith(GROUP_KEY)).map((k) => k.slice(GROUP_KEY.length));
  }

  // A group's queue is kept like a session's, under a key no client id can have (MQTT forbids U+0000).
  groupQueue(name: string): SessionQueue {
    return this.queue(GROUP_KEY + name);
  }

  saveGroup(name: string): Promise<void> {
    return this.saveSession({ clientId: GROUP_KEY + name, expiryInterval: 0xffffffff, subscriptions: [] });
  }

  deleteGroup(name: string): Promise<void> {
    return this.deleteSession(GROUP_KEY + name);
  }

  saveSession(record: SessionRecord): Promise<void> {
    const queueId = this.queue(record.clientId).id;
    this.sessions.set(record.clientId, { ...record, queueId });
    return this.appendState({ op: 'session', record, queueId });
  }

  deleteSession(clientId: string): Promise<void> {
    const existed = this.sessions.delete(clientId);
    this.queues.get(clientId)?.clear();
    this.queues.delete(clientId);
    return existed ? this.appendState({ op: 'session-end', clientId }) : Promise.resolve();
  }

  queue(clientId: string): SessionQueue & { id: number } {
    return this.queues.get(clientId) ?? this.createQueue(clientId, this.nextQueueId++);
  }

  private createQueue(clientId: string, id: number): DiskSessionQueue {
    const queue = new DiskSessionQueue(id, clientId, this.log, this.positions, this.spillDir);
    this.queues.set(clientId, queue);
    if (id >= this.nextQueueId) this.nextQueueId = id + 1;
    return queue;
  }

  private appendState(change: StateChange): Promise<void> {
    return this.log.append(encodeStateRecord(change)).then(() => undefined);
  }

  private replay(record: LogRecord, position: number, size: number, found: Map<number, { first: number; count: number }>, queues: Map<number, QueueState>): void {
    if (record.type === RecordType.State) {
      const change = record.change;
      if (change.op === 'cursors') {
        // A later, better starting point: its count already includes every delivery before it.
        for (const q of change.queues) {
          queues.set(q.id, { cursor: q.cursor, unacked: q.unacked });
          found.delete(q.id);
        }
        return;
      }
      if (change.op === 'session') {
        this.sessions.set(change.record.clientId, { ...change.record, queueId: change.queueId });
        if (change.queueId >= this.nextQueueId) this.nextQueueId = change.queueId + 1;
      } else {
        this.sessions.delete(change.clientId);
      }
      return;
    }
    const { message } = record;
    if (message.seq! > this.seq) this.seq = message.seq!;
    if (message.retain) this.retainedMessages.note(message, position, size);
    for (const d of record.deliveries) {
      // Queue ids are never reused, not even those of clean sessions, whose records a restart ignores.
      if (d.queueId >= this.nextQueueId) this.nextQueueId = d.queueId + 1;
      const entry = found.get(d.queueId);
      if (entry) entry.count++;
      else found.set(d.queueId, { first: position, count: 1 });
    }
  }

  /**
   * Logs the position of every queue that moved since it was last logged. Without this, queues
   * move on disk only at checkpoints, and a crash resends everything acknowledged since the last one.
   */
  private logCursors(): void {
    const end = this.log.confirmedEnd;
    const moved: QueueCheckpoint[] = [];
    for (const session of this.sessions.values()) {
      const queue = this.queues.get(session.clientId);
      if (!queue) continue;
      const state = queue.checkpoint(end);
      // An empty queue's cursor follows the log end, which this very record moves: it counts as unchanged.
      const key = state.unacked === 0 ? 'empty' : `${state.cursor}/${state.unacked}`;
      if (this.loggedCursors.get(state.id) === key) continue;
      this.loggedCursors.set(state.id, key);
      moved.push(state);
    }
    if (moved.length === 0) return;
    this.appendState({ op: 'cursors', queues: moved }).catch((err: Error) => {
      // Only duplicates after a crash are at stake: the checkpoint or the next record catches up.
      for (const q of moved) this.loggedCursors.delete(q.id);
      this.options.logger.warn({ err: err.message }, 'queue cursors not logged');
    });
  }

  private checkpointSafely(): void {
    if (this.checkpointing) return;
    this.checkpointing = this.checkpoint()
      .catch((err: Error) => this.options.logger.error({ err: err.message }, 'checkpoint failed; the log still holds everything'))
      .finally(() => (this.checkpointing = undefined));
  }

  /**
   * Writes the checkpoint when the log or any queue moved since the last one (acknowledgements
   * move queues without writing to the log), then deletes log segments nothing needs any more.
   * Retained messages alone keep a segment only until they are copied further on (compaction).
   */
  private async checkpoint(): Promise<void> {
    const position = this.log.confirmedEnd;
    const now = Date.now();
    const queues = [];
    let oldestNeeded = position;
    // Only the queues of persistent sessions (and saved groups) read the log; others keep what
    // waits for them in memory or in their spill file.
    for (const session of this.sessions.values()) {
      const queue = this.queues.get(session.clientId);
      if (!queue) continue;
      const state = queue.checkpoint(position);
      queues.push(state);
      if (state.unacked > 0 && state.cursor < oldestNeeded) oldestNeeded = state.cursor;
    }
    const retentionFloor = this.index.retentionFloor(now);
    if (retentionFloor < oldestNeeded) oldestNeeded = retentionFloor;
    this.retainedMessages.dropExpired(now);
    const keepFrom = this.log.segmentStartOf(oldestNeeded);
    if (this.retainedMessages.oldestPosition() < keepFrom) this.compactRetained(keepFrom);
    oldestNeeded = Math.min(oldestNeeded, this.retainedMessages.oldestPosition());
    const queueState = JSON.stringify(queues);
    if (position === this.checkpointedAt && queueState === this.checkpointedQueues && !this.retainedMessages.changed) return;
    const retainedChanged = this.retainedMessages.changed;
    this.retainedMessages.changed = false;
    try {
      await this.writer.write({
        position,
        seq: this.seq,
        nextQueueId: this.nextQueueId,
        state: { sessions: [...this.sessions.values()], queues },
        retained: retainedChanged ? this.retainedMessages.toJSON() : undefined,
        history: this.index.toJSON(),
      });
    } catch (err) {
      if (retainedChanged) this.retainedMessages.changed = true;
      throw err;
    }
    this.checkpointedQueues = queueState;
    this.checkpointedAt = position;
    if (this.log.deleteBefore(oldestNeeded) > 0) this.index.dropBefore(this.log.start);
    this.space.ensureReserve();
  }

  /**
   * Writes retained messages that lie before `position` again at the end of the log, a bounded
   * amount per round, so that the segments they are the last users of can be deleted: retained
   * messages that never change would otherwise keep every later segment for ever.
   */
  private compactRetained(position: number): void {
    if (this.compacting) return;
    const moves = this.retainedMessages.compactable(position, COMPACTION_BYTES);
    if (moves.length === 0) return;
    this.compacting = true;
    const copies = moves.map(async ([topic, entry]) => {
      const message = await this.retainedMessages.read(entry);
      const at = await this.log.append(encodeMessageRecord(message, [], true));
      this.retainedMessages.moved(topic, entry, at);
    });
    void Promise.allSettled(copies).then((results) => {
      this.compacting = false;
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) this.options.logger.warn({ err: (failed.reason as Error).message }, 'retained messages not compacted; their segments stay');
    });
  }

  /** A version 1 checkpoint's retained message, written to the log as a compaction copy. */
  private async appendRetainedCopy(message: Message): Promise<void> {
    const record = encodeMessageRecord(message, [], true);
    const at = await this.log.append(record);
    this.retainedMessages.note(message, at, record.length);
  }

  /** A write found the disk full: release the reserve and checkpoint now, so that drained segments can go. */
  private onDiskFull(): void {
    if (!this.space.release()) return;
    this.checkpointSafely();
  }

  private lock(): void {
    if (openDirs.has(this.options.dir)) {
      throw new StorageError('EDDY_STORAGE_LOCKED', `data directory ${this.options.dir} is in use by process ${process.pid} (this one)`);
    }
    this.takeLockFile();
    openDirs.add(this.options.dir);
  }

  private takeLockFile(): void {
    try {
      fs.writeFileSync(this.lockFile, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(fs.readFileSync(this.lockFile, 'utf8'));
    if (pid && pid !== process.pid && isAlive(pid)) {
      throw new StorageError('EDDY_STORAGE_LOCKED', `data directory ${this.options.dir} is in use by process ${pid}`);
    }
    // A lock left by a process that died (kill -9), or by an earlier life of this pid: take it over.
    fs.writeFileSync(this.lockFile, String(process.pid));
  }
}

/** Data directories open in this process: the lock file cannot tell them apart by pid. */
const openDirs = new Set<string>();

