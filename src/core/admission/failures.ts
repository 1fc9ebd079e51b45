/** Failures from one address within this window count towards slowing it down. */
const WINDOW_MS = 60_000;
/** Failures allowed before answers to that address are delayed. */
const FREE_FAILURES = 5;
const MAX_DELAY_MS = 10_000;
/** Addresses tracked at most; beyond that the oldest are forgotten. */
const MAX_ADDRESSES = 10_000;

/**
 * Authentication failures per client address. After FREE_FAILURES within a minute, every answer
 * to that address (success or failure) waits 100 ms, doubling with each further failure up to
 * 10 s: guessing passwords gets slow, while a client that mistyped once is not punished.
 */
export class FailureTracker {
  private readonly byAddress = new Map<string, { count: number; since: number }>();

  /** How long to wait before answering this address. */
  delayFor(address: string, now = Date.now()): number {
    const entry = this.byAddress.get(address);
    if (!entry || now - entry.since > WINDOW_MS || entry.count < FREE_FAILURES) return 0;
    return Math.min(MAX_DELAY_MS, 100 * 2 ** (entry.count - FREE_FAILURES));
  }

  failed(address: string, now = Date.now()): void {
    const entry = this.byAddress.get(address);
    if (entry && now - entry.since <= WINDOW_MS) {
      entry.count++;
      return;
    }
    if (this.byAddress.size >= MAX_ADDRESSES) this.byAddress.delete(this.byAddress.keys().next().value!);
    this.byAddress.set(address, { count: 1, since: now });
  }
}
