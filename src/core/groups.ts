import type { Logger } from '../util/logger.js';
import type { Storage, SubscriptionOptions } from './storage.js';
import { DLQ_PREFIX } from './channels.js';
import { ConsumerGroup, type DeliveryFailureHandler, type ReceiveCheck } from './group.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import { parseSharedFilter } from './topics.js';
import { IndexedMap } from './admin/sorted-keys.js';

/** The name of the broker-owned consumer group that keeps dead letters; clients may not join it. */
export const DLQ_GROUP_NAME = 'eddy-dlq';
/** The broker-owned consumer group that keeps dead letters until they are redriven or consumed. */
export const DLQ_GROUP = `$share/${DLQ_GROUP_NAME}/${DLQ_PREFIX}#`;

/**
 * The consumer groups by name (`$share/{group}/{filter}`): each is created with its queue when its
 * first member joins and ends when its last member leaves, except the broker's own dead-letter group.
 * Indexed by name in order, for the admin API's pages.
 */
export class GroupRegistry extends IndexedMap<ConsumerGroup> {
  constructor(
    private readonly storage: Storage,
    private readonly router: Router,
    private readonly failures: DeliveryFailureHandler,
    private readonly log: Logger,
    /** Whether a member may receive a message of this topic (the ACL's right to receive). */
    private readonly mayReceive: ReceiveCheck,
  ) {
    super();
  }

  /** Brings back the groups whose queues storage kept, and the dead-letter group. Call before restoring sessions. */
  async restore(): Promise<void> {
    for (const name of await this.storage.loadGroups()) {
      const shared = parseSharedFilter(name);
      if (shared) this.ensure(name, shared.filter).saved = true;
    }
    this.ensure(DLQ_GROUP, `${DLQ_PREFIX}#`).pinned = true;
  }

  /** After sessions are restored: groups nobody belongs to any more end; the dead-letter group is stored. */
  async settle(): Promise<void> {
    for (const group of [...this.values()]) if (group.members.size === 0 && !group.pinned) this.drop(group);
    await this.save(this.deadLetters);
  }

  get deadLetters(): ConsumerGroup {
    return this.get(DLQ_GROUP)!;
  }

  join(session: Session, name: string, filter: string, options: SubscriptionOptions): void {
    const group = this.ensure(name, filter);
    session.joinGroup(group);
    group.addMember(session, options);
  }

  leave(session: Session, name: string): void {
    const group = this.get(name);
    if (!group) return;
    group.removeMember(session);
    if (group.members.size === 0 && !group.pinned) this.drop(group);
  }

  /** Stores a group's queue once a persistent member makes it durable; resolves when that is safe. */
  save(group: ConsumerGroup): Promise<void> | void {
    if (group.saved || !group.durable) return undefined;
    group.saved = true;
    return this.storage.saveGroup(group.name);
  }

  private ensure(name: string, filter: string): ConsumerGroup {
    let group = this.get(name);
    if (!group) {
      group = new ConsumerGroup(name, filter, this.storage.groupQueue(name), this.failures, this.mayReceive);
      this.set(name, group);
      this.router.addGroup(group);
    }
    return group;
  }

  /** The last member left: the group and what it still queued end, as a session's queue ends with it. */
  private drop(group: ConsumerGroup): void {
    const waiting = group.queue.pendingCount + group.queue.inflight.size;
    if (waiting > 0) this.log.info({ group: group.name, waiting }, 'consumer group ended with its last member; its queue is dropped');
    this.router.removeGroup(group);
    this.delete(group.name);
    const stored = this.storage.deleteGroup(group.name);
    stored?.catch((err: Error) => this.log.error({ group: group.name, err: err.message }, 'group removal not stored'));
  }
}
