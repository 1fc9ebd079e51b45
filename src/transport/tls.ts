import type net from 'node:net';
import tls from 'node:tls';
import type { Broker } from '../core/broker.js';
import { MqttConnection } from '../protocol/mqtt/connection.js';
import type { MqttIntake } from '../protocol/mqtt/intake.js';
import type { PeerCertificate, PeerInfo } from '../core/admission/peer.js';
import type { Logger } from '../util/logger.js';
import { listen } from './listen.js';
import { SHUTTING_DOWN, type Farewell, type FarewellCount } from './farewell.js';
import type { TlsCredentials } from './tls-credentials.js';

/** How long clients have, at shutdown, to read their DISCONNECT before their sockets are destroyed (as for TCP). */
const SHUTDOWN_GRACE_MS = 1000;
/** A handshake must complete within this: the same 10 s a TCP socket has to send CONNECT. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The client certificate a TLS socket presented, or undefined when none was asked for or sent.
 * `authorized` is true only when it verified against the configured CA (`--tls-ca`).
 */
export function peerCertificateOf(socket: tls.TLSSocket): PeerCertificate | undefined {
  const cert = socket.getPeerCertificate();
  // Node returns an empty object, not null, when the client sent no certificate.
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN as string | string[] | undefined;
  const error = socket.authorizationError as Error | string | null | undefined;
  return {
    authorized: socket.authorized,
    ...(error ? { authorizationError: typeof error === 'string' ? error : ((error as NodeJS.ErrnoException).code ?? error.message) } : {}),
    ...(cn !== undefined ? { commonName: Array.isArray(cn) ? cn[0]! : cn } : {}),
    altNames: splitAltNames(cert.subjectaltname),
    ...(cert.fingerprint256 ? { fingerprint256: cert.fingerprint256 } : {}),
  };
}

/**
 * Node's `subjectaltname` is one string, `DNS:a, IP Address:1.2.3.4, email:x@y`; a value holding
 * a comma or a quote is JSON-quoted (`URI:"http://a/,b"`), so a plain split on ", " would cut it.
 */
export function splitAltNames(text: string | undefined): string[] {
  if (!text) return [];
  const names: string[] = [];
  const entry = /([^:,]+):(?:("(?:[^"\\]|\\.)*")|([^,]*))(?:,\s*|$)/y;
  let match: RegExpExecArray | null;
  while (entry.lastIndex < text.length && (match = entry.exec(text))) {
    const value = match[2] !== undefined ? (JSON.parse(match[2]) as string) : match[3]!;
    names.push(`${match[1]!.trim()}:${value}`);
  }
  return names;
}

/**
 * MQTT over TLS (`--tls-cert`, `--tls-key`, `--tls-port`). Sockets are counted against
 * `maxConnections` at accept, before the handshake, as TCP counts them before CONNECT: a flood of
 * sockets that never finish their handshake cannot exceed the limit. Once the handshake is done,
 * the socket is an MqttConnection as a TCP one is, with a PeerInfo of transport `tls` carrying the
 * client certificate when one was asked for.
 */
export class TlsListener {
  private readonly server: tls.Server;
  private readonly connections = new Set<MqttConnection>();
  /**
   * Sockets accepted and counted, still in their handshake, by `address:port`: the raw socket is
   * what `connection` gives, the TLS socket what `secureConnection` gives, and the remote address
   * is what they share (a pair is open only once at a time).
   */
  private readonly handshaking = new Map<string, { raw: net.Socket; busy: boolean }>();
  private handshakeFailures = 0;

  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
    private readonly intake: MqttIntake,
    credentials: TlsCredentials,
  ) {
    this.server = tls.createServer(credentials.serverOptions(HANDSHAKE_TIMEOUT_MS));
    credentials.attach(this.server);
    this.server.on('connection', (raw: net.Socket) => this.accepted(raw));
    this.server.on('secureConnection', (socket: tls.TLSSocket) => this.secured(socket));
    // Node does not close a socket whose handshake failed or timed out when this event has a listener.
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      socket.destroy();
      const count = ++this.handshakeFailures;
      // A client's mistake (no certificate, wrong CA, TLS 1.1): debug, as a refused CONNECT is. A
      // certificate that did not verify ends the socket without an error: its reason is on the socket.
      const unverified = socket.authorizationError as Error | string | null | undefined;
      this.log.debug(
        { remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.code ?? err.message, ...(unverified ? { certificate: String(unverified) } : {}), failures: count },
        unverified ? `TLS handshake failed: client certificate not verified (${String(unverified)})` : 'TLS handshake failed',
      );
    });
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    const address = await listen(this.server, host, port, 'MQTT over TLS');
    // Once bound, an error (EMFILE at accept when descriptors run out) is the listener's, not a client's: log it, keep listening.
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'MQTT TLS listener error'));
    return address;
  }

  /** Stops accepting, then closes every client with the farewell (default 0x8B); handshakes still under way are cut. */
  async close(farewell: Farewell = SHUTTING_DOWN): Promise<FarewellCount> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const { raw } of this.handshaking.values()) raw.destroy();
    const count = { closed: this.connections.size, told: 0 };
    for (const connection of this.connections) if (connection.farewell(farewell)) count.told++;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
    clearTimeout(timer);
    for (const connection of this.connections) connection.destroy();
    await closed;
    return count;
  }

  private accepted(raw: net.Socket): void {
    const key = `${raw.remoteAddress}:${raw.remotePort}`;
    const admitted = this.intake.admit(key);
    if (admitted === 'refuse') {
      raw.on('error', () => {});
      raw.destroy();
      return;
    }
    raw.setNoDelay(true);
    this.handshaking.set(key, { raw, busy: admitted === 'busy' });
    // The raw socket closes with the TLS socket over it, and also when the handshake never completes.
    raw.once('close', () => {
      this.intake.closed();
      if (this.handshaking.get(key)?.raw === raw) this.handshaking.delete(key);
    });
  }

  private secured(socket: tls.TLSSocket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const pending = this.handshaking.get(remote);
    this.handshaking.delete(remote);
    if (!pending) {
      // Not counted at accept (cannot happen while `connection` precedes `secureConnection`): not served.
      socket.destroy();
      return;
    }
    const certificate = peerCertificateOf(socket);
    const peer: PeerInfo = { remote, address: socket.remoteAddress ?? '', transport: 'tls', ...(certificate ? { certificate } : {}) };
    this.log.debug(
      { remote, transport: 'tls', protocol: socket.getProtocol(), cipher: socket.getCipher()?.name, ...(certificate ? { certificate } : {}) },
      certificate ? `TLS client connected with certificate CN=${certificate.commonName ?? '(none)'} (${certificate.authorized ? 'verified' : `not verified: ${certificate.authorizationError}`})` : 'TLS client connected',
    );
    const connection = new MqttConnection(socket, this.broker, this.log, peer, this.intake, pending.busy);
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
  }
}
