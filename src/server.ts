import type net from 'node:net';
import { Broker } from './core/broker.js';
import { DEFAULT_LIMITS, type AccessRules, type BrokerLimits } from './core/limits.js';
import type { ChannelPolicy } from './core/channels.js';
import type { RedeliveryOptions } from './core/redelivery.js';
import { HttpListener } from './http/server.js';
import type { HttpSecurityOptions } from './http/origin-policy.js';
import { checkHttpLimits } from './http/http-limits.js';
import { checkDescriptorBudget } from './http/descriptor-budget.js';
import { readFileSync } from 'node:fs';
import { formatHost } from './util/host.js';
import { buildLiveDocument } from './asyncapi/live-document.js';
import { TrafficRecorder } from './asyncapi/observed.js';

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
import { BrokerMetrics } from './http/metrics.js';
import { MemoryStorage } from './storage/memory.js';
import type { Storage } from './core/storage.js';
import { TcpListener } from './transport/tcp.js';
import { MqttIntake } from './protocol/mqtt/intake.js';
import { WebSocketListener } from './transport/websocket.js';
import { TlsListener } from './transport/tls.js';
import { TlsCredentials, type TlsSettings } from './transport/tls-credentials.js';
import { listenTls, reloadTls, type TlsReloadResult, type TlsState } from './transport/tls-state.js';
import { silentLogger, type Logger } from './util/logger.js';
import { Admission, type AdmissionConfig } from './core/admission/index.js';
import { isLoopback } from './util/host.js';
import { ConfigError } from './util/errors.js';
import { ReplaceableValidator } from './core/replaceable-validator.js';
import type { ChannelRegistry, LoadedDocument } from './asyncapi/index.js';
import { AdminModel } from './core/admin/model.js';
import { ChannelStats, observeBoth } from './core/admin/channel-stats.js';
import type { DeclaredChannels } from './core/admin/channels.js';
import { SHUTTING_DOWN, USE_ANOTHER_SERVER, addFarewells, type Farewell, type FarewellCount } from './transport/farewell.js';

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
  /** MQTT over TLS beside TCP, and HTTPS/WSS (`tls.http`, `tls.httpPort`); the files are re-read by `reload()`. */
  tls?: TlsSettings;
  logger?: Logger;
  /** Authentication and authorization: password file, ACL, JWT, client certificates, quotas. */
  auth?: AdmissionConfig;
  /** The HTTP port against other sites' pages: allowed origins (/mqtt, state-changing routes), credentials for /metrics and /healthz. */
  http?: HttpSecurityOptions;
  /** `$SYS/…` topics: seconds between rounds (default 10; 0 turns them off). */
  sys?: { interval?: number };
  /** The built web console served at `/` (default dist/console, written by `npm run build`). */
  consoleDir?: string;
}

/** What `reload()` can change on a running server; a field left out stays as it is. */
export interface ReloadOptions {
  /** The AsyncAPI documents to enforce from now on (all of them; an empty list: none). */
  asyncapi?: string[];
  /** The channel policies (maxDeliveries, retention) from now on. */
  channels?: ChannelPolicy[];
}

/** What a reload put in force. */
export interface ReloadResult {
  documents: string[];
  /** Channels the documents declare. */
  channels: number;
  /** Messages whose schema format Eddy cannot check (accepted unchecked). */
  unchecked: string[];
  /** The patterns of the channel policies in force, in order (the `$DLQ/#` default included). */
  policies: string[];
  /** The security files reloaded (password file, ACL, JWT keys). */
  auth: string[];
  /** With TLS on: the certificate now in force, or why the files did not load (the old ones stay). */
  tls?: TlsReloadResult;
}

/** The parts of a running server that a reload replaces. */
interface ReloadableState {
  validator: ReplaceableValidator;
  documents: LoadedDocument[];
  /** The documents' channels as the admin API shows them. */
  declared: DeclaredChannels | undefined;
  strict: boolean;
}

export interface Endpoint {
  host: string;
  port: number;
}

/** How `stop()` takes leave of the connected clients. */
export interface StopOptions {
  /** What MQTT 5 clients are told in their DISCONNECT (default 0x8B server shutting down; a draining cluster node: 0x9C with a Server Reference). */
  farewell?: Farewell;
}

/** What `stop()` did to the clients: MQTT connections closed, MQTT 5 ones told why, and of those, redirected (0x9C). */
export interface StopResult extends FarewellCount {
  redirected: number;
}

/** Counters of the server's stops (/metrics `eddy_drain_redirected_total`). */
export interface DrainStats {
  redirected: number;
}

/** The `error` of an HTTP 422 for each kind of AsyncAPI refusal (a content type is a 415). */
/** A running broker with its listeners: what `eddy broker` starts, and what tests embed. */
export class EddyServer {
  private constructor(
    readonly broker: Broker,
    /** The admin read and write model (what /v1/admin/… serves). */
    readonly admin: AdminModel,
    readonly mqtt: Endpoint,
    readonly http: Endpoint,
    private readonly tcp: TcpListener,
    private readonly websocket: WebSocketListener,
    private readonly httpListener: HttpListener,
    private readonly state: ReloadableState,
    private readonly tls: TlsState | undefined,
    private readonly log: Logger,
    /** The Prometheus metrics (/metrics), also readable after `stop()`. */
    readonly metrics: BrokerMetrics,
    private readonly drainStats: DrainStats,
  ) {}

  static async start(options: EddyServerOptions = {}): Promise<EddyServer> {
    const host = options.host ?? '127.0.0.1';
    const logger = options.logger ?? silentLogger;
    // Before storage opens: HTTP limits that cannot work together are a configuration error.
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    checkHttpLimits(limits);
    checkDescriptorBudget(limits, logger);
    // Before storage opens too: a TLS file that does not load (or a key that is not the certificate's) stops start-up.
    const credentials = options.tls ? new TlsCredentials(options.tls) : undefined;
    const storage: Storage = options.storage ?? new MemoryStorage();
    const metrics = new BrokerMetrics();
    storage.observeFsync?.(metrics.fsyncObserved);
    // Before anything listens: a document with errors stops start-up with its diagnostics.
    const loaded = await loadDocuments(options.asyncapi ?? []);
    const registry = loaded?.registry;
    const state: ReloadableState = { validator: new ReplaceableValidator(registry), documents: loaded?.documents ?? [], declared: loaded?.declared, strict: options.strict ?? false };
    const traffic = new TrafficRecorder();
    if (registry) {
      logger.info({ documents: options.asyncapi, channels: registry.channels.length, strict: options.strict ?? false }, 'AsyncAPI channels loaded');
      if (registry.unchecked.length > 0) logger.warn({ messages: registry.unchecked }, 'messages with a schema format Eddy cannot check are accepted unchecked');
    }
    // Security files are read before anything listens: a bad password file or ACL stops start-up.
    // A CA for client certificates makes a verified certificate an identity (its CN, or the configured SAN).
    const certificates = options.tls?.ca ? { certificates: { user: options.auth?.certificateUser ?? 'cn', required: options.tls.requireClientCert ?? false } } : {};
    const admission = new Admission({ ...options.auth, ...certificates, access: options.access }, logger);
    if (!admission.authenticationConfigured && !isLoopback(host)) {
      logger.warn({ host }, 'no authentication is configured and the broker listens beyond loopback: every client that can reach it has every right (see README "Securing a broker")');
    }
    for (const warning of registry?.securityWarnings(admission.appliedSecurity()) ?? []) logger.warn(warning);
    const channelStats = new ChannelStats();
    const broker = new Broker(storage, {
      admission,
      validator: state.validator,
      strict: options.strict,
      limits: options.limits,
      access: options.access,
      channels: options.channels,
      redelivery: options.redelivery,
      logger,
      observer: observeBoth(metrics, channelStats),
      traffic,
    });
    const admin = new AdminModel(broker, {
      channels: channelStats,
      declared: () => state.declared,
      inferred: (topic) => {
        const observed = traffic.channels.get(topic);
        return observed && { contentType: observed.contentType, schema: observed.schema };
      },
      latency: () => metrics.latencyHistograms(),
      version: PACKAGE_VERSION,
      sysInterval: options.sys?.interval,
    });
    metrics.collectFrom(broker, admin);
    const drainStats: DrainStats = { redirected: 0 };
    metrics.collectDrainFrom(drainStats);
    await broker.start();
    const intake = new MqttIntake(broker.limits, broker.stats, logger);
    const tcp = new TcpListener(broker, logger, intake);
    const websocket = new WebSocketListener(broker, logger, intake);
    const tlsListener = credentials ? new TlsListener(broker, logger, intake, credentials) : undefined;
    const httpListener = new HttpListener(broker, websocket, {
      ...options.http,
      logger,
      metrics,
      admin,
      ...(options.consoleDir !== undefined ? { consoleDir: options.consoleDir } : {}),
      liveDocument: () =>
        buildLiveDocument({
          version: PACKAGE_VERSION,
          mqtt: { host, port: mqttAddress.port },
          http: { host, port: httpAddress.port },
          ...(tls ? { mqtts: tls.mqtts, httpIsHttps: tls.httpIsHttps, ...(tls.https ? { https: tls.https } : {}) } : {}),
          documents: state.documents,
          traffic,
          security: admission.appliedSecurity(),
        }),
      tls: options.tls?.http ? credentials : undefined,
    });
    let mqttAddress: net.AddressInfo;
    let httpAddress: net.AddressInfo;
    let tls: TlsState | undefined;
    try {
      mqttAddress = await tcp.listen(host, options.port ?? 1883);
      httpAddress = await httpListener.listen(host, options.httpPort ?? 8080);
      if (credentials && tlsListener) tls = await listenTls(host, credentials, tlsListener, httpListener, logger);
    } catch (err) {
      await tcp.close().catch(() => {});
      await tlsListener?.close().catch(() => {});
      await httpListener.close().catch(() => {});
      await broker.stop();
      throw err;
    }
    admin.start();
    // A shared engine (JetStream) lists this node in its registry with what it serves.
    storage.describeNode?.(() => ({
      mqtt: `${formatHost(host)}:${mqttAddress.port}`,
      http: `${formatHost(host)}:${httpAddress.port}`,
      clients: broker.stats.connections,
      version: PACKAGE_VERSION,
    }));
    return new EddyServer(
      broker,
      admin,
      { host, port: mqttAddress.port },
      { host, port: httpAddress.port },
      tcp,
      websocket,
      httpListener,
      state,
      tls,
      logger,
      metrics,
      drainStats,
    );
  }

  /**
   * Puts new AsyncAPI documents and channel policies in force without dropping a client (what SIGHUP
   * does). The documents are loaded first: one that does not load throws (an AsyncApiError with its
   * diagnostics) and nothing changes. Publishes checked after the returned promise settles see the
   * new documents; the live document (/asyncapi.json, /docs) shows them too.
   */
  async reload(next: ReloadOptions): Promise<ReloadResult> {
    // On its own: a TLS file that does not load keeps the old certificate, and the documents still reload.
    const tls = this.tls && reloadTls(this.tls, this.log);
    const files = next.asyncapi ?? this.state.documents.map((d) => d.file);
    if (this.state.strict && files.length === 0) throw new ConfigError('strict mode needs at least one AsyncAPI document');
    const loaded = await loadDocuments(files);
    // The password file, the ACL and the JWT keys: a bad one throws here and keeps everything as it was.
    const auth = this.broker.admission.reload();
    // Nothing below can fail: documents, policies and rights change together, between two packets.
    this.broker.refreshIdentities();
    this.state.validator.replace(loaded?.registry);
    this.state.documents = loaded?.documents ?? [];
    this.state.declared = loaded?.declared;
    if (next.channels) this.broker.channels.replace(next.channels);
    return {
      documents: files,
      channels: loaded?.registry.channels.length ?? 0,
      unchecked: loaded?.registry.unchecked ?? [],
      policies: this.broker.channels.policies.map((p) => p.pattern),
      auth,
      ...(tls ? { tls } : {}),
    };
  }

  /** MQTT over TLS, when TLS is on. */
  get mqtts(): Endpoint | undefined {
    return this.tls?.mqtts;
  }

  /** The second, HTTPS listener (`tls.httpPort`), when there is one. */
  get https(): Endpoint | undefined {
    return this.tls?.https;
  }

  get mqttsUrl(): string | undefined {
    return this.tls && `mqtts://${formatHost(this.tls.mqtts.host)}:${this.tls.mqtts.port}`;
  }

  /** Where HTTPS is served: the HTTP port with `tls.http`, else the `tls.httpPort` listener. */
  get httpsUrl(): string | undefined {
    const endpoint = this.tls?.httpIsHttps ? this.http : this.tls?.https;
    return endpoint && `https://${formatHost(endpoint.host)}:${endpoint.port}`;
  }

  /** MQTT over WebSocket over TLS, where HTTPS is served. */
  get wssUrl(): string | undefined {
    return this.httpsUrl && `${this.httpsUrl.replace(/^https/, 'wss')}/mqtt`;
  }

  get mqttUrl(): string {
    return `mqtt://${formatHost(this.mqtt.host)}:${this.mqtt.port}`;
  }

  get wsUrl(): string {
    return `${this.tls?.httpIsHttps ? 'wss' : 'ws'}://${formatHost(this.http.host)}:${this.http.port}/mqtt`;
  }

  get httpUrl(): string {
    return `${this.tls?.httpIsHttps ? 'https' : 'http'}://${formatHost(this.http.host)}:${this.http.port}`;
  }

  /**
   * Stops listening, takes leave of the clients (MQTT 5: a DISCONNECT with `options.farewell`, by
   * default 0x8B server shutting down; MQTT 3.1.1: the socket closed; SSE streams closed), then
   * stops the broker and closes storage (persistent sessions stay there, for this node's restart or,
   * on a cluster, for another node).
   */
  async stop(options: StopOptions = {}): Promise<StopResult> {
    const farewell = options.farewell ?? SHUTTING_DOWN;
    this.admin.stop();
    // Each listener stops accepting before it closes its connections; the WebSocket ones close first,
    // in the same turn as the HTTP listener stops accepting upgrades.
    const websocket = this.websocket.close(farewell);
    const [tcp, , tls] = await Promise.all([this.tcp.close(farewell), this.httpListener.close(), this.tls?.listener.close(farewell)]);
    const count = [websocket, tcp, tls].reduce<FarewellCount>((sum, c) => (c ? addFarewells(sum, c) : sum), { closed: 0, told: 0 });
    const redirected = farewell.reasonCode === USE_ANOTHER_SERVER ? count.told : 0;
    this.drainStats.redirected += redirected;
    await this.broker.stop();
    this.metrics.stop();
    return { ...count, redirected };
  }
}

/**
 * Loads the documents into one channel registry, or undefined for none. The AsyncAPI parser takes a
 * quarter of a second to load: only a broker with documents pays for it.
 */
async function loadDocuments(files: string[]): Promise<{ registry: ChannelRegistry; documents: LoadedDocument[]; declared: DeclaredChannels | undefined } | undefined> {
  if (files.length === 0) return undefined;
  const asyncapi = await import('./asyncapi/index.js');
  const loaded = await asyncapi.loadRegistry(files);
  return { ...loaded, declared: asyncapi.declaredChannelsOf(loaded.registry) };
}

export { formatHost } from './util/host.js';
