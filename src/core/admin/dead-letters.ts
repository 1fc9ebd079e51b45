import type { Broker } from '../broker.js';
import { redriveDeadLetters, viewDeadLetter } from '../dead-letters.js';
import type { Message } from '../message.js';
import { topicMatches } from '../topics.js';
import type { QueuedDelivery } from '../storage.js';
import { AdminError, type PageRequest } from './page.js';
import type { DeadLetterView, Page, PurgeResult, RedriveResult } from './views.js';

/** `?topic=FILTER`: dead letters whose original topic matches. */
export interface DeadLetterQuery extends PageRequest {
  filter?: string;
}

function originalTopic(message: Message): string {
  const value = message.properties.userProperties?.['eddy-original-topic'];
  return (Array.isArray(value) ? value[0] : value) ?? message.topic.replace(/^\$DLQ\//, '');
}

/**
 * The dead-letter queue for the admin API: pages of dead letters in queue order (oldest first)
 * with the seq as cursor, redrive (as `/v1/dlq/redrive`), and purge, which removes them for good.
 */
export class DeadLettersAdmin {
  constructor(private readonly broker: Broker) {}

  /**
   * A page after the dead letter with seq `after`. The queue can only be read from its head, so a
   * deeper page reads what comes before it (doubling the read until the page is full); a filter
   * reads the whole queue, to count what matches.
   */
  async list(query: DeadLetterQuery): Promise<Page<DeadLetterView>> {
    const after = query.after === undefined ? undefined : Number(query.after);
    if (after !== undefined && !Number.isSafeInteger(after)) throw new AdminError('bad-request', `after must be the seq of a dead letter, got ${JSON.stringify(query.after)}`);
    const dlq = this.broker.deadLetters;
    const matches = (m: Message): boolean => query.filter === undefined || topicMatches(query.filter, originalTopic(m));
    const waiting = dlq.queue.pendingCount + dlq.queue.inflight.size;
    let want = query.filter === undefined ? Math.max(query.limit + 1, 64) : Number.MAX_SAFE_INTEGER;
    for (;;) {
      const letters = [...[...dlq.queue.inflight.values()].map((d) => d.message), ...(await dlq.queue.peek(want)).map((d) => d.message)];
      const exhausted = letters.length < want;
      let start = 0;
      if (after !== undefined) {
        const at = letters.findIndex((m) => m.seq === after);
        start = at === -1 ? letters.findIndex((m) => (m.seq ?? 0) > after) : at + 1;
        if (start === -1) start = letters.length;
      }
      const found = letters.slice(start).filter(matches);
      if (found.length > query.limit || exhausted) {
        const page = found.slice(0, query.limit);
        const more = found.length > query.limit;
        const total = query.filter === undefined ? waiting : letters.filter(matches).length;
        return { items: page.map(viewDeadLetter), next: more ? String(page[page.length - 1]!.seq) : null, total };
      }
      want *= 2;
    }
  }

  /**
   * Publishes dead letters again on their original topics (each only where its publisher may still
   * publish): the oldest `limit` that match `filter`, or the one with seq `seq` (not-found when it
   * is not waiting: gone, or being redriven right now).
   */
  async redrive(options: { limit: number; filter?: string; seq?: number }): Promise<RedriveResult> {
    const admission = this.broker.admission;
    const mayRedrive = (m: Message): boolean => admission.originalPublisherMay(m.originUser, m.origin ?? '', m.topic);
    // One letter by seq: the redrive's own scan finds it (and stops there), no separate look first.
    const limit = options.seq !== undefined ? 1 : options.limit;
    const result = await redriveDeadLetters(this.broker.deadLetters, (m) => this.broker.publishConfirmed(m), { ...options, limit, mayRedrive });
    if (options.seq !== undefined && result.redriven + result.failed + result.refused === 0) {
      throw new AdminError('not-found', `no dead letter with seq ${options.seq} is waiting`);
    }
    return result;
  }

  /**
   * Removes up to `limit` waiting dead letters (those whose original topic matches `filter`) for
   * good, as if a consumer had acknowledged them. A durable queue's place on disk is one cursor:
   * what lies after it comes back after a restart. So the removed letters must be the head of the
   * queue: the kept letters that lay before the last removed one are stored again at its end first
   * (same payload, properties and dead-letter time, a new seq; `$DLQ/#` watchers see them again),
   * and only then are the originals let go. A crash in between duplicates a kept letter, never
   * loses one. Dead letters being redriven right now are not touched.
   */
  async purge(options: { limit: number; filter?: string }): Promise<PurgeResult> {
    const queue = this.broker.deadLetters.queue;
    const matches = (d: QueuedDelivery): boolean => options.filter === undefined || topicMatches(options.filter, originalTopic(d.message));
    const taken: QueuedDelivery[] = [];
    let purged = 0;
    let lastMatch = -1;
    while (purged < options.limit && queue.pendingCount > 0) {
      const delivery = await queue.take();
      if (!delivery) break;
      taken.push(delivery);
      if (matches(delivery)) {
        purged++;
        lastMatch = taken.length - 1;
      }
    }
    // What came after the last match goes back in front, in its order.
    for (const d of taken.splice(lastMatch + 1).reverse()) queue.unshift(d);
    const kept = taken.filter((d) => !matches(d));
    if (kept.length === 0) return { purged, moved: 0 };
    // Held, not gone, while their copies are being stored.
    for (const d of kept) queue.hold(d);
    const stored = await Promise.allSettled(kept.map((d) => this.broker.publishConfirmed(copyOf(d.message))));
    const failed = stored.findIndex((r) => r.status === 'rejected');
    for (const d of kept) queue.release(d);
    if (failed !== -1) {
      // Nothing is lost: the originals go back in front (a copy that was stored is a duplicate).
      for (const d of [...kept].reverse()) queue.unshift(d);
      throw (stored[failed] as PromiseRejectedResult).reason;
    }
    return { purged, moved: kept.length };
  }
}

/** A dead letter stored again as it was (the broker gives it a new seq). */
function copyOf(letter: Message): Message {
  const copy: Message = { topic: letter.topic, payload: letter.payload, qos: 1, retain: false, properties: letter.properties, publishedAt: letter.publishedAt };
  if (letter.expiresAt !== undefined) copy.expiresAt = letter.expiresAt;
  if (letter.origin !== undefined) copy.origin = letter.origin;
  if (letter.originUser !== undefined) copy.originUser = letter.originUser;
  return copy;
}
