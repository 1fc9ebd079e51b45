import type { ChannelPolicyLookup, HistoryReader } from '../core/storage.js';
import type { Message } from '../core/message.js';

/** Payload bytes one batch of a reader holds at most (one message, whatever its size, always fits). */
export const READ_BATCH_BYTES = 8 * 1024 * 1024;

/** Reads a list of messages in batches of at most `max` messages and READ_BATCH_BYTES of payload. */
export function batchReader(messages: Message[]): HistoryReader {
  let next = 0;
  return {
    next: async (max) => {
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

/** True when a message (or a retained entry) with this expiry must no longer be delivered. */
export function expiredAt(expiresAt: number | undefined, now: number): boolean {
  return expiresAt !== undefined && expiresAt <= now;
}

/**
 * The policies an engine uses when opened without a context (a test opening an engine directly):
 * no channel keeps history. The broker always passes its own ChannelPolicies.
 */
export const NO_CHANNEL_POLICIES: ChannelPolicyLookup = {
  for: () => ({ pattern: '#', maxDeliveries: 5 }),
  retained: [],
};
