import type { InflightDelivery, QueuedDelivery, SessionQueue } from '../core/storage.js';

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

  async take(): Promise<QueuedDelivery | undefined> {
    return this.shift();
  }

  async peek(limit: number): Promise<QueuedDelivery[]> {
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
