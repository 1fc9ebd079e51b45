import type { QueuedDelivery } from '../types.js';
import { MemorySessionQueue } from '../memory.js';
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

  constructor(
    id: number,
    readonly clientId: string,
    private readonly log: SegmentedLog,
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
    if (durable && (this.diskFrom !== undefined || super.pendingCount >= MEMORY_WINDOW || super.pendingBytes >= MEMORY_WINDOW_BYTES)) {
      // Its record names this queue, so it can wait on disk; `diskFrom` keeps log order.
      this.diskFrom ??= delivery.message.logPosition;
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
    if (super.pendingCount === 0) {
      if (this.diskFrom !== undefined) this.refillSafely();
      else if (this.spill.count > 0) this.refillSafely();
    }
    return super.shift();
  }

  override peek(limit: number): QueuedDelivery[] {
    const found = super.peek(limit);
    if (found.length < limit && this.diskFrom !== undefined) {
      try {
        this.peekOnDisk(found, limit);
      } catch (err) {
        // A listing shows what memory holds; the rest is still safe on disk.
        this.log.reportReadFailure(err, this.clientId);
      }
    }
    return found;
  }

  private peekOnDisk(found: QueuedDelivery[], limit: number): void {
    this.log.read(this.diskFrom!, (record, position) => {
      if (found.length >= limit) return false;
      if (record.type !== RecordType.Message) return;
      const d = record.deliveries.find((x) => x.queueId === this.id);
      if (!d) return;
      record.message.logPosition = position;
      found.push({ message: record.message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds });
    }, REFILL_READ_BYTES);
  }

  override clear(): void {
    super.clear();
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
    for (const d of this.inflight.values()) if (d.message.logPosition !== undefined && d.message.logPosition < cursor) cursor = d.message.logPosition;
    for (const d of this.held) if (d.message.logPosition !== undefined && d.message.logPosition < cursor) cursor = d.message.logPosition;
    for (let i = this.head; i < this.pending.length; i++) {
      const p = this.pending[i]!.message.logPosition;
      if (p !== undefined && p < cursor) cursor = p;
    }
    return { id: this.id, clientId: this.clientId, cursor, unacked: this.pendingCount + this.inflight.size + this.held.size };
  }

  /**
   * Refills from the log; a read that fails (no descriptor left, an unreadable segment) leaves the
   * deliveries on disk, where they are safe, and asks the owner to try again a little later.
   */
  private refillSafely(): void {
    try {
      if (this.diskFrom !== undefined) this.refill();
      else for (const d of this.spill.take(REFILL_BATCH, REFILL_BYTES)) super.push(d, false);
    } catch (err) {
      if (this.retryTimer) return;
      this.log.reportReadFailure(err, this.clientId);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.wake?.();
      }, READ_RETRY_MS);
      this.retryTimer.unref();
    }
  }

  /** Reads the next deliveries for this queue from the log into memory. */
  private refill(): void {
    let found = 0;
    let foundBytes = 0;
    let resumeAt = this.diskFrom!;
    let full = false;
    this.log.read(this.diskFrom!, (record, position, size) => {
      if (found >= REFILL_BATCH || foundBytes >= REFILL_BYTES) {
        full = true;
        return false;
      }
      resumeAt = position + size;
      if (record.type !== RecordType.Message) return;
      for (const d of record.deliveries) {
        if (d.queueId !== this.id) continue;
        record.message.logPosition = position;
        this.pending.push({ message: record.message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds });
        this.memoryBytes += record.message.payload.length;
        found++;
        foundBytes += record.message.payload.length;
        break;
      }
    }, REFILL_READ_BYTES);
    // The count of what waits on disk is exact while running and an estimate after a crash:
    // only reaching the end of the log ends disk mode.
    this.onDisk = Math.max(0, this.onDisk - found);
    this.onDiskBytes = Math.max(0, this.onDiskBytes - foundBytes);
    if (!full) {
      this.onDisk = 0;
      this.onDiskBytes = 0;
      this.diskFrom = undefined;
    } else {
      this.diskFrom = resumeAt;
    }
  }
}
