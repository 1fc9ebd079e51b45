import http from 'node:http';
import type net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { BrokerLimits } from '../core/limits.js';
import { guarded, type ErrorReporter } from '../util/guard.js';
import type { Logger } from '../util/logger.js';
import { HttpError } from './respond.js';

/** What the HTTP listener counts at its connection limits (on /healthz as `http`, and in /metrics). */
export interface HttpConnectionStats {
  /** Open connections counted against `maxHttpConnections` (SSE streams included, upgraded WebSockets not). */
  connections: number;
  /** Connections closed at accept because `maxHttpConnections` were open. */
  refusedConnections: number;
  /** Connections cut because their request headers did not arrive within `httpHeadersTimeout`. */
  headersTimeouts: number;
  /** Connections cut because their request (the body) did not complete within `httpRequestTimeout`. */
  requestTimeouts: number;
  /** Idle keep-alive connections closed after `httpIdleTimeout`. */
  idleTimeouts: number;
}

/** A refusal or a cut is logged the first time and every this many times after: a flood must not become a log flood. */
const LOG_EVERY = 1000;

/** Node's own answers to a request it cannot parse (what it sends when no `clientError` listener exists). */
const PARSE_ERROR_ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
};
const BAD_REQUEST_ANSWER = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/** Requests cut off mid-body, with the refusal their handler reports (see `requestTimeoutOf`). */
const timedOutRequests = new WeakMap<http.IncomingMessage, HttpError>();

/**
 * The 408 a request was cut off with, when the request timeout is why its body ended early; a
 * route reading the body reports this instead of "the client went away".
 */
export function requestTimeoutOf(req: http.IncomingMessage): HttpError | undefined {
  return timedOutRequests.get(req);
}

/** What the guard knows of one connection: its latest request, and the responses not yet finished. */
interface ConnectionState {
  request: http.IncomingMessage | undefined;
  unfinished: Set<http.ServerResponse>;
  upgraded: boolean;
}

/**
 * Holds the HTTP listener to `maxHttpConnections`, and reports what Node's timeouts cut off.
 *
 * The cap is counted from accept, before a byte is read: past it Node closes the socket at once
 * (`server.maxConnections`), so a slowloris flood past the cap holds no parser, no memory and no
 * descriptor. Answering 503 would mean keeping the socket until the answer is out, which is
 * what the cap must not do. A WebSocket upgraded at `/mqtt` leaves the count (the MQTT intake counts
 * it against `maxConnections`), so `server.maxConnections` is raised by one for each open one.
 *
 * Timeouts are Node's (`headersTimeout`, `requestTimeout`, `keepAliveTimeout`, set from the limits
 * by `httpServerOptions`). They cover requests being received and idle keep-alive connections
 * only: an SSE stream (its GET complete, its response streaming) and an upgraded WebSocket are
 * neither, so they are never cut by them. This class answers the cut-off requests with a JSON 408
 * where no response has started, and counts and logs each kind.
 *
 * On an HTTPS server the requests arrive on the TLS socket, which exists once the handshake is
 * done: connections are tracked from `secureConnection`, while `maxConnections` still counts raw
 * sockets from accept. A handshake that does not complete within `handshakeTimeout` (set to
 * `httpHeadersTimeout`) counts as a headers timeout; one that fails is closed without an answer.
 * Each listener has its own guard and cap; the guards of one HTTP front end share their `stats`.
 */
export class HttpConnectionGuard {
  readonly stats: HttpConnectionStats;
  private readonly states = new WeakMap<Duplex, ConnectionState>();
  private upgradedOpen = 0;
  private readonly secure: boolean;

  constructor(
    private readonly server: http.Server,
    private readonly limits: BrokerLimits,
    private readonly log: Logger,
    /** Told about anything a handler throws, which must not reach the event loop (and end the process). */
    report: ErrorReporter,
    stats?: HttpConnectionStats,
  ) {
    this.stats = stats ?? { connections: 0, refusedConnections: 0, headersTimeouts: 0, requestTimeouts: 0, idleTimeouts: 0 };
    this.secure = server instanceof tls.Server;
    server.maxConnections = limits.maxHttpConnections;
    server.on('drop', guarded(report, 'HTTP drop', (data?: net.DropArgument) => this.refused(data)));
    server.on(this.secure ? 'secureConnection' : 'connection', guarded(report, 'HTTP connection', (socket: net.Socket) => this.opened(socket)));
    server.on('clientError', guarded(report, 'HTTP client error', (err: NodeJS.ErrnoException, socket: Duplex) => this.clientError(err, socket)));
    // Only keep-alive sets a socket timeout here (`server.timeout` stays 0), so this is an idle connection.
    server.on('timeout', guarded(report, 'HTTP idle timeout', (socket: net.Socket) => this.idle(socket)));
  }

  /** Remembers a request and its response, so that a timeout knows what it cut and whether it may still answer. */
  track(req: http.IncomingMessage, res: http.ServerResponse): void {
    const state = this.states.get(req.socket);
    if (!state) return;
    state.request = req;
    state.unfinished.add(res);
    const done = (): void => void state.unfinished.delete(res);
    res.once('finish', done);
    res.once('close', done);
  }

  /** A `/mqtt` upgrade: from now on the socket is an MQTT connection, counted by the MQTT intake, not here. */
  upgraded(socket: Duplex): void {
    const state = this.states.get(socket);
    if (!state || state.upgraded) return;
    state.upgraded = true;
    this.stats.connections--;
    this.upgradedOpen++;
    this.server.maxConnections = this.limits.maxHttpConnections + this.upgradedOpen;
  }

  private opened(socket: net.Socket): void {
    const state: ConnectionState = { request: undefined, unfinished: new Set(), upgraded: false };
    this.states.set(socket, state);
    this.stats.connections++;
    socket.once('close', () => {
      if (!state.upgraded) {
        this.stats.connections--;
        return;
      }
      this.upgradedOpen--;
      this.server.maxConnections = this.limits.maxHttpConnections + this.upgradedOpen;
    });
  }

  private refused(data: net.DropArgument | undefined): void {
    const count = ++this.stats.refusedConnections;
    if (count % LOG_EVERY === 1) {
      this.log.warn(
        { remote: data?.remoteAddress, open: this.stats.connections, limit: this.limits.maxHttpConnections, refused: count },
        'HTTP connection refused: maxHttpConnections connections are open',
      );
    }
  }

  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // An HTTPS socket without a state has not completed its handshake: there is no HTTP to answer in.
    if (this.secure && !this.states.has(socket)) return this.handshakeFailed(err, socket);
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return this.timedOut(socket);
    // Any other client error as Node handles it without a listener: a bare 4xx where it can still be said, then close.
    if (err.code !== 'ECONNRESET' && this.canAnswer(socket)) socket.write(PARSE_ERROR_ANSWERS[err.code ?? ''] ?? BAD_REQUEST_ANSWER);
    socket.destroy();
  }

  /** Node's checker found the request on `socket` past `headersTimeout` or `requestTimeout`. */
  private timedOut(socket: Duplex): void {
    const request = this.states.get(socket)?.request;
    // A request that reached the router has its headers; if it is not complete, its body is what was missing.
    const body = request !== undefined && !request.complete;
    const headersLimit = !body && this.limits.httpHeadersTimeout > 0;
    const refusal = headersLimit
      ? new HttpError(408, 'request_timeout', `the request headers did not arrive within ${this.limits.httpHeadersTimeout} s (httpHeadersTimeout)`)
      : new HttpError(408, 'request_timeout', `the request did not complete within ${this.limits.httpRequestTimeout} s (httpRequestTimeout)`);
    if (body) timedOutRequests.set(request, refusal);
    const count = headersLimit ? ++this.stats.headersTimeouts : ++this.stats.requestTimeouts;
    if (count % LOG_EVERY === 1) {
      this.log.warn(
        { remote: (socket as Partial<net.Socket>).remoteAddress, url: body ? request.url : undefined, limit: headersLimit ? 'httpHeadersTimeout' : 'httpRequestTimeout', times: count },
        headersLimit ? 'HTTP connection cut: request headers too slow' : 'HTTP connection cut: request body too slow',
      );
    }
    if (this.canAnswer(socket)) socket.write(answer(refusal));
    // Destroyed, not ended: the listener allows half-open sockets, and a client that never closes its side would keep an ended one.
    socket.destroy();
  }

  private handshakeFailed(err: NodeJS.ErrnoException, socket: Duplex): void {
    socket.destroy();
    if (err.code !== 'ERR_TLS_HANDSHAKE_TIMEOUT') {
      this.log.debug({ remote: (socket as Partial<net.Socket>).remoteAddress, err: err.code ?? err.message }, 'HTTPS handshake failed');
      return;
    }
    const count = ++this.stats.headersTimeouts;
    if (count % LOG_EVERY === 1) {
      this.log.warn({ remote: (socket as Partial<net.Socket>).remoteAddress, limit: 'httpHeadersTimeout', times: count }, 'HTTPS connection cut: TLS handshake too slow');
    }
  }

  private idle(socket: net.Socket): void {
    const count = ++this.stats.idleTimeouts;
    // Closing idle keep-alive connections is routine (every response said `Keep-Alive: timeout=N`): debug only.
    if (count % LOG_EVERY === 1) this.log.debug({ remote: socket.remoteAddress, limit: 'httpIdleTimeout', times: count }, 'HTTP keep-alive connection closed: idle');
    socket.destroy();
  }

  /** True when nothing of a response has been written on the socket yet, so a whole error response can still go out. */
  private canAnswer(socket: Duplex): boolean {
    if (!socket.writable) return false;
    for (const res of this.states.get(socket)?.unfinished ?? []) if (res.headersSent) return false;
    return true;
  }
}

/** A refusal as a complete HTTP/1.1 response that closes the connection, in the gateway's JSON error shape. */
function answer(err: HttpError): string {
  const body = JSON.stringify({ error: err.code, message: err.message });
  return `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
