import http from 'node:http';
import type net from 'node:net';
import type { Broker } from '../core/broker.js';
import type { WebSocketListener } from '../transport/websocket.js';
import { listen } from '../transport/listen.js';

/** The HTTP listener: MQTT over WebSocket at /mqtt, and /healthz. */
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
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      const body = JSON.stringify({
        status: 'ok',
        storage: this.broker.storage.kind,
        sessions: this.broker.sessions.size,
        subscriptions: this.broker.router.subscriptionCount,
        ...this.broker.stats,
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found', message: `no route for ${req.method} ${path}` }));
  }
}
