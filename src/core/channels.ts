import { ConfigError } from '../util/errors.js';
import { isValidTopicFilter, topicMatches } from './topics.js';

/** How long, or how much, a channel's history is kept for replay. */
export interface RetentionPolicy {
  /** Milliseconds a message stays replayable after it was published. */
  maxAgeMs?: number;
  /** Bytes of history (message records) kept per channel pattern; trimmed in whole blocks. */
  maxBytes?: number;
}

/** Per-channel settings, from the `channels` section of the config file. */
export interface ChannelPolicy {
  /** The topic filter the policy applies to. */
  pattern: string;
  /** Deliveries (first one included) before a message that keeps failing is dead-lettered. */
  maxDeliveries: number;
  retention?: RetentionPolicy;
}

export const DEFAULT_MAX_DELIVERIES = 5;

/** Dead letters live on `$DLQ/<original topic>`; replayable for 14 days unless configured otherwise. */
export const DLQ_PREFIX = '$DLQ/';
const DLQ_RETENTION: RetentionPolicy = { maxAgeMs: 14 * 24 * 3600 * 1000 };

/** The policy for each topic: the first pattern in configuration order that matches it wins. */
export class ChannelPolicies {
  private readonly cache = new Map<string, ChannelPolicy>();
  private readonly fallback: ChannelPolicy = { pattern: '#', maxDeliveries: DEFAULT_MAX_DELIVERIES };

  private list: ChannelPolicy[];

  constructor(policies: ChannelPolicy[] = []) {
    this.list = withDeadLetterDefault(policies);
  }

  get policies(): ChannelPolicy[] {
    return this.list;
  }

  /**
   * Puts new policies in force (a configuration reload). The broker, redelivery and storage share
   * this one object, so each of them sees the new policies at its next lookup.
   */
  replace(policies: ChannelPolicy[]): void {
    this.list = withDeadLetterDefault(policies);
    this.cache.clear();
  }

  for(topic: string): ChannelPolicy {
    let policy = this.cache.get(topic);
    if (policy) return policy;
    policy = this.list.find((p) => topicMatches(p.pattern, topic)) ?? this.fallback;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(topic, policy);
    return policy;
  }

  /** Policies that keep history, in configuration order. */
  get retained(): ChannelPolicy[] {
    return this.list.filter((p) => p.retention !== undefined);
  }
}

/** The policies with `$DLQ/#` added when the configuration does not set it. */
function withDeadLetterDefault(policies: ChannelPolicy[]): ChannelPolicy[] {
  if (policies.some((p) => p.pattern === `${DLQ_PREFIX}#`)) return policies;
  return [...policies, { pattern: `${DLQ_PREFIX}#`, maxDeliveries: Infinity, retention: DLQ_RETENTION }];
}

/** Reads the `channels` mapping of the config file: `pattern: { maxDeliveries, retention: { maxAge, maxBytes } }`. */
export function parseChannelPolicies(raw: unknown, source: string): ChannelPolicy[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: channels must be a mapping of topic filter to settings`);
  const policies: ChannelPolicy[] = [];
  for (const [pattern, value] of Object.entries(raw)) {
    const where = `${source}: channels."${pattern}"`;
    if (!isValidTopicFilter(pattern)) throw new ConfigError(`${where}: not a valid topic filter`);
    if (typeof value !== 'object' || value === null) throw new ConfigError(`${where} must be a mapping`);
    const settings = value as Record<string, unknown>;
    for (const key of Object.keys(settings)) {
      if (key !== 'maxDeliveries' && key !== 'retention') throw new ConfigError(`${where}: unknown key "${key}" (known: maxDeliveries, retention)`);
    }
    const policy: ChannelPolicy = { pattern, maxDeliveries: DEFAULT_MAX_DELIVERIES };
    if (settings.maxDeliveries !== undefined) {
      const n = settings.maxDeliveries;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ConfigError(`${where}.maxDeliveries must be a whole number >= 1`);
      policy.maxDeliveries = n;
    }
    if (settings.retention !== undefined) {
      const r = settings.retention as Record<string, unknown>;
      if (typeof r !== 'object' || r === null) throw new ConfigError(`${where}.retention must be a mapping with maxAge and/or maxBytes`);
      for (const key of Object.keys(r)) {
        if (key !== 'maxAge' && key !== 'maxBytes') throw new ConfigError(`${where}.retention: unknown key "${key}" (known: maxAge, maxBytes)`);
      }
      const retention: RetentionPolicy = {};
      if (r.maxAge !== undefined) retention.maxAgeMs = parseDuration(r.maxAge, `${where}.retention.maxAge`);
      if (r.maxBytes !== undefined) retention.maxBytes = parseBytes(r.maxBytes, `${where}.retention.maxBytes`);
      if (retention.maxAgeMs === undefined && retention.maxBytes === undefined) throw new ConfigError(`${where}.retention needs maxAge and/or maxBytes`);
      policy.retention = retention;
    }
    policies.push(policy);
  }
  return policies;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };
const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** `30s`, `15m`, `7d`, or a number of milliseconds. */
export function parseDuration(value: unknown, where: string): number {
  if (typeof value === 'number' && value > 0) return value;
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(value.trim()) : null;
  if (!match) throw new ConfigError(`${where} must be a duration such as 30s, 15m, 12h or 7d`);
  return Number(match[1]) * DURATION_UNITS[match[2]!]!;
}

/** `500MB`, `1GiB`, or a number of bytes. */
export function parseBytes(value: unknown, where: string): number {
  if (typeof value === 'number' && value > 0) return value;
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)$/i.exec(value.trim()) : null;
  if (!match) throw new ConfigError(`${where} must be a size such as 500MB or 1GiB`);
  return Math.floor(Number(match[1]) * BYTE_UNITS[match[2]!.toLowerCase()]!);
}
