import type { Percentiles } from './views.js';

/** A histogram's counts at one moment: per bucket (not cumulative), and one more for values past the last bound. */
export interface HistogramCounts {
  /** Upper bounds, ascending, in seconds. */
  buckets: readonly number[];
  /** `buckets.length + 1` counts. */
  counts: readonly number[];
}

/** The metrics histograms the live stats read (fsync durations, publish-to-delivery latency). */
export interface LatencyHistograms {
  fsync: HistogramCounts;
  delivery: HistogramCounts;
}

/**
 * Percentiles of what a histogram observed between two of its snapshots (say, the last second), so
 * a live chart shows now rather than the whole run; null when nothing was observed.
 */
export function percentilesBetween(before: HistogramCounts | undefined, after: HistogramCounts): Percentiles | null {
  const delta = after.counts.map((c, i) => c - (before?.counts[i] ?? 0));
  const total = delta.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const at = (q: number): number => {
    const rank = q * total;
    let cumulative = 0;
    for (let i = 0; i < delta.length; i++) {
      const inBucket = delta[i]!;
      if (inBucket > 0 && cumulative + inBucket >= rank) {
        if (i >= after.buckets.length) return after.buckets[after.buckets.length - 1]!;
        const low = i === 0 ? 0 : after.buckets[i - 1]!;
        const high = after.buckets[i]!;
        return low + (high - low) * Math.min(1, Math.max(0, (rank - cumulative) / inBucket));
      }
      cumulative += inBucket;
    }
    return after.buckets[after.buckets.length - 1]!;
  };
  return { count: total, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}
