import type { Logger } from '../util/logger.js';
import type { Admission, Identity } from './admission/index.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { GroupRegistry } from './groups.js';
import { DLQ_GROUP_NAME } from './groups.js';
import type { ChannelPolicies } from './channels.js';
import { historyQuery, ReplayRun, type ReplayStart } from './replay.js';
import { identityRefusal, type PublishValidator } from './validation.js';
import { isValidTopicFilter, parseSharedFilter, showTopic, topicOverLimits } from './topics.js';
import type { BrokerLimits } from './limits.js';
import type { VolatileRetained } from './volatile-retained.js';
import type { HistoryReader, Storage, SubscriptionOptions, SubscriptionRecord } from './storage.js';
import { Reason } from './reasons.js';
import { sessionRecord } from './session-record.js';

export interface SubscribeRequest extends SubscriptionOptions {
  filter: string;
}

export interface SubscribeOutcome {
  /** One MQTT 5 reason code (granted QoS or failure) per request. */
  codes: number[];
  /** A promise while the change is not yet durable: answer SUBACK after it. */
  stored: Promise<void> | void;
  /** Sends retained messages, or starts a replay; the front end calls it once SUBACK is written. */
  afterSuback: () => void;
  /** For a replay: the last seq sent as history (later messages arrive live). */
  replayUntil?: number;
  /** Why a request was refused, when the core knows better than the reason code says. */
  reason?: string;
}

/** What subscribing reads of the broker. */
export interface SubscriptionContext {
  readonly router: Router;
  readonly groups: GroupRegistry;
  readonly admission: Admission;
  readonly validator: PublishValidator | undefined;
  readonly strict: boolean;
  readonly storage: Storage;
  readonly channels: ChannelPolicies;
  readonly volatileRetained: VolatileRetained;
  readonly limits: BrokerLimits;
}

/** The right to receive a message on `topic`: the ACL's, and what the AsyncAPI documents' `security` requires. */
export function mayReceive(ctx: Pick<SubscriptionContext, 'admission' | 'validator'>, identity: Identity, topic: string): boolean {
  if (!ctx.admission.mayReceive(identity, topic)) return false;
  // Asked for every delivery: with no authentication configured (method none) there is nothing to look up.
  return identity.method === 'none' || identityRefusal(ctx.validator?.requiredIdentity(topic, 'receive'), identity.method, 'receive') === undefined;
}

/**
 * SUBSCRIBE and UNSUBSCRIBE for every front end: each filter's admission (validity, limits, the
 * broker's own group, the ACL, AsyncAPI security and --strict), putting subscriptions in force on
 * the router or in consumer groups, storing them, and the retained messages or replay that follow.
 */
export class Subscriptions {
  constructor(
    private readonly ctx: SubscriptionContext,
    private readonly log: Logger,
  ) {}

  /**
   * Adds subscriptions; returns one MQTT 5 reason code (granted QoS or failure) per request,
   * `stored` (a promise while the change is not yet durable: answer SUBACK after it), and
   * `sendRetained`, which the front end calls after it has written the SUBACK.
   */
  subscribe(session: Session, requests: SubscribeRequest[], replay?: ReplayStart): SubscribeOutcome {
    const codes: number[] = [];
    const retainedFor: Array<{ filter: string; options: SubscriptionOptions }> = [];
    const replayed = new Map<string, SubscriptionOptions>();
    let reason: string | undefined;
    for (const request of requests) {
      const shared = parseSharedFilter(request.filter);
      if (shared === null || !isValidTopicFilter(request.filter)) {
        codes.push(Reason.TopicFilterInvalid);
        continue;
      }
      const overLimits = topicOverLimits(request.filter, this.ctx.limits);
      if (overLimits) {
        codes.push(Reason.TopicFilterInvalid);
        reason = `${showTopic(request.filter)}: ${overLimits}`;
        continue;
      }
      const inner = shared ? shared.filter : request.filter;
      if (shared && shared.group === DLQ_GROUP_NAME) {
        codes.push(Reason.NotAuthorized);
        reason = `${request.filter}: the group ${DLQ_GROUP_NAME} is the broker's own (it keeps dead letters; eddy dlq redrive moves them)`;
        continue;
      }
      const decision = this.ctx.admission.subscription(session.identity, inner);
      if (decision === 'denied-quietly') {
        // 0x80, not 0x87: a --deny-subscribe rule does not reveal why (MQTT 5 §3.9.3), as Paho's interop suite expects.
        codes.push(Reason.UnspecifiedError);
        continue;
      }
      if (decision === 'denied') {
        codes.push(Reason.NotAuthorized);
        reason = `${showTopic(request.filter)}: not authorized: the ACL allows nothing this filter matches`;
        continue;
      }
      const secured = identityRefusal(this.ctx.validator?.requiredIdentity(inner, 'receive'), session.identity.method, 'receive');
      if (secured) {
        codes.push(Reason.NotAuthorized);
        reason = `${showTopic(request.filter)}: ${secured}`;
        continue;
      }
      if (this.ctx.strict && this.ctx.validator && !inner.startsWith('$') && !this.ctx.validator.filterIsDeclared(inner)) {
        codes.push(Reason.TopicFilterInvalid);
        reason = `${request.filter}: no AsyncAPI document declares a channel this filter matches (--strict)`;
        continue;
      }
      if (replay && shared) {
        codes.push(Reason.ImplementationSpecificError);
        reason = `eddy-from applies to non-shared subscriptions only, not ${request.filter}`;
        continue;
      }
      const { filter, ...options } = request;
      const existed = session.subscriptions.has(filter);
      this.add(session, request);
      codes.push(request.qos);
      if (replay) {
        // History replaces retained messages: it already holds them, in order.
        replayed.set(filter, options);
        continue;
      }
      // Shared subscriptions get no retained messages (MQTT 5 §4.8.2).
      if (!shared && (options.retainHandling === 0 || (options.retainHandling === 1 && !existed))) {
        retainedFor.push({ filter, options });
      }
    }
    const stored = this.storeSubscriptions(session);
    let replayUntil: number | undefined;
    let startReplay: (() => void) | undefined;
    if (replay && replayed.size > 0) {
      // Everything up to this seq was routed before the subscription existed, so it is history;
      // everything after reaches the subscription live. Live deliveries wait until history is sent.
      const untilSeq = this.ctx.storage.lastSeq;
      replayUntil = untilSeq;
      session.holdForReplay();
      startReplay = () => {
        this.ctx.storage.settled().then(() => {
          const reader = this.ctx.storage.history(historyQuery([...replayed.keys()], replay, untilSeq, this.ctx.channels));
          session.startRun(new ReplayRun(this.receivable(session, reader), replayed));
        }, (err: Error) => this.log.error({ clientId: session.clientId, err: err.message }, 'replay not started'));
      };
    }
    const afterSuback = (): void => {
      for (const { filter, options } of retainedFor) this.sendRetained(session, filter, options);
      startReplay?.();
    };
    return { codes, stored, afterSuback, replayUntil, reason };
  }

  /** Removes subscriptions; returns 0x00 or 0x11 (no subscription existed) per filter, and `stored` as for subscribe. */
  unsubscribe(session: Session, filters: string[]): { codes: number[]; stored: Promise<void> | void } {
    const codes = filters.map((filter) => {
      if (!session.subscriptions.delete(filter)) return Reason.NoSubscriptionExisted;
      this.remove(session, filter);
      return Reason.Success;
    });
    const stored = session.persistent ? this.ctx.storage.saveSession(sessionRecord(session)) : undefined;
    return { codes, stored };
  }

  /**
   * The durable part of a subscribe: the session record, and the queue of any consumer group that a
   * persistent member made durable. Resolves once both are stored.
   */
  private storeSubscriptions(session: Session): Promise<void> | void {
    if (!session.persistent) return undefined;
    const pending: Array<Promise<void> | void> = [this.ctx.storage.saveSession(sessionRecord(session))];
    for (const group of session.groups) pending.push(this.ctx.groups.save(group));
    const promises = pending.filter((p): p is Promise<void> => p instanceof Promise);
    return promises.length === 0 ? undefined : Promise.all(promises).then(() => undefined);
  }

  /** Puts one subscription in force: on the router, or in its consumer group for `$share/…`. */
  add(session: Session, record: SubscriptionRecord): void {
    const shared = parseSharedFilter(record.filter);
    const { filter, ...options } = record;
    session.subscriptions.set(filter, { ...record });
    if (!shared) return this.ctx.router.add(session, filter, options);
    this.ctx.groups.join(session, filter, shared.filter, options);
  }

  /** Takes one subscription out of force (the session's map is the caller's). */
  remove(session: Session, filter: string): void {
    const shared = parseSharedFilter(filter);
    if (!shared) {
      this.ctx.router.remove(session, filter);
      return;
    }
    this.ctx.groups.leave(session, filter);
  }

  /**
   * Sends a new subscription its retained messages, read in batches and paced by the client's
   * window and socket like a replay, so that many large retained messages never sit in memory at once.
   */
  private sendRetained(session: Session, filter: string, options: SubscriptionOptions): void {
    session.holdForReplay();
    const retained = this.ctx.volatileRetained.withStored(filter, this.ctx.storage.retainedMatching(filter));
    session.startRun(new ReplayRun(this.receivable(session, retained), new Map([[filter, options]]), 'retained'));
  }

  /** Stored messages the session may receive (retained, replayed): the same right as for live ones. */
  private receivable(session: Session, reader: HistoryReader): HistoryReader {
    if (session.identity.acl.allowsEverything && session.identity.method === 'none') return reader;
    return {
      // A batch the session may receive none of is skipped, not taken for the end of the run.
      next: async (max) => {
        for (;;) {
          const batch = await reader.next(max);
          if (batch.length === 0) return batch;
          const allowed = batch.filter((m) => mayReceive(this.ctx, session.identity, m.topic));
          if (allowed.length > 0) return allowed;
        }
      },
    };
  }
}
