import fs from 'node:fs';
import path from 'node:path';
import type { QueuedDelivery } from '../../core/storage.js';
import { decodeRecord, encodeMessageRecord, RecordType } from './record.js';

/** Read this much of a spill file at a time. */
const READ_BYTES = 1024 * 1024;

/**
 * Where a queue's deliveries that need no durability (a clean session's, a group of clean
 * members') wait once its memory window is full: a file of its own, read back in order, emptied
 * when everything in it was read, deleted with the queue. They are not in the shared log, so a
 * stalled clean subscriber keeps no log segment alive, and its disk use is bounded by its queue's
 * byte limit. Spill files do not survive a restart (nor do the sessions they belong to).
 */
export class SpillFile {
  private fd: number | undefined;
  private writeAt = 0;
  private readAt = 0;
  private entries = 0;
  private payloadBytes = 0;
  /** Bumped by `delete`, so that a read under way when the file went brings nothing back. */
  private generation = 0;

  constructor(private readonly file: string) {}

  get count(): number {
    return this.entries;
  }

  get bytes(): number {
    return this.payloadBytes;
  }

  /** Writes a delivery at the end; false when the file cannot be written (the caller keeps it in memory). */
  push(delivery: QueuedDelivery): boolean {
    const d = { queueId: 0, qos: delivery.qos, retain: delivery.retain, ...(delivery.subscriptionIds ? { subscriptionIds: delivery.subscriptionIds } : {}) };
    const record = encodeMessageRecord(delivery.message, [d]);
    try {
      if (this.fd === undefined) {
        fs.mkdirSync(path.dirname(this.file), { recursive: true });
        this.fd = fs.openSync(this.file, 'w+');
      }
      let written = 0;
      while (written < record.length) written += fs.writeSync(this.fd, record, written, record.length - written, this.writeAt + written);
    } catch {
      return false;
    }
    this.writeAt += record.length;
    this.entries++;
    this.payloadBytes += delivery.message.payload.length;
    return true;
  }

  /**
   * Reads up to `max` deliveries (and about `maxBytes` of payload), oldest first, through the
   * thread pool. Rejects when the file cannot be read. The queue reads one batch at a time; a
   * `delete` meanwhile makes the read bring nothing back.
   */
  async take(max: number, maxBytes: number): Promise<QueuedDelivery[]> {
    const taken: QueuedDelivery[] = [];
    const fd = this.fd;
    if (fd === undefined) return taken;
    const generation = this.generation;
    let readAt = this.readAt;
    const writeAt = this.writeAt;
    let bytes = 0;
    let buf = Buffer.allocUnsafe(READ_BYTES);
    while (taken.length < max && bytes < maxBytes && readAt < writeAt) {
      const got = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, Math.min(buf.length, writeAt - readAt), readAt, (err, n) => (err ? reject(err) : resolve(n))));
      if (generation !== this.generation) return [];
      let used = 0;
      while (used < got && taken.length < max && bytes < maxBytes) {
        const result = decodeRecord(buf.subarray(0, got), used, Number.MAX_SAFE_INTEGER);
        if (result.kind !== 'record') break;
        if (result.record.type === RecordType.Message) {
          const d = result.record.deliveries[0]!;
          taken.push({ message: result.record.message, qos: d.qos, retain: d.retain, ...(d.subscriptionIds ? { subscriptionIds: d.subscriptionIds } : {}) });
          bytes += result.record.message.payload.length;
        }
        used += result.size;
      }
      if (used === 0) {
        if (got === 0) throw new Error(`spill file ${this.file}: short read at ${readAt}`);
        // One record larger than the buffer: grow it to fit.
        buf = Buffer.allocUnsafe(Math.max(buf.readUInt32LE(0) + 8, buf.length * 2));
        continue;
      }
      readAt += used;
    }
    this.readAt = readAt;
    this.entries -= taken.length;
    this.payloadBytes -= bytes;
    // Read to the end: the file goes, and its descriptor with it, until the queue spills again.
    if (this.readAt >= this.writeAt) this.delete();
    return taken;
  }

  /** Closes and deletes the file: the queue ended. */
  delete(): void {
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already gone */
      }
    }
    this.fd = undefined;
    this.generation++;
    fs.rmSync(this.file, { force: true });
    this.readAt = this.writeAt = this.entries = this.payloadBytes = 0;
  }
}
