import type { Logger } from '../util/logger.js';
import type { ErrorReporter } from '../util/guard.js';
import { Admission, parseAcl, type Identity } from './admission/index.js';
import { StorageError } from '../util/errors.js';
import type { Message, QoS } from './message.js';
import { Router, type Target } from './router.js';
import { Session, type DropReason, type SessionHooks, type SessionLink, type WillMessage } from './session.js';
import type { ConsumerGroup } from './group.js';
import { GroupRegistry } from './groups.js';
import { ChannelPolicies, type ChannelPolicy } from './channels.js';
import { DEFAULT_REDELIVERY, Redelivery, type RedeliveryOptions } from './redelivery.js';
import type { ReplayStart } from './replay.js';
import type { MessageObserver } from './observer.js';
import { KeyedTimers } from './timers.js';
import { identityRefusal, invalidLetter, PublishChecks, type PublishRefusal, type PublishValidator, type TrafficRecorder } from './validation.js';
import { showTopic, topicOverLimits } from './topics.js';
import { DEFAULT_LIMITS, type AccessRules, type BrokerLimits } from './limits.js';
import { IndexedMap } from './admin/sorted-keys.js';
import { VolatileRetained } from './volatile-retained.js';
import { expiryLeftMs, NEVER_EXPIRES, sessionRecord } from './session-record.js';
import { mayReceive, Subscriptions, type SubscribeOutcome, type SubscribeRequest } from './subscriptions.js';
import type { DurableDelivery, SessionQueue, Storage } from './storage.js';
import { Reason } from './reasons.js';
import type { NodeFabric } from './fabric.js';
import { ClusterSync } from './cluster-sync.js';
import { effectiveQos } from './qos.js';

export { Reason };
export type { SubscribeRequest, SubscribeOutcome } from './subscriptions.js';

export interface OpenSessionRequest {
  clientId: string;
  cleanStart: boolean;
  expiryInterval: number;
  will: WillMessage | undefined;
  /** Who the client is (Broker.admission decided it). */
  identity: Identity;
}

/** Why a client's publish is not routed, from the one admission path every front end calls. */
export type PublishAdmissionRefusal =
  | { kind: 'topic'; reason: string }
  /** `unauthenticated`: an anonymous client refused for want of credentials (HTTP 401 rather than 403). */
  | { kind: 'not-authorized'; reason: string; unauthenticated?: boolean }
  | { kind: 'rate'; reason: string }
  | PublishRefusal;

export interface BrokerStats {
  connections: number;
  messagesIn: number;
  messagesOut: number;
  /** Bytes of protocol read from and written to clients (MQTT packets, SSE events): each connection's LinkStats adds to them. */
  bytesIn: number;
  bytesOut: number;
  dropped: Record<DropReason, number>;
  /** Connections closed for a protocol violation, by MQTT 5 reason code (hex). */
  protocolErrors: Record<string, number>;
  /** Publishes refused with a reason code (payload format, access rules, storage), by reason code (hex). */
  refusedPublishes: Record<string, number>;
  /** Publishes that did not match the AsyncAPI documents (refused, or kept on $DLQ/invalid). */
  invalidPublishes: number;
  /** Sockets closed at accept because `maxConnections` were open. */
  refusedConnections: number;
  /** Connections closed because a packet did not complete within `packetTimeout`. */
  packetTimeouts: number;
  /** Times a connection stopped reading because unfinished packets held `maxInboundBytes`. */
  inboundPauses: number;
  /** Bytes reserved by unfinished inbound packets right now. */
  inboundBytes: number;
  /** Retained messages refused (QoS>0, 0x97) or not kept (QoS 0) at `maxRetained`/`maxRetainedBytes`. */
  retainedRefused: number;
  /** Times a publisher's connection stopped reading because a subscriber of its messages was congested. */
  throttledPublishers: number;
  /** Times a congested subscriber did not drain within a second and became a slow consumer (its messages queue, then drop). */
  slowConsumers: number;
  /** Exceptions caught in a callback (a bug, or input nobody foresaw): the connection or timer concerned was closed or skipped. */
  internalErrors: number;
}

export interface BrokerOptions {
  limits?: Partial<BrokerLimits>;
  access?: Partial<AccessRules>;
  /** Per channel pattern: maximum deliveries and retention. */
  channels?: ChannelPolicy[];
  redelivery?: Partial<RedeliveryOptions>;
  logger: Logger;
  /** Told about every message in and out (metrics); front ends call `delivered` when they write one. */
  observer?: MessageObserver;
  /** Channels declared by AsyncAPI documents: publishes are checked against them. */
  validator?: PublishValidator;
  /** Refuse publishes and subscriptions on channels no document declares. */
  strict?: boolean;
  /** Told about client publishes on channels no document declares (the live document lists them). */
  traffic?: TrafficRecorder;
  /** Authentication and authorization; by default none (every client has every right), with `access` as rules. */
  admission?: Admission;
}

/**
 * The broker core: sessions, routing, retained messages and wills. Front ends call it with
 * protocol-neutral requests; all state it keeps across restarts goes through `Storage`.
 */
export class Broker {
  readonly limits: BrokerLimits;
  readonly access: AccessRules;
  /** Who clients are and what they may do: every front end asks it, through the broker. */
  readonly admission: Admission;
  readonly router = new Router();
  /** Indexed by client id in order, for the admin API's pages (core/admin). */
  readonly sessions = new IndexedMap<Session>();
  /** The broker's own `$SYS/…` retained messages, in memory only (see VolatileRetained). */
  readonly volatileRetained = new VolatileRetained();
  readonly groups: GroupRegistry;
  readonly channels: ChannelPolicies;
  readonly redelivery: Redelivery;
  readonly observer: MessageObserver | undefined;
  readonly validator: PublishValidator | undefined;
  readonly strict: boolean;
  private readonly checks: PublishChecks;
  /** SUBSCRIBE and UNSUBSCRIBE, for every front end (ClusterSync also applies other nodes' subscriptions with it). */
  readonly subscriptions: Subscriptions;
  /** The other broker nodes on a shared engine (`--cluster`); undefined on a single node. */
  readonly fabric: NodeFabric | undefined;
  private readonly cluster: ClusterSync | undefined;
  readonly stats: BrokerStats = {
    connections: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: { 'queue-full': 0, expired: 0, 'too-large': 0, congested: 0, 'offline-qos0': 0 },
    protocolErrors: {},
    refusedPublishes: {},
    invalidPublishes: 0,
    refusedConnections: 0,
    packetTimeouts: 0,
    inboundPauses: 0,
    inboundBytes: 0,
    retainedRefused: 0,
    throttledPublishers: 0,
    slowConsumers: 0,
    internalErrors: 0,
  };
  private readonly log: Logger;
  /** Logs and counts an exception a guarded callback caught (see util/guard.ts). */
  readonly reportInternalError: ErrorReporter = (where, err) => {
    this.stats.internalErrors++;
    this.log.error({ err, where }, 'internal error caught; the broker goes on');
  };
  /** Wills waiting out their MQTT 5 will delay, by client id. */
  private readonly wills = new KeyedTimers<WillMessage>(this.reportInternalError, 'will delay timer');
  /** Disconnected persistent sessions waiting out their session expiry, by client id. */
  private readonly expiries = new KeyedTimers<Session>(this.reportInternalError, 'session expiry timer');
  private readonly sessionHooks: SessionHooks = {
    dropped: (session: Session, reason: DropReason, message: Message): void => {
      this.stats.dropped[reason]++;
      if (reason === 'queue-full') this.logQueueFull(`subscriber ${session.clientId}`, message, session.queue.pendingCount, session.queue.pendingBytes);
    },
    failed: (session, delivery, reason) => this.redelivery.sessionFailed(session, delivery, reason),
    report: (where, err) => this.reportInternalError(where, err),
    congested: (session, message) => {
      const subscriber = session.link;
      if (!subscriber || subscriber.slow || message.origin === undefined) return;
      this.sessions.get(message.origin)?.link?.throttleFor?.(subscriber);
    },
  };
  private queueFullLogged = 0;
  private retainedFullLogged = 0;

  /** One line for the first time and then every 1000th, so a flood does not become a flood of logs. */
  private logQueueFull(owner: string, message: Message, waiting: number, bytes: number): void {
    if (this.queueFullLogged++ % 1000 !== 0) return;
    this.log.warn(
      { queue: owner, topic: showTopic(message.topic), waiting, bytes, maxQueued: this.limits.maxQueued, maxQueuedBytes: this.limits.maxQueuedBytes, times: this.queueFullLogged },
      'queue full',
    );
  }

  constructor(
    readonly storage: Storage,
    options: BrokerOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.access = { denySubscribe: [], denyPublish: [], ...options.access };
    this.log = options.logger;
    this.admission = options.admission ?? new Admission({ access: this.access }, this.log);
    this.observer = options.observer;
    this.validator = options.validator;
    this.strict = options.strict ?? false;
    this.checks = new PublishChecks(options.validator, this.strict, options.traffic, this.stats, this.log);
    this.channels = new ChannelPolicies(options.channels);
    this.redelivery = new Redelivery(
      this.channels,
      { ...DEFAULT_REDELIVERY, ...options.redelivery },
      (message, confirm) => this.publish(message, confirm),
      this.log,
      () => this.stats.dropped.expired++,
      this.reportInternalError,
    );
    this.groups = new GroupRegistry(storage, this.router, this.redelivery, this.log, (session, topic) => mayReceive(this, session.identity, topic));
    this.subscriptions = new Subscriptions(this, this.log);
    this.fabric = storage.fabric;
    this.cluster = this.fabric ? this.clusterSync(this.fabric) : undefined;
  }

  /** What ClusterSync may do to this broker's sessions when other nodes report changes. */
  private clusterSync(fabric: NodeFabric): ClusterSync {
    const disconnect = (session: Session, reasonCode: number, reason: string): void => {
      const link = session.link;
      if (!link) return;
      this.detachLink(session, { publishWill: true });
      // A new connection for the session was made (elsewhere): a delayed will is not owed (MQTT 5 §3.1.3.2.2).
      this.wills.cancel(session.clientId);
      link.close(reasonCode, reason);
    };
    return new ClusterSync(
      {
        fabric,
        sessions: this.sessions,
        subscriptions: this.subscriptions,
        newSession: (clientId, identity) => this.newSession(clientId, identity),
        restoredIdentity: (record) => this.restoredIdentity(record),
        disconnect,
        forget: (session) => {
          disconnect(session, Reason.SessionTakenOver, 'session taken over by a connection on another node');
          for (const filter of session.subscriptions.keys()) this.subscriptions.remove(session, filter);
          session.subscriptions.clear();
          session.queue.disown?.();
          if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
          this.expiries.cancel(session.clientId);
        },
        setExpiry: (session, ms) => {
          if (ms === undefined) this.expiries.cancel(session.clientId);
          else this.scheduleExpiry(session, Math.max(0, ms));
        },
        router: this.router,
        mayReceive: (session, topic) => mayReceive(this, session.identity, topic),
        resave: (session) => this.persist(this.storage.saveSession(sessionRecord(session)), session.clientId),
      },
      this.log,
    );
  }

  private restoredIdentity(record: { clientId: string; user?: string; authMethod?: Identity['method']; tokenAcl?: unknown[] }): Identity {
    const tokenAcl = record.tokenAcl ? parseAcl(record.tokenAcl, `the stored acl claim of ${record.clientId}`) : undefined;
    return this.admission.restored(record.clientId, record.user, record.authMethod ?? 'none', tokenAcl);
  }

  /** Restores persistent sessions and their subscriptions from storage. */
  async start(): Promise<void> {
    await this.storage.open({ channels: this.channels });
    await this.groups.restore();
    const now = Date.now();
    for (const record of await this.storage.loadSessions()) {
      const left = expiryLeftMs(record, now);
      // A session another node may hold with its client connected is not timed here (its record says when it is not).
      const connectedElsewhere = this.fabric !== undefined && record.disconnectedAt === undefined;
      // Alone, a record without a disconnect time is the previous process's, and its clock runs from
      // now. On a shared engine it may be a client connected to another node right now, whose
      // session (expiry 0 included) has not begun to expire: deleting it would cut that client off.
      if (left !== undefined && left <= 0 && !connectedElsewhere) {
        await this.storage.deleteSession(record.clientId);
        continue;
      }
      const session = this.newSession(record.clientId, this.restoredIdentity(record));
      // On a shared engine every stored session is held elsewhere at first, by its owner or by this node's previous process.
      if (this.fabric) session.heldBy = record.owner ?? 'unknown';
      session.expiryInterval = record.expiryInterval;
      session.disconnectedAt = record.disconnectedAt ?? now;
      for (const sub of record.subscriptions) this.subscriptions.add(session, sub);
      if (left !== undefined && !connectedElsewhere) this.scheduleExpiry(session, left);
    }
    await this.groups.settle();
    await this.cluster?.start();
  }

  async stop(): Promise<void> {
    // A delayed will still owed at shutdown is published now rather than lost.
    for (const will of this.wills.cancelAll()) this.publishWill(will);
    this.expiries.cancelAll();
    this.redelivery.stop();
    await this.storage.close();
  }

  /**
   * Attaches a new connection to the session for its client id: takes over a connected one,
   * resumes a persistent one, or starts afresh. Call `session.resume(link)` after CONNACK.
   */
  openSession(request: OpenSessionRequest, link: SessionLink): { session: Session; sessionPresent: boolean } {
    const { clientId } = request;
    let session = this.sessions.get(clientId);
    if (session?.link) {
      const old = session.link;
      this.detachLink(session, { publishWill: true });
      old.close(0x8e, 'session taken over by a new connection');
      // A session with expiry 0 ends with the connection just closed (3.1.1 [MQTT-3.1.2-6],
      // 5.0 §3.1.2.11.2): there is nothing left to resume, even with clean start 0.
      if (!session.persistent) {
        this.endSession(session);
        session = undefined;
      }
    }
    const pendingWill = this.wills.cancel(clientId);
    // Reconnecting within the will delay cancels the will, unless the old session ends now.
    if (pendingWill && request.cleanStart) this.publishWill(pendingWill);
    this.expiries.cancel(clientId);

    // A session belongs to its user: another user with the same client id starts afresh rather than
    // inherit what was queued for (and authorized to) someone else.
    const otherUser = session !== undefined && session.identity.user !== request.identity.user;
    const sessionPresent = session !== undefined && !request.cleanStart && !otherUser;
    if (session && (request.cleanStart || otherUser)) {
      this.endSession(session);
      session = undefined;
    }
    session ??= this.newSession(clientId, request.identity);
    if (session.heldBy !== undefined) {
      // Held by another node (or this node's previous process): this node holds it now. The other
      // node sees the saved record and closes its connection with 0x8E.
      session.heldBy = undefined;
      session.queue.claim?.();
    }
    session.identity = request.identity;
    session.expiryInterval = Math.min(request.expiryInterval, this.limits.maxSessionExpiry);
    session.will = request.will;
    session.link = link;
    // With other nodes, every session is saved (its owner), so that a connection elsewhere takes it over.
    if (session.persistent || this.fabric) this.persist(this.storage.saveSession(sessionRecord(session)), session.clientId);
    if (session.persistent) session.queue.listen?.(true);
    this.stats.connections++;
    return { session, sessionPresent };
  }

  /**
   * The connection behind `link` is gone. `publishWill` is false after a normal DISCONNECT;
   * `expiryInterval` is the value a DISCONNECT may set.
   */
  closeSession(session: Session, link: SessionLink, options: { publishWill: boolean; expiryInterval?: number }): void {
    if (session.link !== link) return; // already taken over
    if (options.expiryInterval !== undefined) {
      session.expiryInterval = Math.min(options.expiryInterval, this.limits.maxSessionExpiry);
    }
    this.detachLink(session, { publishWill: options.publishWill });
    session.queue.listen?.(false);
    if (!session.persistent) {
      this.endSession(session);
      return;
    }
    const record = sessionRecord(session);
    record.disconnectedAt = Date.now();
    this.persist(this.storage.saveSession(record), session.clientId);
    if (session.expiryInterval !== NEVER_EXPIRES) this.scheduleExpiry(session, session.expiryInterval * 1000);
  }

  /**
   * Routes a message and stores it, with the durable queues it goes to, when it needs storing
   * (QoS 1/2, or retained). `confirm` is called once the message counts as accepted, or with the
   * error that kept it from being stored; subscribers see a stored message only after that, so
   * nothing is delivered that a crash could take back. The publisher is confirmed first, as
   * Mosquitto does.
   */
  publish(message: Message, confirm?: (err?: Error) => void): void {
    this.stats.messagesIn++;
    this.observer?.published(message);
    if (message.retain && message.payload.length > 0) {
      const full = this.retainedFull(message);
      if (full && message.qos > 0) return confirm?.(new StorageError('EDDY_RETAINED_FULL', full));
      // At most once cannot be refused: the message is delivered, but not kept as the retained one.
      if (full) message.retain = false;
    }
    const routed = this.router.route(message.topic, message.origin);
    // The right to receive is checked for every delivery, whatever filter matched (design note:
    // `subscribe` is the right to receive those topics): a wildcard cannot reach a denied topic.
    let targets = routed.targets.filter((t) => mayReceive(this, t.session.identity, message.topic));
    const groups = routed.groups.filter((g) => g.pinned || g.anyMemberMayReceive(message.topic));
    // Sessions other nodes hold get only durable deliveries from here (queue entries their holder reads).
    let elsewhere: Target[] | undefined;
    if (this.fabric && targets.some((t) => t.session.heldBy !== undefined)) {
      elsewhere = targets.filter((t) => t.session.heldBy !== undefined);
      targets = targets.filter((t) => t.session.heldBy === undefined);
    }
    if (message.qos === 0 && !message.retain && !this.channels.for(message.topic).retention) {
      this.accept(message, targets, groups);
      confirm?.();
      return;
    }
    const deliveries: DurableDelivery[] = [];
    const covered = this.fabric ? { sessions: new Set<string>(), groups: new Set<string>() } : undefined;
    for (const target of elsewhere ?? []) {
      const qos = effectiveQos(message, target.qos);
      if (qos === 0 || !target.session.persistent) continue;
      // Its holder counts and bounds its queue: this node cannot (the holder reads entries from every node).
      deliveries.push({ queueId: target.session.queue.id, qos, retain: target.retainAsPublished && message.retain, subscriptionIds: target.subscriptionIds });
      covered!.sessions.add(target.session.clientId);
    }
    for (const target of targets) {
      const qos = effectiveQos(message, target.qos);
      if (qos === 0) continue;
      const session = target.session;
      // A clean session's queue is not named: what waits for it, past its memory window, goes to its
      // own spill file (disk engine), so a stalled clean subscriber keeps no shared log segment alive.
      if (!session.persistent) continue;
      if (!this.hasQueueRoom(session.queue, `subscriber ${session.clientId}`, message, confirm)) return;
      deliveries.push({ queueId: session.queue.id, qos, retain: target.retainAsPublished && message.retain, subscriptionIds: target.subscriptionIds });
      target.durable = true;
      covered?.sessions.add(session.clientId);
    }
    for (const group of groups) {
      if (effectiveQos(message, group.maxQos) === 0) continue;
      if (!this.hasQueueRoom(group.queue, `group ${group.name}`, message, confirm)) return;
      if (group.durable) {
        deliveries.push({ queueId: group.queue.id, qos: effectiveQos(message, group.maxQos), retain: false });
        covered?.groups.add(group.name);
      }
    }
    let stored: Promise<void> | void;
    try {
      stored = this.storage.append(message, deliveries);
    } catch (err) {
      confirm?.(err as Error);
      return;
    }
    if (stored && message.qos > 0) {
      stored.then(
        () => {
          confirm?.();
          this.accept(message, targets, groups, covered);
        },
        (err: Error) => confirm?.(err),
      );
      return;
    }
    // At-most-once messages (retained, or kept as history) are stored, but not waited for.
    stored?.catch((err: Error) => this.log.error({ topic: message.topic, err: err.message }, 'QoS 0 message not stored'));
    confirm?.();
    this.accept(message, targets, groups, covered);
  }

  /**
   * Checks a client's publish against the declared channels; undefined when it may go on. The front
   * end refuses it (MQTT 5 0x99, HTTP 422) or, where the protocol cannot refuse, calls publishInvalid.
   */
  checkPublish(message: Message): PublishRefusal | undefined {
    return this.checks.check(message);
  }

  /** A message that failed validation but could not be refused (MQTT 3.1.1, QoS 0): kept on `$DLQ/invalid/<topic>`, not delivered. */
  publishInvalid(message: Message, refusal: PublishRefusal): void {
    this.publish(invalidLetter(message, refusal), (err) => {
      if (err) this.log.error({ topic: message.topic, err: err.message }, 'invalid message not kept on $DLQ/invalid');
    });
  }

  /** Publishes and resolves once the message is stored and accepted (for the broker's own publishes: redrive, HTTP). */
  publishConfirmed(message: Message): Promise<void> {
    return new Promise((resolve, reject) => this.publish(message, (err) => (err ? reject(err) : resolve())));
  }

  /** The broker-owned consumer group on `$DLQ/#` that keeps dead letters until redriven or consumed. */
  get deadLetters(): ConsumerGroup {
    return this.groups.deadLetters;
  }

  /** Why a new retained message would exceed `maxRetained` or `maxRetainedBytes`; undefined when it fits. */
  private retainedFull(message: Message): string | undefined {
    const replaced = this.storage.retainedSize(message.topic);
    const count = this.storage.retainedCount + (replaced === undefined ? 1 : 0);
    const bytes = this.storage.retainedBytes - (replaced ?? 0) + message.payload.length;
    let why: string | undefined;
    if (count > this.limits.maxRetained) why = `${this.storage.retainedCount} retained messages are kept (maxRetained ${this.limits.maxRetained})`;
    else if (bytes > this.limits.maxRetainedBytes) why = `retained messages would hold ${bytes} bytes (maxRetainedBytes ${this.limits.maxRetainedBytes})`;
    if (!why) return undefined;
    this.stats.retainedRefused++;
    if (this.retainedFullLogged++ % 1000 === 0) this.log.warn({ topic: showTopic(message.topic), qos: message.qos, times: this.retainedFullLogged }, `retained message not kept: ${why}`);
    return `${showTopic(message.topic)}: not kept as retained: ${why}`;
  }

  /**
   * A QoS>0 publish bound for a full queue (by count, `maxQueued`, or payload bytes, `maxQueuedBytes`)
   * is refused rather than stored for a consumer that could never get it.
   */
  private hasQueueRoom(queue: SessionQueue, owner: string, message: Message, confirm: ((err?: Error) => void) | undefined): boolean {
    if (message.qos === 0) return true;
    const waiting = queue.pendingCount;
    const bytes = queue.pendingBytes;
    if (waiting < this.limits.maxQueued && bytes + message.payload.length <= this.limits.maxQueuedBytes) return true;
    this.stats.dropped['queue-full']++;
    this.logQueueFull(owner, message, waiting, bytes);
    const why = waiting >= this.limits.maxQueued ? `holds ${waiting} messages (maxQueued ${this.limits.maxQueued})` : `holds ${bytes} bytes (maxQueuedBytes ${this.limits.maxQueuedBytes})`;
    confirm?.(new StorageError('EDDY_QUEUE_FULL', `${showTopic(message.topic)}: not accepted: the queue of ${owner} ${why}`));
    return false;
  }

  /**
   * A session change stored in the background: the broker keeps the session in memory either
   * way, so a failure (disk full) is logged, not thrown.
   */
  private persist(stored: Promise<void> | void, clientId: string): void {
    stored?.catch((err: Error) => this.log.error({ clientId, err: err.message }, 'session change not stored'));
  }

  private accept(message: Message, targets: Target[], groups: ConsumerGroup[], covered?: { sessions: Set<string>; groups: Set<string> }): void {
    for (const target of targets) {
      target.session.deliver(message, effectiveQos(message, target.qos), target.retainAsPublished && message.retain, target.subscriptionIds, target.durable);
    }
    for (const group of groups) {
      const qos = effectiveQos(message, group.maxQos);
      const durable = qos > 0 && group.durable;
      // Shared by nodes: a durable group's entry reaches the members of every node through its queue,
      // each entry read by one node; pushing it here too would deliver it twice.
      if (durable && this.fabric) continue;
      if (this.fabric && !group.hasLocalMember) continue; // the nodes with members deliver it
      if (qos === 0 && (group.queue.pendingCount >= this.limits.maxQueued || group.queue.pendingBytes + message.payload.length > this.limits.maxQueuedBytes)) {
        this.stats.dropped['queue-full']++;
        continue;
      }
      group.push({ message, qos, retain: false }, durable);
      covered?.groups.add(group.name);
    }
    if (this.fabric) this.fabric.broadcast(message, covered ?? { sessions: new Set(), groups: new Set(groups.filter((g) => g.hasLocalMember).map((g) => g.name)) });
  }

  private publishWill(will: WillMessage): void {
    const now = Date.now();
    const message: Message = { ...will.message, publishedAt: now };
    if (will.expirySeconds !== undefined) message.expiresAt = now + will.expirySeconds * 1000;
    this.publish(message);
  }

  /**
   * After the security files were reloaded: every session's rights are compiled again (what a client
   * may receive changes at once), and a client whose credentials were revoked (a password-file user
   * that is gone) is disconnected with 0x87.
   */
  refreshIdentities(): void {
    for (const session of this.sessions.values()) {
      if (this.admission.refresh(session.identity)) continue;
      this.log.info({ clientId: session.clientId, user: session.identity.user }, 'credentials revoked by a reload: disconnecting');
      session.link?.close(Reason.NotAuthorized, 'not authorized: the credentials were revoked');
    }
  }

  /** Why a client's topic name or filter is beyond the broker's limits (levels, bytes); undefined when within them. */
  topicOverLimits(topic: string): string | undefined {
    return topicOverLimits(topic, this.limits);
  }

  /**
   * Whether a client's message may be published, and why not: the one path every front end calls
   * (MQTT publishes, wills, HTTP publishes), in the pipeline's order: topic limits, then the
   * broker's own topics and the ACL, then rate quotas, then the AsyncAPI documents.
   */
  admitPublish(identity: Identity, message: Message, options: { topicOnly?: boolean } = {}): PublishAdmissionRefusal | undefined {
    const topic = message.topic;
    const overLimits = this.topicOverLimits(topic);
    if (overLimits) return { kind: 'topic', reason: `${showTopic(topic)}: ${overLimits}` };
    const denied = this.admission.publishDenied(identity, topic);
    if (denied) return { kind: 'not-authorized', reason: `${showTopic(topic)}: ${denied}` };
    const secured = identityRefusal(this.validator?.requiredIdentity(topic, 'send'), identity.method, 'send');
    if (secured) return { kind: 'not-authorized', reason: `${showTopic(topic)}: ${secured}`, unauthenticated: identity.method === 'anonymous' };
    // A front end may ask about the topic alone before it has the message (HTTP, before reading the body).
    if (options.topicOnly) return undefined;
    const rate = this.admission.rateDenied(identity, message.payload.length);
    if (rate) return { kind: 'rate', reason: `${showTopic(topic)}: ${rate}` };
    return this.checkPublish(message);
  }

  /**
   * Adds subscriptions; returns one MQTT 5 reason code (granted QoS or failure) per request,
   * `stored` (a promise while the change is not yet durable: answer SUBACK after it), and
   * `afterSuback`, which the front end calls after it has written the SUBACK.
   */
  subscribe(session: Session, requests: SubscribeRequest[], replay?: ReplayStart): SubscribeOutcome {
    return this.subscriptions.subscribe(session, requests, replay);
  }

  /** Removes subscriptions; returns 0x00 or 0x11 (no subscription existed) per filter, and `stored` as for subscribe. */
  unsubscribe(session: Session, filters: string[]): { codes: number[]; stored: Promise<void> | void } {
    return this.subscriptions.unsubscribe(session, filters);
  }

  private newSession(clientId: string, identity: Identity): Session {
    const session = new Session(clientId, this.storage.queue(clientId), this.limits, this.sessionHooks);
    session.identity = identity;
    this.sessions.set(clientId, session);
    return session;
  }

  private detachLink(session: Session, options: { publishWill: boolean }): void {
    session.detach();
    this.stats.connections--;
    const will = session.will;
    session.will = undefined;
    if (!will || !options.publishWill) return;
    const delay = Math.min(will.delaySeconds, session.expiryInterval);
    if (delay === 0) {
      this.publishWill(will);
      return;
    }
    this.wills.set(session.clientId, will, delay * 1000, (w) => this.publishWill(w));
  }

  private endSession(session: Session): void {
    for (const filter of session.subscriptions.keys()) this.subscriptions.remove(session, filter);
    session.subscriptions.clear();
    this.sessions.delete(session.clientId);
    this.expiries.cancel(session.clientId);
    this.persist(this.storage.deleteSession(session.clientId), session.clientId);
  }

  /**
   * Ends a session now, as its expiry would (the admin API): a connected client is disconnected with
   * `reasonCode` first, a will still owed is published, and its subscriptions and queue go. False
   * when no session has this client id.
   */
  endSessionNow(clientId: string, reasonCode: number, reason: string): boolean {
    const session = this.sessions.get(clientId);
    if (!session) return false;
    const link = session.link;
    link?.close(reasonCode, reason);
    // A link that did not detach while closing is detached here, so its late close finds nothing to save.
    if (link && session.link === link) this.closeSession(session, link, { publishWill: true });
    if (this.sessions.get(clientId) !== session) return true; // a clean session ended with its connection
    const will = this.wills.cancel(clientId);
    if (will) this.publishWill(will);
    this.endSession(session);
    return true;
  }

  private scheduleExpiry(session: Session, ms: number): void {
    this.expiries.set(session.clientId, session, ms, (expired) => {
      if (expired.connected || this.sessions.get(expired.clientId) !== expired) return;
      const will = this.wills.cancel(expired.clientId);
      if (will) this.publishWill(will);
      this.endSession(expired);
    });
  }

}

