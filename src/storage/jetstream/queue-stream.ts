import { createHash } from 'node:crypto';
import { AckPolicy, DeliverPolicy, JetStreamApiError, ReplayPolicy, RetentionPolicy, StorageType, type ConsumerConfig, type ConsumerInfo, type StreamConfig } from '@nats-io/jetstream';
import type { ClusterConnection } from './connection.js';
import { StreamConfigConflictError } from './errors.js';
import { encodeKeyToken } from './subjects.js';

/**
 * The queue stream: one entry per durable delivery (a message routed to a persistent session's or a
 * durable group's queue), on the queue's own subject `<root>.q.<s|g>.<name>`, read by that queue's
 * durable pull consumer. One subject per queue means one filter per consumer, which nats-server 2.9
 * supports; the alternative (one consumer on the whole message stream, filtered Eddy-side by a header
 * listing the queues) reads every message once per queue. The price here is a copy of the message per
 * durable queue it goes to: the routing the core decided (no-local, rights, a group's pick, the
 * subscription ids, the QoS granted) is kept exactly, and a queue reads only its own entries.
 */

export type QueueKind = 's' | 'g';

const nanos = (ms: number): number => ms * 1_000_000;
const API_CONSUMER_NOT_FOUND = 10014;
/**
 * JetStream redelivers an entry not acknowledged within this time. Eddy acknowledges an entry once its
 * delivery is done (acknowledged by the client), which may take as long as the client stays away, so
 * the wait is long; Eddy drops a redelivered copy of an entry it already holds (queue, `accept`).
 */
const ACK_WAIT_MS = 24 * 3600 * 1000;

export function queueStreamConfig(name: string, root: string, replicas: number): StreamConfig {
  return {
    name,
    subjects: [`${root}.q.>`],
    // Limits, not work-queue retention: in a work-queue stream every ack is a replicated delete, and
    // nats-server before the fix of nats-io/nats-server#7308 (2025) resets a stream's replicated
    // state when a replica applies the delete of a message it does not have (after a kill -9): on
    // 2.9.10 the cluster crash harness lost confirmed entries that way ("stream store EOF",
    // "Resetting stream cluster state"). Here an ack only moves the consumer's ack floor, and the
    // queue purges its subject up to that floor now and then (trimAcknowledged): a purge is one
    // operation on a range, and purging what is gone is no error.
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(120_000),
  } as StreamConfig;
}

export async function ensureQueueStream(conn: ClusterConnection, name: string, root: string, replicas: number): Promise<number> {
  const want = queueStreamConfig(name, root, replicas);
  try {
    const have = await conn.jsm.streams.info(name);
    if (have.config.retention !== want.retention) throw new StreamConfigConflictError(name, `exists with retention ${have.config.retention}, Eddy needs ${want.retention}`);
    if (have.config.num_replicas !== replicas) {
      const { name: _n, ...update } = { ...have.config, num_replicas: replicas };
      await conn.jsm.streams.update(name, update);
    }
    return have.state.last_seq;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== 10059) throw err;
  }
  try {
    return (await conn.jsm.streams.add(want)).state.last_seq;
  } catch (err) {
    if (err instanceof JetStreamApiError) throw new StreamConfigConflictError(name, `${err.message} (JetStream API error ${err.code})`, { cause: err });
    throw err;
  }
}

/** The subject of a queue's entries: the name as one KV-alphabet token (any client id or group name fits). */
export function queueSubject(root: string, kind: QueueKind, name: string): string {
  return `${root}.q.${kind}.${encodeKeyToken(name)}`;
}

/** A durable consumer name for a queue: hashed, as names allow fewer characters and lengths than client ids. */
export function queueConsumerName(kind: QueueKind, name: string): string {
  return `eddy_${kind}_${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
}

function consumerConfig(durable: string, subject: string, fromSeq?: number): Partial<ConsumerConfig> {
  const start: Partial<ConsumerConfig> = fromSeq && fromSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq } : { deliver_policy: DeliverPolicy.All };
  return {
    durable_name: durable,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ACK_WAIT_MS),
    max_deliver: -1,
    // The memory window bounds what Eddy holds; JetStream must not stop delivering below it (in flight, held).
    max_ack_pending: -1,
    replay_policy: ReplayPolicy.Instant,
    // A new queue is owed every entry on its subject; a recreated one, everything after its ack floor.
    ...start,
  };
}

export async function consumerInfoOrUndefined(conn: ClusterConnection, stream: string, durable: string): Promise<ConsumerInfo | undefined> {
  try {
    return await conn.jsm.consumers.info(stream, durable);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === API_CONSUMER_NOT_FOUND) return undefined;
    throw err;
  }
}

/** Creates the queue's durable consumer if it does not exist (from the first entry on its subject). */
export async function ensureQueueConsumer(conn: ClusterConnection, stream: string, durable: string, subject: string): Promise<void> {
  if (await consumerInfoOrUndefined(conn, stream, durable)) return;
  await addConsumer(conn, stream, consumerConfig(durable, subject));
}

/**
 * Adds a queue consumer. Another node may create the same one at the same moment (a group's first
 * members, a takeover while the old holder restarts), with another start: then the one that exists
 * is the queue's consumer, and the add's refusal ("can not be updated", "already in use") is no error.
 */
async function addConsumer(conn: ClusterConnection, stream: string, config: Partial<ConsumerConfig>): Promise<void> {
  try {
    await conn.jsm.consumers.add(stream, config);
  } catch (err) {
    if (err instanceof JetStreamApiError && (await consumerInfoOrUndefined(conn, stream, config.durable_name!))) return;
    throw err;
  }
}

/**
 * At open, after the previous Eddy process ended (closed or killed): entries it had fetched and not
 * acknowledged would come back only after the ack wait, so the consumer is recreated and delivers
 * them now, in order (what was acknowledged is no longer in the work queue).
 */
export async function resumeQueueConsumer(conn: ClusterConnection, stream: string, info: ConsumerInfo): Promise<void> {
  if (info.num_ack_pending === 0) return;
  const durable = info.config.durable_name ?? info.name;
  const subject = info.config.filter_subject ?? '>';
  try {
    await conn.jsm.consumers.delete(stream, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === API_CONSUMER_NOT_FOUND)) throw err;
  }
  await addConsumer(conn, stream, consumerConfig(durable, subject, info.ack_floor.stream_seq + 1));
}

/** At open: purges what a consumer had acknowledged (its subject up to the ack floor in the info listed). */
export async function trimQueue(conn: ClusterConnection, stream: string, info: ConsumerInfo): Promise<void> {
  const floor = info.ack_floor;
  // Only a floor this consumer has reached by its own acks: nats-server 2.9 reports a consumer
  // recreated from a start seq with a stream-seq floor that is not where its acks are (before its
  // first ack), and purging to it dropped entries never delivered (the cluster crash harness lost
  // messages confirmed just after an Eddy restart that way).
  if (floor.consumer_seq === 0 || floor.stream_seq <= 0 || floor.stream_seq > info.delivered.stream_seq) return;
  if (info.config.filter_subject) await conn.jsm.streams.purge(stream, { filter: info.config.filter_subject, seq: floor.stream_seq + 1 });
}

/** Purges a queue's subject up to its consumer's ack floor: every entry at or below it is acknowledged. */
export async function trimAcknowledged(conn: ClusterConnection, stream: string, durable: string, subject: string): Promise<void> {
  const info = await consumerInfoOrUndefined(conn, stream, durable);
  if (info) await trimQueue(conn, stream, info);
}

/**
 * Entries per queue subject, from the stream leader. Called at open after every consumer's subject
 * was purged up to its ack floor (trimQueue): what remains is what each queue still owes (entries
 * acknowledged after the first unacknowledged one included: they come again).
 */
export async function queueLengths(conn: ClusterConnection, stream: string, root: string): Promise<Map<string, number>> {
  const info = await conn.jsm.streams.info(stream, { subjects_filter: `${root}.q.>` });
  return new Map(Object.entries(info.state.subjects ?? {}));
}

/** Removes a queue: its consumer and its entries. */
export async function dropQueue(conn: ClusterConnection, stream: string, durable: string, subject: string): Promise<void> {
  try {
    await conn.jsm.consumers.delete(stream, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === API_CONSUMER_NOT_FOUND)) throw err;
  }
  await conn.jsm.streams.purge(stream, { filter: subject });
}
