/**
 * Typed failures of the JetStream store, one class per kind, each with a literal `code`, so callers
 * (the broker, /healthz, the CLI) branch on `err.code` instead of on nats.js message strings.
 * The nats.js error that caused one is kept as `cause`.
 */

export type ClusterStoreErrorCode =
  | 'nats-unreachable'
  | 'jetstream-unavailable'
  | 'stream-config-conflict'
  | 'publish-timeout'
  | 'publish-refused'
  | 'connection-closed'
  | 'unsupported-server'
  | 'consumer-start-skipped';

export abstract class ClusterStoreError extends Error {
  abstract readonly code: ClusterStoreErrorCode;
}

/** No NATS server in the list could be reached within the connect timeout. */
export class NatsUnreachableError extends ClusterStoreError {
  override readonly name = 'NatsUnreachableError';
  readonly code = 'nats-unreachable' as const;
  constructor(
    readonly servers: readonly string[],
    readonly timeoutMs: number,
    options?: ErrorOptions,
  ) {
    super(`no NATS server reachable within ${timeoutMs} ms (tried ${servers.join(', ')})`, options);
  }
}

/** Connected, but no JetStream answers: not enabled on the server or account, or no meta leader yet. */
export class JetStreamUnavailableError extends ClusterStoreError {
  override readonly name = 'JetStreamUnavailableError';
  readonly code = 'jetstream-unavailable' as const;
}

/** A stream or KV bucket exists with a configuration Eddy cannot use or change (e.g. other subjects, retention). */
export class StreamConfigConflictError extends ClusterStoreError {
  override readonly name = 'StreamConfigConflictError';
  readonly code = 'stream-config-conflict' as const;
  constructor(
    readonly stream: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`stream ${stream}: ${message}`, options);
  }
}

/**
 * No PubAck within the timeout: the message may or may not be stored (no quorum, no stream leader
 * during an election, or the ack was lost). Retrying with the same msgID is safe: the stream's
 * duplicate window drops a second copy.
 */
export class PublishTimeoutError extends ClusterStoreError {
  override readonly name = 'PublishTimeoutError';
  readonly code = 'publish-timeout' as const;
  constructor(
    readonly subject: string,
    readonly msgID: string,
    readonly reason: 'timeout' | 'no-responders',
    readonly timeoutMs: number,
    options?: ErrorOptions,
  ) {
    super(`publish to ${subject} (msgID ${msgID}) not acknowledged within ${timeoutMs} ms (${reason})`, options);
  }
}

/** The stream answered and refused the message (too large, wrong expected sequence, …): it is not stored. */
export class PublishRefusedError extends ClusterStoreError {
  override readonly name = 'PublishRefusedError';
  readonly code = 'publish-refused' as const;
  constructor(
    readonly subject: string,
    /** The JetStream API error code (e.g. 10071 wrong last sequence), when the server gave one. */
    readonly apiCode: number | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`publish to ${subject} refused: ${message}`, options);
  }
}

/** The store's connection was closed (Eddy is shutting down): nothing more is sent. */
export class ConnectionClosedError extends ClusterStoreError {
  override readonly name = 'ConnectionClosedError';
  readonly code = 'connection-closed' as const;
}

/** The NATS server is older than a JetStream feature Eddy asked for needs. */
export class UnsupportedServerError extends ClusterStoreError {
  override readonly name = 'UnsupportedServerError';
  readonly code = 'unsupported-server' as const;
  constructor(
    readonly feature: string,
    readonly required: string,
    readonly actual: string,
  ) {
    super(`${feature} needs nats-server ${required} or newer; connected server is ${actual}`);
  }
}

/**
 * A queue consumer recreated from a start seq began after it: nats-server 2.9 places a new consumer
 * on a replica that may still be catching up after a restart, and starts it past entries that
 * replica does not have yet. The consumer is deleted again, and the queue tries later.
 */
export class ConsumerStartSkippedError extends ClusterStoreError {
  override readonly name = 'ConsumerStartSkippedError';
  readonly code = 'consumer-start-skipped' as const;
  constructor(
    readonly consumer: string,
    readonly wanted: number,
    readonly started: number,
  ) {
    super(`queue consumer ${consumer} asked to start at entry ${wanted} started at ${started}; deleted, to be tried again`);
  }
}
