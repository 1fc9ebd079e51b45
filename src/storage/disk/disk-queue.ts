import type { QueuedDelivery } from '../../core/storage.js';
import { MemorySessionQueue } from '../memory-queue.js';
import type { LogPositions } from './log-positions.js';
import type { SegmentedLog } from './segmented-log.js';
import { RecordType } from './record.js';
import { SpillFile } from './spill.js';

/** Pending deliveries kept in memory per queue, by count and by payload bytes; beyond either they stay on disk until their turn. */
const MEMORY_WINDOW = 1000;
const MEMORY_WINDOW_BYTES = 8 * 1024 * 1024;
/** How many deliveries (and payload bytes) one read from disk brings back, and the read size that usually holds them. */
const REFILL_BATCH = 1000;
const REFILL_BYTES = 8 * 1024 * 1024;
const REFILL_READ_BYTES = 256 * 1024;
/** After a failed read (no descriptor left), the queue asks its owner to try again this much later. */
const READ_RETRY_MS = 1000;

/** What a checkpoint keeps of a queue. */
export interface QueueCheckpoint {
  id: number;
  clientId: string;
  /** Log position from which this queue's unacknowledged deliveries are found. */
  cursor: number;
  /** Deliveries not yet acknowledged (pending and in flight). */
  unacked: number;
}

/**
 * The delivery queue of a session on the durable engine. Its messages live in the shared log:
 * while the session keeps up, pending deliveries are also held in memory; once more than
 * MEMORY_WINDOW wait, the rest stays on disk and is read back in order, so a backlog of millions
 * costs no memory. Deliveries for a non-persistent session are not in the log and stay in memory.
 */
export class DiskSessionQueue extends MemorySessionQueue {
  /** Set while deliveries wait on disk: where reading resumes. */
  private diskFrom: number | undefined;
  /** Deliveries waiting on disk (not in memory), and their payload bytes. */
  private onDisk = 0;
  private onDiskBytes = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Deliveries that need no durability and did not fit the memory window (see SpillFile). */
  private readonly spill: SpillFile;
  /** The read from disk under way, if one is: one at a time, so deliveries come back in order. */
  private refilling: Promise<void> | undefined;
  /** Durable deliveries pushed while a refill reads (their positions and payload bytes): see `refill`. */
  private pushedDuringRefill: Array<[position: number, bytes: number]> | undefined;
  /** Bumped by `clear`: a read that ends after the queue was cleared brings nothing back. */
  private generation = 0;

  constructor(
    id: number,
    readonly clientId: string,
    private readonly log: SegmentedLog,
    private readonly positions: LogPositions,
    spillDir: string,
  ) {
    super(id);
    this.spill = new SpillFile(`${spillDir}/${id}.spill`);
  }

  /**
   * Recovery: about `count` deliveries owed to this queue are in the log from `from` on. The count is
   * an estimate (a cursor logged before a delivery's commit does not count it), so any position
   * before the log's end is scanned, whatever the count says; only the end of the log ends the scan.
   */
  restore(from: number, count: number): void {
    if (from >= this.log.end) return;
    if (this.diskFrom === undefined || from < this.diskFrom) this.diskFrom = from;
    this.onDisk += Math.max(count, 0);
  }

  override get pendingCount(): number {
    // While anything may wait on disk, report at least one, so the session keeps asking for it.
    return super.pendingCount + this.spill.count + (this.diskFrom === undefined ? 0 : Math.max(this.onDisk, 1));
  }

  override get pendingBytes(): number {
    return super.pendingBytes + this.onDiskBytes + this.spill.bytes;
  }

  override push(delivery: QueuedDelivery, durable: boolean): void {
    const position = durable ? this.positions.get(delivery.message) : undefined;
    if (position !== undefined && (this.diskFrom !== undefined || super.pendingCount >= MEMORY_WINDOW || super.pendingBytes >= MEMORY_WINDOW_BYTES)) {
      // Its record names this queue, so it can wait on disk; `diskFrom` keeps log order.
      this.diskFrom ??= position;
      this.pushedDuringRefill?.push([position, delivery.message.payload.length]);
      this.onDisk++;
      this.onDiskBytes += delivery.message.payload.length;
      return;
    }
    // Not in the log (a clean session's): past the memory window it waits in the queue's spill file.
    const spilling = this.spill.count > 0 || super.pendingCount >= MEMORY_WINDOW || super.pendingBytes >= MEMORY_WINDOW_BYTES;
    if (!durable && this.diskFrom === undefined && spilling && this.spill.push(delivery)) return;
    super.push(delivery, durable);
  }

  override shift(): QueuedDelivery | undefined {
    // Memory first; when it is empty and more waits on disk or in the spill file, a read starts
    // and `wake` tells the owner when it is done. The delivery path never waits for the disk.
    if (super.pendingCount === 0 && (this.diskFrom !== undefined || this.spill.count > 0)) void this.refillSafely();
    return super.shift();
  }

  override async take(): Promise<QueuedDelivery | undefined> {
    for (;;) {
      const delivery = super.shift();
      if (delivery || (this.diskFrom === undefined && this.spill.count === 0)) return delivery;
      // A failed read rejects here: the caller (an admin operation) reports it; the data stays on disk.
      await this.refill();
    }
  }

  override async peek(limit: number): Promise<QueuedDelivery[]> {
    const found = await super.peek(limit);
    if (found.length < limit && this.diskFrom !== undefined) {
      try {
        await this.peekOnDisk(found, limit);
      } catch (err) {
        // A listing shows what memory holds; the rest is still safe on disk.
        this.log.reportReadFailure(err, this.clientId);
      }
    }
    return found;
  }

  private async peekOnDisk(found: QueuedDelivery[], limit: number): Promise<void> {
    await this.log.readAsync(this.diskFrom!, (record) => {
      if (found.length >= limit) return false;
      if (record.type !== RecordType.Message) return;
      const d = record.deliveries.find((x) => x.queueId === this.id);
      if (!d) return;
      found.push({ message: record.message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds });
    }, REFILL_READ_BYTES);
  }

  override clear(): void {
    super.clear();
    this.generation++;
    this.spill.delete();
    this.diskFrom = undefined;
    this.onDisk = 0;
    this.onDiskBytes = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }


  /** Where a restart must start looking for this queue's unacknowledged deliveries. */
  checkpoint(logEnd: number): QueueCheckpoint {
    let cursor = this.diskFrom ?? logEnd;
    // Messages without a position (a replay's history, a clean session's) do not hold the cursor back.
    const lower = (message: QueuedDelivery['message']): void => {
      const p = this.positions.get(message);
      if (p !== undefined && p < cursor) cursor = p;
    };
    for (const d of this.inflight.values()) lower(d.message);
    for (const d of this.held) lower(d.message);
    for (let i = this.head; i < this.pending.length; i++) lower(this.pending[i]!.message);
    return { id: this.id, clientId: this.clientId, cursor, unacked: this.pendingCount + this.inflight.size + this.held.size };
  }

  /**
   * Refills from the log (or the spill file) and wakes the owner; a read that fails (no descriptor
   * left, an unreadable segment) leaves the deliveries on disk, where they are safe, and wakes the
   * owner again a little later. Never rejects.
   */
  private async refillSafely(): Promise<void> {
    try {
      await this.refill();
    } catch (err) {
      // Shutting down: the deliveries stay on disk for the next start.
      if ((err as { code?: string }).code === 'EDDY_STORAGE_CLOSED' || this.retryTimer) return;
      this.log.reportReadFailure(err, this.clientId);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.wakeOwner();
      }, READ_RETRY_MS);
      this.retryTimer.unref();
      return;
    }
    this.wakeOwner();
  }

  private wakeOwner(): void {
    try {
      this.wake?.();
    } catch (err) {
      // The owner's sending failed: the deliveries are still queued, the next ack or connect drains them.
      this.log.reportReadFailure(err, `${this.clientId} (wake)`);
    }
  }

  /** One read at a time; a second caller waits for the read under way. */
  private refill(): Promise<void> {
    this.refilling ??= (this.diskFrom !== undefined ? this.refillFromLog() : this.refillFromSpill()).finally(() => (this.refilling = undefined));
    return this.refilling;
  }

  private async refillFromSpill(): Promise<void> {
    const generation = this.generation;
    let taken: QueuedDelivery[];
    try {
      taken = await this.spill.take(REFILL_BATCH, REFILL_BYTES);
    } catch (err) {
      // The queue was cleared (its spill file closed) during the read: nothing was lost.
      if (generation !== this.generation) return;
      throw err;
    }
    if (generation !== this.generation) return;
    for (const d of taken) super.push(d, false);
  }

  /**
   * Reads the next deliveries for this queue from the log into memory. Durable deliveries pushed
   * meanwhile stay counted on disk: those the read passed were found by it, those after where it
   * stopped are read next time.
   */
  private async refillFromLog(): Promise<void> {
    const generation = this.generation;
    const from = this.diskFrom!;
    const found: QueuedDelivery[] = [];
    let foundBytes = 0;
    let resumeAt = from;
    let full = false;
    this.pushedDuringRefill = [];
    let pushed: Array<[number, number]>;
    try {
      await this.log.readAsync(from, (record, position, size) => {
        if (found.length >= REFILL_BATCH || foundBytes >= REFILL_BYTES) {
          full = true;
          return false;
        }
        resumeAt = position + size;
        if (record.type !== RecordType.Message) return;
        for (const d of record.deliveries) {
          if (d.queueId !== this.id) continue;
          this.positions.set(record.message, position);
          found.push({ message: record.message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds });
          foundBytes += record.message.payload.length;
          break;
        }
      }, REFILL_READ_BYTES);
    } finally {
      pushed = this.pushedDuringRefill;
      this.pushedDuringRefill = undefined;
    }
    if (generation !== this.generation || this.diskFrom === undefined) return;
    for (const d of found) {
      this.pending.push(d);
      this.memoryBytes += d.message.payload.length;
    }
    if (full) {
      // The count of what waits on disk is exact while running and an estimate after a crash.
      this.onDisk = Math.max(0, this.onDisk - found.length);
      this.onDiskBytes = Math.max(0, this.onDiskBytes - foundBytes);
      this.diskFrom = resumeAt;
      return;
    }
    // The read reached the end of the log as it was when it began: only what was pushed after that still waits on disk.
    let first: number | undefined;
    this.onDisk = 0;
    this.onDiskBytes = 0;
    for (const [position, bytes] of pushed) {
      if (position < resumeAt) continue;
      this.onDisk++;
      this.onDiskBytes += bytes;
      if (first === undefined || position < first) first = position;
    }
    this.diskFrom = first;
  }
}
