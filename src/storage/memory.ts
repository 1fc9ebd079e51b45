import type { Message } from '../core/message.js';
import type { DurableDelivery, InflightDelivery, QueuedDelivery, SessionQueue, SessionRecord, Storage, StorageContext } from './types.js';
import { ChannelPolicies } from '../core/channels.js';
import { inHistory, type HistoryQuery, type HistoryReader } from '../core/replay.js';

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

  get pendingCount(): number {
    return this.pending.length - this.head;
  }

  push(delivery: QueuedDelivery, _durable: boolean): void {
    this.pending.push(delivery);
  }

  shift(): QueuedDelivery | undefined {
    if (this.head >= this.pending.length) return undefined;
    const delivery = this.pending[this.head]!;
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
  }

  hold(delivery: QueuedDelivery): void {
    this.held.add(delivery);
  }

  release(delivery: QueuedDelivery): boolean {
    return this.held.delete(delivery);
  }

  setInflight(delivery: InflightDelivery): void {
    this.inflight.set(delivery.packetId, delivery);
  }

  deleteInflight(packetId: number): void {
    this.inflight.delete(packetId);
  }

  clear(): void {
    this.pending = [];
    this.head = 0;
    this.inflight.clear();
    this.held.clear();
  }
}

/** Keeps all state in this process: fast, and gone at exit. Selected with `--memory`. */
export class MemoryStorage implements Storage {
  readonly kind = 'memory';
  private seq = 0;
  private readonly retainedByTopic = new Map<string, Message>();
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
    let next = 0;
    return {
      next: (max) => {
        const batch = found.slice(next, next + max);
        next += batch.length;
        return batch;
      },
    };
  }

  async setRetained(topic: string, message: Message | undefined): Promise<void> {
    if (message) this.retainedByTopic.set(topic, message);
    else this.retainedByTopic.delete(topic);
  }

  retained(): Iterable<Message> {
    return this.retainedByTopic.values();
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
