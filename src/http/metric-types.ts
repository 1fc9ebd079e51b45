import type { Metric, Registry } from 'prom-client';

/** Message and payload byte counts of one channel family, in each direction. */
export interface ChannelCounts {
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
}

/** Distinct `channel` label values kept; any further first level is counted under OTHER_CHANNEL. */
const MAX_CHANNELS = 1000;
export const OTHER_CHANNEL = '~other';
/** Topics remembered for their family; the cache starts over when it grows past this. */
const MAX_CACHED_TOPICS = 10_000;

/**
 * Traffic per channel family: the first topic level (`user` for `user/signedup`; `$DLQ` for
 * `$DLQ/orders/42`), which keeps the label's cardinality bounded. Finding a topic's counts is one
 * map lookup on the topic string: the family is worked out (a slice) only the first time a topic
 * is seen. prom-client reads the numbers when it is scraped.
 */
export class ChannelTraffic {
  readonly channels = new Map<string, ChannelCounts>();
  private readonly byTopic = new Map<string, ChannelCounts>();

  countsFor(topic: string): ChannelCounts {
    const cached = this.byTopic.get(topic);
    if (cached) return cached;
    const slash = topic.indexOf('/');
    const family = slash === -1 ? topic : topic.slice(0, slash);
    let counts = this.channels.get(family);
    if (!counts) {
      const overflow = this.channels.size >= MAX_CHANNELS;
      counts = overflow ? this.channels.get(OTHER_CHANNEL) : undefined;
      if (!counts) {
        counts = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };
        this.channels.set(overflow ? OTHER_CHANNEL : family, counts);
      }
    }
    if (this.byTopic.size >= MAX_CACHED_TOPICS) this.byTopic.clear();
    this.byTopic.set(topic, counts);
    return counts;
  }
}

/** One line of a histogram's text format, in the shape prom-client's registry renders. */
interface HistogramSample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/**
 * A Prometheus histogram whose `observe` is a bucket search and three additions, for observations
 * on the hot path (prom-client's own histogram allocates and validates labels on every call). It
 * has no labels. It renders through prom-client's registry, which needs of a metric only its
 * name, type, `get()` (the documented shape of a histogram's values) and `reset()`.
 */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending, in the observed unit. */
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    this.counts = new Float64Array(buckets.length);
    registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number): void {
    const buckets = this.buckets;
    let i = 0;
    while (i < buckets.length && value > buckets[i]!) i++;
    if (i < buckets.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /** The counts now, per bucket and one more past the last bound (the admin API's live percentiles). */
  countsNow(): { buckets: readonly number[]; counts: number[] } {
    return { buckets: this.buckets, counts: [...this.counts, this.count - this.counts.reduce((a, b) => a + b, 0)] };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramSample[] }> {
    const values: HistogramSample[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += this.counts[i]!;
      values.push({ value: cumulative, labels: { le: this.buckets[i]! }, metricName: `${this.name}_bucket` });
    }
    values.push({ value: this.count, labels: { le: '+Inf' }, metricName: `${this.name}_bucket` });
    values.push({ value: this.sum, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: this.count, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
