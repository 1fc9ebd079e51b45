import type { Subscription } from '@nats-io/transport-node';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Message } from '../../core/message.js';
import type { CoveredDeliveries, FabricHandlers, NodeFabric } from '../../core/fabric.js';
import type { SessionRecord } from '../../core/storage.js';
import type { Logger } from '../../util/logger.js';
import type { ClusterConnection } from './connection.js';
import { decodeMessage, encodeMessage } from './envelope.js';
import { clientIdOfKey } from './subjects.js';

/**
 * The JetStream engine's side of core/fabric.ts: how Eddy nodes on one NATS cluster reach each other.
 *
 *  - Live fan-out: each node publishes every message it accepted on core NATS subject
 *    `<ns>.l.<nodeId>` and subscribes to `<ns>.l.*` (its own subject skipped). Core NATS is at most
 *    once: what must survive a failure is a queue entry (written before the publisher confirmed), and
 *    this frame names those queues so the node holding them does not deliver a second, live copy.
 *  - Sessions: the sessions bucket is watched from the revision the node loaded; a record another node
 *    saved (its `owner`) or deleted is reported to the core. A node's own writes come back on the watch
 *    too: a record with its own id is skipped, and so is any change older than its latest own write of
 *    that key (two nodes taking one client id at once: the later write wins on both).
 *
 * The frame: 4-byte length, JSON `{ seq, s: [client ids], g: [group names] }`, the message envelope.
 */
export class JetStreamNodeFabric implements NodeFabric {
  private live: Subscription | undefined;
  private stopped = false;
  /** Our latest write of each session key: the revision once known, the write while it is under way. */
  private readonly ownRevision = new Map<string, number>();
  private readonly ownWrites = new Map<string, Promise<unknown>>();
  /** Deletes of ours the watch has not shown yet, per client id. */
  private readonly ownDeletes = new Map<string, number>();
  /** Broadcasts not sent (over max_payload, connection closed), for /metrics-style counters. */
  unsent = 0;

  constructor(
    readonly nodeId: string,
    private readonly deps: {
      conn: () => ClusterConnection;
      namespace: string;
      sessions: () => KV;
      /** The sessions bucket's revision when the core loaded them: the watch starts after it. */
      loadedRevision: () => number;
      /** A message from another node was seen with this seq (the engine's lastSeq follows it). */
      sawSeq: (seq: number) => void;
      logger: Logger;
    },
  ) {}

  async start(handlers: FabricHandlers): Promise<void> {
    const conn = this.deps.conn();
    const own = `${this.deps.namespace}.l.${this.nodeId}`;
    this.live = conn.nc.subscribe(`${this.deps.namespace}.l.*`, {
      callback: (err, msg) => {
        if (err || msg.subject === own) return;
        try {
          const { message, covered } = decodeFrame(msg.data);
          if (message.seq !== undefined) this.deps.sawSeq(message.seq);
          handlers.message(message, covered);
        } catch (e) {
          this.deps.logger.warn({ err: (e as Error).message, from: msg.subject }, 'cluster: a live message from another node was not delivered');
        }
      },
    });
    const watch = await this.deps.sessions().watch({ include: 'updates', resumeFromRevision: this.deps.loadedRevision() + 1 } as never);
    void (async () => {
      for await (const entry of watch) {
        if (this.stopped) break;
        try {
          await this.sessionChange(entry, handlers);
        } catch (e) {
          this.deps.logger.warn({ err: (e as Error).message, key: entry.key }, 'cluster: a session change from another node was not applied');
        }
      }
    })();
  }

  private async sessionChange(entry: KvWatchEntry, handlers: FabricHandlers): Promise<void> {
    const clientId = clientIdOfKey(entry.key);
    const writing = this.ownWrites.get(clientId);
    if (writing) await writing.catch(() => undefined);
    if (entry.revision <= (this.ownRevision.get(clientId) ?? 0)) return;
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      const mine = this.ownDeletes.get(clientId) ?? 0;
      if (mine > 0) {
        if (mine === 1) this.ownDeletes.delete(clientId);
        else this.ownDeletes.set(clientId, mine - 1);
        return;
      }
      handlers.sessionDeleted(clientId);
      return;
    }
    const record = entry.json<SessionRecord>();
    if (record.owner === this.nodeId) return;
    handlers.sessionSaved(record);
  }

  /** The engine's session write, tracked so the watch can tell it from other nodes' (see the class comment). */
  trackWrite(clientId: string, write: Promise<number>): Promise<number> {
    this.ownWrites.set(clientId, write);
    const done = (): void => {
      if (this.ownWrites.get(clientId) === write) this.ownWrites.delete(clientId);
    };
    write.then((revision) => {
      if (revision > (this.ownRevision.get(clientId) ?? 0)) this.ownRevision.set(clientId, revision);
      done();
    }, done);
    return write;
  }

  trackDelete(clientId: string): void {
    this.ownDeletes.set(clientId, (this.ownDeletes.get(clientId) ?? 0) + 1);
  }

  broadcast(message: Message, covered: CoveredDeliveries): void {
    if (this.stopped) return;
    try {
      this.deps.conn().nc.publish(`${this.deps.namespace}.l.${this.nodeId}`, encodeFrame(message, covered));
    } catch (err) {
      // Over the servers' max_payload, or the connection closed: the other nodes' live subscribers miss it (at most once).
      if (this.unsent++ % 1000 === 0) this.deps.logger.warn({ err: (err as Error).message, topic: message.topic, times: this.unsent }, 'cluster: a message was not sent to the other nodes');
    }
  }

  stop(): void {
    this.stopped = true;
    try {
      this.live?.unsubscribe();
    } catch {
      // the connection is closing anyway
    }
  }
}

function encodeFrame(message: Message, covered: CoveredDeliveries): Buffer {
  const meta = Buffer.from(JSON.stringify({ seq: message.seq, s: [...covered.sessions], g: [...covered.groups] }));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(meta.length, 0);
  return Buffer.concat([head, meta, encodeMessage(message)]);
}

function decodeFrame(data: Uint8Array): { message: Message; covered: CoveredDeliveries } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const length = buf.readUInt32BE(0);
  const meta = JSON.parse(buf.subarray(4, 4 + length).toString()) as { seq?: number; s: string[]; g: string[] };
  const message = decodeMessage(buf.subarray(4 + length), meta.seq ?? 0);
  if (meta.seq === undefined) delete message.seq;
  return { message, covered: { sessions: new Set(meta.s), groups: new Set(meta.g) } };
}
