import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { expiryOf, refreshDelay, resolvePassword, type PasswordSource, type TokenExpiry } from './credentials.js';
import { ConnectError } from './errors.js';

export interface ReconnectOptions {
  /** First wait after a lost connection; doubles per failed attempt. Default 100 ms. */
  initialDelayMs?: number;
  /** Longest wait between attempts. Default 10 s. */
  maxDelayMs?: number;
}

/** How the broker's certificate is verified, and the client's own certificate (mqtts://, wss://). */
export interface TlsOptions {
  /** PEM CA certificate(s) to verify the broker with, instead of the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** PEM client certificate, for a broker that asks for one (`--tls-ca`, `--require-client-cert`). */
  cert?: string | Buffer | Array<string | Buffer>;
  /** PEM private key of `cert`. */
  key?: string | Buffer | Array<string | Buffer>;
  /** false skips verifying the broker's certificate (testing only). Default true. */
  rejectUnauthorized?: boolean;
}

export interface ConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: PasswordSource;
  tokenExpiresAt?: TokenExpiry;
  tls?: TlsOptions;
  /** Keep the session (subscriptions, queued messages) this many seconds after a disconnect; 0 = clean. */
  sessionExpirySeconds: number;
  /** MQTT 5 Receive Maximum: QoS 1/2 messages the broker may send before they are acknowledged. */
  receiveMaximum: number;
  reconnect: ReconnectOptions;
  /** How long the first connect may keep retrying before it fails. */
  connectTimeoutMs: number;
}

/**
 * TLS failures of a first connect that retrying cannot mend: the broker's certificate does not
 * verify, or the broker refused ours (TLS 1.3 reports that as an alert after the handshake).
 */
const PERMANENT_TLS_ERRORS = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
]);

/** DISCONNECT, reason 0x00 (normal), no properties: valid in MQTT 3.1.1 and 5. */
const NORMAL_DISCONNECT = Buffer.from([0xe0, 0x00]);

/**
 * One MQTT 5 connection that reconnects by itself with exponential backoff and full jitter, so a
 * fleet of clients does not reconnect in lockstep after a broker restart. mqtt.js keeps unacknowledged
 * publishes across reconnects and resends them.
 *
 * The password is obtained before every connect (a function's result is not kept for the next
 * one). When it expires (`tokenExpiresAt`, or a JWT's `exp`), the connection is ended with a normal
 * DISCONNECT shortly before and made again with a fresh password, since the broker checks a token
 * when a client connects.
 */
export class ManagedConnection {
  readonly client: MqttClient;
  /** Counts connects: an acknowledgement owed on an older connection must not be sent on a newer one. */
  generation = 0;
  private attempts = 0;
  private closing = false;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  /** The password of the CONNECT in progress or last sent. */
  private password: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** The password a refresh reconnected to replace: one that comes back unchanged is not refreshed again. */
  private replacing: string | undefined;
  /**
   * Told of the errors of each connection's stream until the first connect succeeds: mqtt.js passes
   * only some of them on as 'error' (not a TLS alert that comes after the handshake).
   */
  private attemptFailed: ((err: Error & { code?: string }) => void) | undefined;
  private readonly connectListeners: Array<(connack: IConnackPacket) => void> = [];
  /** `eddy-seq` of PUBACKs/PUBRECs just received, by packet id: mqtt.js hands the publish callback the publish, not the ack. */
  private readonly ackSeqs = new Map<number, number>();

  private constructor(private readonly options: ConnectionOptions) {
    const mqttOptions: IClientOptions = {
      protocolVersion: 5,
      clientId: options.clientId,
      clean: options.sessionExpirySeconds === 0,
      reconnectPeriod: 0,
      connectTimeout: Math.min(options.connectTimeoutMs, 30_000),
      properties: {
        sessionExpiryInterval: options.sessionExpirySeconds,
        receiveMaximum: options.receiveMaximum,
        // Ask the broker for each message's seq, on deliveries and on PUBACKs.
        userProperties: { 'eddy-seq': 'true' },
      },
    };
    if (options.username !== undefined) mqttOptions.username = options.username;
    // A CONNECT with a password must carry a user name (MQTT 3.1.1, and mqtt.js for 5 too): a JWT comes with an empty one.
    else if (options.password !== undefined) mqttOptions.username = '';
    Object.assign(mqttOptions, options.tls);
    // Connected by connectNow, once the password is known.
    this.client = mqtt.connect(options.url, { ...mqttOptions, manualConnect: true });
    this.client.on('connect', (connack) => {
      this.attempts = 0;
      this.generation++;
      this.scheduleRefresh();
      for (const listener of this.connectListeners) listener(connack);
    });
    this.client.on('close', () => {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = undefined;
      this.scheduleReconnect();
    });
    this.client.on('packetreceive', (packet) => {
      if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && packet.messageId !== undefined) {
        const seq = packet.properties?.userProperties?.['eddy-seq'];
        if (seq !== undefined) this.ackSeqs.set(packet.messageId, Number(Array.isArray(seq) ? seq[0] : seq));
      }
    });
    // Errors surface through the promises of the calls that they affect; keep them from crashing the process.
    this.client.on('error', () => {});
  }

  /** Connects, retrying with backoff until `connectTimeoutMs`; a refusal by the broker fails at once. */
  static async open(options: ConnectionOptions): Promise<ManagedConnection> {
    const connection = ManagedConnection.create(options);
    await connection.ready;
    return connection;
  }

  /**
   * Starts connecting and returns at once, so listeners can be attached before the first packet:
   * a persistent session's queued messages follow the CONNACK immediately. `ready` settles like `open`.
   */
  static create(options: ConnectionOptions): ManagedConnection {
    const connection = new ManagedConnection(options);
    connection.ready = new Promise((resolve, reject) => {
      let lastError: Error | undefined;
      const fail = (err: Error): void => {
        clearTimeout(deadline);
        connection.client.off('error', onError);
        connection.attemptFailed = undefined;
        connection.end(true).finally(() => reject(err));
      };
      const deadline = setTimeout(() => fail(new ConnectError(`cannot connect to ${options.url} within ${options.connectTimeoutMs} ms: ${lastError?.message ?? 'no answer'}`)), options.connectTimeoutMs);
      const onError = (err: Error & { code?: number | string }): void => {
        lastError = err;
        // A CONNACK refusal (bad credentials, not authorized...) will not get better by retrying.
        if (typeof err.code === 'number' && err.code >= 0x80) fail(new ConnectError(`${options.url} refused the connection: ${err.message}`, err.code, { cause: err }));
        // Nor will a certificate that does not verify, or one the broker refuses.
        else if (typeof err.code === 'string' && PERMANENT_TLS_ERRORS.has(err.code)) fail(new ConnectError(`cannot connect to ${options.url}: TLS: ${err.message.split('\n')[0]} (${err.code})`, undefined, { cause: err }));
      };
      connection.client.on('error', onError);
      connection.attemptFailed = onError;
      connection.client.once('connect', () => {
        clearTimeout(deadline);
        connection.client.off('error', onError);
        connection.attemptFailed = undefined;
        resolve();
      });
    });
    // Callers that only attach listeners handle the failure where they await `ready`.
    connection.ready.catch(() => {});
    void connection.connectNow();
    return connection;
  }

  /** Settles when the first connection is up (or has failed for good). */
  ready!: Promise<void>;

  /** The seq the broker acknowledged the publish with this packet id with (read once). */
  takeAckSeq(packetId: number | undefined): number | undefined {
    if (packetId === undefined) return undefined;
    const seq = this.ackSeqs.get(packetId);
    this.ackSeqs.delete(packetId);
    return seq;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  onConnect(listener: (connack: IConnackPacket) => void): void {
    this.connectListeners.push(listener);
  }

  /** Disconnects; `force` drops unacknowledged publishes instead of waiting for them. */
  async end(force = false): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    // Never connected (the password never came): mqtt.js has no stream to end, and would throw.
    if (!this.client.stream) return;
    await this.client.endAsync(force);
  }

  /** Obtains the password, then sends CONNECT (the first time) or reconnects. */
  private async connectNow(): Promise<void> {
    let password: string | undefined;
    try {
      password = await resolvePassword(this.options.password);
    } catch (err) {
      if (this.closing) return;
      // Counted as a failed attempt: retried with backoff, and named when `connect` gives up.
      this.client.emit('error', new ConnectError(`the password function failed: ${(err as Error).message ?? String(err)}`, undefined, { cause: err }));
      this.scheduleReconnect();
      return;
    }
    if (this.closing) return;
    this.password = password;
    // mqtt.js reads options.password for every CONNECT it sends.
    this.client.options.password = password;
    if (!this.started) {
      this.started = true;
      this.client.connect();
    } else if (!this.client.connected) {
      // Passing the stores keeps unacknowledged publishes: reconnect() without them starts empty ones.
      this.client.reconnect({ incomingStore: this.client.incomingStore, outgoingStore: this.client.outgoingStore });
    }
    // connect() and reconnect() make the new stream before they return.
    this.client.stream?.on('error', (err: Error & { code?: string }) => this.attemptFailed?.(err));
  }

  private scheduleReconnect(delay?: number): void {
    if (this.closing || this.timer) return;
    const { initialDelayMs = 100, maxDelayMs = 10_000 } = this.options.reconnect;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** this.attempts++);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closing && !this.client.connected) void this.connectNow();
    }, delay ?? Math.random() * ceiling);
    this.timer.unref();
  }

  /** Once connected: a reconnect with a fresh password shortly before this one expires. */
  private scheduleRefresh(): void {
    const replaced = this.replacing;
    this.replacing = undefined;
    // A password function that gave the same token again cannot give a fresher one now either.
    if (this.password === undefined || this.password === replaced) return;
    const expiresAt = expiryOf(this.password, this.options.tokenExpiresAt);
    if (expiresAt === undefined) return;
    const delay = refreshDelay(expiresAt, Date.now());
    if (delay === undefined) return;
    // setTimeout takes at most 2^31-1 ms (24.8 days); a longer-lived token is looked at again then.
    const capped = Math.min(delay, 2 ** 31 - 1);
    this.refreshTimer = setTimeout(() => (capped < delay ? this.scheduleRefresh() : this.refresh()), capped);
    this.refreshTimer.unref();
  }

  /**
   * Ends the connection with a normal DISCONNECT (no will, a durable session stays) and reconnects
   * at once with a fresh password. Unacknowledged publishes are resent on the new connection.
   */
  private refresh(): void {
    this.refreshTimer = undefined;
    const stream = this.client.stream;
    if (this.closing || !this.client.connected || !stream) return;
    this.replacing = this.password;
    this.client.once('close', () => {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.scheduleReconnect(0);
    });
    stream.write(NORMAL_DISCONNECT);
    stream.end();
  }
}
