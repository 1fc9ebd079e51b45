import { randomBytes, randomUUID } from 'node:crypto';
import type { IClientPublishOptions, IPublishPacket } from 'mqtt';
import { decodePayload, encodePayload, firstHeader, type Headers } from './codec.js';
import { ManagedConnection, type ConnectionOptions, type ReconnectOptions, type TlsOptions } from './connection.js';
import { splitUrlCredentials, type PasswordSource, type TokenExpiry } from './credentials.js';
import { ClientConfigError, ClosedError, OfflineQueueFullError, PublishError, RemoteError, RequestTimeoutError } from './errors.js';
import { Subscription, type Delivery, type Handler } from './subscription.js';

export interface ConnectOptions extends TlsOptions {
  /** Client identifier; required for durable subscriptions (their sessions are named after it). Default: random. */
  clientId?: string;
  /** User name; also taken from the URL (`mqtt://user:pass@host`, percent-decoded). This option wins. */
  username?: string;
  /**
   * Password or JWT, or a function returning one (or a Promise of one), called before every connect
   * and reconnect of every connection of this client: how a JWT is refreshed. When the password
   * expires (`tokenExpiresAt`, or the `exp` of a JWT), the connection reconnects with a fresh one
   * shortly before (a tenth of its remaining life, 1 to 60 s).
   */
  password?: PasswordSource;
  /** When the password expires, if it is not a JWT with `exp`: a Date, epoch ms, or a function of the password. */
  tokenExpiresAt?: TokenExpiry;
  reconnect?: ReconnectOptions;
  /** Publishes allowed to wait while disconnected; the next one fails with OfflineQueueFullError. Default 1000. */
  offlineQueueSize?: number;
  /** How long `connect` keeps trying before it fails. Default 10 s. */
  connectTimeoutMs?: number;
}

export interface PublishOptions {
  /** User properties. */
  headers?: Headers;
  /** Default 1: confirmed once the broker has stored the message. */
  qos?: 0 | 1 | 2;
  retain?: boolean;
  /** Default: `application/json` for objects; none for strings and Buffers. */
  contentType?: string;
  /** MQTT 5 correlation data, as a string. */
  correlationId?: string;
  /** Seconds until the message expires (MQTT 5 message expiry). */
  expiry?: number;
  /** MQTT 5 response topic: where a responder sends its reply. */
  responseTopic?: string;
}

/** What a confirmed publish resolves with. */
export interface PublishResult {
  /** The message id carried as user property `eddy-id`. */
  id: string;
  /** The broker's sequence number for the message (QoS 1/2 on Eddy); undefined when it has none. */
  seq: number | undefined;
}

export interface SubscribeOptions {
  /** Join consumer group NAME: each message goes to one member of the group. */
  group?: string;
  /** Replay stored history first: `earliest`, `seq:N` or `time:RFC3339` (channels with retention). */
  from?: string;
  /** Handlers running at once; the connection's Receive Maximum. Default 1 (in order). */
  concurrency?: number;
  /** Keep the subscription's session, and the messages for it, while this client is away. Needs `clientId`. */
  durable?: boolean;
  /** For a durable subscription: seconds the broker keeps its session after a disconnect. Default 7 days. */
  sessionExpiry?: number;
  /** Default 1; 0 for fire-and-forget (no acknowledgement, no retry). */
  qos?: 0 | 1;
}

export interface RequestOptions extends Omit<PublishOptions, 'responseTopic' | 'correlationId'> {
  /** Milliseconds to wait for the reply. Default 5000. */
  timeout?: number;
}

interface PendingRequest {
  channel: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A connection to an Eddy broker (or any MQTT 5 broker). Publishing and request/reply share one
 * MQTT connection; each subscription has its own, so its concurrency is its Receive Maximum and
 * a slow handler never delays anything else.
 */
export class EddyClient {
  private readonly subscriptions = new Set<{ close(): Promise<void> }>();
  private readonly requests = new Map<string, PendingRequest>();
  private inbox: Promise<string> | undefined;
  private offline = 0;
  private closed = false;
  private subscriptionCount = 0;
  /** Replies that came after their request had timed out. */
  lateReplies = 0;

  private constructor(
    private readonly url: string,
    private readonly options: ConnectOptions,
    readonly clientId: string,
    private readonly main: ManagedConnection,
  ) {}

  static async connect(rawUrl: string, rawOptions: ConnectOptions = {}): Promise<EddyClient> {
    // Credentials in the URL, under the options; every connection of the client uses the bare URL.
    const { url, username, password } = splitUrlCredentials(rawUrl);
    const options: ConnectOptions = { ...rawOptions, username: rawOptions.username ?? username, password: rawOptions.password ?? password };
    const clientId = options.clientId ?? `eddy-${randomUUID().slice(0, 8)}`;
    const main = await ManagedConnection.open({
      url,
      clientId,
      ...credentialsOf(options),
      sessionExpirySeconds: 0,
      receiveMaximum: 100,
      reconnect: options.reconnect ?? {},
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    });
    return new EddyClient(url, options, clientId, main);
  }

  get connected(): boolean {
    return this.main.connected;
  }

  /** Publishes and resolves once the broker confirms (QoS 1/2), or rejects with a PublishError carrying its reason. */
  publish(channel: string, payload: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.closed) return Promise.reject(new ClosedError());
    const limit = this.options.offlineQueueSize ?? 1000;
    const whileOffline = !this.main.connected;
    if (whileOffline && this.offline >= limit) return Promise.reject(new OfflineQueueFullError(limit));
    const id = randomUUID();
    const { bytes, contentType } = encodePayload(payload, options.contentType);
    const publishOptions: IClientPublishOptions = {
      qos: options.qos ?? 1,
      retain: options.retain ?? false,
      properties: {
        userProperties: { ...options.headers, 'eddy-id': id },
        ...(contentType ? { contentType } : {}),
        ...(options.correlationId !== undefined ? { correlationData: Buffer.from(options.correlationId) } : {}),
        ...(options.expiry !== undefined ? { messageExpiryInterval: options.expiry } : {}),
        ...(options.responseTopic !== undefined ? { responseTopic: options.responseTopic } : {}),
      },
    };
    if (whileOffline) this.offline++;
    return new Promise<PublishResult>((resolve, reject) => {
      this.main.client.publish(channel, bytes, publishOptions, (err, packet) => {
        if (whileOffline) this.offline--;
        const seq = this.main.takeAckSeq((packet as { messageId?: number } | undefined)?.messageId);
        const ack = packet as { reasonCode?: number; properties?: { reasonString?: string } } | undefined;
        const code = (err as { code?: unknown } | undefined)?.code;
        if (err) return reject(typeof code === 'number' ? new PublishError(channel, code, ack?.properties?.reasonString) : err);
        resolve({ id, seq });
      });
    });
  }

  /**
   * Subscribes `handler` to `filter`. Returning acknowledges a message; throwing refuses it, and the
   * broker redelivers it with backoff, then dead-letters it. Without a handler, iterate the result:
   * `for await (const m of client.subscribe('x/#')) …` (asking for the next message acknowledges).
   */
  subscribe<T = unknown>(filter: string, handler?: Handler<T>, options: SubscribeOptions = {}): Promise<Subscription<T>> {
    return this.openSubscription(filter, handler, options);
  }

  /** Answers commands on `channel`: the handler's return value is the reply; a throw replies with the error. */
  respond<T = unknown>(channel: string, handler: (payload: T, delivery: Delivery<T>) => unknown, options: SubscribeOptions = {}): Promise<Subscription<T>> {
    return this.openSubscription<T>(
      channel,
      async (delivery) => {
        if (!delivery.reply) return handler(delivery.payload, delivery);
        let result: unknown;
        try {
          result = await handler(delivery.payload, delivery);
        } catch (err) {
          await delivery.reply('', { headers: { 'eddy-error': err instanceof Error ? err.message : String(err) } });
          return;
        }
        await delivery.reply(result ?? null);
      },
      options,
    );
  }

  /** Sends a command and resolves with the reply's payload; RequestTimeoutError after `timeout` ms. */
  async request<R = unknown>(channel: string, payload: unknown, options: RequestOptions = {}): Promise<R> {
    const inbox = await this.replyInbox();
    const correlationId = randomBytes(12).toString('hex');
    const timeoutMs = options.timeout ?? 5000;
    const reply = new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(correlationId);
        reject(new RequestTimeoutError(channel, timeoutMs));
      }, timeoutMs);
      this.requests.set(correlationId, { channel, resolve: resolve as (v: unknown) => void, reject, timer });
    });
    const { timeout: _timeout, ...publishOptions } = options;
    try {
      await this.publish(channel, payload, { ...publishOptions, responseTopic: inbox, correlationId });
    } catch (err) {
      const pending = this.requests.get(correlationId);
      if (pending) clearTimeout(pending.timer);
      this.requests.delete(correlationId);
      throw err;
    }
    return reply;
  }

  /** Waits for running handlers, then disconnects every connection. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    for (const [, pending] of this.requests) {
      clearTimeout(pending.timer);
      pending.reject(new ClosedError());
    }
    this.requests.clear();
    await this.main.end();
  }

  private async openSubscription<T>(filter: string, handler: Handler<T> | undefined, options: SubscribeOptions): Promise<Subscription<T>> {
    if (this.closed) throw new ClosedError();
    if (options.durable && this.options.clientId === undefined) throw new ClientConfigError('a durable subscription needs connect(url, { clientId }) so its session can be found again');
    if (options.group && options.from) throw new ClientConfigError('from (replay) applies to plain subscriptions, not to a consumer group');
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 65535) throw new ClientConfigError(`concurrency must be a whole number 1..65535, got ${concurrency}`);
    const target = options.group ? `$share/${options.group}/${filter}` : filter;
    // A durable subscription's session is named after the client, the group and the filter, so it is found again.
    const clientId = options.durable ? `${this.clientId}/${options.group ?? ''}/${filter}` : `${this.clientId}.s${++this.subscriptionCount}.${randomUUID().slice(0, 6)}`;
    const connection = ManagedConnection.create({
      url: this.url,
      clientId,
      ...credentialsOf(this.options),
      sessionExpirySeconds: options.durable ? (options.sessionExpiry ?? 7 * 24 * 3600) : 0,
      receiveMaximum: concurrency,
      reconnect: this.options.reconnect ?? {},
      connectTimeoutMs: this.options.connectTimeoutMs ?? 10_000,
    });
    const subscription = new Subscription<T>(connection, { filter: target, qos: options.qos ?? 1, from: options.from, concurrency, replier: (p) => this.replier(p) }, handler);
    try {
      await subscription.start();
    } catch (err) {
      await connection.end(true);
      throw err;
    }
    this.subscriptions.add(subscription);
    return subscription;
  }

  private replier(packet: IPublishPacket): Delivery['reply'] {
    const responseTopic = packet.properties?.responseTopic;
    if (!responseTopic) return undefined;
    const correlation = packet.properties?.correlationData;
    return async (payload, options = {}) => {
      await this.publish(responseTopic, payload, {
        ...options,
        ...(correlation ? { correlationId: Buffer.from(correlation).toString() } : {}),
      });
    };
  }

  /** The topic replies to this client's requests come back on; subscribed once, on first use. */
  private replyInbox(): Promise<string> {
    this.inbox ??= (async () => {
      const topic = `_inbox/${this.clientId}/${randomUUID().slice(0, 8)}`;
      this.main.client.on('message', (t, payload, packet) => {
        if (t === topic) this.settleReply(payload, packet);
      });
      const subscribe = (): Promise<unknown> => this.main.client.subscribeAsync(topic, { qos: 1 });
      this.main.onConnect((connack) => {
        if (!connack.sessionPresent) void subscribe().catch(() => {});
      });
      await subscribe();
      return topic;
    })();
    return this.inbox;
  }

  private settleReply(payload: Buffer, packet: IPublishPacket): void {
    const correlation = packet.properties?.correlationData;
    const pending = correlation ? this.requests.get(Buffer.from(correlation).toString()) : undefined;
    if (!pending) {
      this.lateReplies++;
      return;
    }
    this.requests.delete(Buffer.from(correlation!).toString());
    clearTimeout(pending.timer);
    const error = firstHeader(packet.properties?.userProperties as Headers | undefined, 'eddy-error');
    if (error !== undefined) return pending.reject(new RemoteError(pending.channel, error));
    try {
      pending.resolve(decodePayload(payload, packet.properties?.contentType));
    } catch (err) {
      pending.reject(err as Error);
    }
  }
}

/** What every connection of a client carries: who it is and how TLS is verified. */
function credentialsOf(options: ConnectOptions): Pick<ConnectionOptions, 'username' | 'password' | 'tokenExpiresAt' | 'tls'> {
  const { ca, cert, key, rejectUnauthorized } = options;
  const tls = Object.fromEntries(Object.entries({ ca, cert, key, rejectUnauthorized }).filter(([, v]) => v !== undefined)) as TlsOptions;
  return { username: options.username, password: options.password, tokenExpiresAt: options.tokenExpiresAt, tls };
}

/**
 * Connects to the broker at `url` (mqtt://, mqtts://, ws:// or wss://; credentials may be in it:
 * `mqtts://user:pass@host:8883`) over MQTT 5.
 */
export function connect(url: string, options?: ConnectOptions): Promise<EddyClient> {
  return EddyClient.connect(url, options);
}
