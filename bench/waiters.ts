// Lets publishers sleep until deliveries make room in their window, without a promise per delivery:
// the delivery handler only re-checks the registered conditions.
export class Waiters {
  private list: Array<{ check: () => boolean; done: (ok: boolean) => void }> = [];

  wait(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = {
        check,
        done: (ok: boolean) => {
          clearTimeout(timer);
          this.list = this.list.filter((e) => e !== entry);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => entry.done(false), timeoutMs);
      this.list.push(entry);
    });
  }

  poke(): void {
    if (this.list.length === 0) return;
    for (const e of [...this.list]) if (e.check()) e.done(true);
  }

  releaseAll(): void {
    for (const e of [...this.list]) e.done(false);
  }
}
