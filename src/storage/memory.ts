import type { Message } from '../core/message.js';
import type { DurableDelivery, InflightDelivery, QueuedDelivery, SessionQueue, SessionRecord, Storage } from './types.js';

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

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  append(message: Message, _deliveries: DurableDelivery[]): void {
    message.seq = ++this.seq;
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
