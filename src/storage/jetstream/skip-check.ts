/**
 * Whether a queue's consumer went past entries after a change of its leader (nats-server 2.9.10).
 *
 * Every replica of a consumer keeps its own starting position, chosen from its own copy of the
 * stream when the consumer was created or restored, and a replica that becomes leader takes the
 * higher of that and the replicated position (`applyState` never moves back). In the cluster crash
 * harness, a group's consumer whose leader moved after a NATS kill went on from entry 109,261 when
 * the old leader had handed out up to about 101,600: 2,546 confirmed messages were skipped without
 * a sign (no delivery-seq gap, nothing pending), acknowledged past and purged.
 *
 * So, after anything that may have moved the leader (the queue opened, a fetch failed, a leader
 * elected advisory, a reconnect to NATS), the queue checks the first new entry it is then handed
 * (above `after`, the highest seq it had seen) against the stream leader's first entry on its
 * subject above `after` (and above the ack floor). A lower one was skipped: the consumer is
 * recreated from it. Until that check is made, entries above `after` are not acknowledged, so the
 * ack floor cannot move past skipped ones before they are found.
 *
 * With a single reader (a session's queue) the check is exact: every entry the consumer handed out
 * came here. For a group's queue read by several nodes, the stream leader's entry may have gone to
 * another node's member: the consumer is recreated then too (duplicates among the group, no loss),
 * and a group does not check again after its own recreation, so nodes do not set each other off.
 */
export class SkipCheck {
  /** Entries above this seq are to be checked; undefined when no check is due. */
  private after: number | undefined;
  /** The lowest first delivery above `after` seen since the check became due. */
  private lowestNew: number | undefined;
  private running = false;

  constructor(private readonly trace: (event: string, detail: string) => void) {}

  /** Something may have moved the consumer's leader: entries above `highestSeen` are checked. */
  suspect(highestSeen: number, why: string): void {
    this.after = Math.min(this.after ?? highestSeen, highestSeen);
    this.trace('skip-suspect', `${why} after ${this.after}`);
  }

  get due(): boolean {
    return this.after !== undefined;
  }

  /**
   * While a check is about to be made (a new entry came): the lowest entry that may have been
   * skipped, which the stream keeps meanwhile. (Before that, nothing above `after` is acknowledged
   * here, so the ack floor holds it, and an idle queue holds back no compaction.)
   */
  get owedFrom(): number | undefined {
    return this.after === undefined || this.lowestNew === undefined ? undefined : this.after + 1;
  }

  /** Whether the acknowledgement of entry `seq` waits for the check (see the class comment). */
  holdsAck(seq: number): boolean {
    return this.after !== undefined && seq > this.after;
  }

  /** A fetched entry and its delivery count (1: handed out for the first time by this consumer). */
  delivered(seq: number, deliveryCount: number): void {
    if (this.after === undefined || deliveryCount !== 1 || seq <= this.after) return;
    if (this.lowestNew === undefined || seq < this.lowestNew) this.lowestNew = seq;
  }

  /**
   * After a fetch: the check to make now, if one is due and a first delivery above `after` came.
   * `leaderNext(after)` gives the stream leader's first entry above `after` (and the ack floor).
   * Resolves with the entry to recreate the consumer from, or undefined when nothing was skipped.
   * A failed check (NATS unreachable) stays due.
   */
  async check(leaderNext: (after: number) => Promise<number | undefined>): Promise<number | undefined> {
    if (this.running || this.after === undefined || this.lowestNew === undefined) return undefined;
    const after = this.after;
    const first = this.lowestNew;
    this.running = true;
    try {
      const next = await leaderNext(after);
      if (this.after !== after) return undefined; // suspected again meanwhile: check from the lower seq
      this.after = undefined;
      this.lowestNew = undefined;
      if (next !== undefined && next < first) {
        this.trace('skip-found', `after ${after}: first delivery ${first}, stream has ${next}`);
        return next;
      }
      this.trace('skip-none', `after ${after}: first delivery ${first}, stream has ${next ?? 'none'}`);
      return undefined;
    } finally {
      this.running = false;
    }
  }

  /** The queue dropped what it held (forget): the check starts again from what is seen next. */
  reset(): void {
    this.lowestNew = undefined;
  }
}
