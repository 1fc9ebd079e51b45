import type http from 'node:http';
import { TLSSocket } from 'node:tls';
import type { PeerInfo } from '../core/admission/peer.js';
import { peerCertificateOf } from '../transport/tls.js';

/**
 * Who sent an HTTP request: its address, `http` or `https`, and over HTTPS the client certificate
 * when the listener asked for one (`--tls-ca`). What the admission pipeline reads to authenticate
 * an HTTP request by its certificate.
 */
export function peerOfRequest(req: http.IncomingMessage): PeerInfo {
  return peerOf(req, 'http', 'https', '');
}

/** The same for a WebSocket upgraded at /mqtt: transport `ws` or `wss`, `remote` prefixed with it. */
export function peerOfUpgrade(req: http.IncomingMessage): PeerInfo {
  const secure = req.socket instanceof TLSSocket;
  return peerOf(req, 'ws', 'wss', secure ? 'wss:' : 'ws:');
}

function peerOf<P extends PeerInfo['transport']>(req: http.IncomingMessage, plain: P, secure: P, prefix: string): PeerInfo {
  const socket = req.socket;
  const address = socket.remoteAddress ?? '';
  const remote = `${prefix}${address}:${socket.remotePort}`;
  if (!(socket instanceof TLSSocket)) return { remote, address, transport: plain };
  const certificate = peerCertificateOf(socket);
  return { remote, address, transport: secure, ...(certificate ? { certificate } : {}) };
}
