import type { ClusterStreamView, ClusterView } from '../../core/admin/views.js';
import type { NodeDescription } from '../../core/storage.js';
import type { Logger } from '../../util/logger.js';
import type { ClusterConnection } from './connection.js';
import { NodeRegistry } from './node-registry.js';
import { clusterStatus, type ClusterStatus } from './status.js';

/**
 * The operator's side of the JetStream engine: this node's entry in the node registry, and the
 * cluster view that /healthz and /v1/admin/cluster show (docs/cluster.md, "Operations").
 *
 * The view needs round trips (each stream's info, the registry's keys), and /healthz is what load
 * balancers and orchestrators poll, so it must stay fast and must never hang on NATS: the round-trip
 * parts are cached for `maxAgeMs`, a refresh runs at most once at a time, a caller waits for it at
 * most `waitMs` and otherwise gets the cached parts (with `checkedAt` saying how old they are), and no
 * refresh is started while the connection is down (its requests would only sit in the client's
 * buffer until they time out). The connection state itself is always current.
 */

export interface ClusterOperationsOptions {
  nodeId: string;
  /** `<ns>-nodes`. */
  bucket: string;
  replicas: number;
  /** The streams whose replicas the view shows (the engine's streams and its buckets' streams). */
  streams: string[];
  /** The engine's connection state now. */
  state: () => string;
  logger: Logger;
  /** How long a read of nodes and streams is reused (default 2 s). */
  maxAgeMs?: number;
  /** How long a caller waits for a refresh before it gets the cached parts (default 500 ms). */
  waitMs?: number;
  /** Registry TTL and heartbeat period, for tests (node-registry.ts defaults). */
  ttlMs?: number;
  heartbeatMs?: number;
}

/** The round-trip parts of the view, as last read. */
interface Snapshot {
  at: number;
  status?: ClusterStatus;
  nodes: ClusterView['nodes'];
  error: string | null;
}

export class ClusterOperations {
  private conn: ClusterConnection | undefined;
  private registry: NodeRegistry | undefined;
  private describe: (() => NodeDescription) | undefined;
  private snapshot: Snapshot | undefined;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly options: ClusterOperationsOptions) {}

  /** At the engine's open: the nodes bucket, this node's first heartbeat; then a first read of the view in the background. */
  async open(conn: ClusterConnection): Promise<void> {
    this.conn = conn;
    this.registry = await NodeRegistry.open(conn, {
      bucket: this.options.bucket,
      nodeId: this.options.nodeId,
      replicas: this.options.replicas,
      connected: () => this.connected(),
      logger: this.options.logger,
      ...(this.options.ttlMs !== undefined ? { ttlMs: this.options.ttlMs } : {}),
      ...(this.options.heartbeatMs !== undefined ? { heartbeatMs: this.options.heartbeatMs } : {}),
    });
    if (this.describe) this.registry.setDescription(this.describe);
  }

  /** What this node's heartbeats show (the server calls it once listening). */
  describeNode(describe: () => NodeDescription): void {
    this.describe = describe;
    this.registry?.setDescription(describe);
    // Warm the cache, so the first /healthz already shows the nodes and streams.
    if (this.connected()) void this.refresh();
  }

  /** At the engine's close, while its connection is still open: this node's key is deleted. */
  async close(): Promise<void> {
    await this.registry?.close();
  }

  /** The cluster as /healthz and /v1/admin/cluster show it; never rejects, never waits on NATS for more than `waitMs`. */
  async view(): Promise<ClusterView> {
    const fresh = this.snapshot && Date.now() - this.snapshot.at < (this.options.maxAgeMs ?? 2000);
    if (!fresh && this.connected()) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.waitMs ?? 500)));
      await Promise.race([this.refresh(), waited]);
      clearTimeout(timer);
    }
    return this.compose();
  }

  /** Up: `connecting` is the engine's open still under way, on a connection that is already up (open runs once it is). */
  private connected(): boolean {
    const state = this.options.state();
    return this.conn !== undefined && !this.conn.closed && (state === 'connected' || state === 'connecting');
  }

  /** Reads streams and nodes once; concurrent callers share the read. Never rejects. */
  private refresh(): Promise<void> {
    const conn = this.conn;
    const registry = this.registry;
    if (!conn || !registry) return Promise.resolve();
    this.refreshing ??= (async () => {
      try {
        const [status, nodes] = await Promise.all([clusterStatus(conn, this.options.streams), registry.nodes()]);
        this.snapshot = { at: Date.now(), status, nodes, error: null };
      } catch (err) {
        // Keep what was read before; say why it is not newer.
        const error = err instanceof Error ? err.message : String(err);
        this.snapshot = { at: Date.now(), ...(this.snapshot?.status ? { status: this.snapshot.status } : {}), nodes: this.snapshot?.nodes ?? [], error };
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private compose(): ClusterView {
    const s = this.snapshot;
    const status = s?.status;
    return {
      enabled: true,
      node: this.options.nodeId,
      state: this.options.state(),
      server: status ? { url: status.server.url, name: status.server.name ?? null, version: status.server.version } : null,
      rttMs: status?.rttMs ?? null,
      nodes: s?.nodes ?? [],
      streams: (status?.streams ?? []).map(streamView),
      checkedAt: s ? new Date(s.at).toISOString() : null,
      error: s?.error ?? null,
    };
  }
}

function streamView(s: ClusterStatus['streams'][number]): ClusterStreamView {
  if (s.error !== undefined) return { name: s.name, replicas: 0, leader: null, peers: [], messages: 0, currentReplicas: 0, current: false, error: s.error };
  return {
    name: s.name,
    replicas: s.replicas,
    leader: s.leader ?? null,
    peers: s.peers,
    messages: s.messages,
    currentReplicas: s.currentReplicas,
    current: s.currentReplicas >= s.replicas,
    error: null,
  };
}
