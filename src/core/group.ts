import { isExpired, type QoS } from './message.js';
import type { Session } from './session.js';
import { RateMeter } from './admin/rate.js';
import type { InflightDelivery, QueuedDelivery, SessionQueue, SubscriptionOptions } from './storage.js';

/** Whether a session may receive a message of `topic` (the ACL); a group hands each message only to members that may. */
export type ReceiveCheck = (session: Session, topic: string) => boolean;

/** What a group needs from the broker when a delivery fails: retry later, or dead-letter it. */
export interface DeliveryFailureHandler {
  /** A member refused the delivery (nack) or left with it in flight; the handler holds it and requeues it later. */
  failed(group: ConsumerGroup, delivery: QueuedDelivery, reason: string, retryNow: boolean): void;
  expired(group: ConsumerGroup, delivery: QueuedDelivery): void;
}

/**
 * A consumer group, `$share/{group}/{filter}`: one queue that the group owns, whatever members come
 * and go. Each message goes to one connected member at a time, in turn among those with room in
 * their window; what is in flight to a member that leaves goes back to the front of the queue
 * for another member. With no member connected, the queue keeps filling (durably, when a member
 * has a persistent session).
 */
export class ConsumerGroup {
  readonly members = new Map<Session, SubscriptionOptions>();
  /** `members` as an array for round-robin, rebuilt only when membership changes (not per message). */
  private memberList: Array<[Session, SubscriptionOptions]> = [];
  /** Round-robin position among members. */
  private cursor = 0;
  private nextTag = 1;
  /** Set for groups the broker owns (the dead-letter group): they live on without members. */
  pinned = false;
  /** True once storage keeps this group's queue across restarts. */
  saved = false;
  /** Deliveries handed to members, with their rate (the admin API's groups). */
  readonly deliveries = new RateMeter();
  /** Whether the queue reads new entries for members on this node (queues shared by nodes; see membersChanged). */
  private listening = false;

  constructor(
    /** `$share/{group}/{filter}` */
    readonly name: string,
    readonly filter: string,
    readonly queue: SessionQueue,
    private readonly failures: DeliveryFailureHandler,
    private readonly mayReceive: ReceiveCheck = () => true,
  ) {
    // A durable queue wakes the group once what it read from storage is ready (the engine guards the call).
    queue.wake = () => this.dispatch();
  }

  /** Deliveries to this group are stored with the message when a member session is persistent. */
  get durable(): boolean {
    if (this.pinned) return true;
    for (const session of this.members.keys()) if (session.persistent) return true;
    return false;
  }

  /** Highest QoS any member subscribed with: the QoS the group's copy is queued at. */
  get maxQos(): QoS {
    let qos: QoS = 0;
    for (const options of this.members.values()) if (options.qos > qos) qos = options.qos;
    return this.pinned ? 2 : qos;
  }

  push(delivery: QueuedDelivery, durable: boolean): void {
    this.queue.push(delivery, durable);
    this.dispatch();
  }

  /** True when some member may receive a message of this topic: otherwise the group does not take it. */
  anyMemberMayReceive(topic: string): boolean {
    for (const session of this.members.keys()) if (this.mayReceive(session, topic)) return true;
    return false;
  }

  /**
   * Sends pending deliveries to connected members with room, in turn, each to a member that may
   * receive its topic; the head waits when no such member has room.
   */
  dispatch(): void {
    const members = this.memberList;
    if (members.length === 0) return;
    const now = Date.now();
    while (this.queue.pendingCount > 0) {
      if (!members.some(([session]) => session.hasRoom())) return;
      const delivery = this.queue.shift();
      if (!delivery) return;
      if (isExpired(delivery.message, now)) {
        this.failures.expired(this, delivery);
        continue;
      }
      const topic = delivery.message.topic;
      const member = this.nextMemberWithRoom(members, (session) => this.mayReceive(session, topic));
      if (!member) {
        this.queue.unshift(delivery);
        return;
      }
      this.sendTo(member[0], member[1], delivery);
      this.deliveries.mark(now);
    }
  }

  /** A member acknowledged (PUBACK, PUBREC or PUBCOMP) the delivery with this tag. */
  acknowledged(tag: number): void {
    this.queue.deleteInflight(tag);
    this.dispatch();
  }

  /** A member refused the delivery (MQTT 5 PUBACK/PUBREC reason >= 0x80): retry after a backoff, or dead-letter. */
  rejected(tag: number, reason: string): void {
    const entry = this.take(tag);
    if (entry) this.failures.failed(this, entry, reason, false);
    this.dispatch();
  }

  /** The member holding this delivery left (disconnect or unsubscribe): it goes to another member. */
  returned(tag: number): void {
    const entry = this.take(tag);
    if (entry) this.failures.failed(this, entry, 'the member it was sent to disconnected before acknowledging it', true);
  }

  /** Puts a delivery back at the front (after a return or a backoff) and sends it on. */
  requeue(delivery: QueuedDelivery): void {
    this.queue.unshift(delivery);
    // A shared queue with no member here hands it back at once, for the members on other nodes.
    if (this.queue.listen && !this.listening) this.queue.disown?.();
    this.dispatch();
  }

  addMember(session: Session, options: SubscriptionOptions): void {
    this.members.set(session, options);
    this.memberList = [...this.members];
    this.membersChanged();
    this.dispatch();
  }

  removeMember(session: Session): void {
    this.members.delete(session);
    this.memberList = [...this.members];
    session.leaveGroup(this);
    this.membersChanged();
  }

  /** True when a member is connected to this node (members held by other nodes are only known, not sent to). */
  get hasLocalMember(): boolean {
    for (const session of this.members.keys()) if (session.connected) return true;
    return false;
  }

  /**
   * A member connected or left here. A queue shared by several nodes is read on each node with a
   * member connected, and handed back by a node whose last connected member went.
   */
  membersChanged(): void {
    if (!this.queue.listen) return;
    let remote = false;
    for (const session of this.members.keys()) if (session.heldBy !== undefined) remote = true;
    this.queue.soleReader?.(!remote);
    const want = this.hasLocalMember;
    if (want === this.listening) return;
    this.listening = want;
    if (want) this.queue.listen(true);
    else this.queue.disown?.();
  }

  private take(tag: number): QueuedDelivery | undefined {
    const entry = this.queue.inflight.get(tag);
    if (!entry) return undefined;
    this.queue.deleteInflight(tag);
    const { packetId: _tag, released: _released, ...delivery } = entry;
    return delivery;
  }

  private sendTo(session: Session, options: SubscriptionOptions, delivery: QueuedDelivery): void {
    const qos = (delivery.message.qos < options.qos ? delivery.message.qos : options.qos) as QoS;
    const sent: QueuedDelivery = {
      message: delivery.message,
      qos,
      retain: false,
      subscriptionIds: options.subscriptionId === undefined ? undefined : [options.subscriptionId],
      deliveryCount: (delivery.deliveryCount ?? 0) + 1,
    };
    if (qos === 0) {
      // At most once: the group's job ends when it is written.
      session.sendForGroup(this, sent, undefined);
      return;
    }
    const tag = this.nextTag++;
    const entry: InflightDelivery = { ...delivery, deliveryCount: sent.deliveryCount, packetId: tag, released: false };
    this.queue.setInflight(entry);
    if (!session.sendForGroup(this, sent, tag)) this.queue.deleteInflight(tag);
  }

  private nextMemberWithRoom(members: Array<[Session, SubscriptionOptions]>, may: (session: Session) => boolean): [Session, SubscriptionOptions] | undefined {
    for (let i = 0; i < members.length; i++) {
      const candidate = members[(this.cursor + i) % members.length]!;
      if (candidate[0].hasRoom() && may(candidate[0])) {
        this.cursor = (this.cursor + i + 1) % members.length;
        return candidate;
      }
    }
    return undefined;
  }
}
