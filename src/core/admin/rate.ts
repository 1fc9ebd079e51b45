/** Length of one counting window. */
const WINDOW_MS = 10_000;

/**
 * Events per second, for the admin API's rates (a channel's messages, a group's deliveries), at the
 * cost of two additions per event. It counts in fixed windows and reports a sliding estimate: the
 * current window's count plus the share of the previous window that the sliding window still
 * covers, so a burst shows at once and fades out over one window.
 */
export class RateMeter {
  /** Events since the meter was made. */
  total = 0;
  private windowStart = 0;
  private current = 0;
  private previous = 0;

  mark(now: number, n = 1): void {
    if (now - this.windowStart >= WINDOW_MS) this.roll(now);
    this.current += n;
    this.total += n;
  }

  /** Events per second over the last WINDOW_MS. */
  rate(now: number): number {
    if (now - this.windowStart >= WINDOW_MS) this.roll(now);
    const elapsed = Math.min(1, (now - this.windowStart) / WINDOW_MS);
    return (this.previous * (1 - elapsed) + this.current) / (WINDOW_MS / 1000);
  }

  private roll(now: number): void {
    // A window that ended more than one window ago counts as empty.
    const windows = Math.floor((now - this.windowStart) / WINDOW_MS);
    this.previous = windows === 1 ? this.current : 0;
    this.current = 0;
    // Windows stay aligned to multiples of WINDOW_MS since the epoch.
    this.windowStart += windows * WINDOW_MS;
  }
}
