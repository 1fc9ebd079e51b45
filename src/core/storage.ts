/**
 * The storage contract: what the broker core needs from a storage engine, in the core's own
 * domain types. Engines (src/storage/*) import these types and nothing else of the core at run
 * time, so an engine can live behind a network (NATS JetStream) as well as on local disk.
 * Every engine passes test/storage-contract (storageContract(name, factory)).
 *
 * Synchronous members are those every engine answers from this process: counters it keeps, the
 * deliveries in flight (the broker node that sent them holds them), the memory window of a queue.
 * Whatever may be a read of stored contents (a network round trip for a remote engine, a disk read
 * for the local one) is asynchronous: history, retained messages, a queue's backlog.
 */
import type { Message, QoS } from './message.js';
import type { ChannelPolicy } from './channels.js';
import type { ReplayStart } from './replay.js';
import type { NodeFabric } from './fabric.js';
import type { ClusterView } from './admin/views.js';

/** The channel policies storage consults (core's ChannelPolicies; a reload is seen at the next lookup). */
export interface ChannelPolicyLookup {
  /** The policy for a topic: the first configured pattern that matches it. */
  for(topic: string): ChannelPolicy;
  /** Policies that keep history, in configuration order. */
  readonly retained: ChannelPolicy[];
}

/** What the broker tells storage when it opens it. */
export interface StorageContext {
  /** Which channels keep history (retention) for replay. */
  channels: ChannelPolicyLookup;
}

/**
 * Reads stored messages in batches (a replay's history, or retained messages). `next` resolves to
 * up to `max` messages, fewer when they are large (an engine bounds a batch's bytes), and to an
 * empty list once there is nothing more. It rejects when storage cannot be read right now (no
 * descriptor left, a remote engine unreachable): the reader is then asked again later.
 */
export interface HistoryReader {
  next(max: number): Promise<Message[]>;
}

/** What decides whether a stored message belongs in a replay. */
export interface HistoryQuery {
  /** The subscription's filters; an engine may use them to narrow its read. */
  filters: string[];
  /** Where the replay starts; an engine seeks to it (by seq or time) before reading. */
  start: ReplayStart;
  /** Last seq that belongs to history: later messages reach the subscriber live. */
  untilSeq: number;
  /**
   * The core's verdict on one stored message: its channel keeps history, it is inside the
   * retention age and the start, not expired, and a filter matches it. Byte limits (maxBytes) are
   * the engine's to apply, as it knows where the kept history begins.
   */
  includes(message: Message, now: number): boolean;
}

/** Options of one subscription, as MQTT 5 defines them (3.1.1 uses only qos). */
export interface SubscriptionOptions {
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

export interface SubscriptionRecord extends SubscriptionOptions {
  /** The filter as the client sent it, `$share/…` included. */
  filter: string;
}

/** What survives a disconnect for a persistent session. */
export interface SessionRecord {
  clientId: string;
  /** Seconds after disconnect before the session ends; 0xFFFFFFFF = never. */
  expiryInterval: number;
  subscriptions: SubscriptionRecord[];
  /** Epoch ms of the last disconnect, so expiry survives a restart. Undefined while connected. */
  disconnectedAt?: number;
  /** The user the session belongs to (absent: anonymous, or no authentication configured), and how it authenticated. */
  user?: string;
  authMethod?: 'none' | 'anonymous' | 'password' | 'jwt' | 'certificate';
  /** A JWT's `acl` claim, so that what an offline session is queued stays as narrow as its token said. */
  tokenAcl?: unknown[];
  /**
   * The broker node that holds the session (engines shared by several nodes set it on every save:
   * the node that saves a session is the one its client is connected to, or was last).
   */
  owner?: string;
}

/** A message waiting for or in delivery to one session, with the QoS it is delivered at. */
export interface QueuedDelivery {
  message: Message;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
  /** Times this message was already sent to this queue's consumers (0 or absent: never). */
  deliveryCount?: number;
}

/** A delivery handed to the client with a packet id, not yet fully acknowledged. */
export interface InflightDelivery extends QueuedDelivery {
  packetId: number;
  /** For QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP. */
  released: boolean;
}

/** A message routed to a durable queue, as recorded with the message. */
export interface DurableDelivery {
  queueId: number;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
}

/**
 * The messages owed to one session: `pending` ones not yet sent (client offline or its
 * window full) and `inflight` ones sent but not acknowledged. Both survive a reconnect.
 */
export interface SessionQueue {
  /** Names this queue in durable deliveries. */
  readonly id: number;
  /** Deliveries not yet sent, in memory and in storage (after a crash, an estimate; at least 1 while any may wait in storage). */
  readonly pendingCount: number;
  /** Payload bytes of the pending deliveries, in memory and on disk (after a crash, an estimate). */
  readonly pendingBytes: number;
  /** Payload bytes of the deliveries in flight. */
  readonly inflightBytes: number;
  /**
   * Set by the queue's owner (a session or group): called when deliveries read from storage are
   * ready to be shifted, and again after a failed read (no descriptor left) once a retry may
   * succeed, so the owner sends again. The engine calls it from I/O callbacks and guards the call.
   */
  wake?: () => void;
  /**
   * Adds a delivery. `durable` says the message was stored with a delivery for this queue, so a
   * durable engine may keep it on disk only and read it back when its turn comes.
   */
  push(delivery: QueuedDelivery, durable: boolean): void;
  /**
   * Takes the oldest pending delivery that is ready in memory: the delivery path's call, never a
   * wait. Undefined when none is ready; if more waits in storage (`pendingCount` > 0), the engine
   * starts reading it and calls `wake` once some can be taken.
   */
  shift(): QueuedDelivery | undefined;
  /** Takes the oldest pending delivery, reading it from storage when it is not in memory; undefined once none is left. */
  take(): Promise<QueuedDelivery | undefined>;
  /** Up to `limit` pending deliveries, oldest first, without taking them (listing dead letters, a group's oldest). */
  peek(limit: number): Promise<QueuedDelivery[]>;
  /** Puts a delivery back in front: it goes out next (a returned or retried delivery). */
  unshift(delivery: QueuedDelivery): void;
  /**
   * Keeps a delivery that is neither pending nor in flight (waiting out a retry backoff, or being
   * dead-lettered) counted as unacknowledged, so a restart still delivers it.
   */
  hold(delivery: QueuedDelivery): void;
  /** Deliveries held: waiting out a retry backoff or being dead-lettered. */
  readonly held: ReadonlySet<QueuedDelivery>;
  /** Ends a hold; false when the delivery was not held (the queue was cleared meanwhile). */
  release(delivery: QueuedDelivery): boolean;
  readonly inflight: ReadonlyMap<number, InflightDelivery>;
  setInflight(delivery: InflightDelivery): void;
  deleteInflight(packetId: number): void;
  /** Drops everything: the session ended. */
  clear(): void;

  /*
   * Queues an engine shares between broker nodes (JetStream) also have these; a local engine
   * leaves them out. One node at a time delivers a session's queue; a group's queue is read by
   * every node with a member connected, each entry by one of them.
   */
  /** This node delivers the queue now: what another node fetched and did not finish comes back here, then new entries are read as they are stored. */
  claim?(): void;
  /** Whether to keep reading new entries as they come (a client of this queue is connected here). */
  listen?(on: boolean): void;
  /** Another node delivers the queue now: what this node holds in memory is forgotten (a group's is handed back), nothing is read any more. */
  disown?(): void;
  /** A group's queue: whether no member is held by another node (this node alone reads it). */
  soleReader?(sole: boolean): void;
}

/**
 * All broker state goes through this interface; the protocol front ends never see it.
 * Methods that may touch disk return promises: the memory engine resolves them at once,
 * a durable engine resolves `append` only after the data is fsynced.
 */
export interface Storage {
  readonly kind: string;
  open(context?: StorageContext): Promise<void>;
  close(): Promise<void>;

  /**
   * Stores a message with the durable queues it goes to and assigns its `seq`. Returns a promise
   * that resolves once the message is safe, or nothing when it is safe on return (memory engine).
   * A message with the retain flag becomes its topic's retained message once stored (an empty
   * payload clears it), unless a newer one (higher seq) is already there.
   */
  append(message: Message, deliveries: DurableDelivery[]): Promise<void> | void;
  /** The seq of the last message stored (0 before the first). */
  readonly lastSeq: number;
  /** Resolves once every append made so far is settled, so a history reader sees all of them. */
  settled(): Promise<void>;
  /** Reads the stored history of retained channels for a replay, oldest first. */
  history(query: HistoryQuery): HistoryReader;

  /**
   * The retained messages whose topics `filter` matches, read in batches (the disk engine keeps
   * only an index in memory and reads each message from its log). Expired ones are left out.
   */
  retainedMatching(filter: string): HistoryReader;
  /** How many retained messages are kept (the engine keeps the count: no read). */
  readonly retainedCount: number;
  /** Payload bytes of all retained messages. */
  readonly retainedBytes: number;
  /** Payload bytes of the retained message on `topic`; undefined when it has none. */
  retainedSize(topic: string): number | undefined;
  /** The topics that have a retained message, in no particular order (the admin API pages through them). */
  retainedTopics(): Iterable<string>;

  loadSessions(): Promise<SessionRecord[]>;
  /** Records a persistent session; a returned promise resolves once the record is durable. */
  saveSession(record: SessionRecord): Promise<void> | void;
  deleteSession(clientId: string): Promise<void> | void;
  /** The delivery queue of a session; created empty on first use. */
  queue(clientId: string): SessionQueue;

  /** Names of the consumer groups whose queues are stored, for restoring them at start. */
  loadGroups(): Promise<string[]>;
  /** The delivery queue of a consumer group (`$share/{group}/{filter}`); created empty on first use. */
  groupQueue(name: string): SessionQueue;
  /** Records that a group's queue must survive restarts; the promise resolves once that is durable. */
  saveGroup(name: string): Promise<void> | void;
  deleteGroup(name: string): Promise<void> | void;

  /** Bytes the engine keeps on disk (its log); engines without a disk leave it out. */
  readonly bytesUsed?: number;

  /** Storage reads and writes that failed so far (disk full, no descriptor left, I/O errors); engines without any leave it out. */
  readonly failures?: number;

  /**
   * Engines behind a network (JetStream) report their connection for /healthz: `state` is `connected`
   * while stores are confirmed, anything else means durable publishes are refused for now. Synchronous:
   * the engine keeps it from its connection's events. Local engines leave it out.
   */
  connectionStatus?(): { state: string } & Record<string, unknown>;

  /** Engines shared by several broker nodes give the core a way to reach the others (core/fabric.ts). */
  readonly fabric?: NodeFabric;

  /** Engines that fsync report each fsync's duration in milliseconds to `observer` (metrics). Call before `open`. */
  observeFsync?(observer: (durationMs: number, records?: number) => void): void;

  /**
   * Engines shared by several broker nodes (JetStream) keep a registry of the nodes: the server tells
   * it, once listening, what this node's heartbeat shows (its addresses, its client count at each beat).
   */
  describeNode?(describe: () => NodeDescription): void;

  /** The nodes and replicated streams of a shared engine, for /healthz and /v1/admin/cluster; never rejects, answers within about a second. */
  clusterView?(): Promise<ClusterView>;
}

/** What a broker node tells a shared engine about itself (Storage.describeNode). */
export interface NodeDescription {
  /** `host:port` of the MQTT and HTTP listeners. */
  mqtt?: string;
  http?: string;
  /** Open client connections now. */
  clients?: number;
  version?: string;
}
