import type { Consumer, JsMsg } from '@nats-io/jetstream';
import type { Message } from '../../core/message.js';
import type { InflightDelivery, QueuedDelivery } from '../../core/storage.js';
import { MemorySessionQueue } from '../memory-queue.js';
import { decodeDelivery } from './envelope.js';
import { LostEntries } from './lost-entries.js';
import { queueTrace, queueTraceOn, tracePayload } from './queue-trace.js';
import { SkipCheck } from './skip-check.js';

/** Pending deliveries kept in memory per queue (as the disk engine: by count and payload bytes); the rest wait in the queue stream. */
const MEMORY_WINDOW = 1000;
const MEMORY_WINDOW_BYTES = 8 * 1024 * 1024;
/** A pull request waits at most this long for entries it was told exist (a short fetch means: nothing more yet). */
const FETCH_EXPIRES_MS = 1000;
/** After a failed fetch (NATS unreachable), the owner is woken again this much later, so it asks again. */
const RETRY_MS = 1000;
/** Acknowledgements to JetStream are batched: a sweep at most this often finds the entries no longer owed. */
const SWEEP_MS = 50;
/** Entries fetched before their push was seen (see `acceptedBeforePush`): bounded, oldest forgotten first. */
const MAX_EARLY = 10_000;
/** A group's queue shared by nodes reads this many entries at a time, so one node does not hoard what the others' members could take. */
const SHARED_WINDOW = 64;
/** A node taking a session over waits this long for the previous holder to acknowledge what it finished. */
const HANDOVER_WAIT_MS = 1000;
/** A group's queue tells the server it still works on entries it holds this long (well within GROUP_ACK_WAIT_MS). */
const GROUP_TOUCH_MS = 3000;

/** What the engine gives a queue: its durable consumer, and where to report failures. */
export interface QueueBackend {
  /** The queue's durable consumer on the queue stream (created on first use; rejects while NATS is unreachable). */
  consumer(): Promise<Consumer>;
  /** Drops this queue's entries up to `throughSeq` from the stream (a clear); guarded by the caller. */
  purge(throughSeq: number): Promise<void>;
  reportFailure(err: unknown, what: string): void;
  /** Entries the consumer handed out and nobody acknowledged yet (another node may still hold them). */
  ackPending(): Promise<number>;
  /** Deletes and recreates the consumer: what it had handed out and not had acknowledged (and from `fromSeq`, if lower) comes again, in order. */
  recreate(fromSeq?: number): Promise<void>;
  /** The stream leader's first entry on this queue's subject above `after` and above the consumer's ack floor (skip-check.ts). */
  leaderNext(after: number): Promise<number | undefined>;
}

/** A fetched entry not yet acknowledged to JetStream: the delivery is pending, in flight or held. */
interface Outstanding {
  msg: JsMsg;
  message: Message;
  /** When the server last heard of it (fetched, or told in progress). */
  touchedAt: number;
}

/**
 * A session's or a consumer group's queue on the JetStream engine. Durable deliveries are entries of
 * the queue stream on this queue's own subject (one entry per delivery, written by `append` before it
 * confirms), read through the queue's durable pull consumer with explicit ack. Memory holds a window
 * of pending deliveries; the rest waits in the stream and is fetched in order when its turn comes.
 *
 * While the queue keeps up (nothing waits in the stream, memory has room), a confirmed delivery goes
 * straight to memory, as on the other engines, so the delivery path never waits for a fetch; the
 * consumer still delivers its entry, which is then only attached for the acknowledgement (`direct`).
 *
 * An entry is acknowledged to JetStream once the delivery is neither pending, in flight nor held (a
 * sweep finds them, as the disk engine's cursor does), so a restart gets back exactly what was still
 * owed: the engine recreates the consumer from its ack floor (entries acknowledged after the first
 * unacknowledged one may come again; MQTT allows a duplicate, never a loss).
 *
 * Counts (`pendingCount`, `pendingBytes`) are local estimates: exact while this process appended
 * every entry (each confirmed push is counted until its entry is fetched); after a restart, the
 * consumer's num_pending at open (bytes unknown until fetched, counted 0). A short fetch (the server
 * had less than asked) resets the estimate to what was pushed since.
 */
export class JetStreamSessionQueue extends MemorySessionQueue {
  /** Entries pushed while others waited in the stream (or memory was full): fetched into memory in turn. */
  private readonly pushed = new Map<number, number>(); // entry seq → payload bytes
  /** Entries pushed straight to memory whose consumer delivery (needed to acknowledge them) has not come yet. */
  private readonly direct = new Map<number, Message>();
  /** Entry seqs of appends confirmed by the engine for this queue, before the owner's push. */
  private readonly noted = new WeakMap<Message, number>();
  /** Entries fetched before their push came (the pull delivery overtook the PubAck): the push is then not counted. */
  private readonly acceptedBeforePush = new Set<number>();
  /** Entries waiting in the stream from before this process (the queue subject's entry count at open). */
  private restored: number;
  private restoredUntil: number;
  private readonly outstanding = new Map<number, Outstanding>();
  /** Entries at or below this seq were cleared: a fetch that brings one back acknowledges and drops it. */
  private barrier = 0;
  private highestSeen = 0;
  private refilling: Promise<number> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Read new entries as they are stored (a client of this queue is connected on this node; they may come from any node). */
  private listening = false;
  /** Another node delivers this queue (disown): what a fetch still brings is not this node's to keep. */
  private disowned = false;
  /** A takeover under way (claim): fetches wait for it. */
  private claiming: Promise<void> | undefined;
  /** Entries handed out to nobody, and when to recreate the consumer to get them back (lost-entries.ts). */
  private readonly lostEntries: LostEntries;
  /** Whether the consumer went past entries after its leader moved (skip-check.ts). */
  private readonly skipCheck: SkipCheck;
  private touchTimer: NodeJS.Timeout | undefined;

  constructor(
    id: number,
    readonly name: string,
    private readonly backend: QueueBackend,
    restored: { count: number; untilSeq: number },
    /** A group's queue, read by every node with a member (small fetches; entries handed back on disown). */
    private readonly shared = false,
  ) {
    super(id);
    this.lostEntries = new LostEntries(!shared, (event, detail) => queueTraceOn && queueTrace(this.name, event, detail));
    this.skipCheck = new SkipCheck((event, detail) => queueTraceOn && queueTrace(this.name, event, detail));
    // A consumer restored at open may be led by a replica that went past entries: checked from the ack floor.
    this.skipCheck.suspect(0, 'open');
    this.restored = restored.count;
    this.restoredUntil = restored.untilSeq;
  }

  private get stored(): number {
    return this.pushed.size + this.restored;
  }

  override get pendingCount(): number {
    return super.pendingCount + this.stored;
  }

  override get pendingBytes(): number {
    return super.pendingBytes + this.pushedBytes;
  }

  /** Payload bytes of `pushed` (the broker reads pendingBytes on every publish: kept, not summed). */
  private pushedBytes = 0;

  private unpush(seq: number): boolean {
    const bytes = this.pushed.get(seq);
    if (bytes === undefined) return false;
    this.pushed.delete(seq);
    this.pushedBytes -= bytes;
    return true;
  }

  /** Called by the engine when this queue's entry for `message` is confirmed (PubAck of the queue stream). */
  noteEntry(message: Message, entrySeq: number): void {
    if (queueTraceOn) queueTrace(this.name, 'note', `${entrySeq} ${tracePayload(message.payload)}`);
    this.noted.set(message, entrySeq);
  }

  override push(delivery: QueuedDelivery, durable: boolean): void {
    const seq = durable ? this.noted.get(delivery.message) : undefined;
    if (seq === undefined) {
      // Not in the queue stream (a clean session's, or a message stored without this queue): memory only.
      super.push(delivery, durable);
      return;
    }
    this.noted.delete(delivery.message);
    if (seq <= this.barrier) return void (queueTraceOn && queueTrace(this.name, 'push-barrier', `${seq}`)); // appended before a clear that has already dropped it
    if (this.acceptedBeforePush.delete(seq)) return void (queueTraceOn && queueTrace(this.name, 'push-early', `${seq}`)); // already fetched into memory
    if (this.stored === 0 && super.pendingCount < MEMORY_WINDOW && super.pendingBytes < MEMORY_WINDOW_BYTES) {
      if (queueTraceOn) queueTrace(this.name, 'push-direct', `${seq}`);
      super.push(delivery, durable);
      this.direct.set(seq, delivery.message);
    } else {
      if (queueTraceOn) queueTrace(this.name, 'push-stored', `${seq}`);
      this.pushed.set(seq, delivery.message.payload.length);
      this.pushedBytes += delivery.message.payload.length;
    }
    this.refillSoon();
  }

  override shift(): QueuedDelivery | undefined {
    const delivery = super.shift();
    if (super.pendingCount < MEMORY_WINDOW / 2) this.refillSoon();
    if (delivery) this.sweepSoon();
    return delivery;
  }

  override async take(): Promise<QueuedDelivery | undefined> {
    for (;;) {
      const delivery = super.shift();
      if (delivery) {
        this.sweepSoon();
        return delivery;
      }
      if (this.stored === 0) return undefined;
      // A failed fetch rejects here: the caller (an admin operation) reports it; the entries stay in the stream.
      const got = await this.refill(MEMORY_WINDOW, true);
      if (got === 0 && this.stored === 0) return undefined;
    }
  }

  override async peek(limit: number): Promise<QueuedDelivery[]> {
    // Entries beyond memory are fetched into memory (a listing is rare and bounded by its limit).
    while (super.pendingCount < limit && this.stored > 0) {
      const got = await this.refill(Math.min(limit - super.pendingCount, 4 * MEMORY_WINDOW), true);
      if (got === 0) break;
    }
    return super.peek(limit);
  }

  /**
   * The broker sends a delivery straight away, without `push`, when the session has room: the entry
   * is then one that went straight to memory (`direct`), attached to its consumer delivery for the ack.
   */
  override setInflight(delivery: InflightDelivery): void {
    if (queueTraceOn) queueTrace(this.name, 'inflight', `${delivery.packetId} ${delivery.released ? 'released' : 'sent'} ${tracePayload(delivery.message.payload)}`);
    super.setInflight(delivery);
    const seq = this.noted.get(delivery.message);
    if (seq === undefined) return;
    this.noted.delete(delivery.message);
    if (seq <= this.barrier) return;
    if (this.acceptedBeforePush.delete(seq)) {
      // Its consumer delivery came first and was queued: that copy must not go out a second time.
      const fetched = this.outstanding.get(seq);
      if (fetched) {
        const at = this.pending.findIndex((d, i) => i >= this.head && d.message === fetched.message);
        if (at >= this.head) {
          this.memoryBytes -= fetched.message.payload.length;
          this.pending.splice(at, 1);
        }
        fetched.message = delivery.message;
      }
      return;
    }
    this.direct.set(seq, delivery.message);
    this.refillSoon();
  }

  override deleteInflight(packetId: number): void {
    if (queueTraceOn) queueTrace(this.name, 'done', `${packetId}`);
    super.deleteInflight(packetId);
    this.sweepSoon();
  }

  override release(delivery: QueuedDelivery): boolean {
    const released = super.release(delivery);
    this.sweepSoon();
    return released;
  }

  override clear(): void {
    if (queueTraceOn) queueTrace(this.name, 'clear', `highest ${this.highestSeen}`);
    super.clear();
    this.barrier = Math.max(this.barrier, this.highestSeen);
    for (const seq of this.pushedSeqs()) if (seq > this.barrier) this.barrier = seq;
    this.pushed.clear();
    this.pushedBytes = 0;
    this.direct.clear();
    this.acceptedBeforePush.clear();
    this.restored = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.sweep();
    const through = this.barrier;
    if (through > 0) this.backend.purge(through).catch((err: unknown) => this.backend.reportFailure(err, `${this.name}: purge after clear`));
  }

  /**
   * This node delivers the queue from now on (a client took its session over from another node, or
   * from this node's previous process): once the previous holder acknowledged what it finished (or
   * HANDOVER_WAIT_MS passed), the consumer is recreated if entries are still handed out, so they
   * come here now instead of after the ack wait.
   */
  claim(): void {
    if (queueTraceOn) queueTrace(this.name, 'claim', `outstanding ${this.outstanding.size} ${[...this.outstanding.keys()].join(',')}`);
    this.disowned = false;
    // What this process fetched itself (before the client came back) is dropped from memory unacknowledged:
    // it must come again, whatever the server reports as pending (2.9.10 can lose that state).
    const dropped = this.outstanding.size;
    this.forget(true);
    const claiming = (async () => {
      if (dropped > 0) {
        if (queueTraceOn) queueTrace(this.name, 'claim-dropped', `${dropped}`);
        await this.backend.recreate();
        return;
      }
      const until = Date.now() + HANDOVER_WAIT_MS;
      let pending = await this.backend.ackPending();
      while (pending > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        pending = await this.backend.ackPending();
      }
      if (queueTraceOn) queueTrace(this.name, 'claim-pending', `${pending}`);
      if (pending > 0) await this.backend.recreate();
    })()
      .catch((err: unknown) => {
        // Unsure what is handed out where: the next fetch recreates the consumer from its ack floor.
        this.lostEntries.markLost();
        this.backend.reportFailure(err, `${this.name}: takeover`);
      })
      .finally(() => {
        if (this.claiming === claiming) this.claiming = undefined;
      });
    this.claiming = claiming;
    this.refillSoon();
  }

  /** A group's queue: whether this node is the only one reading it (see `sole`). */
  soleReader(sole: boolean): void {
    if (!this.shared || sole === this.lostEntries.sole) return;
    if (queueTraceOn) queueTrace(this.name, 'sole', `${sole}`);
    this.lostEntries.setSole(sole);
  }

  listen(on: boolean): void {
    this.listening = on;
    if (on) this.disowned = false;
    if (on) this.refillSoon();
  }

  /**
   * Another node delivers this queue now. A session's queue acknowledges what this node finished,
   * hands back (nak) every other entry it fetched, so they go to the new holder at once, and forgets
   * its memory. A group's queue hands back what waits in memory, for the members on other nodes;
   * what is in flight here is handed back as it returns.
   */
  disown(): void {
    if (queueTraceOn) queueTrace(this.name, 'disown', `outstanding ${this.outstanding.size}`);
    this.listening = false;
    this.disowned = true;
    if (!this.shared) {
      this.sweep();
      for (const o of this.outstanding.values()) this.handBack(o.msg);
      this.forget(false);
      return;
    }
    const kept: QueuedDelivery[] = [];
    const waiting = new Set<Message>();
    for (let i = this.head; i < this.pending.length; i++) waiting.add(this.pending[i]!.message);
    for (const [seq, o] of [...this.outstanding]) {
      if (!waiting.has(o.message)) continue;
      this.outstanding.delete(seq);
      waiting.delete(o.message);
      this.handBack(o.msg);
    }
    // Pending deliveries without an entry (not durable) stay: nobody else could deliver them.
    for (let i = this.head; i < this.pending.length; i++) if (waiting.has(this.pending[i]!.message)) kept.push(this.pending[i]!);
    this.pending = kept;
    this.head = 0;
    this.memoryBytes = kept.reduce((n, d) => n + d.message.payload.length, 0);
  }

  private handBack(msg: JsMsg): void {
    if (queueTraceOn) queueTrace(this.name, 'nak', `${msg.seq}`);
    try {
      msg.nak();
    } catch (err) {
      this.backend.reportFailure(err, `${this.name}: hand back`);
    }
  }

  /** Drops memory without acknowledging anything (the entries stay in the stream for whoever reads next). */
  private forget(keepBacklog: boolean): void {
    if (keepBacklog) {
      // What memory held is in the stream again (not acknowledged): this node reads it next, and counts it.
      this.restored += this.outstanding.size + this.pushed.size + this.direct.size;
      let until = Math.max(this.restoredUntil, this.highestSeen);
      for (const seq of this.pushedSeqs()) if (seq > until) until = seq;
      this.restoredUntil = until;
    } else {
      this.restored = 0;
    }
    if (queueTraceOn) queueTrace(this.name, 'forget', `outstanding ${[...this.outstanding.keys()].join(',')} pending ${super.pendingCount} inflight ${this.inflight.size}`);
    super.clear();
    this.outstanding.clear();
    this.pushed.clear();
    this.pushedBytes = 0;
    this.direct.clear();
    this.acceptedBeforePush.clear();
    this.lostEntries.reset();
    this.skipCheck.reset();
  }

  /**
   * Before the engine closes its connection: fetches the consumer deliveries of entries that went
   * straight to memory (within `deadlineMs`), so that those already done are acknowledged and do not
   * come back after the restart; then stops fetching. Never rejects (what is not acknowledged comes
   * back: a duplicate, not a loss).
   */
  async close(deadlineMs = 3000): Promise<void> {
    const until = Date.now() + deadlineMs;
    try {
      while (this.direct.size > 0 && Date.now() < until) {
        const before = this.direct.size;
        await this.refill(0, false);
        if (this.direct.size >= before) break;
      }
    } catch (err) {
      this.backend.reportFailure(err, `${this.name}: last fetch before close`);
    }
    this.sweep();
    this.closed = true;
    clearTimeout(this.sweepTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.touchTimer);
  }

  /** The lowest entry this process holds or waits for: the stream is never purged past it, whatever the server's ack floor says. */
  owedFrom(): number | undefined {
    // While a skip check is due, entries the consumer may have gone past are owed too.
    let low = this.skipCheck.owedFrom;
    for (const seq of this.outstanding.keys()) if (low === undefined || seq < low) low = seq;
    for (const seq of this.pushedSeqs()) if (low === undefined || seq < low) low = seq;
    return low;
  }

  private *pushedSeqs(): IterableIterator<number> {
    yield* this.pushed.keys();
    yield* this.direct.keys();
  }

  private sweepSoon(): void {
    if (this.sweepTimer || this.closed) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep();
    }, SWEEP_MS);
    this.sweepTimer.unref();
  }

  /**
   * Acknowledges fetched entries whose deliveries are no longer pending, in flight or held, oldest
   * first, up to the first one still owed: that moves the consumer's ack floor, and a queue's
   * position is a cursor (as on the disk engine), so after a restart everything from the oldest one
   * still owed comes back, in order, including deliveries done after it (MQTT allows the duplicate).
   */
  private sweep(): void {
    if (this.outstanding.size === 0) return;
    const live = new Set<Message>();
    for (let i = this.head; i < this.pending.length; i++) live.add(this.pending[i]!.message);
    for (const d of this.inflight.values()) live.add(d.message);
    for (const d of this.held) live.add(d.message);
    // Map order is fetch order, which is stream order.
    for (const [seq, o] of this.outstanding) {
      if (live.has(o.message) || this.skipCheck.holdsAck(seq)) break;
      this.outstanding.delete(seq);
      if (queueTraceOn) queueTrace(this.name, 'ack', `${seq} ${tracePayload(o.message.payload)}`);
      try {
        o.msg.ack(); // buffered by the client while reconnecting; a lost ack means a redelivery, never a loss
      } catch (err) {
        this.backend.reportFailure(err, `${this.name}: ack`);
      }
    }
  }

  private refillSoon(): void {
    if (this.refilling || this.closed || this.toFetch(MEMORY_WINDOW, false) === 0) return;
    void this.refill(MEMORY_WINDOW, false).then(
      (got) => {
        if (got > 0) this.wakeOwner();
        this.refillSoon();
      },
      (err: unknown) => {
        if (this.closed) return;
        this.backend.reportFailure(err, `${this.name}: fetch`);
        if (this.retryTimer) return;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.wakeOwner();
          this.refillSoon();
        }, RETRY_MS);
        this.retryTimer.unref();
      },
    );
  }

  private wakeOwner(): void {
    try {
      this.wake?.();
    } catch (err) {
      this.backend.reportFailure(err, `${this.name}: wake`);
    }
  }

  /** One fetch at a time (entries come in stream order); resolves with how many deliveries it added to memory. */
  private async refill(room: number, ignoreWindow: boolean): Promise<number> {
    while (this.refilling) await this.refilling.catch(() => 0);
    const fetching = this.fetchOnce(room, ignoreWindow).finally(() => {
      if (this.refilling === fetching) this.refilling = undefined;
    });
    this.refilling = fetching;
    return fetching;
  }

  /** Entries the next fetch asks for: every direct one (older than any waiting), then what memory has room for. */
  private toFetch(room: number, ignoreWindow: boolean): number {
    const full = super.pendingCount >= MEMORY_WINDOW || super.pendingBytes >= MEMORY_WINDOW_BYTES;
    const backlog = ignoreWindow ? Math.min(this.stored, room) : full ? 0 : Math.min(this.stored, room, MEMORY_WINDOW - super.pendingCount);
    if (this.listening && !full) {
      // Other nodes' entries are not counted here: ask for what memory has room for, and wait for them.
      const window = this.shared ? SHARED_WINDOW : MEMORY_WINDOW;
      return this.direct.size + Math.max(backlog, Math.min(room, window - super.pendingCount));
    }
    return this.direct.size + backlog;
  }

  private async fetchOnce(room: number, ignoreWindow: boolean): Promise<number> {
    if (this.claiming) await this.claiming;
    const recovery = this.lostEntries.due();
    if (recovery) await this.recover(recovery.from);
    const want = this.toFetch(room, ignoreWindow);
    if (want <= 0) return 0;
    const consumer = await this.backend.consumer();
    if (queueTraceOn) queueTrace(this.name, 'fetch', `${want}`);
    const batch = await consumer.fetch({ max_messages: want, expires: FETCH_EXPIRES_MS });
    let received = 0;
    let added = 0;
    try {
      for await (const msg of batch) {
        received++;
        if (this.accept(msg)) added++;
        if (added > 0 && added % 200 === 0) this.wakeOwner();
      }
    } catch (err) {
      // What the server sent this request after nats.js gave up on it went nowhere, and stays handed out.
      if (queueTraceOn) queueTrace(this.name, 'fetch-failed', `received ${received} ${(err as Error).message}`);
      this.lostEntries.markLost();
      // A consumer deleted under a group's fetch was recreated by another node, from its ack floor: no leader moved.
      if (!this.shared || !/consumer (deleted|not found)/i.test((err as Error).message)) this.skipCheck.suspect(this.highestSeen, 'fetch failed');
      this.findPassed();
      throw err;
    }
    if (queueTraceOn) queueTrace(this.name, 'fetched', `${received} of ${want}`);
    this.findPassed();
    if (this.skipCheck.due) await this.checkSkipped();
    if (received < want) this.restored = 0; // the server had less than asked: everything stored before this fetch began has been fetched
    return added;
  }

  /** Appended entries a fetch went past (lost-entries.ts): the ones to forget are no longer counted. */
  private findPassed(): void {
    for (const seq of this.lostEntries.passed([...this.pushedSeqs()], this.highestSeen)) {
      this.unpush(seq);
      this.direct.delete(seq);
    }
  }

  /** While a group's queue holds entries, it tells the server now and then that it still works on them. */
  private touchSoon(): void {
    if (this.touchTimer || this.closed) return;
    this.touchTimer = setTimeout(() => {
      this.touchTimer = undefined;
      if (this.closed) return;
      const now = Date.now();
      for (const o of this.outstanding.values()) {
        if (now - o.touchedAt < GROUP_TOUCH_MS) continue;
        o.touchedAt = now;
        try {
          o.msg.working();
        } catch (err) {
          this.backend.reportFailure(err, `${this.name}: in progress`);
        }
      }
      if (this.outstanding.size > 0) this.touchSoon();
    }, GROUP_TOUCH_MS);
    this.touchTimer.unref();
  }

  /**
   * Makes the skip check that is due (skip-check.ts): when the consumer went past entries, it is
   * recreated from the first of them. A session's queue checks the new consumer too; a group's does
   * not (another node's member may have taken the entry that looked skipped). A failed check stays
   * due; the acknowledgements it holds go out once it is made.
   */
  private async checkSkipped(): Promise<void> {
    let after: number | undefined;
    let from: number | undefined;
    try {
      from = await this.skipCheck.check((a) => {
        after = a;
        return this.backend.leaderNext(a);
      });
      if (from === undefined) return;
      await this.backend.recreate(from);
      if (!this.shared && after !== undefined) this.skipCheck.suspect(after, 'recreated');
    } catch (err) {
      if (from !== undefined && after !== undefined) this.skipCheck.suspect(Math.min(after, from - 1), 'recreation failed');
      this.backend.reportFailure(err, `${this.name}: skip check`);
    } finally {
      this.sweepSoon();
    }
  }

  /** Something may have moved the consumer's leader (an advisory, a reconnect to NATS): the next new entries are checked. */
  suspectSkip(why: string): void {
    if (this.closed) return;
    this.skipCheck.suspect(this.highestSeen, why);
    this.refillSoon();
  }

  /** Recreates the consumer so that entries handed out to nobody come again (duplicates of what is held are dropped by `accept`). */
  private async recover(from: number | undefined): Promise<void> {
    try {
      await this.backend.recreate(from);
    } catch (err) {
      this.lostEntries.failed(from);
      throw err;
    }
  }

  /** Takes one fetched entry into memory; false when it was cleared or is a redelivery of one already held. */
  private accept(msg: JsMsg): boolean {
    const seq = msg.seq;
    if (queueTraceOn) queueTrace(this.name, 'accept', `${seq} r${msg.info.deliveryCount} ${this.disowned ? 'disowned' : seq <= this.barrier ? 'barrier' : this.closed ? 'closed' : this.direct.has(seq) ? 'direct' : this.outstanding.has(seq) ? 'known' : 'new'}`);
    if (this.disowned) {
      // A fetch that was under way when another node took over: the entry goes back at once, for the new holder.
      this.handBack(msg);
      return false;
    }
    this.highestSeen = Math.max(this.highestSeen, seq);
    if (seq <= this.barrier || this.closed) {
      if (seq <= this.barrier) msg.ack();
      return false;
    }
    this.lostEntries.accepted(seq, msg.info.deliverySequence);
    this.skipCheck.delivered(seq, msg.info.deliveryCount);
    if (this.shared) this.touchSoon();
    const inMemory = this.direct.get(seq);
    if (inMemory) {
      this.direct.delete(seq);
      this.outstanding.set(seq, { msg, message: inMemory, touchedAt: Date.now() });
      this.sweepSoon(); // it may be done already
      return false;
    }
    const known = this.outstanding.get(seq);
    if (known) {
      // JetStream redelivered it (ack wait passed): the delivery is still owed once, ack the newer copy.
      known.msg = msg;
      known.touchedAt = Date.now();
      return false;
    }
    let delivery: QueuedDelivery;
    try {
      delivery = decodeDelivery(msg.data);
    } catch (err) {
      // An entry Eddy cannot read would block the queue forever: reported, and acknowledged.
      this.backend.reportFailure(err, `${this.name}: entry ${seq}`);
      msg.ack();
      return false;
    }
    if (this.unpush(seq)) {
      // counted by its push
    } else if (seq <= this.restoredUntil) {
      this.restored = Math.max(0, this.restored - 1);
    } else {
      this.acceptedBeforePush.add(seq);
      if (this.acceptedBeforePush.size > MAX_EARLY) this.acceptedBeforePush.delete(this.acceptedBeforePush.values().next().value!);
    }
    this.outstanding.set(seq, { msg, message: delivery.message, touchedAt: Date.now() });
    this.pending.push(delivery);
    this.memoryBytes += delivery.message.payload.length;
    return true;
  }
}
