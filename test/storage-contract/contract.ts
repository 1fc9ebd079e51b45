import type { StorageFactory } from './factory.js';
import { crashContract } from './crash.js';
import { messageContract } from './messages.js';
import { queueContract } from './queues.js';

export type { StorageFactory, StoreUnderTest } from './factory.js';

/**
 * The one suite every storage engine passes (as watermill runs one pub/sub suite against every
 * backend): appends and confirmation, queues with in-flight entries across restarts, sessions,
 * groups, retained messages, history with seeks, retention, expiry, and for engines with a process
 * of their own, recovery after kill -9. Tests of restarts run only where `factory.durable`.
 */
export function storageContract(name: string, factory: StorageFactory): void {
  queueContract(name, factory);
  messageContract(name, factory);
  if (factory.durable) crashContract(name, factory);
}
