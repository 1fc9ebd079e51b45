import { ChannelPolicies, type ChannelPolicy } from '../../src/core/channels.js';
import type { Message, QoS } from '../../src/core/message.js';
import type { HistoryReader, QueuedDelivery, SessionQueue, Storage, StorageContext } from '../../src/core/storage.js';
import type { StorageFactory, StoreUnderTest } from './factory.js';

/** Channels the suite uses: `hist/#` keeps history, `small/#` keeps 1 MiB of it, `aged/#` one hour. */
export const CONTRACT_CHANNELS: ChannelPolicy[] = [
  { pattern: 'hist/#', maxDeliveries: 5, retention: { maxAgeMs: 7 * 24 * 3600 * 1000 } },
  { pattern: 'small/#', maxDeliveries: 5, retention: { maxBytes: 1024 * 1024 } },
  { pattern: 'aged/#', maxDeliveries: 5, retention: { maxAgeMs: 3600 * 1000 } },
];

export function contractContext(): StorageContext {
  return { channels: new ChannelPolicies(CONTRACT_CHANNELS) };
}

export function message(topic: string, payload: string | Buffer, extra: Partial<Message> = {}): Message {
  return { topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, retain: false, properties: {}, publishedAt: Date.now(), ...extra };
}

/** One store and the engine currently open over it; `restart` closes the engine and opens a new one over the same store. */
export class OpenStore {
  storage!: Storage;
  private constructor(readonly store: StoreUnderTest) {}

  static async open(factory: StorageFactory): Promise<OpenStore> {
    const open = new OpenStore(await factory.create());
    open.storage = open.store.engine();
    await open.storage.open(contractContext());
    return open;
  }

  async restart(): Promise<Storage> {
    await this.storage.close();
    this.storage = this.store.engine();
    await this.storage.open(contractContext());
    return this.storage;
  }

  /** Opens a new engine without closing the old one: what is left after the old one's process died. */
  async reopenAfterCrash(): Promise<Storage> {
    this.storage = this.store.engine();
    await this.storage.open(contractContext());
    return this.storage;
  }

  async destroy(): Promise<void> {
    try {
      await this.storage.close();
    } finally {
      await this.store.destroy();
    }
  }
}

/** Stores a message routed to `queue` (durably, as the broker does for a persistent session) and queues it. */
export async function appendTo(storage: Storage, queue: SessionQueue, m: Message, qos: QoS = 1): Promise<Message> {
  await storage.append(m, [{ queueId: queue.id, qos, retain: false }]);
  queue.push({ message: m, qos, retain: false }, true);
  return m;
}

/**
 * Takes deliveries the way a session does: `shift` what is ready, and when nothing is but more
 * waits, wait for the queue's `wake` (a durable engine reading from storage). Rejects when the
 * queue says more waits and never wakes.
 */
export async function shiftAll(queue: SessionQueue, limit = Infinity, timeoutMs = 10_000): Promise<QueuedDelivery[]> {
  const taken: QueuedDelivery[] = [];
  while (taken.length < limit) {
    let woken!: () => void;
    const wake = new Promise<void>((resolve) => (woken = resolve));
    queue.wake = woken;
    const next = queue.shift();
    if (next) {
      taken.push(next);
      continue;
    }
    if (queue.pendingCount === 0) break;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`queue reports ${queue.pendingCount} pending but never woke (took ${taken.length})`)), timeoutMs)));
    try {
      await Promise.race([wake, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
  queue.wake = undefined;
  return taken;
}

/** Every message a reader gives, batch after batch, and the size of the largest batch. */
export async function readAll(reader: HistoryReader, max = 256): Promise<{ messages: Message[]; largestBatch: number }> {
  const messages: Message[] = [];
  let largestBatch = 0;
  for (;;) {
    const batch = await reader.next(max);
    if (batch.length === 0) return { messages, largestBatch };
    largestBatch = Math.max(largestBatch, batch.length);
    messages.push(...batch);
  }
}

export const payloads = (deliveries: readonly QueuedDelivery[]): string[] => deliveries.map((d) => d.message.payload.toString());
export const texts = (messages: readonly Message[]): string[] => messages.map((m) => m.payload.toString());
export const range = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => String(from + i));
