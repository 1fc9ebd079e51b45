import type { KV } from '@nats-io/kv';
import type { Message } from '../../core/message.js';
import type { HistoryReader } from '../../core/storage.js';
import { RetainedIndex } from '../../util/retained-index.js';
import { expiredAt, READ_BATCH_BYTES } from '../read-batch.js';
import { decodeMessage, encodeMessage } from './envelope.js';
import { topicKey, topicOfKey } from './subjects.js';

/** What this process keeps of each retained message: enough for the contract's synchronous counters. */
interface RetainedEntry {
  bytes: number;
  seq: number;
  expiresAt?: number;
}

/** Parallel KV reads at open and in a batch (each is one round trip; a few dozen at once keep the link busy). */
const READ_PARALLEL = 32;

/**
 * Retained messages of the JetStream engine: one KV entry per topic (key = topicKey(topic), the value
 * the message's envelope with its seq), replicated like the message stream. A KV bucket is a stream
 * with max-msgs-per-subject 1, so JetStream itself keeps only the newest per topic.
 *
 * The index (topic → size, seq, expiry) is loaded at open and kept by this process's writes, so the
 * counters the broker reads synchronously (retainedCount, retainedBytes, retainedSize) need no round
 * trip. They are exact for a single Eddy node; with several nodes writing one bucket they miss the
 * others' writes until a restart (a KV watch would keep them current: not done yet).
 */
export class RetainedStore {
  private readonly index = new RetainedIndex<RetainedEntry>();
  private payloadBytes = 0;

  /** The bucket's revision when `load` read it: `follow` watches from the next one. */
  private loadedRevision = 0;
  private following: { stop(): void } | undefined;
  /**
   * The bucket revision of the last change applied per topic (kept for cleared topics too): a watch
   * entry at or below it is older than what the index already has (this node's own later write).
   */
  private readonly revisions = new Map<string, number>();

  constructor(
    private readonly kv: KV,
    /**
     * The newest value of a key as the bucket stream's leader has it (undefined: none, or deleted).
     * A KV get is a direct get, which any replica answers, also one that has not applied this
     * node's last write yet: a read right after a confirmed retain then missed it.
     */
    private readonly leaderGet: (key: string) => Promise<{ value: Uint8Array; revision: number } | undefined>,
  ) {}

  async load(): Promise<void> {
    this.loadedRevision = (await this.kv.status()).streamInfo.state.last_seq;
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) keys.push(key);
    for (let i = 0; i < keys.length; i += READ_PARALLEL) {
      const values = await Promise.all(keys.slice(i, i + READ_PARALLEL).map((k) => this.kv.get(k)));
      for (const entry of values) {
        if (entry) this.revisions.set(topicOfKey(entry.key), entry.revision);
        if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) continue;
        const message = decodeStored(entry.value);
        this.remember(topicOfKey(entry.key), { bytes: message.payload.length, seq: message.seq!, expiresAt: message.expiresAt });
      }
    }
  }

  /**
   * Keeps the index current with what other Eddy nodes write to the bucket (this node's own writes
   * come back too, and change nothing). Entries are applied by seq: the newer message wins.
   */
  follow(report: (err: unknown) => void): void {
    void (async () => {
      const watch = await this.kv.watch({ include: 'updates', resumeFromRevision: this.loadedRevision + 1 } as never);
      this.following = watch;
      for await (const entry of watch) {
        try {
          const topic = topicOfKey(entry.key);
          if (entry.revision <= (this.revisions.get(topic) ?? 0)) continue;
          this.revisions.set(topic, entry.revision);
          if (entry.operation !== 'PUT' || entry.value.length === 0) {
            this.forget(topic);
            continue;
          }
          const message = decodeStored(entry.value);
          const current = this.index.get(topic);
          if (current && current.seq > message.seq!) continue;
          this.remember(topic, { bytes: message.payload.length, seq: message.seq!, expiresAt: message.expiresAt });
        } catch (err) {
          report(err);
        }
      }
    })().catch(report);
  }

  stopFollowing(): void {
    this.following?.stop();
  }

  get count(): number {
    return this.index.size;
  }

  get bytes(): number {
    return this.payloadBytes;
  }

  size(topic: string): number | undefined {
    return this.index.get(topic)?.bytes;
  }

  *topics(): IterableIterator<string> {
    for (const [topic] of this.index.entries()) yield topic;
  }

  /**
   * Makes `message` (already stored in the message stream, so with its seq) its topic's retained
   * message, or clears the topic for an empty payload; a message older than the one kept is ignored.
   * Resolves once the KV write is acknowledged by the bucket's quorum.
   */
  async keep(message: Message): Promise<void> {
    const current = this.index.get(message.topic);
    if (current && current.seq > message.seq!) return;
    const key = topicKey(message.topic);
    if (message.payload.length === 0) {
      if (!current) return;
      // An empty value rather than a delete: a put answers with its revision (see `revisions`).
      this.noteRevision(message.topic, await this.kv.put(key, new Uint8Array(0)));
      this.forget(message.topic);
      return;
    }
    this.noteRevision(message.topic, await this.kv.put(key, encodeStored(message)));
    // Another append for this topic may have confirmed meanwhile: the higher seq wins here as in the bucket order.
    const now = this.index.get(message.topic);
    if (now && now.seq > message.seq!) return;
    this.remember(message.topic, { bytes: message.payload.length, seq: message.seq!, expiresAt: message.expiresAt });
  }

  /** The retained messages `filter` matches, not expired, read from the bucket in batches of at most READ_BATCH_BYTES. */
  matching(filter: string): HistoryReader {
    const now = Date.now();
    const topics: string[] = [];
    this.index.match(filter, (topic, entry) => {
      if (!expiredAt(entry.expiresAt, now)) topics.push(topic);
    });
    let next = 0;
    return {
      next: async (max) => {
        const batch: Message[] = [];
        let bytes = 0;
        while (next < topics.length && batch.length < max) {
          // Sizes are known from the index, so a batch stops before it would pass the byte bound.
          const size = this.index.get(topics[next]!)?.bytes ?? 0;
          if (batch.length > 0 && bytes + size > READ_BATCH_BYTES) break;
          const topic = topics[next++]!;
          const key = topicKey(topic);
          const entry = await this.kv.get(key);
          let value = entry && entry.operation === 'PUT' ? entry.value : undefined;
          // Older than what this node wrote or saw: the replica that answered is behind; ask the leader.
          if ((entry?.revision ?? 0) < (this.revisions.get(topic) ?? 0)) value = (await this.leaderGet(key))?.value;
          if (!value || value.length === 0) continue;
          const message = decodeStored(value);
          if (expiredAt(message.expiresAt, Date.now())) continue;
          message.retain = true;
          bytes += message.payload.length;
          batch.push(message);
        }
        return batch;
      },
    };
  }

  private noteRevision(topic: string, revision: number): void {
    if (revision > (this.revisions.get(topic) ?? 0)) this.revisions.set(topic, revision);
  }

  private remember(topic: string, entry: RetainedEntry): void {
    this.forget(topic);
    this.index.set(topic, entry);
    this.payloadBytes += entry.bytes;
  }

  private forget(topic: string): void {
    const old = this.index.delete(topic);
    if (old) this.payloadBytes -= old.bytes;
  }
}

/** A retained value: 8 bytes of seq (a double), then the message envelope. */
function encodeStored(message: Message): Buffer {
  const seq = Buffer.allocUnsafe(8);
  seq.writeDoubleBE(message.seq!, 0);
  return Buffer.concat([seq, encodeMessage(message)]);
}

function decodeStored(value: Uint8Array): Message {
  const seq = Buffer.from(value.buffer, value.byteOffset, 8).readDoubleBE(0);
  return decodeMessage(value.subarray(8), seq);
}
