import type { Session } from './session.js';
import type { SessionRecord } from './storage.js';

/** MQTT's session expiry that never comes (0xFFFFFFFF seconds). */
export const NEVER_EXPIRES = 0xffffffff;

/** What storage keeps of a persistent session: its subscriptions and who it belongs to. */
export function sessionRecord(session: Session): SessionRecord {
  const record: SessionRecord = {
    clientId: session.clientId,
    expiryInterval: session.expiryInterval,
    subscriptions: [...session.subscriptions.values()],
    authMethod: session.identity.method,
  };
  if (session.identity.user !== undefined) record.user = session.identity.user;
  if (session.identity.tokenAcl) record.tokenAcl = session.identity.tokenAcl;
  return record;
}

/** Milliseconds until a stored session expires (negative when it already has); undefined when it never does. */
export function expiryLeftMs(record: SessionRecord, now: number): number | undefined {
  if (record.expiryInterval === NEVER_EXPIRES) return undefined;
  const since = record.disconnectedAt ?? now;
  return since + record.expiryInterval * 1000 - now;
}
