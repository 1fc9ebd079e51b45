import type { QueuedDelivery } from '../types.js';
import { MemorySessionQueue } from '../memory.js';
import type { SegmentedLog } from './segmented-log.js';
import { RecordType } from './record.js';

/** Pending deliveries kept in memory per queue; beyond this they stay on disk until their turn. */
const MEMORY_WINDOW = 1000;
/** How many deliveries one read from disk brings back, and the read size that usually holds them. */
const REFILL_BATCH = 1000;
const REFILL_READ_BYTES = 256 * 1024;

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
  /** Deliveries waiting on disk (not in memory). */
  private onDisk = 0;

  constructor(
    id: number,
    readonly clientId: string,
    private readonly log: SegmentedLog,
  ) {
    super(id);
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
    return super.pendingCount + (this.diskFrom === undefined ? 0 : Math.max(this.onDisk, 1));
  }

  override push(delivery: QueuedDelivery, durable: boolean): void {
    if (durable && (this.diskFrom !== undefined || super.pendingCount >= MEMORY_WINDOW)) {
      // Its record names this queue, so it can wait on disk; `diskFrom` keeps log order.
      this.diskFrom ??= delivery.message.logPosition;
      this.onDisk++;
      return;
    }
    super.push(delivery, durable);
  }

  override shift(): QueuedDelivery | undefined {
    if (super.pendingCount === 0 && this.diskFrom !== undefined) this.refill();
    return super.shift();
  }

  override peek(limit: number): QueuedDelivery[] {
    const found = super.peek(limit);
    if (found.length < limit && this.diskFrom !== undefined) {
      this.log.read(this.diskFrom, (record, position) => {
        if (found.length >= limit) return false;
        if (record.type !== RecordType.Message) return;
        const d = record.deliveries.find((x) => x.queueId === this.id);
        if (!d) return;
        record.message.logPosition = position;
        found.push({ message: record.message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds });
      }, REFILL_READ_BYTES);
    }
    return found;
  }

  override clear(): void {
    super.clear();
    this.diskFrom = undefined;
    this.onDisk = 0;
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

  /** Reads the next deliveries for this queue from the log into memory. */
  private refill(): void {
    let found = 0;
    let resumeAt = this.diskFrom!;
    this.log.read(this.diskFrom!, (record, position, size) => {
      if (found >= REFILL_BATCH) return false;
      resumeAt = position + size;
      if (record.type !== RecordType.Message) return;
      for (const d of record.deliveries) {
        if (d.queueId !== this.id) continue;
        record.message.logPosition = position;
        this.pending.push({ message: record.message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds });
        found++;
        break;
      }
    }, REFILL_READ_BYTES);
    // The count of what waits on disk is exact while running and an estimate after a crash:
    // only reaching the end of the log ends disk mode.
    this.onDisk = Math.max(0, this.onDisk - found);
    if (found < REFILL_BATCH) {
      this.onDisk = 0;
      this.diskFrom = undefined;
    } else {
      this.diskFrom = resumeAt;
    }
  }
}
