import type { Broker } from '../broker.js';
import type { Session } from '../session.js';
import { parseSharedFilter } from '../topics.js';
import type { SubscriptionRecord } from '../storage.js';
import { compareKeys, upperBound } from './sorted-keys.js';
import { AdminError, type PageRequest } from './page.js';
import type { Page, SubscriptionView } from './views.js';

/** `?client=` and `?filter=`: one session's subscriptions, or every session's with exactly this filter. */
export interface SubscriptionQuery extends PageRequest {
  client?: string;
  filter?: string;
}

/**
 * A subscription's cursor: client id and filter joined by U+0000, which neither may contain
 * (MQTT UTF-8 strings exclude it), so the order is by client id, then by filter.
 */
const SEPARATOR = '\u0000';

export function subscriptionCursor(clientId: string, filter: string): string {
  return `${clientId}${SEPARATOR}${filter}`;
}

function parseCursor(after: string | undefined): { clientId: string; filter: string | undefined } | undefined {
  if (after === undefined) return undefined;
  const at = after.indexOf(SEPARATOR);
  return at === -1 ? { clientId: after, filter: undefined } : { clientId: after.slice(0, at), filter: after.slice(at + 1) };
}

function view(session: Session, record: SubscriptionRecord): SubscriptionView {
  const shared = parseSharedFilter(record.filter);
  return {
    clientId: session.clientId,
    filter: record.filter,
    group: shared ? shared.group : null,
    qos: record.qos,
    noLocal: record.noLocal,
    retainAsPublished: record.retainAsPublished,
    retainHandling: record.retainHandling,
    subscriptionId: record.subscriptionId ?? null,
    connected: session.connected,
  };
}

/** Subscriptions by client id and filter; with `filter`, the sessions subscribed with it; with `client`, one session's. */
export function listSubscriptions(broker: Broker, query: SubscriptionQuery): Page<SubscriptionView> {
  const sessions = broker.sessions;
  const cursor = parseCursor(query.after);
  if (query.client !== undefined) {
    const session = sessions.get(query.client);
    if (!session) throw new AdminError('not-found', `no session ${JSON.stringify(query.client)}`);
    const filters = [...session.subscriptions.keys()].filter((f) => query.filter === undefined || f === query.filter).sort(compareKeys);
    let from = 0;
    if (cursor) from = cursor.clientId < query.client ? 0 : cursor.clientId > query.client ? filters.length : cursor.filter === undefined ? 0 : upperBound(filters, cursor.filter);
    const page = filters.slice(from, from + query.limit);
    const more = from + query.limit < filters.length;
    return {
      items: page.map((f) => view(session, session.subscriptions.get(f)!)),
      next: more ? subscriptionCursor(session.clientId, page[page.length - 1]!) : null,
      total: filters.length,
    };
  }
  // Sessions from the cursor's own one (it may have filters after the cursor's), in order.
  const ids = sessions.index.keys();
  let i = cursor ? upperBound(ids, cursor.clientId) - 1 : 0;
  if (i < 0 || (cursor && ids[i] !== cursor.clientId)) i++;
  const items: SubscriptionView[] = [];
  let next: string | null = null;
  let total = 0;
  for (const session of sessions.values()) total += query.filter === undefined ? session.subscriptions.size : session.subscriptions.has(query.filter) ? 1 : 0;
  outer: for (; i < ids.length; i++) {
    const session = sessions.get(ids[i]!)!;
    if (session.subscriptions.size === 0) continue;
    let filters: string[];
    if (query.filter !== undefined) filters = session.subscriptions.has(query.filter) ? [query.filter] : [];
    else filters = [...session.subscriptions.keys()].sort(compareKeys);
    const skipUpTo = cursor && cursor.clientId === session.clientId ? cursor.filter : undefined;
    for (const filter of filters) {
      if (skipUpTo !== undefined && filter <= skipUpTo) continue;
      if (items.length === query.limit) {
        const last = items[items.length - 1]!;
        next = subscriptionCursor(last.clientId, last.filter);
        break outer;
      }
      items.push(view(session, session.subscriptions.get(filter)!));
    }
  }
  return { items, next, total };
}
