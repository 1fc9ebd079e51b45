import type { Logger } from '../util/logger.js';
import { guarded, type ErrorReporter } from '../util/guard.js';
import type { QueuedDelivery, SessionQueue } from './storage.js';
import { DLQ_PREFIX, type ChannelPolicies } from './channels.js';
import type { ConsumerGroup, DeliveryFailureHandler } from './group.js';
import type { Message } from './message.js';
import type { Session } from './session.js';

export interface RedeliveryOptions {
  /** Wait before the first retry of a refused message; each further retry waits twice as long. */
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_REDELIVERY: RedeliveryOptions = { initialBackoffMs: 1000, maxBackoffMs: 60_000 };

export interface RedeliveryStats {
  /** Deliveries refused by a consumer (MQTT 5 PUBACK/PUBREC >= 0x80). */
  nacks: number;
  /** Messages sent again after a refusal or after their consumer left with them. */
  redeliveries: number;
  /** Messages moved to `$DLQ/…` after their last allowed delivery. */
  deadLettered: number;
}

/** Who the failed delivery was for: a consumer group, or one subscriber's own queue. */
interface Owner {
  queue: SessionQueue;
  label: { group: string } | { clientId: string };
  requeue(delivery: QueuedDelivery): void;
}

/**
 * Decides what happens to a delivery that failed: sent again after an exponential backoff, or,
 * after the channel's maximum number of deliveries, moved to `$DLQ/<topic>` with user properties
 * that say why. Until the retry is queued or the dead letter is stored, the delivery stays held in
 * its queue, so a restart still finds it unacknowledged.
 */
export class Redelivery implements DeliveryFailureHandler {
  readonly stats: RedeliveryStats = { nacks: 0, redeliveries: 0, deadLettered: 0 };
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly channels: ChannelPolicies,
    private readonly options: RedeliveryOptions,
    /** Publishes the dead letter through the broker; `confirm` runs once it is stored. */
    private readonly publish: (message: Message, confirm: (err?: Error) => void) => void,
    private readonly log: Logger,
    private readonly onExpired: (message: Message) => void,
    private readonly report: ErrorReporter,
  ) {}

  failed(group: ConsumerGroup, delivery: QueuedDelivery, reason: string, retryNow: boolean): void {
    this.handle({ queue: group.queue, label: { group: group.name }, requeue: (d) => group.requeue(d) }, delivery, reason, retryNow);
  }

  expired(_group: ConsumerGroup, delivery: QueuedDelivery): void {
    this.onExpired(delivery.message);
  }

  /** A subscriber refused a delivery from its own (non-shared) subscriptions: it gets it again later. */
  sessionFailed(session: Session, delivery: QueuedDelivery, reason: string): void {
    this.handle({ queue: session.queue, label: { clientId: session.clientId }, requeue: (d) => session.requeue(d) }, delivery, reason, false);
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private handle(owner: Owner, delivery: QueuedDelivery, reason: string, retryNow: boolean): void {
    if (!retryNow) this.stats.nacks++;
    const count = delivery.deliveryCount ?? 1;
    const { topic } = delivery.message;
    // A dead letter that fails again is retried, never dead-lettered twice.
    if (count >= this.channels.for(topic).maxDeliveries && !topic.startsWith(DLQ_PREFIX)) {
      this.deadLetter(owner, delivery, reason, count);
      return;
    }
    this.stats.redeliveries++;
    if (retryNow) return owner.requeue(delivery);
    this.later(owner, delivery, this.backoff(count));
  }

  private backoff(count: number): number {
    return Math.min(this.options.initialBackoffMs * 2 ** Math.max(0, count - 1), this.options.maxBackoffMs);
  }

  private later(owner: Owner, delivery: QueuedDelivery, ms: number, then?: () => void): void {
    owner.queue.hold(delivery);
    const timer = setTimeout(
      guarded(this.report, 'redelivery timer', () => {
        this.timers.delete(timer);
        // Not held any more means the queue was dropped meanwhile (its session or group ended).
        if (!owner.queue.release(delivery)) return;
        if (then) then();
        else owner.requeue(delivery);
      }),
      ms,
    );
    timer.unref();
    this.timers.add(timer);
  }

  private deadLetter(owner: Owner, delivery: QueuedDelivery, reason: string, count: number): void {
    const original = delivery.message;
    const userProperties = {
      ...original.properties.userProperties,
      'eddy-dlq-reason': reason,
      'eddy-delivery-count': String(count),
      'eddy-original-topic': original.topic,
      ...(original.seq === undefined ? {} : { 'eddy-original-seq': String(original.seq) }),
      ...('group' in owner.label ? { 'eddy-group': owner.label.group } : { 'eddy-client-id': owner.label.clientId }),
    };
    const letter: Message = {
      topic: DLQ_PREFIX + original.topic,
      payload: original.payload,
      qos: 1,
      retain: false,
      properties: { ...original.properties, userProperties },
      publishedAt: Date.now(),
    };
    if (original.expiresAt !== undefined) letter.expiresAt = original.expiresAt;
    // Who published the original: redrive checks that it may still publish there.
    if (original.origin !== undefined) letter.origin = original.origin;
    if (original.originUser !== undefined) letter.originUser = original.originUser;
    owner.queue.hold(delivery);
    this.publish(letter, (err) => {
      if (!owner.queue.release(delivery)) return;
      if (err) {
        // Not stored (disk full): keep the original and try again later; nothing is lost.
        this.log.error({ topic: original.topic, err: err.message }, 'dead letter not stored; retrying later');
        this.later(owner, delivery, this.options.maxBackoffMs, () => this.deadLetter(owner, delivery, reason, count));
        return;
      }
      this.stats.deadLettered++;
      this.log.warn({ topic: original.topic, seq: original.seq, deliveries: count, reason, ...owner.label }, 'message dead-lettered');
    });
  }
}
