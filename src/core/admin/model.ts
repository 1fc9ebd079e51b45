import type { Broker } from '../broker.js';
import type { SessionQueue } from '../storage.js';
import type { ChannelStats } from './channel-stats.js';
import { ChannelsAdmin, type DeclaredChannels } from './channels.js';
import { ClientsAdmin } from './clients.js';
import { DeadLettersAdmin } from './dead-letters.js';
import { GroupsAdmin } from './groups.js';
import type { LatencyHistograms } from './percentiles.js';
import { RetainedAdmin } from './retained.js';
import { StatsSampler } from './stats.js';
import { listSubscriptions, type SubscriptionQuery } from './subscriptions.js';
import { DEFAULT_SYS_INTERVAL_SECONDS, SysTopics } from './sys-topics.js';
import type { ClusterDisabledView, ClusterView, InferredChannel, Page, SubscriptionView } from './views.js';

export interface AdminModelOptions {
  /** The per-topic traffic recorder, which the broker was given as an observer. */
  channels: ChannelStats;
  /** The AsyncAPI documents' channels in force now (they change on reload). */
  declared?: () => DeclaredChannels | undefined;
  /** The schema inferred from an undeclared channel's payloads. */
  inferred?: (topic: string) => InferredChannel | undefined;
  /** The metrics histograms, for the live stats' latency percentiles. */
  latency?: () => LatencyHistograms;
  version: string;
  /** Seconds between `$SYS` rounds; 0 turns them off. */
  sysInterval?: number;
}

/** Sums over queues of one kind (sessions or consumer groups), for /metrics. */
export interface QueueTotals {
  waiting: number;
  inflight: number;
  waitingBytes: number;
}

/**
 * The admin read and write model: plain data views of the broker's clients, sessions,
 * subscriptions, groups, channels, retained messages and dead letters, paged in a stable order,
 * and the operations an operator performs on them. Every front end (the HTTP admin routes, the
 * console built on them, /healthz and /metrics) asks this rather than the broker's own maps.
 */
export class AdminModel {
  readonly clients: ClientsAdmin;
  readonly groups: GroupsAdmin;
  readonly channels: ChannelsAdmin;
  readonly retained: RetainedAdmin;
  readonly deadLetters: DeadLettersAdmin;
  readonly stats: StatsSampler;
  readonly sys: SysTopics;

  constructor(
    private readonly broker: Broker,
    options: AdminModelOptions,
  ) {
    this.clients = new ClientsAdmin(broker);
    this.groups = new GroupsAdmin(broker);
    this.channels = new ChannelsAdmin(broker, options.channels, { declared: options.declared ?? (() => undefined), inferred: options.inferred ?? (() => undefined) });
    this.retained = new RetainedAdmin(broker, options.channels);
    this.deadLetters = new DeadLettersAdmin(broker);
    this.stats = new StatsSampler(broker, options.channels, options.latency, options.version);
    this.sys = new SysTopics(broker, this.stats, (options.sysInterval ?? DEFAULT_SYS_INTERVAL_SECONDS) * 1000);
  }

  /** Starts sampling and the `$SYS` rounds; call once the broker has started. */
  start(): void {
    this.stats.start();
    this.sys.start();
  }

  stop(): void {
    this.sys.stop();
    this.stats.stop();
  }

  subscriptions(query: SubscriptionQuery): Page<SubscriptionView> {
    return listSubscriptions(this.broker, query);
  }

  /** What `GET /healthz` answers (the HTTP listener adds its own connection counters as `http`). */
  health(): Record<string, unknown> {
    const broker = this.broker;
    const groups: Record<string, { members: number; waiting: number; inflight: number; retrying: number }> = {};
    for (const g of broker.groups.values()) groups[g.name] = { members: g.members.size, waiting: g.queue.pendingCount, inflight: g.queue.inflight.size, retrying: g.queue.held.size };
    const connection = broker.storage.connectionStatus?.();
    return {
      // The node serves either way; `degraded`: its storage cluster is unreachable, durable publishes are refused.
      status: connection && connection.state !== 'connected' ? 'degraded' : 'ok',
      storage: broker.storage.kind,
      ...(connection ? { storageConnection: connection } : {}),
      sessions: broker.sessions.size,
      subscriptions: broker.router.subscriptionCount,
      groups,
      ...broker.stats,
      ...broker.redelivery.stats,
      auth: broker.admission.stats,
    };
  }

  /**
   * The cluster this node is part of (`GET /v1/admin/cluster`): its nodes and replicated streams, or
   * `{enabled: false}` on an engine of its own (memory, disk), an answer rather than a 404: the
   * route exists on every node, the feature is what is absent (as `latency: null` in the stats).
   */
  cluster(): Promise<ClusterView | ClusterDisabledView> {
    return this.broker.storage.clusterView?.() ?? Promise.resolve({ enabled: false, storage: this.broker.storage.kind });
  }

  /** `/healthz` `cluster`, on a shared engine only; undefined elsewhere (no promise: /healthz then stays synchronous). */
  clusterHealth(): Promise<ClusterView> | undefined {
    return this.broker.storage.clusterView?.();
  }

  /** Sessions in all (connected, or persistent and offline). */
  get sessionCount(): number {
    return this.broker.sessions.size;
  }

  /** Waiting and in-flight deliveries summed over session queues and over group queues. */
  queueTotals(): { session: QueueTotals; group: QueueTotals } {
    const add = (totals: QueueTotals, q: SessionQueue): void => {
      totals.waiting += q.pendingCount;
      totals.inflight += q.inflight.size;
      totals.waitingBytes += q.pendingBytes;
    };
    const session: QueueTotals = { waiting: 0, inflight: 0, waitingBytes: 0 };
    const group: QueueTotals = { waiting: 0, inflight: 0, waitingBytes: 0 };
    for (const s of this.broker.sessions.values()) add(session, s.queue);
    for (const g of this.broker.groups.values()) add(group, g.queue);
    return { session, group };
  }
}
