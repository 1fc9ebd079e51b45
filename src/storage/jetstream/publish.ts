import { errors, type MsgHdrs } from '@nats-io/transport-node';
import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import type { ClusterConnection } from './connection.js';
import { ConnectionClosedError, PublishRefusedError, PublishTimeoutError } from './errors.js';

/**
 * A confirmed publish: resolves only with the stream's PubAck, which JetStream sends once the message
 * is stored on a quorum of the stream's replicas (2 of 3). Until then Eddy must not acknowledge the
 * MQTT PUBLISH (PUBACK/PUBREC) to its client.
 */

export interface ConfirmedPublishOptions {
  /**
   * De-duplication key (Nats-Msg-Id): a re-send with the same id inside the stream's duplicate
   * window is acknowledged as `duplicate` and not stored twice. Required, because a retry after a
   * timeout (the ack may have been lost, not the message) is the normal case in a cluster.
   */
  msgID: string;
  /** Overall deadline for the PubAck, across retries (default 5 s). */
  timeoutMs?: number;
  /**
   * Wait for one attempt's PubAck before re-sending (default 2 s). A stream whose leader just died
   * drops publishes silently (its followers hear them but only a leader answers) until it elects a
   * new one, so one attempt per deadline would wait out the whole deadline for nothing.
   */
  attemptTimeoutMs?: number;
  headers?: MsgHdrs;
}

/** nats.js reports "no responders" on a JetStream publish as JetStreamNotEnabled; it means no stream leader answered. */
function isNoResponders(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'JetStreamNotEnabled') return true;
  const cause = (err as { cause?: unknown }).cause;
  return err instanceof errors.NoRespondersError || cause instanceof errors.NoRespondersError || (err instanceof errors.RequestError && err.isNoResponders());
}

function isTimeout(err: unknown): boolean {
  return err instanceof errors.TimeoutError || (err instanceof Error && err.cause instanceof errors.TimeoutError);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function publishConfirmed(conn: ClusterConnection, subject: string, payload: Uint8Array, options: ConfirmedPublishOptions): Promise<PubAck> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000;
  // While a stream elects a leader (a few seconds after a node loss) a publish gets no answer, or
  // no responders at once; both are retried with the same msgID until the deadline. The msgID makes
  // a retry of a message that was stored after all come back as a duplicate, not a second copy.
  for (let attempt = 0; ; attempt++) {
    if (conn.closed) throw new ConnectionClosedError(`publish to ${subject}: the cluster connection is closed`);
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const timeout = Math.max(1, Math.min(left, attemptTimeoutMs));
      return await conn.js.publish(subject, payload, { msgID: options.msgID, timeout, headers: options.headers, retries: 1 });
    } catch (err) {
      lastError = err;
      if (err instanceof errors.ClosedConnectionError || conn.closed) {
        throw new ConnectionClosedError(`publish to ${subject}: the cluster connection is closed`, { cause: err });
      }
      if (err instanceof JetStreamApiError) {
        throw new PublishRefusedError(subject, err.code, err.message, { cause: err });
      }
      if (isTimeout(err)) continue;
      if (!isNoResponders(err)) throw err;
      await sleep(Math.min(50 * 2 ** Math.min(attempt, 4), Math.max(0, deadline - Date.now())));
    }
  }
  throw new PublishTimeoutError(subject, options.msgID, isNoResponders(lastError) ? 'no-responders' : 'timeout', timeoutMs, { cause: lastError });
}
