import type { Message } from '../core/message.js';
import type { ChannelPolicyLookup, DurableDelivery, HistoryQuery, HistoryReader, SessionQueue, SessionRecord, Storage, StorageContext } from '../core/storage.js';
import { RetainedIndex } from '../util/retained-index.js';
import { MemorySessionQueue } from './memory-queue.js';
import { batchReader, expiredAt, NO_CHANNEL_POLICIES } from './read-batch.js';

export { MemorySessionQueue } from './memory-queue.js';

/** The history of one retained channel pattern, trimmed by its byte limit as it grows. */
interface PatternHistory {
  messages: Message[];
  bytes: number;
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

  private channels: ChannelPolicyLookup = NO_CHANNEL_POLICIES;
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
    for (const history of this.histories.values()) for (const m of history.messages) if (query.includes(m, now)) found.push(m);
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
      if (!expiredAt(message.expiresAt, now)) found.push(message);
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
