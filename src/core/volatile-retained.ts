import type { Message } from './message.js';
import type { HistoryReader } from './storage.js';
import { RetainedIndex } from '../util/retained-index.js';

/**
 * Retained messages the broker keeps in memory only: its own `$SYS/…` topics (core/admin/sys-topics.ts).
 * They are republished every interval, so storing them would only write the log over and over and
 * serve values of a previous run after a restart; Mosquitto does not persist them either. They do
 * not count against `maxRetained`. A new subscription gets them after the stored retained messages.
 */
export class VolatileRetained {
  private readonly index = new RetainedIndex<Message>();

  get size(): number {
    return this.index.size;
  }

  get(topic: string): Message | undefined {
    return this.index.get(topic);
  }

  set(message: Message): void {
    if (message.payload.length === 0) this.index.delete(message.topic);
    else this.index.set(message.topic, message);
  }

  /** `stored` (the storage engine's retained messages for `filter`), then the volatile ones it matches. */
  withStored(filter: string, stored: HistoryReader): HistoryReader {
    if (this.index.size === 0) return stored;
    const volatile: Message[] = [];
    this.index.match(filter, (_topic, message) => volatile.push(message));
    if (volatile.length === 0) return stored;
    let storedDone = false;
    return {
      next: async (max) => {
        if (!storedDone) {
          const batch = await stored.next(max);
          if (batch.length > 0) return batch;
          storedDone = true;
        }
        return volatile.splice(0, max);
      },
    };
  }
}
