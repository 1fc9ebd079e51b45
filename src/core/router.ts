import { TopicTree } from './topic-tree.js';
import type { Session } from './session.js';
import type { SubscriptionOptions } from './storage.js';
import type { QoS } from './message.js';
import type { ConsumerGroup } from './group.js';

interface DirectRoute {
  kind: 'direct';
  session: Session;
  options: SubscriptionOptions;
}

/** `$share/{group}/{filter}`: one route in the tree; the group picks the member. */
interface GroupRoute {
  kind: 'group';
  group: ConsumerGroup;
}

type Route = DirectRoute | GroupRoute;

/** One delivery decision: the session, the QoS, and the ids of the subscriptions that matched. */
export interface Target {
  session: Session;
  qos: QoS;
  retainAsPublished: boolean;
  subscriptionIds: number[] | undefined;
  /** Set by the broker when the stored message names this session's queue. */
  durable?: boolean;
}

/** Finds the sessions a topic goes to, merging overlapping subscriptions of one session. */
export class Router {
  private readonly tree = new TopicTree<Route>();
  private readonly direct = new Map<string, DirectRoute>();
  private readonly groups = new Map<string, GroupRoute>();
  /**
   * Matched routes per topic. Topics repeat far more often than subscriptions change, so the
   * tree walk is skipped for known topics; any change to the set of routes clears the cache.
   */
  private readonly matchCache = new Map<string, Route[]>();
  private static readonly MATCH_CACHE_LIMIT = 10_000;

  get subscriptionCount(): number {
    return this.direct.size + [...this.groups.values()].reduce((n, g) => n + g.group.members.size, 0);
  }

  add(session: Session, filter: string, options: SubscriptionOptions): void {
    const key = `${session.clientId}\u0000${filter}`;
    const existing = this.direct.get(key);
    if (existing) {
      existing.options = options;
      return;
    }
    const route: DirectRoute = { kind: 'direct', session, options };
    this.direct.set(key, route);
    this.tree.add(filter, route);
    this.matchCache.clear();
  }

  remove(session: Session, filter: string): boolean {
    const key = `${session.clientId}\u0000${filter}`;
    const route = this.direct.get(key);
    if (!route) return false;
    this.direct.delete(key);
    this.tree.remove(filter, route);
    this.matchCache.clear();
    return true;
  }

  addGroup(group: ConsumerGroup): void {
    if (this.groups.has(group.name)) return;
    const route: GroupRoute = { kind: 'group', group };
    this.groups.set(group.name, route);
    this.tree.add(group.filter, route);
    this.matchCache.clear();
  }

  removeGroup(group: ConsumerGroup): void {
    const route = this.groups.get(group.name);
    if (!route) return;
    this.groups.delete(group.name);
    this.tree.remove(group.filter, route);
    this.matchCache.clear();
  }

  /**
   * Where one published message goes: at most one target per session for its non-shared
   * subscriptions, plus each matching consumer group (MQTT 5 §4.8.2: a group's copy is separate
   * from a member's own non-shared subscriptions, so one client may get both).
   */
  route(topic: string, origin: string | undefined): { targets: Target[]; groups: ConsumerGroup[] } {
    const targets: Target[] = [];
    const groups: ConsumerGroup[] = [];
    let bySession: Map<Session, Target> | undefined;
    const merge = (session: Session, options: SubscriptionOptions): void => {
      const existing = bySession?.get(session) ?? (targets.length === 1 && targets[0]!.session === session ? targets[0] : undefined);
      if (existing) {
        if (options.qos > existing.qos) existing.qos = options.qos;
        if (options.retainAsPublished) existing.retainAsPublished = true;
        if (options.subscriptionId !== undefined) (existing.subscriptionIds ??= []).push(options.subscriptionId);
        return;
      }
      const target: Target = {
        session,
        qos: options.qos,
        retainAsPublished: options.retainAsPublished,
        subscriptionIds: options.subscriptionId === undefined ? undefined : [options.subscriptionId],
      };
      targets.push(target);
      if (targets.length === 2) bySession = new Map([[targets[0]!.session, targets[0]!]]);
      bySession?.set(session, target);
    };
    for (const route of this.matches(topic)) {
      if (route.kind === 'group') {
        groups.push(route.group);
        continue;
      }
      if (route.options.noLocal && origin !== undefined && route.session.clientId === origin) continue;
      merge(route.session, route.options);
    }
    return { targets, groups };
  }

  private matches(topic: string): Route[] {
    const cached = this.matchCache.get(topic);
    if (cached) return cached;
    const found: Route[] = [];
    this.tree.match(topic, (route) => found.push(route));
    if (this.matchCache.size >= Router.MATCH_CACHE_LIMIT) this.matchCache.clear();
    this.matchCache.set(topic, found);
    return found;
  }
}
