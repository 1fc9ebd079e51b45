import type { Broker } from '../broker.js';
import type { ConsumerGroup } from '../group.js';
import { DLQ_GROUP } from '../groups.js';
import { parseSharedFilter } from '../topics.js';
import { AdminError, pageOfAsync, type PageRequest } from './page.js';
import type { GroupView, Page } from './views.js';

/** Members named in a group's view; `members` gives how many there are in all. */
const MEMBERS_SHOWN = 100;

export async function groupView(group: ConsumerGroup, now: number): Promise<GroupView> {
  const shared = parseSharedFilter(group.name);
  const ids = [...group.members.keys()].map((s) => s.clientId).sort();
  let connected = 0;
  for (const session of group.members.keys()) if (session.connected) connected++;
  // The head of the queue is its oldest message; a durable queue may read it from disk.
  const oldest = group.queue.pendingCount > 0 ? (await group.queue.peek(1))[0]?.message.publishedAt : undefined;
  return {
    name: group.name,
    group: shared ? shared.group : group.name,
    filter: group.filter,
    brokerOwned: group.name === DLQ_GROUP,
    durable: group.durable,
    members: group.members.size,
    connectedMembers: connected,
    memberIds: ids.slice(0, MEMBERS_SHOWN),
    waiting: group.queue.pendingCount,
    waitingBytes: group.queue.pendingBytes,
    inflight: group.queue.inflight.size,
    retrying: group.queue.held.size,
    lag: oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000),
    oldestWaitingAt: oldest === undefined ? null : new Date(oldest).toISOString(),
    deliveryRate: group.deliveries.rate(now),
    delivered: group.deliveries.total,
  };
}

/** The name a group is asked for by: `$share/mailer/user/signedup`, or `mailer/user/signedup` for short. */
export function groupName(name: string): string {
  return name.startsWith('$share/') ? name : `$share/${name}`;
}

export class GroupsAdmin {
  constructor(private readonly broker: Broker) {}

  groups(request: PageRequest): Promise<Page<GroupView>> {
    const groups = this.broker.groups;
    const now = Date.now();
    // A group may end while an earlier one's oldest delivery is read: it is then left out.
    return pageOfAsync(groups.index, request, groups.size, async (name) => {
      const group = groups.get(name);
      return group && groupView(group, now);
    });
  }

  group(name: string): Promise<GroupView> {
    return groupView(this.find(name), Date.now());
  }

  /**
   * Removes a group: its queue is dropped (what waits and what is in flight, which then goes to no
   * other member), and every member's subscription to it is removed, as if each had unsubscribed;
   * the group ends with its last member. The broker's dead-letter group is not the admin's to delete.
   */
  async delete(name: string): Promise<{ name: string; members: number; dropped: number }> {
    const group = this.find(name);
    if (group.name === DLQ_GROUP) throw new AdminError('conflict', `${group.name} is the broker's own dead-letter group; purge or redrive dead letters instead`);
    const dropped = group.queue.pendingCount + group.queue.inflight.size + group.queue.held.size;
    // Cleared first: otherwise each member that leaves would hand its in-flight messages to the next.
    group.queue.clear();
    const members = [...group.members.keys()];
    const stored: Array<Promise<void>> = [];
    for (const session of members) {
      const outcome = this.broker.unsubscribe(session, [group.name]);
      if (outcome.stored) stored.push(outcome.stored);
    }
    await Promise.all(stored);
    return { name: group.name, members: members.length, dropped };
  }

  private find(name: string): ConsumerGroup {
    const full = groupName(name);
    const group = this.broker.groups.get(full);
    if (!group) throw new AdminError('not-found', `no consumer group ${JSON.stringify(full)}`);
    return group;
  }
}
