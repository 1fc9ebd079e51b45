import { isExpired, type Message, type QoS } from './message.js';
import type { ConsumerGroup } from './group.js';
import type { ReplayRun } from './replay.js';
import type { Identity } from './admission/identity.js';
import type { LinkStats } from './admin/link-stats.js';
import { guarded, type ErrorReporter } from '../util/guard.js';
import type { InflightDelivery, QueuedDelivery, SessionQueue, SubscriptionOptions, SubscriptionRecord } from './storage.js';

/**
 * What a protocol front end provides for a connected session. The core hands it deliveries;
 * the front end owns encoding, topic aliases and the socket.
 */
export interface SessionLink {
  readonly protocolVersion: number;
  /** The client's Receive Maximum: how many QoS>0 deliveries it accepts unacknowledged. */
  readonly receiveMaximum: number;
  /**
   * Writes a PUBLISH. Returns false when the client cannot take it at all (larger than its
   * Maximum Packet Size): the message is then discarded for this client, as MQTT 5 §3.1.2.11.4 says.
   */
  sendPublish(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): boolean;
  sendPubrel(packetId: number): void;
  /**
   * True while the client has more than `maxOutboundBytes` written to it and unread: QoS 0 is then
   * dropped and QoS>0 waits in the queue. The front end calls `session.drain()` once it has room again.
   */
  readonly congested: boolean;
  /** Ends the connection from the broker's side (takeover, shutdown). */
  close(reasonCode: number, reason: string): void;
  /**
   * Publisher side: stop reading from this client until `behind` (a subscriber its messages went to,
   * now congested) has drained, or for at most a second. TCP then slows the publisher down to what
   * its subscribers take, instead of the broker dropping or buffering without end. Optional: a
   * front end without a way to pause its client leaves it out.
   */
  throttleFor?(behind: SessionLink): void;
  /** Subscriber side: calls `callback` once, when this link has drained its backlog or closed. */
  whenDrained?(callback: () => void): void;
  /** Set once throttling for this congested link timed out: it is a slow consumer and throttles no one until it drains. */
  slow?: boolean;
  /** The connection's counters (messages, bytes, keep-alive), for the admin API. */
  readonly stats?: LinkStats;
}

export interface WillMessage {
  message: Message;
  delaySeconds: number;
  /** MQTT 5 message expiry of the will; it counts from when the will is published. */
  expirySeconds: number | undefined;
}

export interface SessionLimits {
  maxInflight: number;
  maxQueued: number;
  maxQueuedBytes: number;
  maxOutboundBytes: number;
}

export type DropReason = 'queue-full' | 'expired' | 'too-large' | 'congested' | 'offline-qos0';

/** What a session reports to the broker. */
export interface SessionHooks {
  /** A message was not delivered to this session, for `reason` (counted and logged by the broker). */
  dropped(session: Session, reason: DropReason, message: Message): void;
  /** The client refused a delivery (MQTT 5 PUBACK/PUBREC >= 0x80); the broker retries it later or dead-letters it. */
  failed(session: Session, delivery: QueuedDelivery, reason: string): void;
  /** An exception caught in one of the session's own timers. */
  report: ErrorReporter;
  /** A delivery had to wait because this session's client is behind (congested): its publisher is slowed down. */
  congested(session: Session, message: Message): void;
}

/** A consumer-group delivery in flight on this session's connection. */
interface GroupInflight {
  group: ConsumerGroup;
  tag: number;
  bytes: number;
  /** QoS 2: PUBREC came, so the group is done with it; only PUBREL/PUBCOMP remain. */
  released: boolean;
}

/** Broker-side state of one client id, alive across reconnects for persistent sessions. */
export class Session {
  readonly clientId: string;
  /** Who the client is (set by the broker at each connect; for a restored session, from its record). */
  identity!: Identity;
  expiryInterval = 0;
  readonly subscriptions = new Map<string, SubscriptionRecord>();
  link: SessionLink | undefined;
  /**
   * The broker node that holds this session when it is not this one (a cluster: its client is
   * connected there, or was last). This node only routes to it: durable deliveries become queue
   * entries the holder reads; nothing is delivered from here.
   */
  heldBy: string | undefined;
  /** Epoch ms of the last disconnect while the session waits offline (its expiry counts from it). */
  disconnectedAt: number | undefined;
  will: WillMessage | undefined;
  /** Packet ids of inbound QoS 2 publishes between PUBREC and PUBREL. */
  readonly inboundQos2 = new Set<number>();
  /** Consumer groups this session is a member of. */
  readonly groups = new Set<ConsumerGroup>();
  private readonly groupInflight = new Map<number, GroupInflight>();
  /** Payload bytes of `groupInflight`. */
  private groupInflightBytes = 0;
  /** Replays in progress, oldest first; while any is announced, live deliveries queue behind history. */
  private readonly replays: ReplayRun[] = [];
  private replayHolds = 0;
  private replayRetry: NodeJS.Timeout | undefined;
  /** QoS 0 waiting while the client is congested (see holdQos0), from `qos0Head` on. */
  private qos0Backlog: QueuedDelivery[] = [];
  private qos0Head = 0;
  private qos0Bytes = 0;
  private nextPacketId = 1;

  constructor(
    clientId: string,
    readonly queue: SessionQueue,
    private readonly limits: SessionLimits,
    private readonly hooks: SessionHooks,
  ) {
    this.clientId = clientId;
    // A durable queue wakes its owner once what it read from storage is ready, or a failed read may be retried.
    queue.wake = guarded(hooks.report, 'queue wake', () => this.drain());
  }

  private onDrop(session: Session, reason: DropReason, message: Message): void {
    this.hooks.dropped(session, reason, message);
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  /** Deliveries sent and not yet acknowledged: from the session's queue and from its consumer groups. */
  get inflightCount(): number {
    return this.queue.inflight.size + this.groupInflight.size;
  }

  /**
   * Hands a message to this session: sent now when the window allows, queued otherwise.
   * `durable` says the stored message names this session's queue among its deliveries.
   */
  deliver(message: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, durable = false): void {
    const link = this.link;
    if (this.replayHolds > 0) {
      // History goes first: a live message waits in the queue until the replay has caught up.
      if (!durable && this.queueIsFull(message)) return this.onDrop(this, 'queue-full', message);
      this.queue.push({ message, qos, retain, subscriptionIds }, durable && qos > 0);
      return;
    }
    if (qos === 0) {
      if (!link) return this.onDrop(this, 'offline-qos0', message);
      if (link.congested || this.qos0Backlog.length > 0) return this.holdQos0(link, { message, qos, retain, subscriptionIds });
      if (!link.sendPublish({ message, qos, retain, subscriptionIds }, undefined, false)) {
        this.onDrop(this, 'too-large', message);
      }
      return;
    }
    const delivery: QueuedDelivery = { message, qos, retain, subscriptionIds };
    if (link && this.queue.pendingCount === 0 && this.hasWindow(link)) {
      this.sendNew(link, delivery);
      return;
    }
    if (link?.congested) this.hooks.congested(this, message);
    // A stored delivery is never dropped: the broker refused the publish instead when this queue was full.
    if (!durable && this.queueIsFull(message)) {
      this.onDrop(this, 'queue-full', message);
      return;
    }
    this.queue.push(delivery, durable);
  }

  /**
   * QoS 0 for a client that is behind (congested) waits in a short backlog of its own, in order,
   * while its publishers are slowed down; QoS 0 is not held back by the QoS>0 window. The backlog
   * holds at most `maxOutboundBytes` (and `maxQueued` messages): past that, QoS 0 is dropped as
   * `congested`, which is what a slow consumer's messages come to.
   */
  private holdQos0(link: SessionLink, delivery: QueuedDelivery): void {
    if (link.congested) this.hooks.congested(this, delivery.message);
    const bytes = delivery.message.payload.length;
    if (this.qos0Backlog.length - this.qos0Head >= this.limits.maxQueued || (this.qos0Bytes > 0 && this.qos0Bytes + bytes > this.limits.maxOutboundBytes)) {
      return this.onDrop(this, 'congested', delivery.message);
    }
    this.qos0Backlog.push(delivery);
    this.qos0Bytes += bytes;
    if (!link.congested) this.sendQos0Backlog(link);
  }

  /** Sends the QoS 0 backlog, in order, while the socket has room. */
  private sendQos0Backlog(link: SessionLink): void {
    while (this.qos0Head < this.qos0Backlog.length && !link.congested) {
      const delivery = this.qos0Backlog[this.qos0Head]!;
      this.qos0Backlog[this.qos0Head++] = undefined as unknown as QueuedDelivery;
      this.qos0Bytes -= delivery.message.payload.length;
      if (!link.sendPublish(delivery, undefined, false)) this.onDrop(this, 'too-large', delivery.message);
    }
    if (this.qos0Head === this.qos0Backlog.length) {
      this.qos0Backlog = [];
      this.qos0Head = 0;
    }
  }

  /** True when the queue has no room for `message`, by count (`maxQueued`) or payload bytes (`maxQueuedBytes`). */
  queueIsFull(message: Message): boolean {
    return this.queue.pendingCount >= this.limits.maxQueued || this.queue.pendingBytes + message.payload.length > this.limits.maxQueuedBytes;
  }

  /** Ends a consumer-group delivery in flight on this connection. */
  private takeGroupInflight(packetId: number): GroupInflight | undefined {
    const entry = this.groupInflight.get(packetId);
    if (!entry) return undefined;
    this.groupInflight.delete(packetId);
    this.groupInflightBytes -= entry.bytes;
    return entry;
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) ended a delivery; frees a window slot. */
  completed(packetId: number): boolean {
    const shared = this.takeGroupInflight(packetId);
    if (shared) {
      if (!shared.released) shared.group.acknowledged(shared.tag);
      this.drain();
      return true;
    }
    if (!this.queue.inflight.has(packetId)) return false;
    this.queue.deleteInflight(packetId);
    this.drain();
    return true;
  }

  /** PUBREC for a QoS 2 delivery: answer with PUBREL and wait for PUBCOMP. */
  received(packetId: number): boolean {
    const shared = this.groupInflight.get(packetId);
    if (shared) {
      // The client has the message: the group is done with it, whatever happens to PUBREL.
      if (!shared.released) shared.group.acknowledged(shared.tag);
      shared.released = true;
      this.link?.sendPubrel(packetId);
      return true;
    }
    const entry = this.queue.inflight.get(packetId);
    if (!entry) return false;
    if (!entry.released) this.queue.setInflight({ ...entry, released: true });
    this.link?.sendPubrel(packetId);
    return true;
  }

  /**
   * An MQTT 5 PUBACK or PUBREC with a reason >= 0x80: the client could not process the message.
   * The exchange ends (§4.3.3) and the broker redelivers later, or dead-letters it.
   */
  rejected(packetId: number, reason: string): boolean {
    const shared = this.takeGroupInflight(packetId);
    if (shared) {
      if (!shared.released) shared.group.rejected(shared.tag, reason);
      this.drain();
      return true;
    }
    const entry = this.queue.inflight.get(packetId);
    if (!entry) return false;
    this.queue.deleteInflight(packetId);
    const { packetId: _id, released: _released, ...delivery } = entry;
    this.hooks.failed(this, delivery, reason);
    this.drain();
    return true;
  }

  /** Puts a delivery that waited out a retry backoff back in front of the queue. */
  requeue(delivery: QueuedDelivery): void {
    this.queue.unshift(delivery);
    this.drain();
  }

  /** True when connected with room in the window: a consumer group may send to it now. */
  hasRoom(): boolean {
    return this.link !== undefined && this.hasWindow(this.link);
  }

  /**
   * Sends a consumer group's delivery; `tag` (QoS > 0) is what the group knows it by. Returns false
   * when the client cannot take it (larger than its Maximum Packet Size).
   */
  sendForGroup(group: ConsumerGroup, delivery: QueuedDelivery, tag: number | undefined): boolean {
    const link = this.link;
    if (!link) return false;
    const packetId = delivery.qos > 0 ? this.allocatePacketId() : undefined;
    if (!link.sendPublish(delivery, packetId, false)) {
      this.onDrop(this, 'too-large', delivery.message);
      return false;
    }
    if (packetId !== undefined && tag !== undefined) {
      const bytes = delivery.message.payload.length;
      this.groupInflight.set(packetId, { group, tag, bytes, released: false });
      this.groupInflightBytes += bytes;
    }
    return true;
  }

  joinGroup(group: ConsumerGroup): void {
    this.groups.add(group);
  }

  /** Leaving a group hands what is in flight from it back to the group, for another member. */
  leaveGroup(group: ConsumerGroup): void {
    this.groups.delete(group);
    for (const [packetId, entry] of [...this.groupInflight]) {
      if (entry.group !== group) continue;
      this.takeGroupInflight(packetId);
      if (!entry.released) group.returned(entry.tag);
    }
    group.dispatch();
  }

  /** Called when a link attaches: resend what was in flight (DUP set), then queued messages. */
  resume(link: SessionLink): void {
    this.link = link;
    this.disconnectedAt = undefined;
    const now = Date.now();
    for (const entry of [...this.queue.inflight.values()]) {
      if (entry.released) {
        link.sendPubrel(entry.packetId);
      } else if (isExpired(entry.message, now) || !link.sendPublish(entry, entry.packetId, true)) {
        this.queue.deleteInflight(entry.packetId);
      }
    }
    this.drain();
    for (const group of this.groups) group.membersChanged();
  }

  /** The connection is gone: group deliveries in flight on it go back to their groups, for other members. */
  detach(): void {
    this.link = undefined;
    this.disconnectedAt = Date.now();
    // At most once: what waited for the connection goes with it.
    for (let i = this.qos0Head; i < this.qos0Backlog.length; i++) this.onDrop(this, 'offline-qos0', this.qos0Backlog[i]!.message);
    this.qos0Backlog = [];
    this.qos0Head = 0;
    this.qos0Bytes = 0;
    const returned = [...this.groupInflight.values()];
    this.groupInflight.clear();
    this.groupInflightBytes = 0;
    for (const entry of returned) if (!entry.released) entry.group.returned(entry.tag);
    for (const group of new Set(returned.map((e) => e.group))) group.dispatch();
    for (const group of this.groups) group.membersChanged();
  }

  /** A replay was announced (SUBACK pending): from now on live deliveries queue behind its history. */
  holdForReplay(): void {
    this.replayHolds++;
  }

  /**
   * Starts sending a run of stored messages, announced by `holdForReplay`: a replay's history or a
   * new subscription's retained messages. Live deliveries follow once it is exhausted.
   */
  startRun(run: ReplayRun): void {
    this.replays.push(run);
    this.drain();
  }

  /** Sends history while the window (QoS > 0) or the socket (QoS 0) has room; true once every replay is done. */
  private drainReplays(link: SessionLink): boolean {
    let sent = 0;
    while (this.replays.length > 0) {
      const run = this.replays[0]!;
      const message = run.peek();
      if (!message) {
        if (run.exhausted) {
          this.replays.shift();
          this.replayHolds--;
          continue;
        }
        this.loadRun(run);
        return false;
      }
      const delivery = run.deliveryFor(message);
      if (delivery.qos > 0 && !this.hasWindow(link)) return false; // an acknowledgement resumes it
      if (link.congested || sent++ >= 256) {
        // Yield to the event loop (and to the socket) rather than read all history in one go.
        this.replayRetry ??= setTimeout(
          guarded(this.hooks.report, 'replay timer', () => {
            this.replayRetry = undefined;
            this.drain();
          }),
          link.congested ? 10 : 0,
        );
        return false;
      }
      run.take();
      this.sendNew(link, delivery);
    }
    return true;
  }

  /**
   * Reads a run's next batch from storage, then drains again. A read that fails (no descriptor
   * left, storage unreachable) is tried again a second later; the run keeps its place.
   */
  private loadRun(run: ReplayRun): void {
    if (run.loading) return; // the read under way drains when it is done
    run.load().then(
      guarded(this.hooks.report, 'stored messages read', () => this.drain()),
      (err: unknown) => {
        this.hooks.report('stored messages not read; retrying in 1 s', err);
        this.replayRetry ??= setTimeout(
          guarded(this.hooks.report, 'replay timer', () => {
            this.replayRetry = undefined;
            this.drain();
          }),
          1000,
        );
      },
    );
  }

  /** Sends queued deliveries while the client's window has room. */
  drain(): void {
    const link = this.link;
    if (!link) return;
    if (this.replays.length > 0 && !this.drainReplays(link)) return;
    if (this.qos0Backlog.length > 0) this.sendQos0Backlog(link);
    const now = Date.now();
    while (this.queue.pendingCount > 0 && this.hasWindow(link) && !link.congested) {
      if (this.replayHolds > 0) return; // a replay announced but not started yet: history first
      const next = this.queue.shift();
      if (!next) break; // the rest is being read from storage: the queue wakes this session when it is ready
      if (isExpired(next.message, now)) {
        this.onDrop(this, 'expired', next.message);
        continue;
      }
      this.sendNew(link, next);
    }
    for (const group of this.groups) {
      if (!this.hasWindow(link)) break;
      group.dispatch();
    }
  }

  /**
   * Room for one more QoS>0 delivery: under the client's Receive Maximum and our maxInflight, and,
   * beyond the first one in flight, under `maxOutboundBytes` of unacknowledged payload and not
   * congested. What does not fit waits in the queue, on disk with the disk engine, not in memory.
   */
  private hasWindow(link: SessionLink): boolean {
    const inflight = this.queue.inflight.size + this.groupInflight.size;
    if (inflight >= Math.min(link.receiveMaximum, this.limits.maxInflight)) return false;
    if (inflight === 0) return true;
    return !link.congested && this.queue.inflightBytes + this.groupInflightBytes < this.limits.maxOutboundBytes;
  }

  private sendNew(link: SessionLink, delivery: QueuedDelivery): void {
    if (delivery.qos === 0) {
      if (!link.sendPublish(delivery, undefined, false)) this.onDrop(this, 'too-large', delivery.message);
      return;
    }
    const packetId = this.allocatePacketId();
    const entry: InflightDelivery = {
      message: delivery.message,
      qos: delivery.qos,
      retain: delivery.retain,
      subscriptionIds: delivery.subscriptionIds,
      deliveryCount: (delivery.deliveryCount ?? 0) + 1,
      packetId,
      released: false,
    };
    if (!link.sendPublish(entry, packetId, false)) {
      this.onDrop(this, 'too-large', delivery.message);
      return;
    }
    this.queue.setInflight(entry);
  }

  private allocatePacketId(): number {
    // The window is at most 65535 wide, so a free id always exists.
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.queue.inflight.has(id) && !this.groupInflight.has(id)) return id;
    }
  }
}
