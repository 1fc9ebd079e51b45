import type { Broker } from '../broker.js';
import type { Session } from '../session.js';
import { AdminError, pageOf, type PageRequest } from './page.js';
import type { ClientView, Page, SessionView } from './views.js';

/** MQTT 5 DISCONNECT reason 0x98: the connection was closed by an administrator. */
export const ADMINISTRATIVE_ACTION = 0x98;
const NEVER_EXPIRES = 0xffffffff;

const MQTT_VERSIONS: Record<number, string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

export function clientView(session: Session): ClientView | undefined {
  const link = session.link;
  if (!link) return undefined;
  const stats = link.stats;
  const protocol = stats?.protocol ?? 'mqtt';
  return {
    clientId: session.clientId,
    user: session.identity.user ?? null,
    address: session.identity.peer.remote,
    transport: session.identity.peer.transport,
    protocol,
    protocolVersion: protocol === 'mqtt' ? (MQTT_VERSIONS[link.protocolVersion] ?? String(link.protocolVersion)) : null,
    connectedAt: stats ? new Date(stats.connectedAt).toISOString() : null,
    keepAlive: stats?.keepAlive ?? 0,
    persistent: session.persistent,
    inflight: session.inflightCount,
    queued: session.queue.pendingCount,
    messagesIn: stats?.messagesIn ?? 0,
    messagesOut: stats?.messagesOut ?? 0,
    bytesIn: stats?.bytesIn ?? 0,
    bytesOut: stats?.bytesOut ?? 0,
  };
}

export function sessionView(session: Session, now: number): SessionView {
  const never = session.expiryInterval === NEVER_EXPIRES;
  const offlineSince = session.connected ? undefined : session.disconnectedAt;
  const endsAt = offlineSince !== undefined && !never ? offlineSince + session.expiryInterval * 1000 : undefined;
  return {
    clientId: session.clientId,
    user: session.identity.user ?? null,
    connected: session.connected,
    persistent: session.persistent,
    expiryInterval: never ? null : session.expiryInterval,
    disconnectedAt: offlineSince === undefined ? null : new Date(offlineSince).toISOString(),
    expiresAt: endsAt === undefined ? null : new Date(endsAt).toISOString(),
    expiresIn: endsAt === undefined ? null : Math.max(0, Math.ceil((endsAt - now) / 1000)),
    subscriptions: session.subscriptions.size,
    groups: [...session.groups].map((g) => g.name),
    queue: { waiting: session.queue.pendingCount, waitingBytes: session.queue.pendingBytes, inflight: session.inflightCount, retrying: session.queue.held.size },
  };
}

/** Connected clients and sessions: the views, and the two operations (disconnect, end). */
export class ClientsAdmin {
  constructor(private readonly broker: Broker) {}

  /** Connected clients by client id. `total` is every open connection (MQTT and SSE). */
  clients(request: PageRequest): Page<ClientView> {
    const sessions = this.broker.sessions;
    return pageOf(sessions.index, request, this.broker.stats.connections, (id) => clientView(sessions.get(id)!));
  }

  client(clientId: string): ClientView {
    const session = this.broker.sessions.get(clientId);
    const view = session && clientView(session);
    if (!view) throw new AdminError('not-found', `no client ${JSON.stringify(clientId)} is connected`);
    return view;
  }

  sessions(request: PageRequest): Page<SessionView> {
    const sessions = this.broker.sessions;
    const now = Date.now();
    return pageOf(sessions.index, request, sessions.size, (id) => sessionView(sessions.get(id)!, now));
  }

  session(clientId: string): SessionView {
    const session = this.broker.sessions.get(clientId);
    if (!session) throw new AdminError('not-found', `no session ${JSON.stringify(clientId)}`);
    return sessionView(session, Date.now());
  }

  /** Disconnects a client with 0x98 (MQTT 5; a plain close on 3.1.1). A persistent session stays, offline. */
  disconnect(clientId: string): void {
    const link = this.broker.sessions.get(clientId)?.link;
    if (!link) throw new AdminError('not-found', `no client ${JSON.stringify(clientId)} is connected`);
    link.close(ADMINISTRATIVE_ACTION, 'disconnected by an administrator');
  }

  /** Ends a session as its expiry would: its client (if connected) is disconnected with 0x98, its subscriptions and queue go. */
  end(clientId: string): void {
    if (!this.broker.endSessionNow(clientId, ADMINISTRATIVE_ACTION, 'session ended by an administrator')) {
      throw new AdminError('not-found', `no session ${JSON.stringify(clientId)}`);
    }
  }
}
