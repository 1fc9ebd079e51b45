// The live stats: one SSE stream (/v1/admin/stats/stream) for the whole console, opened once
// logged in. The Overview charts read its history; the list pages use its events as their clock
// (they refresh the rows on screen when a sample arrives), so the console never polls on its own.

import { useEffect, useState } from 'preact/hooks';
import type { StatsSnapshot } from '../../src/core/admin/views.js';
import { ApiError, stream } from './api.js';

/** Samples kept for the charts: ten minutes at one a second. */
const HISTORY = 600;

type Listener = (latest: StatsSnapshot) => void;

class StatsStore {
  readonly history: StatsSnapshot[] = [];
  latest: StatsSnapshot | undefined;
  error: string | undefined;
  private readonly listeners = new Set<Listener>();
  private abort: AbortController | undefined;

  start(): void {
    if (this.abort) return;
    const abort = new AbortController();
    this.abort = abort;
    const run = async (): Promise<void> => {
      while (!abort.signal.aborted) {
        try {
          await stream('/v1/admin/stats/stream', (event) => {
            if (event.event !== 'stats') return;
            this.add(JSON.parse(event.data) as StatsSnapshot);
          }, abort.signal);
        } catch (err) {
          if (abort.signal.aborted) return;
          this.error = err instanceof Error ? err.message : String(err);
          // Credentials refused: the login form takes over (api.ts), no retry loop.
          if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return this.stop();
        }
        // The broker went away or restarted: try again in a while, not in a tight loop.
        await new Promise((r) => setTimeout(r, 2000));
      }
    };
    void run();
  }

  stop(): void {
    this.abort?.abort();
    this.abort = undefined;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private add(stats: StatsSnapshot): void {
    this.error = undefined;
    this.latest = stats;
    this.history.push(stats);
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    for (const listener of this.listeners) {
      try {
        listener(stats);
      } catch (err) {
        // One page's bug must not stop the others' updates.
        console.error('stats listener failed', err);
      }
    }
  }
}

export const statsStore = new StatsStore();

/** The latest snapshot, re-rendering on each one. */
export function useStats(): StatsSnapshot | undefined {
  const [stats, setStats] = useState(statsStore.latest);
  useEffect(() => statsStore.subscribe(setStats), []);
  return stats;
}

/** Calls `tick` on a stats event at most once every `seconds` (the list pages' refresh clock). */
export function useStatsTick(seconds: number, tick: () => void): void {
  useEffect(() => {
    let last = Date.now();
    return statsStore.subscribe(() => {
      if (Date.now() - last < seconds * 1000 - 100) return;
      last = Date.now();
      tick();
    });
  }, [seconds, tick]);
}
