import http from 'node:http';
import type net from 'node:net';
import type { Broker } from '../core/broker.js';
import type { WebSocketListener } from '../transport/websocket.js';
import { listen } from '../transport/listen.js';
import { listDeadLetters, redriveDeadLetters } from '../core/dead-letters.js';
import { isValidTopicFilter } from '../core/topics.js';

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** The HTTP listener: MQTT over WebSocket at /mqtt, /healthz, and the dead-letter admin routes. */
export class HttpListener {
  private readonly server: http.Server;

  constructor(
    private readonly broker: Broker,
    websocket: WebSocketListener,
  ) {
    this.server = http.createServer((req, res) => this.route(req, res));
    this.server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/mqtt') return websocket.handleUpgrade(req, socket, head);
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    });
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return listen(this.server, host, port, 'HTTP');
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://eddy');
    const path = url.pathname;
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      return sendJson(res, 200, {
        status: 'ok',
        storage: this.broker.storage.kind,
        sessions: this.broker.sessions.size,
        subscriptions: this.broker.router.subscriptionCount,
        groups: Object.fromEntries(
          [...this.broker.groups.values()].map((g) => [g.name, { members: g.members.size, waiting: g.queue.pendingCount, inflight: g.queue.inflight.size, retrying: g.queue.held.size }]),
        ),
        ...this.broker.stats,
        ...this.broker.redelivery.stats,
      });
    }
    if (path === '/v1/dlq' && req.method === 'GET') {
      const query = this.dlqQuery(url, res);
      if (!query) return;
      const messages = listDeadLetters(this.broker.deadLetters, query.limit, query.filter);
      return sendJson(res, 200, { waiting: this.broker.deadLetters.queue.pendingCount, count: messages.length, messages });
    }
    if (path === '/v1/dlq/redrive' && req.method === 'POST') {
      const query = this.dlqQuery(url, res);
      if (!query) return;
      redriveDeadLetters(this.broker.deadLetters, (m) => this.broker.publishConfirmed(m), query).then(
        (result) => sendJson(res, result.failed > 0 ? 507 : 200, result),
        (err: Error) => sendJson(res, 500, { error: 'redrive_failed', message: err.message }),
      );
      return;
    }
    sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method} ${path}` });
  }

  /** `?limit=N&topic=FILTER` of the dead-letter routes; answers 400 itself when they are wrong. */
  private dlqQuery(url: URL, res: http.ServerResponse): { limit: number; filter?: string } | undefined {
    const limitText = url.searchParams.get('limit') ?? '100';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1) {
      sendJson(res, 400, { error: 'bad_request', message: `limit must be a whole number >= 1, got ${JSON.stringify(limitText)}` });
      return undefined;
    }
    const filter = url.searchParams.get('topic') ?? undefined;
    if (filter !== undefined && !isValidTopicFilter(filter)) {
      sendJson(res, 400, { error: 'bad_request', message: `topic must be a valid topic filter, got ${JSON.stringify(filter)}` });
      return undefined;
    }
    return { limit, ...(filter ? { filter } : {}) };
  }
}
