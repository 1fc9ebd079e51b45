import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Broker } from '../core/broker.js';
import type { WebSocketListener } from '../transport/websocket.js';
import { listen } from '../transport/listen.js';
import { listDeadLetters, redriveDeadLetters } from '../core/dead-letters.js';
import { isValidTopicFilter } from '../core/topics.js';
import type { Logger } from '../util/logger.js';
import type { BrokerMetrics } from './metrics.js';
import { HttpConnectionGuard, type HttpConnectionStats } from './connection-guard.js';
import type { TlsCredentials } from '../transport/tls-credentials.js';
import { httpServerOptions } from './http-limits.js';
import { PUBLISH_PATH, PublishRoute } from './publish-route.js';
import { HttpError, sendError, sendJson } from './respond.js';
import { identify, identifyAdmin, challengeFor } from './identity.js';
import { OriginPolicy, type HttpSecurityOptions } from './origin-policy.js';
import type { Message } from '../core/message.js';
import { SUBSCRIBE_PATH, SubscribeRoute } from './subscribe-route.js';
import { stringify as stringifyYaml } from 'yaml';
import { renderDocs } from '../asyncapi/html.js';
import type { AdminModel } from '../core/admin/model.js';
import { ADMIN_PATH, AdminRoutes } from './admin-routes.js';
import { ConsoleRoute } from './console-route.js';

/** Methods that change nothing: the cross-site checks leave them be (an SSE stream excepted). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface HttpListenerOptions extends HttpSecurityOptions {
  logger: Logger;
  metrics: BrokerMetrics;
  /** The admin read and write model: /v1/admin/… and /healthz are served from it. */
  admin: AdminModel;
  /** The running system as an AsyncAPI document, for /asyncapi.json, /asyncapi.yaml and /docs. */
  liveDocument?: () => Record<string, unknown>;
  /** Serve HTTPS (and WSS at /mqtt) on the main port (`tls.http`). */
  tls?: TlsCredentials;
  /** The built web console's directory (default dist/console, beside dist/src). */
  consoleDir?: string;
}

/**
 * The HTTP listener: MQTT over WebSocket at /mqtt, /healthz, /metrics, the HTTP gateway
 * (POST /v1/publish/<topic>, GET /v1/subscribe as Server-Sent Events), the dead-letter and admin
 * routes, and the web console at `/`.
 */
export class HttpListener {
  private readonly server: http.Server;
  /** Every server with these routes: the main one, and the HTTPS one of `listenHttps` beside it. */
  private readonly servers: http.Server[] = [];
  /** The accepted sockets of the HTTPS servers: Node's closeAllConnections knows only those past their handshake. */
  private readonly tlsSockets = new Set<net.Socket>();
  private readonly log: Logger;
  private readonly metrics: BrokerMetrics;
  private readonly publishRoute: PublishRoute;
  private readonly subscribeRoute: SubscribeRoute;
  private readonly admin: AdminModel;
  private readonly adminRoutes: AdminRoutes;
  /** The web console: its page at `/`, its assets at `/console/…`. */
  private readonly consoleRoute: ConsoleRoute;
  private readonly liveDocument: (() => Record<string, unknown>) | undefined;
  /** What the connection guards of all servers count: on /healthz (`http`) and /metrics. Each server has its own `maxHttpConnections`. */
  private readonly httpStats: HttpConnectionStats = { connections: 0, refusedConnections: 0, headersTimeouts: 0, requestTimeouts: 0, idleTimeouts: 0 };
  /** Origin checks at /mqtt and on the routes that change something (http.allowedOrigins). */
  private readonly origins: OriginPolicy;
  private readonly protectStatus: boolean;

  constructor(
    private readonly broker: Broker,
    private readonly websocket: WebSocketListener,
    options: HttpListenerOptions,
  ) {
    this.log = options.logger;
    this.metrics = options.metrics;
    this.publishRoute = new PublishRoute(broker, this.log);
    this.subscribeRoute = new SubscribeRoute(broker, this.log);
    this.liveDocument = options.liveDocument;
    this.origins = new OriginPolicy(options.allowedOrigins, this.log);
    this.protectStatus = options.protectStatus ?? false;
    if (this.protectStatus && !broker.admission.authenticationConfigured) {
      this.log.warn('http.protectStatus is on but no authentication is configured: every client counts as authenticated, /metrics and /healthz stay open');
    }
    this.metrics.collectHttpFrom(this.httpStats, this.origins.stats);
    this.admin = options.admin;
    this.adminRoutes = new AdminRoutes(broker, options.admin);
    this.consoleRoute = new ConsoleRoute(this.log, options.consoleDir);
    this.server = this.serve(options.tls);
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    return this.bind(this.server, host, port, 'HTTP');
  }

  /** Opens a second listener, HTTPS with these credentials, serving the same routes (`tls.httpPort`). */
  async listenHttps(host: string, port: number, credentials: TlsCredentials): Promise<net.AddressInfo> {
    return this.bind(this.serve(credentials), host, port, 'HTTPS');
  }

  close(): Promise<void> {
    return Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
            for (const socket of this.tlsSockets) socket.destroy();
          }),
      ),
    ).then(() => undefined);
  }

  private async bind(server: http.Server, host: string, port: number, what: string): Promise<net.AddressInfo> {
    const address = await listen(server, host, port, what);
    // Once bound, an error (EMFILE at accept when descriptors run out) is the listener's, not a client's: log it, keep listening.
    server.on('error', (err) => this.log.error({ err: err.message }, `${what} listener error`));
    return address;
  }

  /** An HTTP server (HTTPS with `credentials`) with the routes, the /mqtt upgrade and its own connection guard. */
  private serve(credentials: TlsCredentials | undefined): http.Server {
    const broker = this.broker;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      try {
        guard.track(req, res);
        this.route(req, res);
      } catch (err) {
        // A bug in a route costs that request a 500, never the process.
        broker.reportInternalError(`HTTP ${req.method} ${(req.url ?? '').slice(0, 200)}`, err);
        if (!res.headersSent) sendError(res, new HttpError(500, 'internal_error', 'internal error'));
        else res.destroy();
      }
    };
    const options = httpServerOptions(broker.limits);
    const server = credentials
      ? // The handshake is bounded like the request headers that follow it.
        https.createServer({ ...options, ...credentials.serverOptions(broker.limits.httpHeadersTimeout * 1000) }, handler)
      : http.createServer(options, handler);
    if (credentials) {
      credentials.attach(server as https.Server);
      server.on('connection', (socket: net.Socket) => {
        this.tlsSockets.add(socket);
        socket.once('close', () => this.tlsSockets.delete(socket));
      });
    }
    const guard = new HttpConnectionGuard(server, broker.limits, this.log, broker.reportInternalError, this.httpStats);
    server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '/').split('?')[0];
      const refuse = (status: string, body = ''): void => {
        // Node hands the socket over without its error handler: a reset must not become an uncaught error.
        socket.on('error', () => {});
        // Destroyed once the answer is out: an upgrade socket is no longer timed by Node, and one left half-open would stay.
        const type = body ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : '';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n${type}\r\n${body}`, () => socket.destroy());
      };
      if (path !== '/mqtt') return refuse('404 Not Found');
      // A page of another site must not reach MQTT with the visitor's network position (cross-site WebSocket hijacking).
      if (!this.origins.upgradeAllowed(req)) return refuse('403 Forbidden', JSON.stringify({ error: 'origin_refused', message: 'this Origin may not open MQTT over WebSocket (http.allowedOrigins)' }));
      guard.upgraded(socket);
      return this.websocket.handleUpgrade(req, socket, head);
    });
    this.servers.push(server);
    return server;
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    // The path as sent: URL parsing would resolve `.` and `..` levels, which are plain topic levels here.
    const target = req.url ?? '/';
    const queryStart = target.indexOf('?');
    const path = queryStart === -1 ? target : target.slice(0, queryStart);
    const query = new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1));
    // Every route that changes something (any method but GET/HEAD/OPTIONS, and an SSE stream, which
    // takes messages from consumer groups) refuses what a page of another site could send.
    if (!SAFE_METHODS.has(req.method ?? '') || path === SUBSCRIBE_PATH) {
      const crossSite = this.origins.crossSiteRefusal(req);
      // The body is not read: closing spares reading (or discarding) what nobody will use.
      if (crossSite) return sendError(res, new HttpError(403, 'cross_site', crossSite), { connection: 'close' });
    }
    if (path.startsWith(PUBLISH_PATH)) {
      if (req.method !== 'POST') return this.methodNotAllowed(res, 'POST', path);
      void this.publishRoute.handle(req, res, path.slice(PUBLISH_PATH.length), query);
      return;
    }
    if (path === SUBSCRIBE_PATH) {
      if (req.method !== 'GET') return this.methodNotAllowed(res, 'GET', path);
      return this.subscribeRoute.handle(req, res, query);
    }
    if ((path === '/asyncapi.json' || path === '/asyncapi.yaml' || path === '/docs') && req.method === 'GET' && this.liveDocument) {
      const doc = this.liveDocument();
      if (path === '/asyncapi.json') return sendJson(res, 200, doc);
      if (path === '/asyncapi.yaml') return void res.writeHead(200, { 'content-type': 'application/yaml; charset=utf-8' }).end(stringifyYaml(doc, { aliasDuplicateObjects: false }));
      return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(renderDocs(doc));
    }
    if (path === '/metrics' || path === '/healthz') {
      if (!this.protectStatus) return this.status(req, res, path);
      return this.authenticated(req, res, async () => this.status(req, res, path));
    }
    if (path.startsWith(ADMIN_PATH)) return this.adminRoutes.handle(req, res, path, query);
    if (this.consoleRoute.matches(path)) return this.consoleRoute.handle(req, res, path);
    if (path === '/v1/dlq' && req.method === 'GET') {
      const dlq = this.dlqQuery(query, res);
      if (!dlq) return;
      return this.asAdmin(req, res, async () => {
        const messages = await listDeadLetters(this.broker.deadLetters, dlq.limit, dlq.filter);
        sendJson(res, 200, { waiting: this.broker.deadLetters.queue.pendingCount, count: messages.length, messages });
      });
    }
    if (path === '/v1/dlq/redrive' && req.method === 'POST') {
      const dlq = this.dlqQuery(query, res);
      if (!dlq) return;
      return this.asAdmin(req, res, async () => {
        // Each letter goes back only where its original publisher may still publish.
        const mayRedrive = (m: Message): boolean => this.broker.admission.originalPublisherMay(m.originUser, m.origin ?? '', m.topic);
        const result = await redriveDeadLetters(this.broker.deadLetters, (m) => this.broker.publishConfirmed(m), { ...dlq, mayRedrive }).catch((err: Error) => err);
        if (result instanceof Error) return sendJson(res, 500, { error: 'redrive_failed', message: result.message });
        sendJson(res, result.failed > 0 ? 507 : 200, result);
      });
    }
    this.notFound(req, res, path);
  }

  private notFound(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method} ${path}` });
  }

  /** `GET /metrics`, and `GET`/`HEAD /healthz`. */
  private status(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    if (path === '/metrics' && req.method === 'GET') {
      this.metrics.scrape().then(
        (text) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
        (err: Error) => {
          this.log.error({ err: err.message }, 'metrics not collected');
          sendError(res, new HttpError(500, 'internal_error', `metrics not collected: ${err.message}`));
        },
      );
      return;
    }
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      const answer = (cluster?: unknown): void => sendJson(res, 200, { ...this.admin.health(), ...(cluster ? { cluster } : {}), http: { ...this.httpStats, ...this.origins.stats } });
      // In cluster mode, the cached cluster view: it never rejects and waits on NATS at most half a second.
      const cluster = this.admin.clusterHealth();
      if (!cluster) return answer();
      cluster.then(answer, (err: unknown) => answer({ error: err instanceof Error ? err.message : String(err) }));
      return;
    }
    this.notFound(req, res, path);
  }

  /**
   * Runs a route once the request carries credentials the broker accepts (any user; 401 otherwise),
   * for /metrics and /healthz with `http.protectStatus`.
   */
  private authenticated(req: http.IncomingMessage, res: http.ServerResponse, run: () => Promise<void>): void {
    this.whenIdentified(req, res, async () => {
      const identity = await identify(req, this.broker);
      // Let in without credentials (allowAnonymous) is not authenticated.
      if (identity.method === 'anonymous') throw new HttpError(401, 'unauthorized', 'credentials are required: HTTP Basic or a Bearer token (http.protectStatus)');
      await run();
    });
  }

  /** Runs an admin route once the request is authenticated with the admin role (401/403 otherwise). */
  private asAdmin(req: http.IncomingMessage, res: http.ServerResponse, run: () => Promise<void>): void {
    this.whenIdentified(req, res, async () => {
      await identifyAdmin(req, this.broker);
      await run();
    });
  }

  /** Runs `run`, answering its HttpError (401 with WWW-Authenticate) or any other failure (500). */
  private whenIdentified(req: http.IncomingMessage, res: http.ServerResponse, run: () => Promise<void>): void {
    run()
      .catch((err: unknown) => {
        if (err instanceof HttpError) return sendError(res, err, err.status === 401 ? { 'www-authenticate': challengeFor(req) } : {});
        this.broker.reportInternalError(`HTTP ${req.method} ${req.url ?? ''}`.slice(0, 200), err);
        if (!res.headersSent) sendError(res, new HttpError(500, 'internal_error', 'internal error'));
      });
  }

  private methodNotAllowed(res: http.ServerResponse, allowed: string, path: string): void {
    sendError(res, new HttpError(405, 'method_not_allowed', `${path} takes ${allowed} only`), { allow: allowed });
  }

  /** `?limit=N&topic=FILTER` of the dead-letter routes; answers 400 itself when they are wrong. */
  private dlqQuery(query: URLSearchParams, res: http.ServerResponse): { limit: number; filter?: string } | undefined {
    const limitText = query.get('limit') ?? '100';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1) {
      sendJson(res, 400, { error: 'bad_request', message: `limit must be a whole number >= 1, got ${JSON.stringify(limitText)}` });
      return undefined;
    }
    const filter = query.get('topic') ?? undefined;
    if (filter !== undefined && !isValidTopicFilter(filter)) {
      sendJson(res, 400, { error: 'bad_request', message: `topic must be a valid topic filter, got ${JSON.stringify(filter)}` });
      return undefined;
    }
    return { limit, ...(filter ? { filter } : {}) };
  }
}
