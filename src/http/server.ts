import http from 'node:http';
import type net from 'node:net';
import type { Broker } from '../core/broker.js';
import type { WebSocketListener } from '../transport/websocket.js';
import { listen } from '../transport/listen.js';
import { listDeadLetters, redriveDeadLetters } from '../core/dead-letters.js';
import { isValidTopicFilter } from '../core/topics.js';
import type { Logger } from '../util/logger.js';
import type { BrokerMetrics } from './metrics.js';
import { HttpConnectionGuard } from './connection-guard.js';
import { httpServerOptions } from './http-limits.js';
import { PUBLISH_PATH, PublishRoute } from './publish-route.js';
import { HttpError, sendError, sendJson } from './respond.js';
import { identifyAdmin, WWW_AUTHENTICATE } from './identity.js';
import type { Message } from '../core/message.js';
import { SUBSCRIBE_PATH, SubscribeRoute } from './subscribe-route.js';
import { stringify as stringifyYaml } from 'yaml';
import { renderDocs } from '../asyncapi/html.js';
import type { AdminModel } from '../core/admin/model.js';
import { ADMIN_PATH, AdminRoutes } from './admin-routes.js';

export interface HttpListenerOptions {
  logger: Logger;
  metrics: BrokerMetrics;
  /** The admin read and write model: /v1/admin/… and /healthz are served from it. */
  admin: AdminModel;
  /** The running system as an AsyncAPI document, for /asyncapi.json, /asyncapi.yaml and /docs. */
  liveDocument?: () => Record<string, unknown>;
}

/**
 * The HTTP listener: MQTT over WebSocket at /mqtt, /healthz, /metrics, the HTTP gateway
 * (POST /v1/publish/<topic>, GET /v1/subscribe as Server-Sent Events) and the dead-letter admin routes.
 */
export class HttpListener {
  private readonly server: http.Server;
  private readonly log: Logger;
  private readonly metrics: BrokerMetrics;
  private readonly publishRoute: PublishRoute;
  private readonly subscribeRoute: SubscribeRoute;
  private readonly admin: AdminModel;
  private readonly adminRoutes: AdminRoutes;
  private readonly liveDocument: (() => Record<string, unknown>) | undefined;
  /** `maxHttpConnections` and the HTTP timeouts: their counts are on /healthz (`http`) and /metrics. */
  private readonly guard: HttpConnectionGuard;

  constructor(
    private readonly broker: Broker,
    websocket: WebSocketListener,
    options: HttpListenerOptions,
  ) {
    this.log = options.logger;
    this.metrics = options.metrics;
    this.publishRoute = new PublishRoute(broker, this.log);
    this.subscribeRoute = new SubscribeRoute(broker, this.log);
    this.liveDocument = options.liveDocument;
    this.admin = options.admin;
    this.adminRoutes = new AdminRoutes(broker, options.admin);
    this.server = http.createServer(httpServerOptions(broker.limits), (req, res) => {
      try {
        this.guard.track(req, res);
        this.route(req, res);
      } catch (err) {
        // A bug in a route costs that request a 500, never the process.
        broker.reportInternalError(`HTTP ${req.method} ${(req.url ?? '').slice(0, 200)}`, err);
        if (!res.headersSent) sendError(res, new HttpError(500, 'internal_error', 'internal error'));
        else res.destroy();
      }
    });
    this.guard = new HttpConnectionGuard(this.server, broker.limits, this.log, broker.reportInternalError);
    this.metrics.collectHttpFrom(this.guard.stats);
    this.server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/mqtt') {
        this.guard.upgraded(socket);
        return websocket.handleUpgrade(req, socket, head);
      }
      // Node hands the socket over without its error handler: a reset must not become an uncaught error.
      socket.on('error', () => {});
      // Destroyed once the answer is out: an upgrade socket is no longer timed by Node, and one left half-open would stay.
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n', () => socket.destroy());
    });
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    const address = await listen(this.server, host, port, 'HTTP');
    // Once bound, an error (EMFILE at accept when descriptors run out) is the listener's, not a client's: log it, keep listening.
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'HTTP listener error'));
    return address;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    // The path as sent: URL parsing would resolve `.` and `..` levels, which are plain topic levels here.
    const target = req.url ?? '/';
    const queryStart = target.indexOf('?');
    const path = queryStart === -1 ? target : target.slice(0, queryStart);
    const query = new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1));
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
      return sendJson(res, 200, { ...this.admin.health(), http: this.guard.stats });
    }
    if (path.startsWith(ADMIN_PATH)) return this.adminRoutes.handle(req, res, path, query);
    if (path === '/v1/dlq' && req.method === 'GET') {
      const dlq = this.dlqQuery(query, res);
      if (!dlq) return;
      return this.asAdmin(req, res, async () => {
        const messages = listDeadLetters(this.broker.deadLetters, dlq.limit, dlq.filter);
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
    sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method} ${path}` });
  }

  /** Runs an admin route once the request is authenticated with the admin role (401/403 otherwise). */
  private asAdmin(req: http.IncomingMessage, res: http.ServerResponse, run: () => Promise<void>): void {
    identifyAdmin(req, this.broker)
      .then(run)
      .catch((err: unknown) => {
        if (err instanceof HttpError) return sendError(res, err, err.status === 401 ? { 'www-authenticate': WWW_AUTHENTICATE } : {});
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
