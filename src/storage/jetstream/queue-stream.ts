import { createHash } from 'node:crypto';
import { AckPolicy, DeliverPolicy, JetStreamApiError, ReplayPolicy, RetentionPolicy, StorageType, type ConsumerConfig, type ConsumerInfo, type StreamConfig } from '@nats-io/jetstream';
import type { ClusterConnection } from './connection.js';
import { ConsumerStartSkippedError, StreamConfigConflictError } from './errors.js';
import { encodeKeyToken } from './subjects.js';
import { queueTrace } from './queue-trace.js';

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
/**
 * A group's entries are read by every node with a member, each entry by one node: what a node took
 * and lost (it was killed, or the delivery never reached it: an abandoned fetch, a NATS leader
 * change) comes again after this, to any node. A node tells the server it is still working on what
 * it keeps longer (jetstream-queue.ts, GROUP_TOUCH_MS).
 */
export const GROUP_ACK_WAIT_MS = 10_000;

export function queueStreamConfig(name: string, root: string, replicas: number): StreamConfig {
  return {
    name,
    subjects: [`${root}.q.>`],
    // Limits, not work-queue retention: in a work-queue stream every ack is a replicated delete, and
    // nats-server before the fix of nats-io/nats-server#7308 (2025) resets a stream's replicated
    // state when a replica applies the delete of a message it does not have (after a kill -9): on
    // 2.9.10 the cluster crash harness lost confirmed entries that way ("stream store EOF",
    // "Resetting stream cluster state"). Here an ack only moves the consumer's ack floor, and the
    // engine purges the stream below what every queue still owes now and then (compactQueueStream):
    // a purge is one operation on a range, and purging what is gone is no error.
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

/** The kind of queue a consumer reads, from its name (queueConsumerName). */
function kindOf(durable: string): QueueKind {
  return durable.startsWith('eddy_g_') ? 'g' : 's';
}

function ackWaitOf(durable: string): number {
  return nanos(kindOf(durable) === 'g' ? GROUP_ACK_WAIT_MS : ACK_WAIT_MS);
}

function consumerConfig(durable: string, subject: string, fromSeq?: number): Partial<ConsumerConfig> {
  const start: Partial<ConsumerConfig> = fromSeq && fromSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq } : { deliver_policy: DeliverPolicy.All };
  return {
    durable_name: durable,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: ackWaitOf(durable),
    max_deliver: -1,
    // The memory window bounds what Eddy holds; JetStream must not stop delivering below it (in flight, held).
    max_ack_pending: -1,
    replay_policy: ReplayPolicy.Instant,
    // A new queue is owed every entry on its subject; a recreated one, everything after its ack floor.
    ...start,
  };
}

/**
 * The stream seq below which a queue consumer owes nothing: its ack floor, or, before anything was
 * acknowledged, the entry before its configured start. (nats-server 2.9.10 reports an ack floor of 0
 * for such a consumer after a restart or a leader change; taken as is, a recreation from it, or a
 * skip check, would go back to the subject's first entry: duplicates of everything not yet purged.)
 */
export function ackFloorOf(info: ConsumerInfo): number {
  if (info.ack_floor.consumer_seq > 0) return info.ack_floor.stream_seq;
  return Math.max(info.ack_floor.stream_seq, (info.config.opt_start_seq ?? 1) - 1);
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
  const have = await consumerInfoOrUndefined(conn, stream, durable);
  if (have) {
    // A consumer made by an older Eddy (a group's with the long ack wait) takes the current one.
    const ackWait = ackWaitOf(durable);
    if (have.config.ack_wait === ackWait) return;
    try {
      await conn.jsm.consumers.update(stream, durable, { ack_wait: ackWait });
    } catch (err) {
      // Recreated by another node between the info and the update (the cluster crash harness saw
      // "deliver policy can not be updated" end a node's start): that consumer is the queue's, made
      // by an Eddy that sets the current ack wait.
      if (!(err instanceof JetStreamApiError)) throw err;
    }
    return;
  }
  await createQueueConsumer(conn, stream, durable, subject, 1);
}

/**
 * Adds a queue consumer. Another node may create the same one at the same moment (a group's first
 * members, a takeover while the old holder restarts), with another start: then the one that exists
 * is the queue's consumer, and the add's refusal ("can not be updated", "already in use") is no error.
 */
/** The created consumer's info; undefined when another node's creation won (its consumer is the queue's). */
async function addConsumer(conn: ClusterConnection, stream: string, config: Partial<ConsumerConfig>): Promise<ConsumerInfo | undefined> {
  try {
    return await conn.jsm.consumers.add(stream, config);
  } catch (err) {
    if (err instanceof JetStreamApiError && (await consumerInfoOrUndefined(conn, stream, config.durable_name!))) return undefined;
    throw err;
  }
}

/**
 * Recreates a queue's consumer from its ack floor, so that every entry it handed out and nobody
 * acknowledged comes again now, in order, rather than after the ack wait (or never). Used:
 *  - at open, after the previous Eddy process ended (closed or killed): what it had fetched;
 *  - after a fetch failed (nats.js gives up a pull request whose heartbeats it missed, and what the
 *    server still sends to it is dropped: the entries stay handed out, to nobody);
 *  - when a fetch went past entries this process knows it appended (`fromSeq`: the lowest of them).
 * nats-server 2.9 can also lose a consumer's pending entries at a leader change: after a NATS kill
 * the cluster crash harness saw `num_ack_pending` 0 with the ack floor below what was delivered,
 * and those entries never came again. A floor below the delivered position is therefore treated as
 * entries owed, and a floor above it as no floor (from the first entry on the subject).
 * Unless `force`, nothing is done when the consumer owes nothing.
 */
export async function resumeQueueConsumer(conn: ClusterConnection, stream: string, info: ConsumerInfo, options: { force?: boolean; fromSeq?: number } = {}): Promise<void> {
  const floor = ackFloorOf(info);
  const delivered = info.delivered.stream_seq;
  // (A consumer that never delivered anything has a delivered position but owes nothing.)
  if (!options.force && info.num_ack_pending === 0 && (floor >= delivered || info.delivered.consumer_seq === 0)) return;
  let start = floor <= delivered ? floor + 1 : 1;
  if (options.fromSeq !== undefined) start = Math.min(start, options.fromSeq);
  const durable = info.config.durable_name ?? info.name;
  // (A group's consumer is recreated too: what the stopped process held comes again now rather than
  // after the ack wait; what other nodes hold comes again as well, a duplicate among the group.)
  const subject = info.config.filter_subject ?? '>';
  await deleteConsumer(conn, stream, durable);
  queueTrace(durable, 'recreate', `from ${start} floor ${info.ack_floor.consumer_seq}/${floor} delivered ${info.delivered.consumer_seq}/${delivered} ackp ${info.num_ack_pending}`);
  await createQueueConsumer(conn, stream, durable, subject, start);
}

/**
 * Creates a queue consumer reading from entry `start`, and checks where it starts. A new consumer's
 * delivered position is just before its first entry; past `start` (and past the stream's first
 * entry: below it there is nothing to skip), it would skip entries nobody has acknowledged, which
 * nats-server 2.9.10 did after NATS kills (a consumer placed on a replica still catching up). Such a
 * consumer is deleted before anyone reads from it, and the error says to try again.
 */
async function createQueueConsumer(conn: ClusterConnection, stream: string, durable: string, subject: string, start: number): Promise<void> {
  const firstSeq = (await conn.jsm.streams.info(stream)).state.first_seq;
  const created = await addConsumer(conn, stream, consumerConfig(durable, subject, start));
  const expected = Math.max(start, firstSeq);
  if (created && created.delivered.stream_seq > expected - 1) {
    queueTrace(durable, 'create-skipped', `wanted ${expected} started ${created.delivered.stream_seq + 1}`);
    await deleteConsumer(conn, stream, durable);
    throw new ConsumerStartSkippedError(durable, expected, created.delivered.stream_seq + 1);
  }
}

async function deleteConsumer(conn: ClusterConnection, stream: string, durable: string): Promise<void> {
  try {
    await conn.jsm.consumers.delete(stream, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === API_CONSUMER_NOT_FOUND)) throw err;
  }
}

/**
 * Drops the queue stream's entries that no queue owes any more: everything below the lowest entry
 * any queue consumer still owes (its ack floor + 1, or nothing when it has nothing pending or in
 * flight), and below `owedFrom` (the lowest entry this process holds or waits for). One purge of
 * the whole stream up to a sequence, never a purge filtered by a queue's subject: on nats-server
 * 2.9.10 a filtered purge up to a consumer's ack floor made that consumer lose entries it had
 * handed out and not had acknowledged (the cluster crash harness lost confirmed messages that way,
 * and none with purging off; nats-server 2.9.15 fixed "lose ack pending state during partial stream
 * purge", nats-io/nats-server#3892). The price: a queue that owes an old entry (an offline session
 * with a backlog) holds back the removal of every later one, until it catches up or ends.
 * A subject with entries and no consumer (a queue being created, recreated or dropped) means the
 * view is not whole: nothing is purged this time. Returns the sequence purged below, or 0.
 */
export async function compactQueueStream(conn: ClusterConnection, stream: string, owedFrom = Infinity, previousFloors = new Map<string, number>()): Promise<number> {
  const consumers: ConsumerInfo[] = [];
  for await (const info of conn.jsm.consumers.list(stream)) consumers.push(info);
  const info = await conn.jsm.streams.info(stream, { subjects_filter: '>' });
  const withConsumer = new Set(consumers.map((c) => c.config.filter_subject));
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    if (withConsumer.has(subject)) continue;
    queueTrace(stream, 'compact-skipped', `${subject} has entries and no consumer`);
    return 0;
  }
  let below = Math.min(owedFrom, info.state.last_seq + 1);
  const floors = new Map<string, number>();
  for (const c of consumers) {
    const floor = Math.min(ackFloorOf(c), c.delivered.stream_seq);
    floors.set(c.name, floor);
    // Never above the floor of the round before: a consumer whose new leader went past entries
    // (skip-check.ts) moves its floor past them at the next ack, and owes nothing more once it acked
    // all it handed out; the queue that finds them needs a moment to recreate the consumer from them.
    const previous = previousFloors.get(c.name) ?? floor;
    if (c.num_pending === 0 && c.num_ack_pending === 0) {
      if (previous < floor) below = Math.min(below, previous + 1);
      continue;
    }
    below = Math.min(below, Math.min(floor, previous) + 1);
  }
  previousFloors.clear();
  for (const [name, floor] of floors) previousFloors.set(name, floor);
  if (below <= info.state.first_seq) return 0;
  queueTrace(stream, 'compact', `below ${below} first ${info.state.first_seq} last ${info.state.last_seq}`);
  await conn.jsm.streams.purge(stream, { seq: below });
  return below;
}

/**
 * What each queue may still owe at open, by subject: its entries in the stream, from the stream
 * leader (an over-estimate: acknowledged entries above the last compaction count too, until a short
 * fetch resets it). Not the consumers' own counts: a consumer led by a replica still catching up
 * reports fewer, and the queue would stop reading before its last entries.
 */
export async function queueBacklogs(conn: ClusterConnection, stream: string): Promise<Map<string, number>> {
  const info = await conn.jsm.streams.info(stream, { subjects_filter: '>' });
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
