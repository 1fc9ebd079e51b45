import type { QueuedDelivery } from './storage.js';
import { DLQ_PREFIX } from './channels.js';
import type { ConsumerGroup } from './group.js';
import { firstUserProperty, type Message, type UserProperties } from './message.js';
import { topicMatches } from './topics.js';
import type { DeadLetterView, RedriveResult } from './admin/views.js';

/** The user properties a dead letter carries (README "Eddy's MQTT user properties"). */
const DLQ_PROPERTIES = ['eddy-dlq-reason', 'eddy-delivery-count', 'eddy-original-topic', 'eddy-original-seq', 'eddy-group', 'eddy-client-id'];

function property(message: Message, key: string): string | undefined {
  return firstUserProperty(message.properties.userProperties, key);
}

function originalTopicOf(message: Message): string {
  return property(message, 'eddy-original-topic') ?? message.topic.slice(DLQ_PREFIX.length);
}

export function viewDeadLetter(message: Message): DeadLetterView {
  const text = message.payload.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(message.payload);
  const count = property(message, 'eddy-delivery-count');
  const headers: UserProperties = { ...message.properties.userProperties };
  for (const key of DLQ_PROPERTIES) delete headers[key];
  return {
    seq: message.seq,
    topic: message.topic,
    originalTopic: originalTopicOf(message),
    reason: property(message, 'eddy-dlq-reason'),
    deliveryCount: count === undefined ? undefined : Number(count),
    group: property(message, 'eddy-group'),
    clientId: property(message, 'eddy-client-id'),
    deadLetteredAt: new Date(message.publishedAt).toISOString(),
    contentType: message.properties.contentType,
    payload: isText ? text : message.payload.toString('base64'),
    encoding: isText ? 'utf8' : 'base64',
    headers,
  };
}

/** Dead letters waiting in the broker's dead-letter group, oldest first; `filter` matches the original topic. */
export async function listDeadLetters(dlq: ConsumerGroup, limit: number, filter?: string): Promise<DeadLetterView[]> {
  const waiting = [...dlq.queue.inflight.values(), ...(await dlq.queue.peek(filter ? Number.MAX_SAFE_INTEGER : limit))];
  return waiting
    .map((d) => d.message)
    .filter((m) => !filter || topicMatches(filter, originalTopicOf(m)))
    .slice(0, limit)
    .map(viewDeadLetter);
}

/**
 * Publishes waiting dead letters again on their original topics, without the `eddy-dlq-*`
 * properties, and removes each from the dead-letter queue once its republished copy is stored.
 * Returns how many were redriven; a dead letter whose copy could not be stored stays queued.
 */
export async function redriveDeadLetters(
  dlq: ConsumerGroup,
  publish: (message: Message) => Promise<void>,
  options: { limit: number; filter?: string; mayRedrive?: (original: Message) => boolean; /** Only the dead letter with this seq. */ seq?: number },
): Promise<RedriveResult> {
  const skipped: QueuedDelivery[] = [];
  const taken: QueuedDelivery[] = [];
  let refused = 0;
  while (taken.length < options.limit && dlq.queue.pendingCount > 0) {
    const delivery = await dlq.queue.take();
    if (!delivery) break;
    if (options.seq !== undefined && delivery.message.seq !== options.seq) skipped.push(delivery);
    else if (options.filter && !topicMatches(options.filter, originalTopicOf(delivery.message))) skipped.push(delivery);
    else if (options.mayRedrive && !options.mayRedrive(redriven(delivery.message))) {
      // Its publisher may not publish there (any more): it stays a dead letter.
      refused++;
      skipped.push(delivery);
    } else taken.push(delivery);
    // Seqs are unique: the one asked for is found, redriven or refused, and nothing after it need be read.
    if (options.seq !== undefined && delivery.message.seq === options.seq) break;
  }
  for (const d of skipped.reverse()) dlq.queue.unshift(d);
  // Held, not gone: a crash before the copy is stored still finds the dead letter.
  for (const d of taken) dlq.queue.hold(d);
  const results = await Promise.allSettled(
    taken.map(async (d) => {
      await publish(redriven(d.message));
      dlq.queue.release(d);
    }),
  );
  let failed = 0;
  let error: string | undefined;
  for (let i = taken.length - 1; i >= 0; i--) {
    const result = results[i]!;
    if (result.status === 'fulfilled') continue;
    failed++;
    error = (result.reason as Error).message;
    if (dlq.queue.release(taken[i]!)) dlq.queue.unshift(taken[i]!);
  }
  dlq.dispatch();
  return { redriven: taken.length - failed, failed, refused, ...(error ? { error } : {}) };
}

function redriven(letter: Message): Message {
  const userProperties: UserProperties = { ...letter.properties.userProperties };
  for (const key of DLQ_PROPERTIES) delete userProperties[key];
  if (letter.seq !== undefined) userProperties['eddy-redriven-from'] = String(letter.seq);
  const message: Message = {
    topic: originalTopicOf(letter),
    payload: letter.payload,
    qos: 1,
    retain: false,
    properties: { ...letter.properties, userProperties },
    publishedAt: Date.now(),
  };
  if (letter.expiresAt !== undefined) message.expiresAt = letter.expiresAt;
  if (letter.origin !== undefined) message.origin = letter.origin;
  if (letter.originUser !== undefined) message.originUser = letter.originUser;
  return message;
}
