/** Per-user (per client id when anonymous) limits (config `quotas:`); each is off when absent. */
export interface QuotaConfig {
  /** Publishes per second, with bursts of up to one second's worth. */
  publishRate?: number;
  /** Payload bytes published per second, likewise. */
  publishBytesRate?: number;
  /** Connections open at once per user. */
  connectionsPerUser?: number;
}

/** A token bucket: `rate` tokens a second, holding at most one second's worth. */
class Bucket {
  private tokens: number;
  private at: number;

  constructor(private readonly rate: number) {
    this.tokens = rate;
    this.at = Date.now();
  }

  take(n: number, now: number): boolean {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    // A single message larger than a second's worth goes through when the bucket is full.
    if (this.tokens >= n || this.tokens >= this.rate) {
      this.tokens -= n;
      return true;
    }
    return false;
  }
}

export type QuotaRefusal = { kind: 'rate'; reason: string } | undefined;

/** Buckets kept at most; past that they start over (a burst more for some, never less). */
const MAX_KEYS = 100_000;

/** The quotas in force, with their buckets and counts per key. */
export class Quotas {
  private readonly messages = new Map<string, Bucket>();
  private readonly bytes = new Map<string, Bucket>();
  private readonly connections = new Map<string, number>();

  constructor(private readonly config: QuotaConfig = {}) {}

  /** Takes one publish of `size` payload bytes from `key`'s buckets; why not, when over a rate. */
  publish(key: string, size: number): QuotaRefusal {
    const now = Date.now();
    const { publishRate, publishBytesRate } = this.config;
    if (publishRate !== undefined && !bucket(this.messages, key, publishRate).take(1, now)) {
      return { kind: 'rate', reason: `more than ${publishRate} publishes per second (quotas.publishRate)` };
    }
    if (publishBytesRate !== undefined && !bucket(this.bytes, key, publishBytesRate).take(size, now)) {
      return { kind: 'rate', reason: `more than ${publishBytesRate} payload bytes per second (quotas.publishBytesRate)` };
    }
    return undefined;
  }

  /** Counts a connection of `key`; why not, when it already has `connectionsPerUser`. */
  connect(key: string): string | undefined {
    const limit = this.config.connectionsPerUser;
    const open = this.connections.get(key) ?? 0;
    if (limit !== undefined && open >= limit) return `${open} connections are open for this user (quotas.connectionsPerUser ${limit})`;
    this.connections.set(key, open + 1);
    return undefined;
  }

  disconnect(key: string): void {
    const open = this.connections.get(key) ?? 0;
    if (open <= 1) this.connections.delete(key);
    else this.connections.set(key, open - 1);
  }
}

function bucket(map: Map<string, Bucket>, key: string, rate: number): Bucket {
  let b = map.get(key);
  if (!b) {
    if (map.size >= MAX_KEYS) map.clear();
    map.set(key, (b = new Bucket(rate)));
  }
  return b;
}
