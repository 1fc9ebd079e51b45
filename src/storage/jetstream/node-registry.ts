import os from 'node:os';
import type { KV } from '@nats-io/kv';
import type { ClusterNodeView } from '../../core/admin/views.js';
import type { NodeDescription } from '../../core/storage.js';
import type { Logger } from '../../util/logger.js';
import type { ClusterConnection } from './connection.js';
import { ensureBucket } from './layout.js';

/**
 * Which Eddy nodes share the cluster now: each node, while it is connected to NATS, keeps one key
 * (its node id) in the KV bucket `<ns>-nodes`, re-put every `heartbeatMs`. The bucket's max_age (its
 * TTL) removes the key of a node that stopped beating (crashed, cut off from NATS) on the server side,
 * so no node has to clean up after another; a node that stops cleanly deletes its own key at once.
 * Works on nats-server 2.9: a bucket TTL is the stream's max_age (per-key TTLs need 2.11).
 */

export interface NodeRegistryOptions {
  /** The bucket, `<namespace>-nodes`. */
  bucket: string;
  nodeId: string;
  replicas: number;
  /** How long a heartbeat counts (the bucket's max_age; default 15 s). */
  ttlMs?: number;
  /** Between heartbeats (default 5 s: two may be lost before the key expires). */
  heartbeatMs?: number;
  /** Whether the connection is up: no heartbeat is sent while it is not (it would only wait in the client's buffer). */
  connected: () => boolean;
  logger: Logger;
}

/** A node's heartbeat, the JSON value of its key. */
export interface NodeHeartbeat extends NodeDescription {
  id: string;
  startedAt: string;
  /** The node's own clock at this beat (the view's lastSeen is the NATS server's stamp instead). */
  lastSeen: string;
  hostname: string;
  pid: number;
}

export const DEFAULT_NODE_TTL_MS = 15_000;
export const DEFAULT_HEARTBEAT_MS = 5_000;
/** How long `close` waits for its key's delete: a node whose NATS is gone expires by TTL instead. */
const DELETE_DEADLINE_MS = 2_000;

export class NodeRegistry {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private describe: () => NodeDescription = () => ({});
  private readonly startedAt = new Date().toISOString();
  private readonly ttlMs: number;
  private closed = false;

  private constructor(
    private readonly kv: KV,
    private readonly options: NodeRegistryOptions,
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_NODE_TTL_MS;
  }

  /** Creates the bucket if missing (or brings its replicas and TTL to the configured ones), puts the first heartbeat, starts beating. */
  static async open(conn: ClusterConnection, options: NodeRegistryOptions): Promise<NodeRegistry> {
    const kv = await ensureBucket(conn, options.bucket, options.replicas, { ttlMs: options.ttlMs ?? DEFAULT_NODE_TTL_MS });
    const registry = new NodeRegistry(kv, options);
    await registry.beat();
    registry.timer = setInterval(() => void registry.beat(), options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    registry.timer.unref();
    return registry;
  }

  /** What the heartbeats show from now on; beats once at once, so the other nodes see the addresses without waiting. */
  setDescription(describe: () => NodeDescription): void {
    this.describe = describe;
    void this.beat();
  }

  /** Every node with a key in the bucket, oldest first; `alive` by the server's stamp of its last heartbeat. */
  async nodes(): Promise<ClusterNodeView[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) keys.push(key);
    const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
    const now = Date.now();
    const views: ClusterNodeView[] = [];
    for (const entry of entries) {
      if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) continue;
      let beat: Partial<NodeHeartbeat>;
      try {
        beat = entry.json<Partial<NodeHeartbeat>>();
      } catch {
        continue; // not an Eddy heartbeat (someone wrote the bucket by hand): not a node
      }
      views.push({
        id: typeof beat.id === 'string' ? beat.id : entry.key,
        self: entry.key === this.options.nodeId,
        alive: now - entry.created.getTime() <= this.ttlMs,
        startedAt: typeof beat.startedAt === 'string' ? beat.startedAt : entry.created.toISOString(),
        lastSeen: entry.created.toISOString(),
        hostname: typeof beat.hostname === 'string' ? beat.hostname : null,
        mqtt: typeof beat.mqtt === 'string' ? beat.mqtt : null,
        http: typeof beat.http === 'string' ? beat.http : null,
        clients: typeof beat.clients === 'number' ? beat.clients : null,
        version: typeof beat.version === 'string' ? beat.version : null,
      });
    }
    return views.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  }

  /** Stops beating and deletes this node's key, so the other nodes see it gone now rather than after the TTL. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    const deleted = (async () => {
      // A beat under way would put the key back after the delete.
      await this.beating;
      if (this.options.connected()) await this.kv.delete(this.options.nodeId).catch((err: unknown) => this.failed('delete', err));
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, DELETE_DEADLINE_MS)));
    try {
      await Promise.race([deleted, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One heartbeat; skipped while the previous one is still out or the connection is down. Never rejects. */
  private beat(): Promise<void> {
    if (this.closed || this.beating || !this.options.connected()) return this.beating ?? Promise.resolve();
    const heartbeat: NodeHeartbeat = {
      ...this.safeDescription(),
      id: this.options.nodeId,
      startedAt: this.startedAt,
      lastSeen: new Date().toISOString(),
      hostname: os.hostname(),
      pid: process.pid,
    };
    const beating = this.kv
      .put(this.options.nodeId, JSON.stringify(heartbeat))
      .then(
        () => undefined,
        (err: unknown) => this.failed('heartbeat', err),
      )
      .finally(() => (this.beating = undefined));
    this.beating = beating;
    return beating;
  }

  private safeDescription(): NodeDescription {
    try {
      return this.describe();
    } catch {
      return {}; // a describer's bug must not stop the heartbeats
    }
  }

  private failed(what: string, err: unknown): void {
    // A lost heartbeat is retried at the next beat; two in a row lost and the others see this node gone.
    this.options.logger.debug({ err: err instanceof Error ? err.message : String(err) }, `cluster: node ${what} not written`);
  }
}
