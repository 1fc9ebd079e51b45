import type { Message } from '../message.js';
import type { MessageObserver } from '../observer.js';
import { RateMeter } from './rate.js';
import { IndexedMap } from './sorted-keys.js';

/** What the admin API knows of one channel (topic) from its traffic. */
export interface ChannelRecord {
  messagesIn: RateMeter;
  messagesOut: RateMeter;
  bytesIn: number;
  bytesOut: number;
  /** Epoch ms of the last message published on it. */
  lastMessageAt: number;
  /** Client ids that published on it, up to MAX_PUBLISHERS. */
  publishers: Set<string>;
  /** True once more clients published than `publishers` keeps. */
  morePublishers: boolean;
}

/** Topics tracked at most: a flood of one-off topics (device ids in the topic) costs bounded memory. */
export const MAX_TRACKED_CHANNELS = 100_000;
const MAX_PUBLISHERS = 32;
/** The SDK's reply inboxes (`_inbox/<clientId>/…`) are one client's reply addresses, not channels (as in asyncapi/observed.ts). */
const SDK_INBOX_PREFIX = '_inbox/';

/**
 * Per-topic traffic for the admin API's channels (`/v1/admin/channels`): messages and payload
 * bytes in and out with their rates, the last message time and who published. It is a
 * MessageObserver, told of every message the broker routes and every one a front end writes, so
 * each costs a map lookup and a few additions. It also tells the retained index which topics got
 * a retained publish (set `retainedTouched`).
 */
export class ChannelStats implements MessageObserver {
  readonly channels = new IndexedMap<ChannelRecord>();
  /** Topics not tracked because MAX_TRACKED_CHANNELS were. */
  untracked = 0;
  /** Payload bytes of every message routed and written (the `$SYS/broker/publish/bytes/…` totals). */
  payloadIn = 0;
  payloadOut = 0;
  /** Called with the topic of every retained publish (set or cleared): the retained index checks it at its next read. */
  retainedTouched: ((topic: string) => void) | undefined;

  constructor(private readonly maxChannels = MAX_TRACKED_CHANNELS) {}

  published(message: Message): void {
    const topic = message.topic;
    const bytes = message.payload.length;
    this.payloadIn += bytes;
    if (message.retain) this.retainedTouched?.(topic);
    const record = this.channels.get(topic) ?? this.track(topic);
    if (!record) return;
    record.messagesIn.mark(message.publishedAt);
    record.bytesIn += bytes;
    record.lastMessageAt = message.publishedAt;
    const origin = message.origin;
    if (origin === undefined || record.publishers.has(origin)) return;
    if (record.publishers.size < MAX_PUBLISHERS) record.publishers.add(origin);
    else record.morePublishers = true;
  }

  delivered(message: Message): void {
    const bytes = message.payload.length;
    this.payloadOut += bytes;
    const record = this.channels.get(message.topic);
    if (!record) return;
    record.messagesOut.mark(Date.now());
    record.bytesOut += bytes;
  }

  private track(topic: string): ChannelRecord | undefined {
    if (topic.startsWith(SDK_INBOX_PREFIX)) return undefined;
    if (this.channels.size >= this.maxChannels) {
      this.untracked++;
      return undefined;
    }
    const record: ChannelRecord = { messagesIn: new RateMeter(), messagesOut: new RateMeter(), bytesIn: 0, bytesOut: 0, lastMessageAt: 0, publishers: new Set(), morePublishers: false };
    this.channels.set(topic, record);
    return record;
  }
}

/** Two observers as one (the broker takes one): the metrics and the admin API's channel stats. */
export function observeBoth(a: MessageObserver, b: MessageObserver): MessageObserver {
  return {
    published(message) {
      a.published(message);
      b.published(message);
    },
    delivered(message) {
      a.delivered(message);
      b.delivered(message);
    },
  };
}
