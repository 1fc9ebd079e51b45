import type { Message, QoS } from './message.js';
import type { QueuedDelivery, SubscriptionOptions } from '../storage/types.js';
import type { ChannelPolicies } from './channels.js';
import { topicMatches } from './topics.js';

/** Where a replay starts: SUBSCRIBE user property `eddy-from` (and `eddy sub --from`). */
export type ReplayStart = { kind: 'earliest' } | { kind: 'seq'; seq: number } | { kind: 'time'; ms: number };

/** Parses `earliest` | `seq:<n>` | `time:<RFC 3339>`; undefined when the text is none of these. */
export function parseReplayStart(text: string): ReplayStart | undefined {
  if (text === 'earliest') return { kind: 'earliest' };
  const seq = /^seq:(\d+)$/.exec(text);
  if (seq) return { kind: 'seq', seq: Number(seq[1]) };
  if (text.startsWith('time:')) {
    const iso = text.slice(5);
    // RFC 3339 needs a date, a time and a zone; Date.parse alone accepts far looser text.
    if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(iso)) return undefined;
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? undefined : { kind: 'time', ms };
  }
  return undefined;
}

/**
 * Reads stored messages in batches (a replay's history, or retained messages). `next` returns up
 * to `max` messages, fewer when they are large (an engine bounds a batch's bytes, see
 * READ_BATCH_BYTES), and an empty list once there is nothing more. It may throw when storage
 * cannot be read right now (no descriptor left): the reader is then tried again later.
 */
export interface HistoryReader {
  next(max: number): Message[];
}

/** Payload bytes one batch of a reader holds at most (one message, whatever its size, always fits). */
export const READ_BATCH_BYTES = 8 * 1024 * 1024;

/** What decides whether a stored message belongs in a replay. */
export interface HistoryQuery {
  filters: string[];
  start: ReplayStart;
  /** Last seq that belongs to history: later messages reach the subscriber live. */
  untilSeq: number;
  channels: ChannelPolicies;
}

/**
 * True when a stored message is part of the replay: its channel keeps history, it is inside the
 * retention age, inside the requested start, and a filter matches it. Byte limits are applied by
 * the engine, which knows where the kept history begins.
 */
export function inHistory(message: Message, query: HistoryQuery, now: number): boolean {
  const seq = message.seq ?? 0;
  if (seq > query.untilSeq) return false;
  if (query.start.kind === 'seq' && seq < query.start.seq) return false;
  if (query.start.kind === 'time' && message.publishedAt < query.start.ms) return false;
  const retention = query.channels.for(message.topic).retention;
  if (!retention) return false;
  if (retention.maxAgeMs !== undefined && message.publishedAt < now - retention.maxAgeMs) return false;
  if (message.expiresAt !== undefined && message.expiresAt <= now) return false;
  return query.filters.some((f) => topicMatches(f, message.topic));
}

/**
 * One run of stored messages to a session, read in batches and matched against its filters: a
 * replay's history, or a new subscription's retained messages (sent with the retain flag). Live
 * messages wait behind either, so they arrive in order after it.
 */
export class ReplayRun {
  private buffer: Message[] = [];
  private index = 0;

  constructor(
    private readonly reader: HistoryReader,
    private readonly filters: ReadonlyMap<string, SubscriptionOptions>,
    readonly kind: 'history' | 'retained' = 'history',
  ) {}


  /** The next history message, or undefined once history is exhausted. */
  peek(): Message | undefined {
    if (this.index >= this.buffer.length) {
      this.buffer = this.reader.next(256);
      this.index = 0;
    }
    return this.buffer[this.index];
  }

  take(): void {
    this.index++;
  }

  /** The QoS and subscription ids a history message is delivered with, as for a live one. */
  deliveryFor(message: Message): QueuedDelivery {
    let qos: QoS = 0;
    let subscriptionIds: number[] | undefined;
    for (const [filter, options] of this.filters) {
      if (!topicMatches(filter, message.topic)) continue;
      if (options.qos > qos) qos = options.qos;
      if (options.subscriptionId !== undefined) (subscriptionIds ??= []).push(options.subscriptionId);
    }
    // A copy without the log position: this record does not name the session's queue.
    const { logPosition: _position, ...copy } = message;
    return { message: copy, qos: (message.qos < qos ? message.qos : qos) as QoS, retain: this.kind === 'retained', subscriptionIds };
  }
}
