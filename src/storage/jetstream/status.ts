import type { ClusterConnection } from './connection.js';

/**
 * What /healthz will show of the cluster store: which NATS server this node talks to, how fast, how
 * often it had to reconnect, and for each replicated stream whether its replicas are current.
 * Plain data (JSON-ready); building it never throws: a part that cannot be read says why instead.
 */

export interface ReplicaStatus {
  name: string;
  /** Whether the peer has applied everything the leader committed. */
  current: boolean;
  offline: boolean;
  /** Operations the peer is behind the leader. */
  lag: number;
  /** Milliseconds since the leader last heard from the peer. */
  activeMs: number;
}

export interface StreamStatus {
  name: string;
  /** Configured replica count. */
  replicas: number;
  leader?: string;
  /** The peers other than the leader, as the leader reports them. */
  peers: ReplicaStatus[];
  messages: number;
  /** Replicas (leader included) that are current: the stream accepts writes while this is a majority. */
  currentReplicas: number;
  error?: undefined;
}

export interface ClusterStatus {
  connected: boolean;
  server: { url: string; name?: string; version: string };
  rttMs?: number;
  reconnects: number;
  disconnects: number;
  lastError?: string;
  streams: (StreamStatus | { name: string; error: string })[];
}

export async function streamStatus(conn: ClusterConnection, name: string): Promise<StreamStatus | { name: string; error: string }> {
  try {
    const info = await conn.jsm.streams.info(name);
    const peers: ReplicaStatus[] = (info.cluster?.replicas ?? []).map((p) => ({
      name: p.name,
      current: p.current,
      offline: p.offline ?? false,
      lag: p.lag ?? 0,
      activeMs: Math.round((p.active ?? 0) / 1_000_000),
    }));
    const leader = info.cluster?.leader;
    return {
      name,
      replicas: info.config.num_replicas,
      leader,
      peers,
      messages: info.state.messages,
      currentReplicas: (leader ? 1 : 0) + peers.filter((p) => p.current && !p.offline).length,
    };
  } catch (err) {
    return { name, error: err instanceof Error ? err.message : String(err) };
  }
}

export async function clusterStatus(conn: ClusterConnection, streams: string[]): Promise<ClusterStatus> {
  const connected = !conn.closed && !conn.nc.isClosed() && conn.nc.info !== undefined;
  const [rttMs, ...streamInfos] = await Promise.all([conn.rtt(), ...streams.map((s) => streamStatus(conn, s))]);
  return {
    connected: connected && rttMs !== undefined,
    server: conn.server,
    rttMs,
    reconnects: conn.counters.reconnects,
    disconnects: conn.counters.disconnects,
    lastError: conn.counters.lastError,
    streams: streamInfos,
  };
}
