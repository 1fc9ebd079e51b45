import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../util/logger.js';
import { StorageError } from '../../util/errors.js';
import { decodeRecord, HEADER_BYTES, type LogRecord } from './record.js';
import { SegmentReaders, type ReadableSegment } from './segment-readers.js';
import { SyncPipeline } from './sync-pipeline.js';
import { SEGMENT_NAME, segmentName, storageErrorCode, syncDirectory, writeAllSync } from './log-files.js';

/** When appended data is fsynced before it is confirmed. */
export type FsyncPolicy = { kind: 'always' } | { kind: 'interval'; ms: number } | { kind: 'off' };

export function parseFsyncPolicy(text: string): FsyncPolicy | undefined {
  if (text === 'always') return { kind: 'always' };
  if (text === 'off') return { kind: 'off' };
  const m = /^interval:(\d+)$/.exec(text);
  if (m && Number(m[1]) > 0) return { kind: 'interval', ms: Number(m[1]) };
  return undefined;
}

export interface SegmentedLogOptions {
  segmentBytes: number;
  fsync: FsyncPolicy;
  logger: Logger;
  /** Largest record body accepted when reading; anything larger is treated as corruption. */
  maxRecordBytes: number;
  /** Called after each fsync with its duration in milliseconds and, under `fsync always`, the records it confirmed (metrics). */
  onFsync?: (durationMs: number, records?: number) => void;
  /** Called when a write found the disk full (ENOSPC): the owner can free space (see DiskStorage). */
  onFull?: () => void;
  /** While the disk is full, asked before each append: true once there is room to write again. */
  hasRoom?: () => boolean;
}

interface Segment extends ReadableSegment {
  /** Global position of the segment's first byte; also its file name. */
  base: number;
  file: string;
  /** Bytes written (and, after a failed write, truncated back). */
  size: number;
  /** The descriptor the tail segment is written (and read) through; undefined for older segments. */
  fd: number | undefined;
}

interface PendingAppend {
  record: Buffer;
  resolve: (position: number) => void;
  reject: (err: Error) => void;
}

/** Appends written to a segment together, waiting to be confirmed. */
interface SegmentWrite {
  segment: Segment;
  /** Offset in the segment of the first record. */
  offset: number;
  bytes: number;
  count: number;
  appends: PendingAppend[];
}

export interface LogStats {
  fsyncs: number;
  appended: number;
  lastFsyncMs: number;
  /** Writes, rolls and reads that failed. */
  failures: number;
}

const READ_CHUNK = 1 << 20;

/**
 * An append-only log split into segment files, with group commit: the appends of one event-loop
 * turn are written together, and under `fsync always` confirmed by the next fdatasync that starts
 * after them (SyncPipeline: writes go on while an fsync runs, and one fsync covers all written
 * meanwhile). A record is confirmed (its promise resolves with its position) only after the fsync
 * policy is satisfied.
 */
export class SegmentedLog {
  readonly stats: LogStats = { fsyncs: 0, appended: 0, lastFsyncMs: 0, failures: 0 };
  private pending: PendingAppend[] = [];
  /** The newest append, settled or not: appends settle in order, so waiting for it waits for all. */
  private lastAppend: Promise<unknown> = Promise.resolve();
  private flushing = false;
  private closed = false;
  private intervalTimer: NodeJS.Timeout | undefined;
  private dirtySegments = new Set<Segment>();
  /** End of the confirmed records: readers never see a record before its append resolved. */
  private confirmed = 0;
  /** Read-only descriptors and the reads under way (see SegmentReaders). */
  private readonly readers = new SegmentReaders();
  /** Set when the disk was full: the next batch starts a new segment, so the full one can be deleted once drained. */
  private rollEarly = false;
  /**
   * Set when a write found the disk full: appends are refused at once, without writing, until there
   * is room again, so that what space frees up goes to the checkpoint that lets segments be deleted.
   */
  private full = false;
  /** Write failures logged (the first of a kind and then every 1000th). */
  private failuresLogged = 0;
  /** `fsync always`: written appends waiting for the fsync that confirms them. */
  private readonly syncs = new SyncPipeline<Segment, SegmentWrite>({
    sync: async (segments) => {
      for (const segment of segments) await this.sync(segment, false);
    },
    confirm: (writes) => {
      for (const write of writes) this.confirmWrite(write);
    },
    fail: (writes, err) => this.syncFailed(writes, err),
    observe: (durationMs, records) => this.options.onFsync?.(durationMs, records),
    report: (err) => this.options.logger.error({ err: (err as Error).message }, 'internal error in the log sync pipeline'),
  });

  private constructor(
    private readonly dir: string,
    private readonly segments: Segment[],
    private readonly options: SegmentedLogOptions,
  ) {
    if (options.fsync.kind === 'interval') {
      this.intervalTimer = setInterval(() => void this.syncDirty(), options.fsync.ms);
      this.intervalTimer.unref();
    }
  }

  /**
   * Opens the log in `dir`, checking every record from `scanFrom` on: `visit` sees each good
   * record. A torn or corrupt record ends the log there: the file is cut at that point, later
   * segments are removed, and a log line says how much was cut.
   */
  static async open(dir: string, options: SegmentedLogOptions, scanFrom: number, visit: (record: LogRecord, position: number, size: number) => void): Promise<SegmentedLog> {
    await fsp.mkdir(dir, { recursive: true });
    const names = (await fsp.readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
    const segments: Segment[] = [];
    for (const name of names) {
      const file = path.join(dir, name);
      segments.push({ base: Number(SEGMENT_NAME.exec(name)![1]), file, size: (await fsp.stat(file)).size, fd: undefined });
    }
    if (segments.length === 0) segments.push({ base: 0, file: path.join(dir, segmentName(0)), size: 0, fd: undefined });
    const log = new SegmentedLog(dir, segments, options);
    await log.recover(scanFrom, visit);
    const tail = log.tail;
    tail.fd = fs.openSync(tail.file, fs.existsSync(tail.file) ? 'r+' : 'w+');
    log.confirmed = log.end;
    return log;
  }

  /** Position just after the last written record. */
  get end(): number {
    const tail = this.tail;
    return tail.base + tail.size;
  }

  /** Position just after the last confirmed record. */
  get confirmedEnd(): number {
    return this.confirmed;
  }

  /** Position of the oldest byte still on disk. */
  get start(): number {
    return this.segments[0]!.base;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** The first position of the segment holding `position` (the tail's, at or past the end). */
  segmentStartOf(position: number): number {
    for (let i = this.segments.length - 1; i >= 0; i--) if (this.segments[i]!.base <= position) return this.segments[i]!.base;
    return this.start;
  }

  /** Appends one encoded record; resolves with its position once it is as safe as the policy says. */
  append(record: Buffer): Promise<number> {
    if (this.closed) return Promise.reject(new StorageError('EDDY_STORAGE_CLOSED', 'storage is closed'));
    if (this.full) {
      if (!(this.options.hasRoom?.() ?? true)) return Promise.reject(new StorageError('EDDY_STORAGE_FULL', 'the disk is full'));
      this.full = false;
    }
    const appended = new Promise<number>((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Let every append of this event-loop turn join the batch.
        setImmediate(() => void this.flushLoop());
      }
    });
    this.lastAppend = appended.catch(() => undefined);
    return appended;
  }

  /** Resolves once every append made so far has settled (confirmed or refused). */
  async settled(): Promise<void> {
    await this.lastAppend;
  }

  /**
   * Reads records from `position` up to the confirmed end as it was when the read began, calling
   * `visit` for each; `visit` returns false to stop before that record. Resolves with the position
   * where reading stopped. A reader that stops early passes a smaller `chunkBytes`, so it does not
   * read far past where it stops. Each chunk is read through the thread pool (recovery at open is
   * the only synchronous reader); the segments it reads are pinned meanwhile (not deleted, their
   * descriptors not closed), so a checkpoint or a roll during the read cannot pull them away.
   */
  async readAsync(position: number, visit: (record: LogRecord, position: number, size: number) => boolean | void, chunkBytes = READ_CHUNK): Promise<number> {
    let pos = Math.max(position, this.start);
    const limit = this.confirmed;
    let buf = Buffer.allocUnsafe(chunkBytes);
    while (pos < limit) {
      // Closing mid-read fails the read rather than end it early: a queue must not take that for the log's end.
      if (this.closed) throw new StorageError('EDDY_STORAGE_CLOSED', 'storage is closed');
      const segment = this.segmentAt(pos);
      if (!segment) {
        // At the very end of a segment: the next one starts here.
        const next = this.segments.find((x) => x.base >= pos);
        if (!next || next.base >= limit) break;
        pos = next.base;
        continue;
      }
      const size = Math.min(segment.size, limit - segment.base);
      const offset = pos - segment.base;
      const got = await this.readers.read(segment, buf, Math.min(buf.length, size - offset), offset);
      let used = 0;
      while (used < got) {
        const result = decodeRecord(buf.subarray(0, got), used, this.options.maxRecordBytes);
        if (result.kind === 'incomplete') break;
        if (result.kind === 'corrupt') throw new StorageError('EDDY_STORAGE_CORRUPT', `corrupt record at ${pos + used}: ${result.reason}`);
        if (visit(result.record, pos + used, result.size) === false) return pos + used;
        used += result.size;
      }
      if (used === 0) {
        if (got === 0) throw new StorageError('EDDY_STORAGE_CORRUPT', `short read at ${pos}`);
        // One record larger than the buffer: grow it to fit.
        const length = buf.readUInt32LE(0) + HEADER_BYTES;
        buf = Buffer.allocUnsafe(Math.max(length, buf.length * 2));
        continue;
      }
      pos += used;
    }
    return pos;
  }

  /** The one record of `size` bytes at `position` (a retained message, a compaction copy), read with one pread. */
  async readAtAsync(position: number, size: number): Promise<LogRecord> {
    const segment = this.segmentAt(position);
    if (!segment || position + size > this.confirmed) throw new StorageError('EDDY_STORAGE_CORRUPT', `no record of ${size} bytes at ${position}`);
    const buf = Buffer.allocUnsafe(size);
    const got = await this.readers.read(segment, buf, size, position - segment.base);
    const result = decodeRecord(buf.subarray(0, got), 0, this.options.maxRecordBytes);
    if (result.kind !== 'record') throw new StorageError('EDDY_STORAGE_CORRUPT', `no whole record at ${position}: ${result.kind === 'corrupt' ? result.reason : 'short read'}`);
    return result.record;
  }

  /** Logs a read that failed (the first, then every 1000th): the reader keeps its data on disk and retries. */
  reportReadFailure(err: unknown, reader: string): void {
    this.stats.failures++;
    if (this.failuresLogged++ % 1000 === 0) {
      this.options.logger.error({ err: (err as Error).message, reader, failures: this.failuresLogged }, 'log read failed; the data stays on disk and is read again later');
    }
  }

  /** The segment holding `position`. */
  private segmentAt(position: number): Segment | undefined {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const segment = this.segments[i]!;
      if (segment.base <= position) return position < segment.base + segment.size ? segment : undefined;
    }
    return undefined;
  }

  /** Deletes whole segments that end at or before `position` (never the segment being written). */
  deleteBefore(position: number): number {
    let removed = 0;
    while (this.segments.length > 1 && this.segments[1]!.base <= position) {
      // A segment being read asynchronously stays until a later checkpoint.
      if (this.readers.isPinned(this.segments[0]!)) break;
      const segment = this.segments.shift()!;
      this.readers.forget(segment);
      fs.rmSync(segment.file, { force: true });
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.pending.length > 0) await new Promise((r) => setTimeout(r, 1));
    await this.syncs.drained();
    this.closed = true;
    clearInterval(this.intervalTimer);
    await this.syncDirty();
    for (const segment of this.segments) {
      if (segment.fd !== undefined) fs.closeSync(segment.fd);
      segment.fd = undefined;
    }
    // Reads end at their current chunk once `closed` is set; their descriptors close after them.
    await this.readers.closeAll(this.segments);
  }

  private get tail(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        try {
          await this.writeBatch(batch);
        } catch (err) {
          // writeBatch settles every append it can; anything left is refused here, never left hanging.
          this.refuse(batch, err, 'log write failed');
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Rejects appends that cannot be written, with the StorageError for the cause. Settling twice is harmless. */
  private refuse(appends: PendingAppend[], err: unknown, what: string): void {
    this.stats.failures++;
    const error = err instanceof StorageError ? err : new StorageError(storageErrorCode(err), `${what}: ${(err as Error).message}`, err);
    if (this.failuresLogged++ % 1000 === 0) this.options.logger.error({ err: error.message, code: error.code, records: appends.length, failures: this.failuresLogged }, 'log write failed; appends refused');
    for (const p of appends) p.reject(error);
  }

  /** Writes one batch (rolling segments as needed), fsyncs per policy, then settles its appends. */
  private async writeBatch(batch: PendingAppend[]): Promise<void> {
    let index = 0;
    while (index < batch.length) {
      if (this.tail.size >= this.options.segmentBytes || (this.rollEarly && this.tail.size > 0)) {
        try {
          await this.roll();
          this.rollEarly = false;
        } catch (err) {
          // No new segment (no descriptor left, disk full): what needs it is refused; the next batch tries again.
          this.refuse(batch.slice(index), new StorageError(storageErrorCode(err), `cannot start a new log segment: ${(err as Error).message}`, err), 'roll');
          return;
        }
      }
      const segment = this.tail;
      const room = this.options.segmentBytes - segment.size;
      const part: PendingAppend[] = [];
      let bytes = 0;
      // A segment takes at least one record, so a record larger than a segment still fits.
      while (index < batch.length && (part.length === 0 || bytes + batch[index]!.record.length <= room)) {
        bytes += batch[index]!.record.length;
        part.push(batch[index++]!);
      }
      const before = segment.size;
      try {
        // A synchronous write: it copies into the page cache, a matter of microseconds, where an
        // asynchronous one costs a thread-pool round trip per batch; the fsync stays asynchronous.
        writeAllSync(segment.fd!, part.map((p) => p.record), before);
        segment.size = before + bytes;
      } catch (err) {
        // Cut whatever part of the batch reached the file, so the log stays a sequence of whole records.
        try {
          fs.ftruncateSync(segment.fd!, before);
        } catch {
          /* the next successful write starts at `before` anyway */
        }
        segment.size = before;
        const error = new StorageError(storageErrorCode(err), `cannot write to ${segment.file}: ${(err as Error).message}`, err);
        this.refuse(part, error, 'write');
        if (error.code === 'EDDY_STORAGE_FULL') {
          // A full disk may hold just this one segment: writing goes on in a new one, so that this
          // one can be deleted once nothing needs it (a disk smaller than a segment would stay full for good).
          this.full = true;
          if (segment.size > 0) {
            try {
              await this.roll();
            } catch {
              this.rollEarly = true; // an empty file could not be made either: the next batch tries again
            }
          }
          this.options.onFull?.();
        }
        continue;
      }
      const write: SegmentWrite = { segment, offset: before, bytes, count: part.length, appends: part };
      if (this.options.fsync.kind === 'always') {
        this.syncs.add(write);
      } else {
        this.dirtySegments.add(segment);
        this.confirmWrite(write);
      }
    }
  }

  /** Resolves a write's appends with their positions: readers may see them from now on. */
  private confirmWrite(write: SegmentWrite): void {
    let position = write.segment.base + write.offset;
    for (const p of write.appends) {
      p.resolve(position);
      position += p.record.length;
    }
    this.confirmed = Math.max(this.confirmed, write.segment.base + write.offset + write.bytes);
    this.stats.appended += write.count;
  }

  /**
   * An fsync failed: its writes, and every write after them, are refused and cut off the file, so
   * that a record a client was told failed cannot come back after a restart. Every one of them is in
   * the tail segment: a roll waits for the pipeline to drain first.
   */
  private syncFailed(writes: SegmentWrite[], err: unknown): void {
    const first = writes[0];
    if (!first) return;
    const segment = first.segment;
    if (segment.fd !== undefined) {
      try {
        fs.ftruncateSync(segment.fd, first.offset);
      } catch {
        /* the records stay refused; a restart's scan keeps what is whole */
      }
      segment.size = Math.min(segment.size, first.offset);
    }
    const error = new StorageError(storageErrorCode(err), `cannot fsync ${segment.file}: ${(err as Error).message}`, err);
    this.refuse(writes.flatMap((w) => w.appends), error, 'fsync');
  }

  /** fdatasync of one segment; `observe` false when the sync pipeline reports it with its record count. */
  private async sync(segment: Segment, observe = true): Promise<void> {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => fs.fdatasync(segment.fd!, (err) => (err ? reject(err) : resolve())));
    this.stats.fsyncs++;
    this.stats.lastFsyncMs = performance.now() - started;
    if (observe) this.options.onFsync?.(this.stats.lastFsyncMs);
  }

  private async syncDirty(): Promise<void> {
    const dirty = [...this.dirtySegments];
    this.dirtySegments.clear();
    for (const segment of dirty) {
      if (segment.fd !== undefined) await this.sync(segment).catch((err: Error) => this.options.logger.error({ err: err.message }, 'fsync failed'));
    }
  }

  private async roll(): Promise<void> {
    const old = this.tail;
    // No fsync may be running on the descriptor about to close, and what waits for one is in `old`.
    await this.syncs.drained();
    if (this.dirtySegments.has(old)) {
      await this.sync(old);
      this.dirtySegments.delete(old);
    }
    const base = old.base + old.size;
    const segment: Segment = { base, file: path.join(this.dir, segmentName(base)), size: 0, fd: undefined };
    segment.fd = fs.openSync(segment.file, 'w+');
    try {
      // The new file's directory entry must be durable too, or a crash could lose the whole segment.
      syncDirectory(this.dir);
    } catch (err) {
      fs.closeSync(segment.fd);
      throw err;
    }
    if (old.fd !== undefined) fs.closeSync(old.fd);
    old.fd = undefined;
    this.segments.push(segment);
  }

  private async recover(scanFrom: number, visit: (record: LogRecord, position: number, size: number) => void): Promise<void> {
    const log = this.options.logger;
    for (let i = 0; i < this.segments.length; i++) {
      const segment = this.segments[i]!;
      if (segment.base + segment.size <= scanFrom) continue;
      const cut = this.scanSegment(segment, Math.max(0, scanFrom - segment.base), visit);
      if (cut === undefined) continue;
      const dropped = this.segments.splice(i + 1);
      log.warn(
        { segment: segment.file, position: segment.base + cut.offset, bytesCut: segment.size - cut.offset, reason: cut.reason, segmentsRemoved: dropped.length },
        'log ends in a torn or corrupt record: cut it off',
      );
      fs.truncateSync(segment.file, cut.offset);
      segment.size = cut.offset;
      for (const d of dropped) fs.rmSync(d.file, { force: true });
      break;
    }
  }

  /** Visits the records of one segment; returns where it must be cut, if it must. */
  private scanSegment(segment: Segment, from: number, visit: (record: LogRecord, position: number, size: number) => void): { offset: number; reason: string } | undefined {
    const fd = fs.openSync(segment.file, 'r');
    try {
      let buf = Buffer.allocUnsafe(READ_CHUNK);
      let offset = from;
      while (offset < segment.size) {
        const got = fs.readSync(fd, buf, 0, Math.min(buf.length, segment.size - offset), offset);
        let used = 0;
        while (used < got) {
          const result = decodeRecord(buf.subarray(0, got), used, this.options.maxRecordBytes);
          if (result.kind === 'corrupt') return { offset: offset + used, reason: result.reason };
          if (result.kind === 'incomplete') break;
          visit(result.record, segment.base + offset + used, result.size);
          used += result.size;
        }
        if (used === 0) {
          if (offset + got >= segment.size) return { offset, reason: 'incomplete record at the end (torn write)' };
          const length = got >= 4 ? buf.readUInt32LE(0) + HEADER_BYTES : buf.length * 2;
          buf = Buffer.allocUnsafe(Math.max(length, buf.length * 2));
          continue;
        }
        offset += used;
      }
      return undefined;
    } finally {
      fs.closeSync(fd);
    }
  }
}
