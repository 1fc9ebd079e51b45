import type { Message } from '../../core/message.js';
import type { HistoryReader } from '../../core/storage.js';
import { RetainedIndex } from '../../util/retained-index.js';
import { expiredAt, READ_BATCH_BYTES } from '../read-batch.js';
import { RecordType } from './record.js';
import type { SegmentedLog } from './segmented-log.js';

/** Where one retained message lies in the log: all the disk engine keeps of it in memory. */
export interface RetainedEntry {
  position: number;
  /** Bytes of its whole log record. */
  size: number;
  /** Payload bytes (what `maxRetainedBytes` counts). */
  bytes: number;
  seq: number;
  expiresAt?: number;
}

/** The checkpoint's part for retained messages: one row per topic. */
export type RetainedState = Array<[topic: string, position: number, size: number, bytes: number, seq: number, expiresAt: number]>;

/**
 * The disk engine's retained messages: an index in memory (topic → place in the log), the messages
 * themselves in the log, read back when a subscription needs them. Retained records pin the log
 * segments they lie in; `compactable` names the ones worth writing again further on so that old
 * segments can go (see DiskStorage.compactRetained).
 */
export class DiskRetained {
  private readonly index = new RetainedIndex<RetainedEntry>();
  private payloadBytes = 0;
  /** True when the index changed since the checkpoint last wrote it. */
  changed = true;

  constructor(private readonly log: () => SegmentedLog) {}

  restore(state: RetainedState): void {
    for (const [topic, position, size, bytes, seq, expiresAt] of state) {
      this.index.set(topic, { position, size, bytes, seq, ...(expiresAt ? { expiresAt } : {}) });
      this.payloadBytes += bytes;
    }
  }

  toJSON(): RetainedState {
    const rows: RetainedState = [];
    for (const [topic, e] of this.index.entries()) rows.push([topic, e.position, e.size, e.bytes, e.seq, e.expiresAt ?? 0]);
    return rows;
  }

  get count(): number {
    return this.index.size;
  }

  get bytes(): number {
    return this.payloadBytes;
  }

  sizeOf(topic: string): number | undefined {
    return this.index.get(topic)?.bytes;
  }

  *topics(): IterableIterator<string> {
    for (const [topic] of this.index.entries()) yield topic;
  }

  /**
   * A stored record with the retain flag (at run time once its append resolved, and in recovery):
   * it becomes its topic's retained message, or clears it when empty, unless the topic already has
   * a newer one (a compaction copy can be written after the message that replaced it).
   */
  note(message: Message, position: number, size: number): void {
    const existing = this.index.get(message.topic);
    const seq = message.seq ?? 0;
    if (existing && existing.seq > seq) return;
    if (existing) this.payloadBytes -= existing.bytes;
    this.changed = true;
    if (message.payload.length === 0) {
      this.index.delete(message.topic);
      return;
    }
    this.index.set(message.topic, { position, size, bytes: message.payload.length, seq, ...(message.expiresAt !== undefined ? { expiresAt: message.expiresAt } : {}) });
    this.payloadBytes += message.payload.length;
  }

  /** A compaction copy of `entry` now lies at `position`; it takes the original's place unless the topic moved on. */
  moved(topic: string, entry: RetainedEntry, position: number): void {
    if (this.index.get(topic) !== entry) return;
    this.index.set(topic, { ...entry, position });
    this.changed = true;
  }

  /** Forgets retained messages whose expiry passed, so that they pin no segment. */
  dropExpired(now: number): void {
    for (const [topic, entry] of [...this.index.entries()]) {
      if (entry.expiresAt === undefined || entry.expiresAt > now) continue;
      this.index.delete(topic);
      this.payloadBytes -= entry.bytes;
      this.changed = true;
    }
  }

  /** The oldest log position a retained message lies at; Infinity when there is none. */
  oldestPosition(): number {
    let oldest = Infinity;
    for (const [, entry] of this.index.entries()) if (entry.position < oldest) oldest = entry.position;
    return oldest;
  }

  /** Retained messages lying before `position`, oldest first, up to `maxBytes` of records. */
  compactable(position: number, maxBytes: number): Array<[string, RetainedEntry]> {
    const found: Array<[string, RetainedEntry]> = [];
    for (const row of this.index.entries()) if (row[1].position < position) found.push(row);
    found.sort((a, b) => a[1].position - b[1].position);
    let bytes = 0;
    let n = 0;
    while (n < found.length && (n === 0 || bytes + found[n]![1].size <= maxBytes)) bytes += found[n++]![1].size;
    return found.slice(0, n);
  }

  /** The message of one entry, read from the log. */
  async read(entry: RetainedEntry): Promise<Message> {
    const record = await this.log().readAtAsync(entry.position, entry.size);
    if (record.type !== RecordType.Message) throw new Error(`no message record at ${entry.position}`);
    return record.message;
  }

  /**
   * A reader of the retained messages `filter` matches. It keeps topics, not positions, and looks
   * each one up when it reads it: a message replaced or moved meanwhile is read where it is now.
   */
  matching(filter: string): HistoryReader {
    const topics: string[] = [];
    this.index.match(filter, (topic) => topics.push(topic));
    let next = 0;
    return {
      next: async (max) => {
        const batch: Message[] = [];
        let bytes = 0;
        const now = Date.now();
        while (next < topics.length && batch.length < max && bytes < READ_BATCH_BYTES) {
          const entry = this.index.get(topics[next]!);
          if (!entry || expiredAt(entry.expiresAt, now)) {
            next++;
            continue;
          }
          if (batch.length > 0 && bytes + entry.bytes > READ_BATCH_BYTES) break;
          let message: Message;
          try {
            message = await this.read(entry);
          } catch (err) {
            // `next` stays, so the same topic is read again later; what was read already goes out now.
            if (batch.length > 0) break;
            throw err;
          }
          batch.push(message);
          bytes += entry.bytes;
          next++;
        }
        return batch;
      },
    };
  }
}
