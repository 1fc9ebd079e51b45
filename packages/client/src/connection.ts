import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { ConnectError } from './errors.js';

export interface ReconnectOptions {
  /** First wait after a lost connection; doubles per failed attempt. Default 100 ms. */
  initialDelayMs?: number;
  /** Longest wait between attempts. Default 10 s. */
  maxDelayMs?: number;
}

export interface ConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Keep the session (subscriptions, queued messages) this many seconds after a disconnect; 0 = clean. */
  sessionExpirySeconds: number;
  /** MQTT 5 Receive Maximum: QoS 1/2 messages the broker may send before they are acknowledged. */
  receiveMaximum: number;
  reconnect: ReconnectOptions;
  /** How long the first connect may keep retrying before it fails. */
  connectTimeoutMs: number;
}

/**
 * One MQTT 5 connection that reconnects by itself with exponential backoff and full jitter, so a
 * fleet of clients does not reconnect in lockstep after a broker restart. mqtt.js keeps unacknowledged
 * publishes across reconnects and resends them.
 */
export class ManagedConnection {
  readonly client: MqttClient;
  /** Counts connects: an acknowledgement owed on an older connection must not be sent on a newer one. */
  generation = 0;
  private attempts = 0;
  private closing = false;
  private timer: NodeJS.Timeout | undefined;
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
    if (options.password !== undefined) mqttOptions.password = options.password;
    this.client = mqtt.connect(options.url, mqttOptions);
    this.client.on('connect', (connack) => {
      this.attempts = 0;
      this.generation++;
      for (const listener of this.connectListeners) listener(connack);
    });
    this.client.on('close', () => this.scheduleReconnect());
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
        connection.end(true).finally(() => reject(err));
      };
      const deadline = setTimeout(() => fail(new ConnectError(`cannot connect to ${options.url} within ${options.connectTimeoutMs} ms: ${lastError?.message ?? 'no answer'}`)), options.connectTimeoutMs);
      const onError = (err: Error & { code?: number }): void => {
        lastError = err;
        // A CONNACK refusal (bad credentials, not authorized...) will not get better by retrying.
        if (typeof err.code === 'number' && err.code >= 0x80) fail(new ConnectError(`${options.url} refused the connection: ${err.message}`, err.code, { cause: err }));
      };
      connection.client.on('error', onError);
      connection.client.once('connect', () => {
        clearTimeout(deadline);
        connection.client.off('error', onError);
        resolve();
      });
    });
    // Callers that only attach listeners handle the failure where they await `ready`.
    connection.ready.catch(() => {});
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
    await this.client.endAsync(force);
  }

  private scheduleReconnect(): void {
    if (this.closing || this.timer) return;
    const { initialDelayMs = 100, maxDelayMs = 10_000 } = this.options.reconnect;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** this.attempts++);
    const delay = Math.random() * ceiling;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Passing the stores keeps unacknowledged publishes: reconnect() without them starts empty ones.
      if (!this.closing && !this.client.connected) this.client.reconnect({ incomingStore: this.client.incomingStore, outgoingStore: this.client.outgoingStore });
    }, delay);
    this.timer.unref();
  }
}
