// The JSON shapes of the admin API (`/v1/admin/…`, docs/http.md): what the core's admin model
// returns and the web console reads. One definition serves both, so the wire shapes cannot drift.
// Pure types with no imports: the console type-checks this file under its own tsconfig (DOM lib,
// no Node types) and bundles it (esbuild drops it, there is no code).

/** Every list of the admin API: one page of items, the cursor of the next page (null on the last), and how many there are in all. */
export interface Page<T> {
  items: T[];
  next: string | null;
  total: number;
}

/** One connected client, as `GET /v1/admin/clients` lists it. */
export interface ClientView {
  clientId: string;
  user: string | null;
  /** `host:port` the client connects from. */
  address: string;
  transport: string;
  /** `mqtt` (any transport) or `sse` (an HTTP event stream of GET /v1/subscribe). */
  protocol: string;
  /** `3.1`, `3.1.1` or `5.0` for MQTT; null for SSE. */
  protocolVersion: string | null;
  connectedAt: string | null;
  /** Seconds; 0 when the client asked for none. */
  keepAlive: number;
  persistent: boolean;
  /** Deliveries sent and not yet acknowledged. */
  inflight: number;
  /** Deliveries waiting to be sent. */
  queued: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
}

/** One session, connected or waiting offline, as `GET /v1/admin/sessions` lists it. */
export interface SessionView {
  clientId: string;
  user: string | null;
  connected: boolean;
  persistent: boolean;
  /** Seconds the session outlives its connection; null for never. */
  expiryInterval: number | null;
  /** For an offline session: when it disconnected, when it ends and the seconds left (null: never). */
  disconnectedAt: string | null;
  expiresAt: string | null;
  expiresIn: number | null;
  subscriptions: number;
  /** The consumer groups (`$share/…`) it is a member of. */
  groups: string[];
  queue: { waiting: number; waitingBytes: number; inflight: number; retrying: number };
}

/** One consumer group, as `GET /v1/admin/groups` lists it. */
export interface GroupView {
  /** `$share/{group}/{filter}`: what the broker keys groups by, and what DELETE takes. */
  name: string;
  group: string;
  filter: string;
  /** The broker's own dead-letter group: it cannot be deleted. */
  brokerOwned: boolean;
  /** Its queue is on disk (a member session is persistent). */
  durable: boolean;
  members: number;
  connectedMembers: number;
  /** Client ids of the first members (up to MEMBERS_SHOWN of admin/groups.ts), in order. */
  memberIds: string[];
  waiting: number;
  waitingBytes: number;
  inflight: number;
  /** Deliveries waiting out a retry backoff after a nack. */
  retrying: number;
  /** Age in seconds of the oldest waiting message (0 when none waits). */
  lag: number;
  oldestWaitingAt: string | null;
  /** Deliveries to members per second, over the last ten seconds. */
  deliveryRate: number;
  delivered: number;
}

/** One message a declared channel accepts: its name, content type and payload schema. */
export interface DeclaredMessage {
  name: string;
  contentType: string;
  schema: unknown;
}

/** A schema inferred from an undeclared channel's payloads (the live document's, asyncapi/observed.ts). */
export interface InferredChannel {
  contentType: string | undefined;
  schema: unknown;
}

/** One channel, declared or observed in traffic, as `GET /v1/admin/channels` lists it. */
export interface ChannelView {
  /** The topic, or a declared address (`user/{userId}/signedup`) that no traffic was seen on as such. */
  channel: string;
  /** The address of the declared channel it belongs to; null for an undeclared one. */
  declared: string | null;
  /** Seen in traffic since the broker started. */
  observed: boolean;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Messages per second over the last ten seconds. */
  rateIn: number;
  rateOut: number;
  lastMessageAt: string | null;
  /** Client ids that published on it (observed), and whether there were more than listed. */
  publishers: string[];
  morePublishers: boolean;
  /** Who receives it: sessions whose subscriptions match it, and consumer groups. */
  receivers: { count: number; clients: string[]; groups: string[] };
  /** The declared messages' schemas, or the one inferred from traffic. */
  schema: { declared: DeclaredMessage[] } | { inferred: InferredChannel } | null;
}

/** One retained message, as `GET /v1/admin/retained` lists it. */
export interface RetainedView {
  topic: string;
  /** Payload bytes. */
  bytes: number;
  qos: number;
  seq: number | null;
  publishedAt: string;
  expiresAt: string | null;
  contentType: string | null;
  /** The first PREVIEW_BYTES (admin/retained.ts) of the payload (the whole payload for `GET /v1/admin/retained/<topic>`). */
  payload: string;
  /** `utf8` when the bytes shown are UTF-8 text, else `base64`. */
  encoding: 'utf8' | 'base64';
  truncated: boolean;
}

/** One subscription of one session, as `GET /v1/admin/subscriptions` lists it. */
export interface SubscriptionView {
  clientId: string;
  /** The filter as the client sent it (`$share/…` included). */
  filter: string;
  /** For a shared subscription, the consumer group's name (`mailer` of `$share/mailer/…`). */
  group: string | null;
  qos: number;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | null;
  connected: boolean;
}

/** One dead letter as `GET /v1/dlq`, `GET /v1/admin/dlq` and `eddy dlq list` show it. */
export interface DeadLetterView {
  seq: number | undefined;
  topic: string;
  originalTopic: string;
  reason: string | undefined;
  deliveryCount: number | undefined;
  group: string | undefined;
  clientId: string | undefined;
  deadLetteredAt: string;
  contentType: string | undefined;
  /** UTF-8 text when the payload is valid UTF-8, base64 otherwise (see `encoding`). */
  payload: string;
  encoding: 'utf8' | 'base64';
  /** Its other user properties (the `eddy-dlq-*` ones taken out): core/message.ts `UserProperties`. */
  headers: Record<string, string | string[]>;
}

/** Latency percentiles over one interval (admin/percentiles.ts computes them from histogram snapshots). */
export interface Percentiles {
  /** Observations in the interval. */
  count: number;
  /** Seconds; estimated within their bucket (linear), the last bound for values past it. */
  p50: number;
  p90: number;
  p99: number;
}

/** One snapshot of the live stats (`GET /v1/admin/stats`, one a second on `/v1/admin/stats/stream`). */
export interface StatsSnapshot {
  time: string;
  /** Seconds since the broker started. */
  uptime: number;
  version: string;
  connections: number;
  /** The most connections seen open at once at a sample (`$SYS/broker/clients/maximum`). */
  maxConnections: number;
  sessions: number;
  subscriptions: number;
  groups: number;
  /** Publishes routed and deliveries written, in all and per second over the last sample interval. */
  messages: { in: number; out: number; inPerSecond: number; outPerSecond: number; dropped: number };
  /** Protocol bytes read from and written to clients. */
  bytes: { in: number; out: number; inPerSecond: number; outPerSecond: number };
  /** Payload bytes of the messages routed and written. */
  payloadBytes: { in: number; out: number };
  storage: { engine: string; bytesUsed: number | null; retained: number; retainedBytes: number; storedMessages: number; storedBytes: number };
  deadLetters: number;
  /** Over the last sample interval, in seconds: fsyncs of the disk engine, and publish to delivery; null when nothing was observed (`fsync` always without a disk engine, --memory). */
  latency: { fsync: Percentiles | null; delivery: Percentiles | null };
  /** Heap in use, bytes. */
  heapUsed: number;
}

/** `POST /v1/admin/dlq/redrive` (and `/v1/dlq/redrive`): dead letters published again, refused (the original publisher may no longer publish there) and failed (their copy not stored; `error` says why). */
export interface RedriveResult {
  redriven: number;
  failed: number;
  refused: number;
  error?: string;
}

/** `POST /v1/admin/dlq/purge`: dead letters removed, and kept ones stored again at the end of the queue. */
export interface PurgeResult {
  purged: number;
  moved: number;
}

/** One Eddy node of a cluster, from its heartbeat in the `<ns>-nodes` bucket (storage/jetstream/node-registry.ts). */
export interface ClusterNodeView {
  id: string;
  /** This node itself (the one that answered). */
  self: boolean;
  /** A heartbeat within the bucket's TTL (about 15 s): the node is up and connected to NATS. */
  alive: boolean;
  startedAt: string;
  /** When the NATS server stored the node's last heartbeat (the server's clock, not the node's). */
  lastSeen: string;
  hostname: string | null;
  /** `host:port` of its MQTT and HTTP listeners. */
  mqtt: string | null;
  http: string | null;
  /** Open client connections at its last heartbeat. */
  clients: number | null;
  version: string | null;
}

/** One replica of a stream other than its leader, as the leader reports it. */
export interface ClusterPeerView {
  name: string;
  current: boolean;
  offline: boolean;
  /** Operations the replica is behind the leader. */
  lag: number;
  /** Milliseconds since the leader last heard from it. */
  activeMs: number;
}

/** One replicated JetStream stream (messages, queues, and each KV bucket's stream). */
export interface ClusterStreamView {
  name: string;
  /** Configured replica count. */
  replicas: number;
  leader: string | null;
  peers: ClusterPeerView[];
  messages: number;
  /** Replicas (the leader included) that are current. */
  currentReplicas: number;
  /** Every configured replica is current. */
  current: boolean;
  /** Why the stream could not be read; the other fields are then empty. */
  error: string | null;
}

/**
 * `GET /v1/admin/cluster` and `/healthz` `cluster` on a node running `--cluster`. The round-trip parts
 * (nodes, streams, server, rttMs) are cached for a couple of seconds and may be older than `state`
 * while NATS is unreachable: `checkedAt` says when they were read.
 */
export interface ClusterView {
  enabled: true;
  /** This node's id (its key in the nodes bucket). */
  node: string;
  /** The NATS connection now: connected | reconnecting | connecting | closed. */
  state: string;
  server: { url: string; name: string | null; version: string } | null;
  rttMs: number | null;
  nodes: ClusterNodeView[];
  streams: ClusterStreamView[];
  /** When nodes and streams were read (null: not yet). */
  checkedAt: string | null;
  /** Why the last read failed, if it did. */
  error: string | null;
}

/** `GET /v1/admin/cluster` on a node that does not run `--cluster`. */
export interface ClusterDisabledView {
  enabled: false;
  /** The node's storage engine (memory, disk). */
  storage: string;
}
