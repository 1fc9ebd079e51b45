/** A queue recreates its consumer to get back entries handed out to nobody at most this often. */
const RECOVER_MS = 2000;

/**
 * Entries a queue's consumer handed out that never reached this process. nats.js gives up a pull
 * request whose heartbeats it missed, and what the server sends to it afterwards is dropped while
 * the server counts it as handed out; nats-server 2.9.10 can also lose a consumer's pending state.
 * With a single reader (this node alone reads the queue: always a session's; a group's while no
 * member is held by another node), the signs are:
 *  - a fetch failed;
 *  - a gap in the consumer's delivery seqs;
 *  - a fetch went past an entry this process appended (entries come in stream order).
 * Then the queue recreates its consumer from its ack floor (or from that entry, if lower) before its
 * next fetch (`due`). A group's queue read by several nodes cannot tell a lost entry from one
 * another node took; it relies on the group consumers' short ack wait.
 */
export class LostEntries {
  private lost = false;
  private from: number | undefined;
  private lastRecovery = 0;
  /** Appended entries a recovery was already asked to bring back: passed again, they are gone (cleared). */
  private readonly retried = new Set<number>();
  /** The last consumer delivery seq seen (0: none yet, or a new consumer). */
  private lastDelivery = 0;

  constructor(
    /** This node alone reads the queue. */
    private soleReader: boolean,
    private readonly trace: (event: string, detail: string) => void,
  ) {}

  get sole(): boolean {
    return this.soleReader;
  }

  setSole(sole: boolean): void {
    this.soleReader = sole;
    this.lastDelivery = 0;
  }

  /** A fetch failed, or a takeover could not tell what is handed out where. */
  markLost(): void {
    this.lost = true;
  }

  /** A fetched entry: its seq is no longer waited for; its delivery seq continues the consumer's. */
  accepted(seq: number, deliverySeq: number): void {
    this.retried.delete(seq);
    if (!this.soleReader) return;
    if (this.lastDelivery > 0 && deliverySeq > this.lastDelivery + 1) {
      this.trace('delivery-gap', `${this.lastDelivery} -> ${deliverySeq}`);
      this.lost = true;
    }
    this.lastDelivery = deliverySeq;
  }

  /**
   * After a fetch: of the entries this process appended and has not fetched (`waiting`), those below
   * `highestSeen` were passed. The first time (single reader), a recovery is due from the lowest;
   * the seqs returned are to be forgotten (passed again, or taken by another node's reader).
   */
  passed(waiting: Iterable<number>, highestSeen: number): number[] {
    const forget: number[] = [];
    for (const seq of waiting) {
      if (seq >= highestSeen) continue;
      if (!this.soleReader || this.retried.has(seq)) {
        this.retried.delete(seq);
        forget.push(seq);
        continue;
      }
      this.retried.add(seq);
      this.lost = true;
      this.from = Math.min(this.from ?? seq, seq);
    }
    return forget;
  }

  /** A recovery to make now (from `from`, or the ack floor when undefined), if one is due and allowed. */
  due(now = Date.now()): { from: number | undefined } | undefined {
    if (!this.lost || now - this.lastRecovery < RECOVER_MS) return undefined;
    const from = this.from;
    this.lost = false;
    this.from = undefined;
    this.lastRecovery = now;
    this.lastDelivery = 0;
    this.trace('recover', `from ${from ?? 'floor'}${this.soleReader ? '' : ' (shared: left to the ack wait)'}`);
    // Read by several nodes, a group's entries come again by themselves after the ack wait.
    return this.soleReader ? { from } : undefined;
  }

  /** The recovery failed (NATS unreachable): due again later. */
  failed(from: number | undefined): void {
    this.lost = true;
    if (from !== undefined) this.from = Math.min(this.from ?? from, from);
  }

  /** The queue dropped its memory: nothing it waited for is owed to it any more. */
  reset(): void {
    this.retried.clear();
    this.from = undefined;
  }
}
