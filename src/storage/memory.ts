import type { Message } from '../core/message.js';
import type { DurableDelivery, InflightDelivery, QueuedDelivery, SessionQueue, SessionRecord, Storage, StorageContext } from './types.js';
import { ChannelPolicies } from '../core/channels.js';
import { inHistory, READ_BATCH_BYTES, type HistoryQuery, type HistoryReader } from '../core/replay.js';
import { RetainedIndex } from '../core/retained-index.js';
import { isExpired } from '../core/message.js';

/** The history of one retained channel pattern, trimmed by its byte limit as it grows. */
interface PatternHistory {
  messages: Message[];
  bytes: number;
}

/** A session's queue held in memory: the memory engine's queue, and the base of the disk engine's. */
export class MemorySessionQueue implements SessionQueue {
  constructor(readonly id: number) {}
  protected pending: QueuedDelivery[] = [];
  /** Index of the oldest pending entry; shifting an array is O(n), moving a head is O(1). */
  protected head = 0;
  readonly inflight = new Map<number, InflightDelivery>();
  readonly held = new Set<QueuedDelivery>();
  wake?: () => void;
  /** Payload bytes of the deliveries in `pending` (from `head` on). */
  protected memoryBytes = 0;
  private inflightPayload = 0;

  get pendingCount(): number {
    return this.pending.length - this.head;
  }

  get pendingBytes(): number {
    return this.memoryBytes;
  }

  get inflightBytes(): number {
    return this.inflightPayload;
  }

  push(delivery: QueuedDelivery, _durable: boolean): void {
    this.pending.push(delivery);
    this.memoryBytes += delivery.message.payload.length;
  }

  shift(): QueuedDelivery | undefined {
    if (this.head >= this.pending.length) return undefined;
    const delivery = this.pending[this.head]!;
    this.memoryBytes -= delivery.message.payload.length;
    this.pending[this.head] = undefined as unknown as QueuedDelivery;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    return delivery;
  }

  peek(limit: number): QueuedDelivery[] {
    return this.pending.slice(this.head, this.head + limit);
  }

  unshift(delivery: QueuedDelivery): void {
    if (this.head > 0) this.pending[--this.head] = delivery;
    else this.pending.unshift(delivery);
    this.memoryBytes += delivery.message.payload.length;
  }

  hold(delivery: QueuedDelivery): void {
    this.held.add(delivery);
  }

  release(delivery: QueuedDelivery): boolean {
    return this.held.delete(delivery);
  }

  setInflight(delivery: InflightDelivery): void {
    const replaced = this.inflight.get(delivery.packetId);
    if (replaced) this.inflightPayload -= replaced.message.payload.length;
    this.inflight.set(delivery.packetId, delivery);
    this.inflightPayload += delivery.message.payload.length;
  }

  deleteInflight(packetId: number): void {
    const entry = this.inflight.get(packetId);
    if (!entry) return;
    this.inflight.delete(packetId);
    this.inflightPayload -= entry.message.payload.length;
  }

  clear(): void {
    this.pending = [];
    this.head = 0;
    this.memoryBytes = 0;
    this.inflightPayload = 0;
    this.inflight.clear();
    this.held.clear();
  }
}

/** Reads a list of messages in batches of at most `max` messages and READ_BATCH_BYTES of payload. */
function batchReader(messages: Message[]): HistoryReader {
  let next = 0;
  return {
    next: (max) => {
      const batch: Message[] = [];
      let bytes = 0;
      while (next < messages.length && batch.length < max && (batch.length === 0 || bytes + messages[next]!.payload.length <= READ_BATCH_BYTES)) {
        bytes += messages[next]!.payload.length;
        batch.push(messages[next++]!);
      }
      return batch;
    },
  };
}

/** Keeps all state in this process: fast, and gone at exit. Selected with `--memory`. */
export class MemoryStorage implements Storage {
  readonly kind = 'memory';
  private seq = 0;
  private readonly retainedIndex = new RetainedIndex<Message>();
  private retainedPayloadBytes = 0;
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly queues = new Map<string, MemorySessionQueue>();
  private readonly groups = new Map<string, MemorySessionQueue>();
  private nextQueueId = 1;

  private channels = new ChannelPolicies();
  private readonly histories = new Map<string, PatternHistory>();

  async open(context?: StorageContext): Promise<void> {
    if (context) this.channels = context.channels;
  }
  async close(): Promise<void> {}

  append(message: Message, _deliveries: DurableDelivery[]): void {
    message.seq = ++this.seq;
    if (message.retain) this.keepRetained(message);
    const policy = this.channels.for(message.topic);
    if (!policy.retention) return;
    let history = this.histories.get(policy.pattern);
    if (!history) this.histories.set(policy.pattern, (history = { messages: [], bytes: 0 }));
    history.messages.push(message);
    history.bytes += message.payload.length;
    const now = Date.now();
    const { maxAgeMs, maxBytes } = policy.retention;
    let drop = 0;
    for (const m of history.messages) {
      const tooOld = maxAgeMs !== undefined && m.publishedAt < now - maxAgeMs;
      const tooMuch = maxBytes !== undefined && history.bytes > maxBytes;
      if (!tooOld && !tooMuch) break;
      history.bytes -= m.payload.length;
      drop++;
    }
    if (drop > 0) history.messages.splice(0, drop);
  }

  get lastSeq(): number {
    return this.seq;
  }

  async settled(): Promise<void> {}

  history(query: HistoryQuery): HistoryReader {
    const now = Date.now();
    const found: Message[] = [];
    for (const history of this.histories.values()) for (const m of history.messages) if (inHistory(m, query, now)) found.push(m);
    found.sort((a, b) => a.seq! - b.seq!);
    return batchReader(found);
  }

  private keepRetained(message: Message): void {
    const old = message.payload.length === 0 ? this.retainedIndex.delete(message.topic) : this.retainedIndex.get(message.topic);
    if (old) this.retainedPayloadBytes -= old.payload.length;
    if (message.payload.length === 0) return;
    this.retainedIndex.set(message.topic, message);
    this.retainedPayloadBytes += message.payload.length;
  }

  retainedMatching(filter: string): HistoryReader {
    const now = Date.now();
    const found: Message[] = [];
    this.retainedIndex.match(filter, (_topic, message) => {
      if (!isExpired(message, now)) found.push(message);
    });
    return batchReader(found);
  }

  get retainedCount(): number {
    return this.retainedIndex.size;
  }

  get retainedBytes(): number {
    return this.retainedPayloadBytes;
  }

  retainedSize(topic: string): number | undefined {
    return this.retainedIndex.get(topic)?.payload.length;
  }

  *retainedTopics(): IterableIterator<string> {
    for (const [topic] of this.retainedIndex.entries()) yield topic;
  }

  async loadSessions(): Promise<SessionRecord[]> {
    return [...this.sessions.values()];
  }

  saveSession(record: SessionRecord): void {
    this.sessions.set(record.clientId, record);
  }

  deleteSession(clientId: string): void {
    this.sessions.delete(clientId);
    this.queues.get(clientId)?.clear();
    this.queues.delete(clientId);
  }

  async loadGroups(): Promise<string[]> {
    return [...this.groups.keys()];
  }

  groupQueue(name: string): SessionQueue {
    let queue = this.groups.get(name);
    if (!queue) {
      queue = new MemorySessionQueue(this.nextQueueId++);
      this.groups.set(name, queue);
    }
    return queue;
  }

  saveGroup(_name: string): void {}

  deleteGroup(name: string): void {
    this.groups.get(name)?.clear();
    this.groups.delete(name);
  }

  queue(clientId: string): SessionQueue {
    let queue = this.queues.get(clientId);
    if (!queue) {
      queue = new MemorySessionQueue(this.nextQueueId++);
      this.queues.set(clientId, queue);
    }
    return queue;
  }
}
