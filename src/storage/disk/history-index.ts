import type { ChannelPolicyLookup } from '../../core/storage.js';
import type { Message } from '../../core/message.js';
import type { ReplayStart } from '../../core/replay.js';

/** One index point per this many log bytes: where a replay by seq or time starts reading. */
const POINT_EVERY = 1024 * 1024;
/** Retention is tracked, and history trimmed, in blocks of this many log bytes. */
const BLOCK_BYTES = 1024 * 1024;

/** Per block and channel pattern: bytes of its messages and the newest one's time. */
type BlockStats = Record<string, [bytes: number, newest: number]>;

export interface HistoryIndexState {
  points: Array<[position: number, seq: number, publishedAt: number]>;
  blocks: Array<[block: number, stats: BlockStats]>;
}

/**
 * A sparse index over the message log, small enough to live in the checkpoint: points that map
 * seq and time to log positions (so a replay does not read from the beginning), and per-block
 * byte counts of each retained channel pattern (so retention knows which history to keep).
 */
export class HistoryIndex {
  private points: HistoryIndexState['points'] = [];
  private readonly blocks = new Map<number, BlockStats>();
  private lastPoint = -Infinity;

  constructor(private readonly channels: ChannelPolicyLookup) {}

  static restore(channels: ChannelPolicyLookup, state: HistoryIndexState | undefined): HistoryIndex {
    const index = new HistoryIndex(channels);
    if (state) {
      index.points = state.points;
      for (const [block, stats] of state.blocks) index.blocks.set(block, stats);
      index.lastPoint = state.points.at(-1)?.[0] ?? -Infinity;
    }
    return index;
  }

  toJSON(): HistoryIndexState {
    return { points: this.points, blocks: [...this.blocks] };
  }

  /** Notes a stored message record (at append time, and for records replayed after the checkpoint). */
  note(message: Message, position: number, size: number): void {
    if (position >= this.lastPoint + POINT_EVERY) {
      this.points.push([position, message.seq ?? 0, message.publishedAt]);
      this.lastPoint = position;
    }
    const policy = this.channels.for(message.topic);
    if (!policy.retention) return;
    const block = Math.floor(position / BLOCK_BYTES);
    let stats = this.blocks.get(block);
    if (!stats) this.blocks.set(block, (stats = {}));
    const entry = (stats[policy.pattern] ??= [0, 0]);
    entry[0] += size;
    if (message.publishedAt > entry[1]) entry[1] = message.publishedAt;
  }

  /** The log position from which a replay must read (an index point at or before the start). */
  startPosition(start: ReplayStart, logStart: number): number {
    if (start.kind === 'earliest') return logStart;
    let position = logStart;
    for (const [pos, seq, time] of this.points) {
      // Times are not strictly monotonic across publishers; a point counts only when past it is surely later.
      if (start.kind === 'seq' ? seq > start.seq : time > start.ms) break;
      position = pos;
    }
    return Math.max(position, logStart);
  }

  /**
   * Per retained pattern, the first log position whose history is still kept under its byte limit
   * (whole blocks, newest first). Messages before it are not replayed; the log may delete them.
   */
  byteFloors(): Map<string, number> {
    const floors = new Map<string, number>();
    const blocks = [...this.blocks.keys()].sort((a, b) => b - a);
    for (const policy of this.channels.retained) {
      const max = policy.retention!.maxBytes;
      if (max === undefined) continue;
      let total = 0;
      let floor = Infinity;
      for (const block of blocks) {
        const entry = this.blocks.get(block)![policy.pattern];
        if (!entry) continue;
        if (total + entry[0] > max && floor !== Infinity) break;
        total += entry[0];
        floor = block * BLOCK_BYTES;
      }
      floors.set(policy.pattern, floor);
    }
    return floors;
  }

  /** The oldest log position any retained channel still needs; Infinity when none does. */
  retentionFloor(now: number): number {
    const byteFloors = this.byteFloors();
    let oldest = Infinity;
    for (const [block, stats] of this.blocks) {
      const start = block * BLOCK_BYTES;
      if (start >= oldest) continue;
      for (const [pattern, [, newest]] of Object.entries(stats)) {
        const retention = this.channels.retained.find((p) => p.pattern === pattern)?.retention;
        if (!retention) continue;
        if (retention.maxAgeMs !== undefined && newest < now - retention.maxAgeMs) continue;
        if (start < (byteFloors.get(pattern) ?? 0)) continue;
        oldest = start;
        break;
      }
    }
    return oldest;
  }

  /** Forgets what lies before the log's start (deleted segments). */
  dropBefore(logStart: number): void {
    this.points = this.points.filter(([pos]) => pos >= logStart);
    for (const block of this.blocks.keys()) {
      if ((block + 1) * BLOCK_BYTES <= logStart) this.blocks.delete(block);
    }
  }
}
