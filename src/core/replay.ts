import type { Message, QoS } from './message.js';
import type { ChannelPolicyLookup, HistoryQuery, HistoryReader, QueuedDelivery, SubscriptionOptions } from './storage.js';
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
 * The query a replay hands to storage: the core decides what belongs in history (`includes`),
 * the engine where to start reading and which byte limits cut it.
 */
export function historyQuery(filters: string[], start: ReplayStart, untilSeq: number, channels: ChannelPolicyLookup): HistoryQuery {
  return { filters, start, untilSeq, includes: (message, now) => inHistory(message, filters, start, untilSeq, channels, now) };
}

/**
 * True when a stored message is part of the replay: its channel keeps history, it is inside the
 * retention age, inside the requested start, and a filter matches it. Byte limits are applied by
 * the engine, which knows where the kept history begins.
 */
export function inHistory(message: Message, filters: string[], start: ReplayStart, untilSeq: number, channels: ChannelPolicyLookup, now: number): boolean {
  const seq = message.seq ?? 0;
  if (seq > untilSeq) return false;
  if (start.kind === 'seq' && seq < start.seq) return false;
  if (start.kind === 'time' && message.publishedAt < start.ms) return false;
  const retention = channels.for(message.topic).retention;
  if (!retention) return false;
  if (retention.maxAgeMs !== undefined && message.publishedAt < now - retention.maxAgeMs) return false;
  if (message.expiresAt !== undefined && message.expiresAt <= now) return false;
  return filters.some((f) => topicMatches(f, message.topic));
}

/**
 * One run of stored messages to a session, read in batches and matched against its filters: a
 * replay's history, or a new subscription's retained messages (sent with the retain flag). Live
 * messages wait behind either, so they arrive in order after it.
 */
export class ReplayRun {
  private buffer: Message[] = [];
  private index = 0;
  private ended = false;
  /** The batch being read from storage, while one is. */
  private batchRead: Promise<void> | undefined;

  constructor(
    private readonly reader: HistoryReader,
    private readonly filters: ReadonlyMap<string, SubscriptionOptions>,
    readonly kind: 'history' | 'retained' = 'history',
  ) {}

  /** The next message, when one is read already; undefined otherwise (see `exhausted` and `load`). */
  peek(): Message | undefined {
    return this.buffer[this.index];
  }

  take(): void {
    this.index++;
  }

  /** True while a batch is being read from storage. */
  get loading(): boolean {
    return this.batchRead !== undefined;
  }

  /** True once storage had nothing more and every message read was taken. */
  get exhausted(): boolean {
    return this.ended && this.index >= this.buffer.length;
  }

  /**
   * Reads the next batch, unless one is read already or being read (then it waits for that one).
   * Rejects when storage cannot be read now; calling it again retries.
   */
  load(): Promise<void> {
    if (this.index < this.buffer.length || this.ended) return Promise.resolve();
    this.batchRead ??= this.reader.next(256).then(
      (batch) => {
        this.batchRead = undefined;
        this.buffer = batch;
        this.index = 0;
        if (batch.length === 0) this.ended = true;
      },
      (err: unknown) => {
        this.batchRead = undefined;
        throw err;
      },
    );
    return this.batchRead;
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
    return { message, qos: (message.qos < qos ? message.qos : qos) as QoS, retain: this.kind === 'retained', subscriptionIds };
  }
}
