import type { Subscription } from '@nats-io/transport-node';
import type { ClusterConnection } from './connection.js';
import { consumerInfoOrUndefined } from './queue-stream.js';

/** An election this soon after the consumer was created is its first one, not a failover. */
const FIRST_ELECTION_MS = 3000;

/** What a consumer leader elected advisory carries that Eddy reads. */
interface LeaderElectedAdvisory {
  consumer?: string;
  timestamp?: string;
}

/**
 * Tells the engine when a queue consumer's leader moved: nats-server publishes a leader elected
 * advisory for each election of a replicated consumer (`$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.
 * <stream>.<consumer>`). The first election of a new consumer is left out (its start was checked at
 * its creation), so that one node's recreation does not set another's check off. Advisories are
 * core NATS messages: those sent while this node reconnects are lost, and the engine treats the
 * reconnect itself as a possible move.
 */
export function watchConsumerLeaders(conn: ClusterConnection, stream: string, onMoved: (durable: string) => void, onError: (err: unknown) => void): { stop(): void } {
  const sub: Subscription = conn.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${stream}.*`);
  void (async () => {
    for await (const msg of sub) {
      try {
        const advisory = msg.json<LeaderElectedAdvisory>();
        const durable = advisory.consumer;
        if (!durable) continue;
        const info = await consumerInfoOrUndefined(conn, stream, durable);
        if (!info) continue;
        const electedAt = advisory.timestamp ? Date.parse(advisory.timestamp) : Date.now();
        if (electedAt - Date.parse(info.created) < FIRST_ELECTION_MS) continue;
        onMoved(durable);
      } catch (err) {
        onError(err);
      }
    }
  })();
  return { stop: () => sub.unsubscribe() };
}
