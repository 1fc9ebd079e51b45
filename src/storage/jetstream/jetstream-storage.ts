import { randomUUID } from 'node:crypto';
import { JetStreamApiError, type Consumer, type MsgRequest } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Message } from '../../core/message.js';
import type { ChannelPolicyLookup, DurableDelivery, HistoryQuery, HistoryReader, NodeDescription, SessionQueue, SessionRecord, Storage, StorageContext } from '../../core/storage.js';
import type { ClusterView } from '../../core/admin/views.js';
import { StorageError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { silentLogger } from '../../util/logger.js';
import { NO_CHANNEL_POLICIES } from '../read-batch.js';
import { ClusterConnection } from './connection.js';
import { ClusterOperations } from './cluster-operations.js';
import { encodeDelivery, encodeMessage } from './envelope.js';
import { ClusterStoreError, ConsumerStartSkippedError } from './errors.js';
import { historyReader } from './history.js';
import { JetStreamSessionQueue } from './jetstream-queue.js';
import { queueTrace } from './queue-trace.js';
import { ensureBucket, ensureStoreLayout } from './layout.js';
import { publishConfirmed } from './publish.js';
import { JetStreamNodeFabric } from './node-fabric.js';
import { leaderEntries, leaderValue } from './bucket-reads.js';
import { serverVersion, versionAtLeast } from './features.js';
import { watchConsumerLeaders } from './leader-watch.js';
import { ackFloorOf, compactQueueStream, consumerInfoOrUndefined, dropQueue, ensureQueueConsumer, ensureQueueStream, queueBacklogs, queueConsumerName, queueSubject, resumeQueueConsumer, type QueueKind } from './queue-stream.js';
import { RetainedStore } from './retained-store.js';
import { waitForCaughtUpReplicas } from './replica-catch-up.js';
import { clusterStatus, type ClusterStatus } from './status.js';
import { clientIdOfKey, clientKey, messageSubject } from './subjects.js';

export interface JetStreamStorageOptions {
  /** `nats://host:port` URLs of the cluster (any reachable one is enough). */
  servers: string[];
  /** Copies of every stream and bucket (default 3). */
  replicas?: number;
  /**
   * Names every stream, bucket and subject of this store (default `eddy`: stream EDDY_MESSAGES,
   * subjects `eddy.m.>`, `eddy.s.>`, `eddy.q.>`, buckets eddy-retained, eddy-sessions, eddy-groups).
   * Eddy nodes of one cluster use the same; tests use one per store. Lower-case letters and digits.
   */
  namespace?: string;
  /** Deadline of each confirmed publish, PubAck included (default 5 s). */
  publishTimeoutMs?: number;
  /** How long `open` waits for restarted NATS replicas to catch up before it reads (default 15 s). */
  catchUpTimeoutMs?: number;
  /** How long opening retries JetStream requests that time out while the cluster elects leaders (default 30 s). */
  openRetryMs?: number;
  /** Deadline of the first connection (default 10 s). */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/** The broker's refusal code for a publish that needs the cluster while it cannot be reached (core/refusals.ts). */
export const CLUSTER_UNAVAILABLE = 'EDDY_CLUSTER_UNAVAILABLE';

/** How long `open` retries JetStream API requests that time out or are refused as temporarily unavailable. */
const OPEN_RETRY_MS = 30_000;
/** JetStream API error code "JetStream system temporarily unavailable". */
const API_TEMPORARILY_UNAVAILABLE = 10008;

function isTransientApiError(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === API_TEMPORARILY_UNAVAILABLE;
  return err instanceof Error && err.name === 'TimeoutError';
}

/** The queue stream drops what no queue owes any more this often (compactQueueStream). */
const COMPACT_MS = 5000;
/** Queue consumers resumed at once at open. */
const RESUME_PARALLEL = 16;

/** Connection state as /healthz shows it. */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/**
 * The JetStream storage engine (`--cluster nats://…`): all broker state in a NATS JetStream cluster,
 * replicated (docs/cluster.md, "The JetStream engine").
 *
 *  - messages: one stream (EDDY_MESSAGES), subject by topic (subjects.ts); seq = the stream seq
 *    (one sequence for every Eddy node on the cluster); `append` resolves on the PubAck, i.e. once the
 *    message is on a quorum of replicas, then the queue entries', then the retained KV write's.
 *  - queues: the queue stream, one subject and one durable pull consumer (explicit ack) per
 *    persistent session and durable group (queue-stream.ts, jetstream-queue.ts).
 *  - retained: KV bucket, one key per topic (retained-store.ts); sessions and groups: KV buckets.
 *  - history: ordered consumers from a seq or a time (history.ts).
 *
 * While NATS is unreachable, appends are refused at once with EDDY_CLUSTER_UNAVAILABLE (the broker
 * answers 0x97 / 503) and the connection keeps reconnecting; a NATS error never ends the process.
 */
export class JetStreamStorage implements Storage {
  readonly kind = 'jetstream';
  private conn: ClusterConnection | undefined;
  private channels: ChannelPolicyLookup = NO_CHANNEL_POLICIES;
  private readonly ns: string;
  private readonly replicas: number;
  private readonly names: { messages: string; queues: string; retained: string; sessions: string; groups: string };
  private sessionsKv!: KV;
  private groupsKv!: KV;
  private retained!: RetainedStore;
  private seq = 0;
  private failureCount = 0;
  private state: ConnectionState = 'connecting';
  private readonly nodeId = randomUUID().slice(0, 8);
  private msgCounter = 0;
  private readonly unsettled = new Set<Promise<void>>();
  private readonly queues = new Map<string, JetStreamSessionQueue>();
  private readonly groups = new Map<string, JetStreamSessionQueue>();
  /** Queues by id; `creating` is the consumer creation under way, which a drop must wait for (or it would race it). */
  private readonly byId = new Map<number, { queue: JetStreamSessionQueue; kind: QueueKind; name: string; creating: () => Promise<unknown> }>();
  private nextQueueId = 1;
  private compactTimer: NodeJS.Timeout | undefined;
  private leaderWatch: { stop(): void } | undefined;
  /** Open queues by consumer name (advisories name consumers). */
  private readonly byDurable = new Map<string, JetStreamSessionQueue>();
  private compacting = false;
  /** Each queue consumer's ack floor at the last compaction round. */
  private readonly compactionFloors = new Map<string, number>();
  /** Entries each queue subject held at open (work queue: exactly what is owed), the restored count. */
  private readonly restoredCounts = new Map<string, number>();
  private queueStreamSeqAtOpen = 0;
  private readonly logger: Logger;
  /** The sessions bucket's last revision when loadSessions read it: other nodes' changes are watched from there. */
  private sessionsRevision = 0;
  /** Each client id's session writes in call order (a delete then a put must not arrive the other way round). */
  private readonly sessionWrites = new Map<string, Promise<unknown>>();
  /** How this node reaches the other Eddy nodes on the cluster (core/fabric.ts). */
  readonly fabric: JetStreamNodeFabric;
  /** Node registry and cluster view (cluster-operations.ts): opened with the connection, closed before it. */
  private readonly operations: ClusterOperations;

  constructor(private readonly options: JetStreamStorageOptions) {
    this.ns = options.namespace ?? 'eddy';
    if (!/^[a-z0-9]+$/.test(this.ns)) throw new RangeError(`namespace must be lower-case letters and digits, got ${JSON.stringify(this.ns)}`);
    this.replicas = options.replicas ?? 3;
    const upper = this.ns.toUpperCase();
    this.names = { messages: `${upper}_MESSAGES`, queues: `${upper}_QUEUES`, retained: `${this.ns}-retained`, sessions: `${this.ns}-sessions`, groups: `${this.ns}-groups` };
    this.logger = options.logger ?? silentLogger;
    this.fabric = new JetStreamNodeFabric(this.nodeId, {
      conn: () => this.connection(),
      namespace: this.ns,
      sessions: () => this.sessionsKv,
      loadedRevision: () => this.sessionsRevision,
      sawSeq: (seq) => {
        if (seq > this.seq) this.seq = seq;
      },
      logger: this.logger,
    });
    const { messages, queues, retained, sessions, groups } = this.names;
    const nodes = `${this.ns}-nodes`;
    const streams = [messages, queues, `KV_${retained}`, `KV_${sessions}`, `KV_${groups}`, `KV_${nodes}`];
    this.operations = new ClusterOperations({ nodeId: this.nodeId, bucket: nodes, replicas: this.replicas, streams, state: () => this.state, logger: this.logger });
  }

  /** Storage.describeNode: what this node's heartbeats in `<ns>-nodes` show. */
  describeNode(describe: () => NodeDescription): void {
    this.operations.describeNode(describe);
  }

  /** Storage.clusterView: nodes and stream replicas, cached (cluster-operations.ts). */
  clusterView(): Promise<ClusterView> {
    return this.operations.view();
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** /healthz `storageConnection`: kept from the connection's events, no round trip. */
  connectionStatus(): { state: ConnectionState; server?: string; servers: string[]; reconnects: number; disconnects: number; lastError?: string; replicas: number } {
    const conn = this.conn;
    return {
      state: this.state,
      server: conn && !conn.closed ? conn.nc.getServer() : undefined,
      servers: this.options.servers,
      reconnects: conn?.counters.reconnects ?? 0,
      disconnects: conn?.counters.disconnects ?? 0,
      lastError: conn?.counters.lastError,
      replicas: this.replicas,
    };
  }

  /** The cluster in detail (a round trip per stream): connection, server, replicas of each stream. */
  async clusterStatus(): Promise<ClusterStatus | undefined> {
    return this.conn ? clusterStatus(this.conn, [this.names.messages, this.names.queues]) : undefined;
  }

  async open(context?: StorageContext): Promise<void> {
    try {
      // While the cluster elects leaders (a NATS node just restarted), JetStream API requests time
      // out or answer "temporarily unavailable" for a few seconds: the open waits that out.
      const until = Date.now() + (this.options.openRetryMs ?? OPEN_RETRY_MS);
      for (;;) {
        try {
          await this.connectAndLoad(context);
          break;
        } catch (err) {
          if (!isTransientApiError(err) || Date.now() > until) throw err;
          this.logger.warn({ err: (err as Error).message }, 'cluster: JetStream not ready yet; opening again');
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } catch (err) {
      // One line for `eddy broker` (an EddyError), the typed cluster error kept as the cause.
      if (err instanceof ClusterStoreError) throw new StorageError('EDDY_CLUSTER_UNREACHABLE', `cluster store not opened: ${err.message}`, err);
      throw err;
    }
  }

  private async connectAndLoad(context?: StorageContext): Promise<void> {
    if (context) this.channels = context.channels;
    const conn = await ClusterConnection.open({
      servers: this.options.servers,
      connectTimeoutMs: this.options.connectTimeoutMs,
      name: `eddy-${this.nodeId}`,
      onEvent: (event) => {
        if (event.type === 'disconnect') {
          this.state = 'reconnecting';
          this.logger.warn({ server: event.server }, 'cluster: NATS connection lost; reconnecting, durable publishes refused meanwhile');
        } else if (event.type === 'reconnect') {
          this.state = 'connected';
          // Leader elected advisories sent meanwhile were lost: every queue checks its next entries.
          for (const q of this.byDurable.values()) q.suspectSkip('reconnect');
          this.logger.info({ server: event.server }, 'cluster: NATS connection back');
        } else {
          this.logger.warn({ err: event.error.message }, 'cluster: NATS error');
        }
      },
    });
    try {
      const layout = await ensureStoreLayout(conn, {
        maxAgeMs: this.messageMaxAgeMs(),
        replicas: this.replicas,
        streamName: this.names.messages,
        subjectRoot: this.ns,
        retainedBucket: this.names.retained,
        sessionsBucket: this.names.sessions,
      });
      this.groupsKv = await ensureBucket(conn, this.names.groups, this.replicas);
      this.queueStreamSeqAtOpen = await ensureQueueStream(conn, this.names.queues, this.ns, this.replicas);
      const streams = [this.names.messages, this.names.queues, `KV_${this.names.retained}`, `KV_${this.names.sessions}`, `KV_${this.names.groups}`];
      const behind = await waitForCaughtUpReplicas(conn, streams, this.options.catchUpTimeoutMs ?? 15_000);
      const version = serverVersion(conn.nc);
      if (!versionAtLeast(version, '2.10.0')) this.logger.warn({ version }, `cluster: nats-server ${version} is older than 2.10: after NATS node crashes it lost confirmed queue entries in Eddy's crash harness (docs/cluster.md, "Data safety on 2.9.10")`);
      if (behind.length > 0) this.logger.warn({ streams: behind }, 'cluster: opening with replicas still catching up; queue counts and replays may be short until they have');
      // Read after the catch-up: the leader's view of the stream, not a restarted replica's.
      this.seq = (await conn.jsm.streams.info(this.names.messages)).state.last_seq;
      this.queueStreamSeqAtOpen = (await conn.jsm.streams.info(this.names.queues)).state.last_seq;
      this.sessionsKv = layout.sessions;
      const retainedBucket = this.names.retained;
      this.retained = new RetainedStore(layout.retained, (key) => leaderValue(conn, retainedBucket, key));
      await this.retained.load();
      this.retained.follow((err) => this.reportFailure(err, 'retained watch'));
      const infos = [];
      for await (const info of conn.jsm.consumers.list(this.names.queues)) infos.push(info);
      // Recreating a replicated consumer takes a Raft election (a few hundred ms): several at once.
      for (let i = 0; i < infos.length; i += RESUME_PARALLEL) {
        await Promise.all(
          infos.slice(i, i + RESUME_PARALLEL).map(async (info) => {
            try {
              await resumeQueueConsumer(conn, this.names.queues, info);
            } catch (err) {
              // The consumer was deleted again (a replica still catching up): the queue's first fetch creates it, checked the same way.
              if (!(err instanceof ConsumerStartSkippedError)) throw err;
              this.logger.warn({ err: err.message }, 'cluster: queue consumer not resumed at open; its first fetch will create it');
            }
          }),
        );
      }
      for (const [subject, count] of await queueBacklogs(conn, this.names.queues)) this.restoredCounts.set(subject, count);
      await this.operations.open(conn);
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.conn = conn;
    this.state = 'connected';
    this.leaderWatch = watchConsumerLeaders(conn, this.names.queues, (durable) => this.byDurable.get(durable)?.suspectSkip('leader elected'), (err) => this.reportFailure(err, 'consumer leader advisory'));
    this.compactTimer = setInterval(() => void this.compact(), COMPACT_MS);
    this.compactTimer.unref();
    // Once soon after open, too: a node that restarts often must still compact.
    setTimeout(() => void this.compact(), 1000).unref();
  }

  /** Removes what no queue owes any more from the queue stream (queue-stream.ts, compactQueueStream); one at a time. */
  private async compact(): Promise<void> {
    if (this.compacting || !this.conn || this.state !== 'connected') return;
    this.compacting = true;
    try {
      let owedFrom = Infinity;
      for (const q of [...this.queues.values(), ...this.groups.values()]) owedFrom = Math.min(owedFrom, q.owedFrom() ?? Infinity);
      await compactQueueStream(this.conn, this.names.queues, owedFrom, this.compactionFloors);
    } catch (err) {
      if (this.state === 'connected') this.reportFailure(err, 'queue stream compaction');
    } finally {
      this.compacting = false;
    }
  }

  /**
   * How long the message stream keeps messages (its max_age). Queues hold their own copies and the
   * stream's last seq survives deletions, so the stream only has to keep what replays may read: the
   * longest retention age of the channels that keep history, or an hour when none does (room for a
   * restart's reads). A channel limited by bytes only has no age bound: then the stream keeps
   * everything (max_age 0) and says so, as per-channel byte limits are applied on read (history.ts).
   * The policies are those at open; a reload that lengthens an age applies at the next open.
   */
  private messageMaxAgeMs(): number {
    const kept = this.channels.retained;
    if (kept.length === 0) return 3600 * 1000;
    if (kept.some((p) => p.retention?.maxAgeMs === undefined)) {
      this.logger.warn({ channels: kept.filter((p) => p.retention?.maxAgeMs === undefined).map((p) => p.pattern) }, 'cluster: a channel keeps history without an age limit: the message stream keeps every message (max_age 0)');
      return 0;
    }
    return Math.max(...kept.map((p) => p.retention!.maxAgeMs!));
  }

  async close(): Promise<void> {
    clearInterval(this.compactTimer);
    this.leaderWatch?.stop();
    await this.settled();
    this.fabric.stop();
    this.retained?.stopFollowing();
    await Promise.allSettled([...this.sessionWrites.values()]);
    await Promise.all([...this.queues.values(), ...this.groups.values()].map((q) => q.close()));
    await this.operations.close(); // deletes this node's registry key while the connection is up
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    const conn = this.conn;
    if (!conn) return;
    // drain flushes the acknowledgements the queues just sent; while NATS is unreachable it could wait
    // for a reconnect that never comes, so it gets a deadline (unsent acks mean redeliveries, not losses).
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, wasConnected ? 5000 : 0)));
    await Promise.race([conn.close().catch(() => undefined), deadline]);
    clearTimeout(timer);
    if (!conn.nc.isClosed()) await conn.nc.close().catch(() => undefined);
  }

  private connection(): ClusterConnection {
    if (!this.conn || this.conn.closed) throw new StorageError(CLUSTER_UNAVAILABLE, 'the cluster store is closed');
    return this.conn;
  }

  /** A failure of a NATS operation as the broker's StorageError: unavailability refusals, anything else a storage failure. */
  private storageError(err: unknown, what: string): StorageError {
    if (err instanceof StorageError) return err;
    this.failureCount++;
    const message = err instanceof Error ? err.message : String(err);
    // Unreachable, no quorum, no leader, closed: a refusal the client may retry. Anything else (a
    // message over the servers' max_payload, a refused publish) is a storage failure.
    const unavailable = err instanceof ClusterStoreError && err.code !== 'publish-refused' && err.code !== 'stream-config-conflict' && err.code !== 'unsupported-server';
    return new StorageError(unavailable ? CLUSTER_UNAVAILABLE : 'EDDY_STORAGE_WRITE', `${what}: ${message}`, err);
  }

  append(message: Message, deliveries: DurableDelivery[]): Promise<void> {
    const stored = this.store(message, deliveries);
    this.unsettled.add(stored);
    const forget = (): void => void this.unsettled.delete(stored);
    stored.then(forget, forget);
    return stored;
  }

  private async store(message: Message, deliveries: DurableDelivery[]): Promise<void> {
    if (this.state !== 'connected') throw new StorageError(CLUSTER_UNAVAILABLE, `not stored: the NATS cluster is ${this.state === 'closed' ? 'closed' : 'unreachable'} (reconnecting)`);
    const conn = this.connection();
    const timeoutMs = this.options.publishTimeoutMs ?? 5000;
    const msgID = `${this.nodeId}-${++this.msgCounter}`;
    try {
      const ack = await publishConfirmed(conn, messageSubject(message.topic, this.ns), encodeMessage(message), { msgID, timeoutMs });
      message.seq = ack.seq;
      if (ack.seq > this.seq) this.seq = ack.seq;
      // Queue entries after the message's PubAck: they carry its seq. Issued in PubAck order, so each queue's entries keep seq order.
      await Promise.all(
        deliveries.map(async (d) => {
          const target = this.byId.get(d.queueId);
          if (!target) return; // a queue dropped meanwhile
          const entry = await publishConfirmed(conn, queueSubject(this.ns, target.kind, target.name), encodeDelivery(message, d), { msgID: `${msgID}-q${d.queueId}`, timeoutMs });
          target.queue.noteEntry(message, entry.seq);
        }),
      );
      if (message.retain) await this.retained.keep(message);
    } catch (err) {
      throw this.storageError(err, `${message.topic}: not stored`);
    }
  }

  get lastSeq(): number {
    return this.seq;
  }

  async settled(): Promise<void> {
    while (this.unsettled.size > 0) await Promise.allSettled([...this.unsettled]);
  }

  history(query: HistoryQuery): HistoryReader {
    if (!this.conn || this.conn.closed) {
      // A reader that cannot read now rejects (the contract: the caller asks again later), never a throw here.
      const closed = new StorageError(CLUSTER_UNAVAILABLE, 'history not read: the cluster store is closed');
      return { next: () => Promise.reject(closed) };
    }
    return historyReader(
      { js: this.connection().js, stream: this.names.messages, subjectRoot: this.ns, channels: this.channels, reportFailure: (err, what) => this.reportFailure(err, what) },
      query,
    );
  }

  retainedMatching(filter: string): HistoryReader {
    return this.retained.matching(filter);
  }
  get retainedCount(): number {
    return this.retained.count;
  }
  get retainedBytes(): number {
    return this.retained.bytes;
  }
  retainedSize(topic: string): number | undefined {
    return this.retained.size(topic);
  }
  retainedTopics(): Iterable<string> {
    return this.retained.topics();
  }

  async loadSessions(): Promise<SessionRecord[]> {
    this.sessionsRevision = (await this.connection().jsm.streams.info(`KV_${this.names.sessions}`)).state.last_seq;
    const records: SessionRecord[] = [];
    for (const { value } of await leaderEntries(this.connection(), this.names.sessions)) records.push(JSON.parse(new TextDecoder().decode(value)) as SessionRecord);
    return records;
  }

  /** Runs a session write after the previous write of the same client id, in call order. */
  private inOrder<T>(clientId: string, write: () => Promise<T>): Promise<T> {
    const previous = this.sessionWrites.get(clientId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(write);
    this.sessionWrites.set(clientId, next);
    const done = (): void => {
      if (this.sessionWrites.get(clientId) === next) this.sessionWrites.delete(clientId);
    };
    next.then(done, done);
    return next;
  }

  saveSession(record: SessionRecord): Promise<void> {
    // The node that saves a session holds it: the other nodes see the owner on their watch.
    const value = JSON.stringify({ ...record, owner: this.nodeId });
    return this.inOrder(record.clientId, async () => {
      try {
        await this.fabric.trackWrite(record.clientId, this.sessionsKv.put(clientKey(record.clientId), value));
      } catch (err) {
        throw this.storageError(err, `session ${record.clientId} not saved`);
      }
    });
  }

  deleteSession(clientId: string): Promise<void> {
    return this.inOrder(clientId, () => this.dropSession(clientId));
  }

  private async dropSession(clientId: string): Promise<void> {
    const queue = this.queues.get(clientId);
    queue?.clear();
    const creating = queue ? this.byId.get(queue.id)?.creating() : undefined;
    if (queue) this.byId.delete(queue.id);
    this.queues.delete(clientId);
    this.byDurable.delete(queueConsumerName('s', clientId));
    try {
      await creating?.catch(() => undefined);
      this.fabric.trackDelete(clientId);
      await this.sessionsKv.delete(clientKey(clientId));
      await dropQueue(this.connection(), this.names.queues, queueConsumerName('s', clientId), queueSubject(this.ns, 's', clientId));
    } catch (err) {
      throw this.storageError(err, `session ${clientId} not deleted`);
    }
  }

  queue(clientId: string): SessionQueue {
    return this.queueOf('s', clientId, this.queues);
  }

  async loadGroups(): Promise<string[]> {
    return (await leaderEntries(this.connection(), this.names.groups)).map((e) => clientIdOfKey(e.key));
  }

  groupQueue(name: string): SessionQueue {
    return this.queueOf('g', name, this.groups);
  }

  async saveGroup(name: string): Promise<void> {
    try {
      await this.groupsKv.put(clientKey(name), '1');
    } catch (err) {
      throw this.storageError(err, `group ${name} not saved`);
    }
  }

  async deleteGroup(name: string): Promise<void> {
    const queue = this.groups.get(name);
    queue?.clear();
    const creating = queue ? this.byId.get(queue.id)?.creating() : undefined;
    if (queue) this.byId.delete(queue.id);
    this.groups.delete(name);
    this.byDurable.delete(queueConsumerName('g', name));
    try {
      await creating?.catch(() => undefined);
      await this.groupsKv.delete(clientKey(name));
      await dropQueue(this.connection(), this.names.queues, queueConsumerName('g', name), queueSubject(this.ns, 'g', name));
    } catch (err) {
      throw this.storageError(err, `group ${name} not deleted`);
    }
  }

  get failures(): number {
    return this.failureCount;
  }

  private queueOf(kind: QueueKind, name: string, map: Map<string, JetStreamSessionQueue>): JetStreamSessionQueue {
    let queue = map.get(name);
    if (queue) return queue;
    const durable = queueConsumerName(kind, name);
    const subject = queueSubject(this.ns, kind, name);
    let consumer: Promise<Consumer> | undefined;
    const creating = (): Promise<unknown> => consumer ?? Promise.resolve();
    const restored = this.restoredCounts.get(subject) ?? 0;
    this.restoredCounts.delete(subject);
    queueTrace(`${kind === 's' ? 'session' : 'group'} ${name}`, 'open', `${durable} restored ${restored} until ${this.queueStreamSeqAtOpen}`);
    queue = new JetStreamSessionQueue(
      this.nextQueueId++,
      `${kind === 's' ? 'session' : 'group'} ${name}`,
      {
        consumer: () => {
          consumer ??= (async () => {
            const conn = this.connection();
            await ensureQueueConsumer(conn, this.names.queues, durable, subject);
            return conn.js.consumers.get(this.names.queues, durable);
          })();
          // A failed creation (NATS unreachable) is tried again by the next fetch.
          consumer.catch(() => (consumer = undefined));
          return consumer;
        },
        purge: async (throughSeq) => {
          await this.connection().jsm.streams.purge(this.names.queues, { filter: subject, seq: throughSeq + 1 });
        },
        reportFailure: (err, what) => this.reportFailure(err, what),
        ackPending: async () => (await consumerInfoOrUndefined(this.connection(), this.names.queues, durable))?.num_ack_pending ?? 0,
        leaderNext: async (after) => {
          const conn = this.connection();
          const info = await consumerInfoOrUndefined(conn, this.names.queues, durable);
          const floor = info ? ackFloorOf(info) : 0;
          // A message get (not a direct get) is answered by the stream's leader: it has every confirmed
          // entry. nats-server takes next_by_subj there (2.9.10 too); nats.js types it for direct gets only.
          const query = { seq: Math.max(after, floor) + 1, next_by_subj: subject } as unknown as MsgRequest;
          return (await conn.jsm.streams.getMessage(this.names.queues, query))?.seq;
        },
        recreate: async (fromSeq) => {
          const conn = this.connection();
          const info = await consumerInfoOrUndefined(conn, this.names.queues, durable);
          if (info) await resumeQueueConsumer(conn, this.names.queues, info, { force: true, fromSeq });
          consumer = undefined; // the next fetch gets the new consumer
        },
      },
      { count: restored, untilSeq: this.queueStreamSeqAtOpen },
      kind === 'g',
    );
    map.set(name, queue);
    this.byDurable.set(durable, queue);
    this.byId.set(queue.id, { queue, kind, name, creating });
    return queue;
  }

  private reportFailure(err: unknown, what: string): void {
    this.failureCount++;
    this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, `cluster store: ${what} failed`);
  }

  /** Deletes every stream and bucket of this namespace (tests, `eddy` tooling): all state of the store is gone. */
  async destroyStore(): Promise<void> {
    const jsm = this.connection().jsm;
    for (const stream of [this.names.messages, this.names.queues, `KV_${this.names.retained}`, `KV_${this.names.sessions}`, `KV_${this.names.groups}`, `KV_${this.ns}-nodes`]) {
      await jsm.streams.delete(stream).catch(() => undefined);
    }
  }

  /** For tests and tools: whether the queue's consumer exists. */
  async hasQueueConsumer(kind: QueueKind, name: string): Promise<boolean> {
    return (await consumerInfoOrUndefined(this.connection(), this.names.queues, queueConsumerName(kind, name))) !== undefined;
  }
}
