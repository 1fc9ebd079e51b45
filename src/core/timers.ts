import { guarded, type ErrorReporter } from '../util/guard.js';

/** setTimeout holds at most ~24.8 days; longer waits re-arm when that much has passed. */
const MAX_TIMEOUT_MS = 0x7fffffff;

/**
 * One pending timer per key (a client id), each with its value: delayed wills and session expiries.
 * Timers do not keep the process alive.
 */
export class KeyedTimers<V> {
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; value: V }>();

  constructor(
    private readonly report: ErrorReporter,
    private readonly what: string,
  ) {}

  /** Runs `fire(value)` after `ms`, replacing any timer already set for `key`. */
  set(key: string, value: V, ms: number, fire: (value: V) => void): void {
    this.cancel(key);
    const step = Math.min(ms, MAX_TIMEOUT_MS);
    const timer = setTimeout(
      guarded(this.report, this.what, () => {
        if (step < ms) return this.set(key, value, ms - step, fire);
        this.pending.delete(key);
        fire(value);
      }),
      step,
    );
    timer.unref();
    this.pending.set(key, { timer, value });
  }

  /** Stops the timer for `key`; returns its value when one was pending. */
  cancel(key: string): V | undefined {
    const entry = this.pending.get(key);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.pending.delete(key);
    return entry.value;
  }

  /** Stops every timer; returns the values that were pending. */
  cancelAll(): V[] {
    const values = [...this.pending.values()].map((e) => {
      clearTimeout(e.timer);
      return e.value;
    });
    this.pending.clear();
    return values;
  }
}
