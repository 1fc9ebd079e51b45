/**
 * Group commit that pipelines, for `fsync always`: records are written as they come (one write per
 * event-loop turn), and confirmed by the first fdatasync that *starts* after they were written.
 * While one fdatasync runs, the next records are already being written; when it ends, one
 * fdatasync covers everything written meanwhile. So a confirmation waits for at most the end of
 * the running fsync plus one more, and a write never waits for an fsync.
 */

/** Records written to the log and not yet confirmed: they wait for an fsync that starts after them. */
export interface WrittenRecords<S> {
  /** The file they were written to. */
  segment: S;
  /** How many records. */
  count: number;
}

export interface SyncPipelineHooks<S, W extends WrittenRecords<S>> {
  /** Makes what was written to these segments durable. */
  sync(segments: Set<S>): Promise<void>;
  /** These records are durable now, in the order they were written. */
  confirm(written: W[]): void;
  /** The fsync failed: neither these records nor any written after them count as written. */
  fail(written: W[], err: unknown): void;
  /** One fsync done: how long it took, and how many records it confirmed. */
  observe?(durationMs: number, records: number): void;
  /** A hook threw: a bug, reported rather than left as an unhandled rejection. */
  report(err: unknown): void;
}

export class SyncPipeline<S, W extends WrittenRecords<S>> {
  private waiting: W[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly hooks: SyncPipelineHooks<S, W>) {}

  /** True while records wait for an fsync or one runs. */
  get busy(): boolean {
    return this.running !== undefined || this.waiting.length > 0;
  }

  add(written: W): void {
    this.waiting.push(written);
    if (!this.running) this.start();
  }

  /** Resolves once every record added so far is confirmed or failed (a roll waits for this before closing a descriptor). */
  async drained(): Promise<void> {
    while (this.running) await this.running;
  }

  private start(): void {
    const covered = this.waiting;
    this.waiting = [];
    const segments = new Set(covered.map((w) => w.segment));
    const started = performance.now();
    this.running = this.hooks
      .sync(segments)
      .then(
        () => {
          this.hooks.observe?.(performance.now() - started, covered.reduce((n, w) => n + w.count, 0));
          this.hooks.confirm(covered);
        },
        (err: unknown) => {
          // What was written after the failed fsync started sits behind records that no longer
          // count: it fails with them, so the log stays the sequence of confirmed records.
          const failed = covered.concat(this.waiting);
          this.waiting = [];
          this.hooks.fail(failed, err);
        },
      )
      .catch((err: unknown) => this.hooks.report(err))
      .finally(() => {
        this.running = undefined;
        if (this.waiting.length > 0) this.start();
      });
  }
}
