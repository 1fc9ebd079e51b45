import type { Broker } from '../broker.js';
import type { ChannelStats } from './channel-stats.js';
import { percentilesBetween, type LatencyHistograms } from './percentiles.js';
import type { StatsSnapshot } from './views.js';

/** How often the counters are sampled: the resolution of the per-second rates. */
export const SAMPLE_INTERVAL_MS = 1000;

/** The broker's counters at one moment. */
interface Sample {
  at: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  latency: LatencyHistograms | undefined;
}

/** Messages and payload held for later: retained ones and what waits in queues (`$SYS/broker/store/…`). */
export interface StoreTotals {
  messages: number;
  bytes: number;
}

/**
 * Samples the broker's counters once a second, so that rates and latency percentiles are those
 * of the last second whoever asks and however often. Sampling reads a few numbers (and copies two
 * histograms); a snapshot also sums the queues, which is linear in sessions and groups, and is
 * made only when someone asks (a stats request, a stream, a `$SYS` round).
 */
export class StatsSampler {
  readonly startedAt = Date.now();
  private previous: Sample;
  private latest: Sample;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<() => void>();
  private maxConnections = 0;

  constructor(
    private readonly broker: Broker,
    private readonly channels: ChannelStats,
    private readonly latency: (() => LatencyHistograms) | undefined,
    readonly version: string,
  ) {
    this.latest = this.sample();
    this.previous = this.latest;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.tick();
      } catch (err) {
        this.broker.reportInternalError('stats sampler', err);
      }
    }, SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** Calls `listener` after each sample (the stats stream); returns how to stop. */
  onSample(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The most connections open at once, as seen at the samples. */
  get peakConnections(): number {
    return Math.max(this.maxConnections, this.broker.stats.connections);
  }

  /** Messages and bytes held: retained, waiting and in flight in every session and group queue. */
  storeTotals(): StoreTotals {
    const storage = this.broker.storage;
    let messages = storage.retainedCount;
    let bytes = storage.retainedBytes;
    for (const session of this.broker.sessions.values()) {
      const q = session.queue;
      messages += q.pendingCount + q.inflight.size + q.held.size;
      bytes += q.pendingBytes + q.inflightBytes;
    }
    for (const group of this.broker.groups.values()) {
      const q = group.queue;
      messages += q.pendingCount + q.inflight.size + q.held.size;
      bytes += q.pendingBytes + q.inflightBytes;
    }
    return { messages, bytes };
  }

  snapshot(): StatsSnapshot {
    const broker = this.broker;
    const stats = broker.stats;
    const now = Date.now();
    const { previous, latest } = this;
    const seconds = Math.max(0.001, (latest.at - previous.at) / 1000);
    const perSecond = (pick: (s: Sample) => number): number => (latest === previous ? 0 : (pick(latest) - pick(previous)) / seconds);
    const store = this.storeTotals();
    const latencyNow = latest.latency;
    const dropped = Object.values(stats.dropped).reduce((a, b) => a + b, 0);
    return {
      time: new Date(now).toISOString(),
      uptime: Math.floor((now - this.startedAt) / 1000),
      version: this.version,
      connections: stats.connections,
      maxConnections: this.peakConnections,
      sessions: broker.sessions.size,
      subscriptions: broker.router.subscriptionCount,
      groups: broker.groups.size,
      messages: { in: stats.messagesIn, out: stats.messagesOut, inPerSecond: perSecond((s) => s.messagesIn), outPerSecond: perSecond((s) => s.messagesOut), dropped },
      bytes: { in: stats.bytesIn, out: stats.bytesOut, inPerSecond: perSecond((s) => s.bytesIn), outPerSecond: perSecond((s) => s.bytesOut) },
      payloadBytes: { in: this.channels.payloadIn, out: this.channels.payloadOut },
      storage: {
        engine: broker.storage.kind,
        bytesUsed: broker.storage.bytesUsed ?? null,
        retained: broker.storage.retainedCount,
        retainedBytes: broker.storage.retainedBytes,
        storedMessages: store.messages,
        storedBytes: store.bytes,
      },
      deadLetters: broker.deadLetters.queue.pendingCount + broker.deadLetters.queue.inflight.size,
      latency: {
        fsync: latencyNow && latest !== previous ? percentilesBetween(previous.latency?.fsync, latencyNow.fsync) : null,
        delivery: latencyNow && latest !== previous ? percentilesBetween(previous.latency?.delivery, latencyNow.delivery) : null,
      },
      heapUsed: process.memoryUsage().heapUsed,
    };
  }

  private tick(): void {
    this.previous = this.latest;
    this.latest = this.sample();
    this.maxConnections = this.peakConnections;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (err) {
        this.broker.reportInternalError('stats listener', err);
      }
    }
  }

  private sample(): Sample {
    const stats = this.broker.stats;
    return { at: Date.now(), messagesIn: stats.messagesIn, messagesOut: stats.messagesOut, bytesIn: stats.bytesIn, bytesOut: stats.bytesOut, latency: this.latency?.() };
  }
}
