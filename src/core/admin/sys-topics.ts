import type { Broker } from '../broker.js';
import type { Message } from '../message.js';
import type { StatsSampler } from './stats.js';

/** Seconds between two rounds of `$SYS/…` messages, as Mosquitto's `sys_interval` (0: none). */
export const DEFAULT_SYS_INTERVAL_SECONDS = 10;

/** The counters that get Mosquitto's 1, 5 and 15 minute load averages (`$SYS/broker/load/<name>/1min`). */
const LOADS = {
  'messages/received': (c: Counters) => c.messagesIn,
  'messages/sent': (c: Counters) => c.messagesOut,
  'publish/received': (c: Counters) => c.messagesIn,
  'publish/sent': (c: Counters) => c.messagesOut,
  'publish/dropped': (c: Counters) => c.dropped,
  'bytes/received': (c: Counters) => c.bytesIn,
  'bytes/sent': (c: Counters) => c.bytesOut,
} as const;
const LOAD_MINUTES = [1, 5, 15];
/** Eddy's own: per second over the last interval (`$SYS/broker/rate/<name>`). */
const RATES = ['messages/received', 'messages/sent', 'bytes/received', 'bytes/sent'] as const;

interface Counters {
  at: number;
  messagesIn: number;
  messagesOut: number;
  dropped: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * The `$SYS/broker/…` topics Mosquitto users expect, published by the broker every interval at
 * QoS 0 and kept as retained messages in memory (VolatileRetained: a new `$SYS/#` subscriber gets
 * the latest values at once; storing them would write the log every round). Only a value that
 * changed is published again, as Mosquitto does. Mosquitto's names are kept where Eddy has the
 * same figure; `$SYS/broker/rate/…` (per second over the last interval) are Eddy's own. Clients
 * may not publish there, and only the admin role may subscribe (the admission's reserved topics).
 */
export class SysTopics {
  private timer: NodeJS.Timeout | undefined;
  private last: Counters;
  /** Current load averages by topic (per minute, exponentially smoothed, as Mosquitto computes them). */
  private readonly loads = new Map<string, number>();
  private maxHeap = 0;

  constructor(
    private readonly broker: Broker,
    private readonly sampler: StatsSampler,
    private readonly intervalMs: number,
  ) {
    this.last = this.counters();
  }

  /** Publishes a first round now, then one every interval; nothing when the interval is 0. */
  start(): void {
    if (this.intervalMs <= 0 || this.timer) return;
    this.round();
    this.timer = setInterval(() => {
      try {
        this.round();
      } catch (err) {
        this.broker.reportInternalError('$SYS publisher', err);
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round: every value, published where it changed. */
  round(): void {
    for (const [topic, value] of this.values()) this.publish(topic, value);
  }

  /** The topics and their values now. */
  values(): Map<string, string> {
    const broker = this.broker;
    const stats = broker.stats;
    const now = this.counters();
    const snapshot = this.sampler.snapshot();
    const store = snapshot.storage;
    let connectedSessions = 0;
    for (const session of broker.sessions.values()) if (session.connected) connectedSessions++;
    const heap = snapshot.heapUsed;
    this.maxHeap = Math.max(this.maxHeap, heap);
    const v = new Map<string, string>();
    const put = (topic: string, value: string | number): void => void v.set(`$SYS/broker/${topic}`, String(value));
    put('version', `eddy version ${this.sampler.version}`);
    put('uptime', `${snapshot.uptime} seconds`);
    put('clients/connected', stats.connections);
    put('clients/disconnected', broker.sessions.size - connectedSessions);
    put('clients/total', broker.sessions.size);
    put('clients/maximum', snapshot.maxConnections);
    put('messages/received', stats.messagesIn);
    put('messages/sent', stats.messagesOut);
    put('publish/messages/received', stats.messagesIn);
    put('publish/messages/sent', stats.messagesOut);
    put('publish/messages/dropped', now.dropped);
    put('bytes/received', stats.bytesIn);
    put('bytes/sent', stats.bytesOut);
    put('publish/bytes/received', snapshot.payloadBytes.in);
    put('publish/bytes/sent', snapshot.payloadBytes.out);
    put('messages/stored', store.storedMessages);
    put('store/messages/count', store.storedMessages);
    put('store/messages/bytes', store.storedBytes);
    put('retained messages/count', broker.storage.retainedCount);
    put('subscriptions/count', snapshot.subscriptions);
    put('heap/current', heap);
    put('heap/maximum', this.maxHeap);
    const seconds = (now.at - this.last.at) / 1000;
    const delta = (pick: (c: Counters) => number): number => Math.max(0, pick(now) - pick(this.last));
    for (const name of RATES) put(`rate/${name}`, (seconds > 0 ? delta(LOADS[name]) / seconds : 0).toFixed(2));
    for (const [name, pick] of Object.entries(LOADS)) {
      // Mosquitto's formula: this interval's per-minute rate, smoothed with exp(-interval / period).
      const perMinute = seconds > 0 ? delta(pick) * (60 / seconds) : 0;
      for (const minutes of LOAD_MINUTES) {
        const topic = `load/${name}/${minutes}min`;
        const previous = this.loads.get(topic) ?? 0;
        const load = seconds > 0 ? perMinute + Math.exp(-seconds / (60 * minutes)) * (previous - perMinute) : previous;
        this.loads.set(topic, load);
        put(topic, load.toFixed(2));
      }
    }
    this.last = now;
    return v;
  }

  private publish(topic: string, value: string): void {
    const kept = this.broker.volatileRetained.get(topic);
    if (kept && kept.payload.toString() === value) return;
    const payload = Buffer.from(value);
    const publishedAt = Date.now();
    const message = (retain: boolean): Message => ({ topic, payload, qos: 0, retain, properties: {}, publishedAt });
    this.broker.volatileRetained.set(message(true));
    // Live at QoS 0 and not retained, so nothing is stored: the retained copy is the volatile one.
    this.broker.publish(message(false));
    // The broker's own reports are not messages it received (nor are they in Mosquitto's count):
    // an idle broker shows 0 received per second.
    this.broker.stats.messagesIn--;
  }

  private counters(): Counters {
    const stats = this.broker.stats;
    const dropped = Object.values(stats.dropped).reduce((a, b) => a + b, 0);
    return { at: Date.now(), messagesIn: stats.messagesIn, messagesOut: stats.messagesOut, dropped, bytesIn: stats.bytesIn, bytesOut: stats.bytesOut };
  }
}
