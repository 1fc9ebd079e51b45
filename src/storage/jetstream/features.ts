import type { NatsConnection } from '@nats-io/transport-node';
import { UnsupportedServerError } from './errors.js';

/**
 * JetStream features by the nats-server version that introduced them (docs/cluster.md, "Minimum NATS
 * version"). nats.js checks some of these itself (filter_subjects, compression, priority groups) and
 * refuses with an error; others it sends regardless, and an older server silently ignores the field or
 * header: a 2.9 server drops `allow_msg_ttl` from a stream config and stores a `Nats-TTL` message
 * forever (test/jetstream-server-features.test.ts shows it). So Eddy code that relies on one of these
 * must call requireFeature first, not trust the server's reply.
 */
export const JETSTREAM_FEATURES = {
  'kv': '2.6.2',
  'direct-get': '2.9.0',
  'multiple-consumer-filters': '2.10.0',
  'stream-metadata': '2.10.0',
  'stream-compression': '2.10.0',
  'subject-transforms': '2.10.0',
  'per-message-ttl': '2.11.0',
  'subject-delete-markers': '2.11.0',
  'consumer-pause': '2.11.0',
  'priority-groups': '2.11.0',
  'batch-direct-get': '2.11.0',
  'atomic-batch-publish': '2.12.0',
  'counters': '2.12.0',
  'message-schedules': '2.12.0',
} as const;

export type JetStreamFeature = keyof typeof JETSTREAM_FEATURES;

interface SemVer {
  major: number;
  minor: number;
  micro: number;
}

export function parseVersion(version: string): SemVer | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3]) };
}

/** Whether `have` is at least `need`; an unparsable version counts as too old. */
export function versionAtLeast(have: string, need: string): boolean {
  const a = parseVersion(have);
  const b = parseVersion(need);
  if (!a || !b) return false;
  if (a.major !== b.major) return a.major > b.major;
  if (a.minor !== b.minor) return a.minor > b.minor;
  return a.micro >= b.micro;
}

/** The version of the server this connection is on now (it may change after a reconnect). */
export function serverVersion(nc: NatsConnection): string {
  return nc.info?.version ?? 'unknown';
}

export function supports(nc: NatsConnection, feature: JetStreamFeature): boolean {
  return versionAtLeast(serverVersion(nc), JETSTREAM_FEATURES[feature]);
}

/**
 * Throws UnsupportedServerError when the connected server is older than the feature needs.
 * Checks the server Eddy is connected to; in a mixed-version cluster during a rolling upgrade the
 * meta leader may be older still, so the documented minimum applies to every node.
 */
export function requireFeature(nc: NatsConnection, feature: JetStreamFeature): void {
  if (!supports(nc, feature)) throw new UnsupportedServerError(feature, JETSTREAM_FEATURES[feature], serverVersion(nc));
}
