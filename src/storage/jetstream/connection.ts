import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { JetStreamUnavailableError, NatsUnreachableError } from './errors.js';
import { serverVersion } from './features.js';

/**
 * The one NATS connection an Eddy node holds to the JetStream cluster (`--cluster nats://…`).
 *
 * Once connected it never gives up: a NATS node that dies is replaced by another from the list (and
 * from the servers the cluster gossips), for as long as Eddy runs; requests made while reconnecting
 * wait in the client's buffer and fail by their own timeouts. Only the first connection has a
 * deadline, so that `eddy serve --cluster` with a wrong URL says so instead of waiting forever.
 */

export interface ClusterConnectionOptions {
  /** `nats://host:port` URLs; any one reachable node is enough, the rest are learnt from the cluster. */
  servers: string[];
  /** Client name shown in the NATS monitoring pages. */
  name?: string;
  /** Deadline for the first connection and for JetStream to answer (default 10 s). */
  connectTimeoutMs?: number;
  /** Pause between dials of one server (default 250 ms: a restarted node is back within a second). */
  reconnectTimeWaitMs?: number;
  /** Timeout of each JetStream API request (default 5 s). */
  apiTimeoutMs?: number;
  /** Told about disconnects, reconnects and asynchronous errors; must not throw. */
  onEvent?: (event: ConnectionEvent) => void;
}

export type ConnectionEvent =
  | { type: 'disconnect'; server: string }
  | { type: 'reconnect'; server: string }
  | { type: 'error'; error: Error };

export interface ConnectionCounters {
  reconnects: number;
  disconnects: number;
  /** The last asynchronous error the client reported (permissions, slow consumer, …). */
  lastError?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class ClusterConnection {
  readonly counters: ConnectionCounters = { reconnects: 0, disconnects: 0 };
  #closed = false;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly options: Readonly<ClusterConnectionOptions>,
  ) {}

  /** Connects, waits for JetStream to answer, and starts counting reconnects. */
  static async open(options: ClusterConnectionOptions): Promise<ClusterConnection> {
    if (options.servers.length === 0) throw new TypeError('ClusterConnection: no NATS server URL given');
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    const apiTimeoutMs = options.apiTimeoutMs ?? 5_000;
    const deadline = Date.now() + connectTimeoutMs;
    const nc = await connectWithDeadline(options, connectTimeoutMs);
    try {
      const jsm = await jetStreamWithin(nc, apiTimeoutMs, deadline);
      const js = jetstream(nc, { timeout: apiTimeoutMs });
      const conn = new ClusterConnection(nc, js, jsm, options);
      conn.#watchStatus();
      return conn;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed || this.nc.isClosed();
  }

  /** The server this connection is on now, e.g. `127.0.0.1:4222`, and its name and version. */
  get server(): { url: string; name: string | undefined; version: string } {
    return { url: this.nc.getServer(), name: this.nc.info?.server_name, version: serverVersion(this.nc) };
  }

  /** Round-trip time to the connected server in ms, or undefined when no PONG comes within `timeoutMs`. */
  async rtt(timeoutMs = 1000): Promise<number | undefined> {
    if (this.closed) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    try {
      return await Promise.race([this.nc.rtt().catch(() => undefined), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Flushes what is buffered and closes; pending requests fail with ConnectionClosedError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.nc.drain().catch(() => this.nc.close());
  }

  #watchStatus(): void {
    const notify = (event: ConnectionEvent): void => {
      try {
        this.options.onEvent?.(event);
      } catch {
        // An observer's failure must not end the status loop (or become an unhandled rejection).
      }
    };
    const handle = (s: Status): void => {
      switch (s.type) {
        case 'disconnect':
          this.counters.disconnects++;
          notify({ type: 'disconnect', server: s.server });
          break;
        case 'reconnect':
          this.counters.reconnects++;
          notify({ type: 'reconnect', server: s.server });
          break;
        case 'error':
          this.counters.lastError = s.error.message;
          notify({ type: 'error', error: s.error });
          break;
        default:
          break;
      }
    };
    void (async () => {
      for await (const s of this.nc.status()) handle(s);
    })().catch((err: unknown) => {
      this.counters.lastError = err instanceof Error ? err.message : String(err);
    });
  }
}

/**
 * nats.js with `waitOnFirstConnect` dials forever; it has no abort. Its `reconnectToServer` hook runs
 * before every dial and a throw from it ends the dial loop, so that is how the deadline stops it.
 */
async function connectWithDeadline(options: ClusterConnectionOptions, timeoutMs: number): Promise<NatsConnection> {
  let abandoned = false;
  let connectedOnce = false;
  const pending = connect({
    servers: options.servers,
    name: options.name ?? 'eddy',
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
    // Each dial of a dead host must end well within the deadline, or one dial would outlast it.
    timeout: Math.min(2000, Math.max(100, Math.floor(timeoutMs / 2))),
    reconnectToServer: () => {
      if (abandoned && !connectedOnce) throw new Error('first connection abandoned at its deadline');
      return null; // keep the client's own choice
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), timeoutMs)));
  try {
    const winner = await Promise.race([pending, expired]);
    if (winner !== 'expired') {
      connectedOnce = true;
      return winner;
    }
    abandoned = true;
    // If it connects after all in the instant before the next dial check, close that connection.
    pending.then((nc) => nc.close()).catch(() => undefined);
    throw new NatsUnreachableError(options.servers, timeoutMs);
  } catch (err) {
    if (err instanceof NatsUnreachableError) throw err;
    throw new NatsUnreachableError(options.servers, timeoutMs, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Asks for the account's JetStream info until it answers: a cluster still electing its meta leader answers late. */
async function jetStreamWithin(nc: NatsConnection, apiTimeoutMs: number, deadline: number): Promise<JetStreamManager> {
  let lastError: unknown;
  for (;;) {
    const left = deadline - Date.now();
    try {
      // checkAPI makes the manager ask $JS.API.INFO once; a server without JetStream has no responder.
      return await jetstreamManager(nc, { timeout: Math.max(100, Math.min(apiTimeoutMs, left)), checkAPI: true });
    } catch (err) {
      lastError = err;
    }
    if (Date.now() + 200 >= deadline) break;
    await sleep(200);
  }
  const why = lastError instanceof Error ? lastError.message : String(lastError);
  throw new JetStreamUnavailableError(`JetStream did not answer on ${nc.getServer()} (${why}): is it enabled, and does the cluster have a meta leader?`, {
    cause: lastError,
  });
}
