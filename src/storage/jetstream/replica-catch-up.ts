import type { ClusterConnection } from './connection.js';
import { streamStatus } from './status.js';

/**
 * Waits until every replica of `streams` that is online has caught up with its leader (current, lag
 * 0), or until `timeoutMs`. Why: a NATS node just restarted is online before it has caught up, and on
 * nats-server 2.9 it may lead a consumer (or answer a direct get) from its own, shorter copy of the
 * stream; a queue opened then would count only what that copy holds (its num_pending) and stop
 * there, and a replay would end early. Nothing is lost in JetStream, but the engine's estimates would
 * be wrong, so it opens on caught-up replicas. Resolves with the streams still behind (empty: all
 * current); never rejects (a stream it cannot read is reported as behind).
 */
export async function waitForCaughtUpReplicas(conn: ClusterConnection, streams: string[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(streams.map((s) => streamStatus(conn, s)));
    const behind = statuses.filter((s) => s.error !== undefined || !s.leader || s.peers.some((p) => !p.offline && (!p.current || p.lag > 0))).map((s) => s.name);
    if (behind.length === 0 || Date.now() >= deadline) return behind;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
