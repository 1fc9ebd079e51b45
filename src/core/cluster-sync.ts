import type { Logger } from '../util/logger.js';
import type { Identity } from './admission/index.js';
import type { CoveredDeliveries, FabricHandlers, NodeFabric } from './fabric.js';
import type { Message } from './message.js';
import type { Session } from './session.js';
import type { SessionRecord } from './storage.js';
import type { Subscriptions } from './subscriptions.js';
import { expiryLeftMs } from './session-record.js';
import { Reason } from './reasons.js';
import type { Router } from './router.js';
import { effectiveQos } from './qos.js';

/** What ClusterSync changes in the broker (Broker passes these; they stay private to the core). */
export interface ClusterSyncHost {
  readonly fabric: NodeFabric;
  readonly sessions: { get(clientId: string): Session | undefined };
  readonly subscriptions: Subscriptions;
  newSession(clientId: string, identity: Identity): Session;
  restoredIdentity(record: SessionRecord): Identity;
  /** Closes a connected session's client with `reasonCode` (its will as for a takeover), without storing anything. */
  disconnect(session: Session, reasonCode: number, reason: string): void;
  /** Removes a session from this node only: routes, groups, timers (the other node owns its record). */
  forget(session: Session): void;
  /** Schedules (ms) or cancels (undefined) the session's expiry on this node. */
  setExpiry(session: Session, ms: number | undefined): void;
  readonly router: Router;
  mayReceive(session: Session, topic: string): boolean;
  /** Saves a session this node holds again (its record, with this node as the owner). */
  resave(session: Session): void;
}

/**
 * Applies what the other broker nodes on a shared engine report (core/fabric.ts): their messages go
 * to this node's connected subscribers; their sessions become sessions this node routes to but does
 * not deliver (`heldBy`); a session this node holds that another node saved was taken over there, so
 * its client here is closed with 0x8E, as a second connection on one node would close it.
 */
export class ClusterSync {
  constructor(
    private readonly host: ClusterSyncHost,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const handlers: FabricHandlers = {
      message: (message, covered) => this.acceptFromNode(message, covered),
      sessionSaved: (record) => this.sessionSaved(record),
      sessionDeleted: (clientId) => {
        const session = this.host.sessions.get(clientId);
        if (session) this.host.forget(session);
      },
    };
    await this.host.fabric.start(handlers);
  }

  /**
   * A message another node accepted: delivered to this node's connected subscribers that its
   * publisher did not cover (their queue got an entry, or the group took it there). Never stored
   * again, never sent on to other nodes.
   */
  private acceptFromNode(message: Message, covered: CoveredDeliveries): void {
    const routed = this.host.router.route(message.topic, message.origin);
    for (const target of routed.targets) {
      const session = target.session;
      if (session.heldBy !== undefined || covered.sessions.has(session.clientId) || !this.host.mayReceive(session, message.topic)) continue;
      session.deliver(message, effectiveQos(message, target.qos), target.retainAsPublished && message.retain, target.subscriptionIds, false);
    }
    for (const group of routed.groups) {
      if (covered.groups.has(group.name) || !group.hasLocalMember || !group.anyMemberMayReceive(message.topic)) continue;
      group.push({ message, qos: effectiveQos(message, group.maxQos), retain: false }, false);
    }
  }

  private sessionSaved(record: SessionRecord): void {
    let session = this.host.sessions.get(record.clientId);
    if (record.expiryInterval === 0) {
      // A session that ends with its connection, on another node: nothing to route to from here, and
      // a client of that id here was taken over.
      if (session) this.host.forget(session);
      return;
    }
    if (session && session.heldBy === undefined && session.link && record.disconnectedAt !== undefined) {
      // The node this client left (drained, or its connection dropped) saved it as disconnected after
      // the client was already here: not a takeover. This node says again that it holds the session.
      this.host.resave(session);
      return;
    }
    if (session && session.heldBy === undefined) {
      this.log.info({ clientId: record.clientId, node: record.owner }, 'cluster: session taken over by another node');
      if (session.link) this.host.disconnect(session, Reason.SessionTakenOver, 'session taken over by a connection on another node');
      session.queue.disown?.();
    }
    session ??= this.host.newSession(record.clientId, this.host.restoredIdentity(record));
    const wasHere = session.heldBy === undefined;
    session.heldBy = record.owner ?? 'unknown';
    session.expiryInterval = record.expiryInterval;
    const wanted = new Map(record.subscriptions.map((s) => [s.filter, s]));
    for (const filter of [...session.subscriptions.keys()]) {
      if (wanted.has(filter)) continue;
      session.subscriptions.delete(filter);
      this.host.subscriptions.remove(session, filter);
    }
    for (const sub of record.subscriptions) {
      const have = session.subscriptions.get(sub.filter);
      if (!have || JSON.stringify(have) !== JSON.stringify(sub)) this.host.subscriptions.add(session, sub);
    }
    // Its groups are read by another node now too.
    if (wasHere) for (const group of session.groups) group.membersChanged();
    // Every node times an offline session's expiry: its holder may be gone for good.
    this.host.setExpiry(session, record.disconnectedAt === undefined ? undefined : expiryLeftMs(record, Date.now()));
  }
}
