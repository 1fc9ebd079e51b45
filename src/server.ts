import type net from 'node:net';
import { Broker } from './core/broker.js';
import type { AccessRules, BrokerLimits } from './core/limits.js';
import type { ChannelPolicy } from './core/channels.js';
import type { RedeliveryOptions } from './core/redelivery.js';
import { HttpListener } from './http/server.js';
import { readFileSync } from 'node:fs';
import { formatHost } from './util/host.js';
import { buildLiveDocument } from './asyncapi/live-document.js';
import { TrafficRecorder } from './asyncapi/observed.js';

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
import { BrokerMetrics } from './http/metrics.js';
import { MemoryStorage } from './storage/memory.js';
import type { Storage } from './storage/types.js';
import { TcpListener } from './transport/tcp.js';
import { WebSocketListener } from './transport/websocket.js';
import { silentLogger, type Logger } from './util/logger.js';

export interface EddyServerOptions {
  host?: string;
  /** MQTT over TCP; 0 picks a free port. */
  port?: number;
  /** HTTP (WebSocket /mqtt, /healthz, /metrics, the HTTP gateway /v1/…); 0 picks a free port. */
  httpPort?: number;
  storage?: Storage;
  limits?: Partial<BrokerLimits>;
  access?: Partial<AccessRules>;
  /** Per channel pattern: maximum deliveries before dead-lettering, and retention. */
  channels?: ChannelPolicy[];
  redelivery?: Partial<RedeliveryOptions>;
  /** AsyncAPI 3 documents (files, one per service): their channels are checked on every publish. */
  asyncapi?: string[];
  /** Refuse publishes and subscriptions on channels no document declares. */
  strict?: boolean;
  logger?: Logger;
}

export interface Endpoint {
  host: string;
  port: number;
}

/** The `error` of an HTTP 422 for each kind of AsyncAPI refusal (a content type is a 415). */
const HTTP_REFUSAL_ERRORS = { invalid: 'invalid_payload', undeclared: 'undeclared_channel', parameter: 'invalid_parameter' } as const;

/** A running broker with its listeners: what `eddy broker` starts, and what tests embed. */
export class EddyServer {
  private constructor(
    readonly broker: Broker,
    readonly mqtt: Endpoint,
    readonly http: Endpoint,
    private readonly tcp: TcpListener,
    private readonly websocket: WebSocketListener,
    private readonly httpListener: HttpListener,
  ) {}

  static async start(options: EddyServerOptions = {}): Promise<EddyServer> {
    const host = options.host ?? '127.0.0.1';
    const logger = options.logger ?? silentLogger;
    const storage: Storage = options.storage ?? new MemoryStorage();
    const metrics = new BrokerMetrics();
    storage.observeFsync?.(metrics.fsyncObserved);
    // Before anything listens: a document with errors stops start-up with its diagnostics.
    // The AsyncAPI parser takes a quarter of a second to load: only a broker with documents pays for it.
    const loaded = options.asyncapi && options.asyncapi.length > 0 ? await (await import('./asyncapi/index.js')).loadRegistry(options.asyncapi) : undefined;
    const registry = loaded?.registry;
    const traffic = new TrafficRecorder();
    if (registry) {
      logger.info({ documents: options.asyncapi, channels: registry.channels.length, strict: options.strict ?? false }, 'AsyncAPI channels loaded');
      if (registry.unchecked.length > 0) logger.warn({ messages: registry.unchecked }, 'messages with a schema format Eddy cannot check are accepted unchecked');
    }
    const broker = new Broker(storage, {
      validator: registry,
      strict: options.strict,
      limits: options.limits,
      access: options.access,
      channels: options.channels,
      redelivery: options.redelivery,
      logger,
      observer: metrics,
      traffic,
    });
    metrics.collectFrom(broker);
    await broker.start();
    const tcp = new TcpListener(broker, logger);
    const websocket = new WebSocketListener(broker, logger);
    const httpListener = new HttpListener(broker, websocket, {
      logger,
      metrics,
      validatePublish: (message) => {
        const refusal = broker.checkPublish(message);
        if (!refusal) return undefined;
        if (refusal.kind === 'content-type') return { status: 415, error: 'unsupported_content_type', message: refusal.reason };
        return { status: 422, error: HTTP_REFUSAL_ERRORS[refusal.kind], message: refusal.reason, errors: refusal.errors };
      },
      liveDocument: () =>
        buildLiveDocument({ version: PACKAGE_VERSION, mqtt: { host, port: mqttAddress.port }, http: { host, port: httpAddress.port }, documents: loaded?.documents ?? [], traffic }),
    });
    let mqttAddress: net.AddressInfo;
    let httpAddress: net.AddressInfo;
    try {
      mqttAddress = await tcp.listen(host, options.port ?? 1883);
      httpAddress = await httpListener.listen(host, options.httpPort ?? 8080);
    } catch (err) {
      await tcp.close().catch(() => {});
      await broker.stop();
      throw err;
    }
    return new EddyServer(
      broker,
      { host, port: mqttAddress.port },
      { host, port: httpAddress.port },
      tcp,
      websocket,
      httpListener,
    );
  }

  get mqttUrl(): string {
    return `mqtt://${formatHost(this.mqtt.host)}:${this.mqtt.port}`;
  }

  get wsUrl(): string {
    return `ws://${formatHost(this.http.host)}:${this.http.port}/mqtt`;
  }

  get httpUrl(): string {
    return `http://${formatHost(this.http.host)}:${this.http.port}`;
  }

  /** Stops listening, tells clients the server is shutting down, and closes storage. */
  async stop(): Promise<void> {
    this.websocket.close();
    await Promise.all([this.tcp.close(), this.httpListener.close()]);
    await this.broker.stop();
  }
}

export { formatHost } from './util/host.js';
