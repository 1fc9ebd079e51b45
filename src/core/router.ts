import { TopicTree } from './topic-tree.js';
import type { Session } from './session.js';
import type { SubscriptionOptions } from '../storage/types.js';
import type { QoS } from './message.js';

interface DirectRoute {
  kind: 'direct';
  session: Session;
  options: SubscriptionOptions;
}

/** `$share/{group}/{filter}`: one route in the tree, many members behind it. */
interface GroupRoute {
  kind: 'group';
  key: string;
  members: Map<Session, SubscriptionOptions>;
  /** Round-robin position, so members share the load in turn. */
  cursor: number;
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
    return this.direct.size + [...this.groups.values()].reduce((n, g) => n + g.members.size, 0);
  }

  add(session: Session, filter: string, options: SubscriptionOptions, group?: string): void {
    if (group === undefined) {
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
      return;
    }
    const key = `${group}\u0000${filter}`;
    let route = this.groups.get(key);
    if (!route) {
      route = { kind: 'group', key, members: new Map(), cursor: 0 };
      this.groups.set(key, route);
      this.tree.add(filter, route);
      this.matchCache.clear();
    }
    route.members.set(session, options);
  }

  remove(session: Session, filter: string, group?: string): boolean {
    if (group === undefined) {
      const key = `${session.clientId}\u0000${filter}`;
      const route = this.direct.get(key);
      if (!route) return false;
      this.direct.delete(key);
      this.tree.remove(filter, route);
      this.matchCache.clear();
      return true;
    }
    const key = `${group}\u0000${filter}`;
    const route = this.groups.get(key);
    if (!route || !route.members.delete(session)) return false;
    if (route.members.size === 0) {
      this.groups.delete(key);
      this.tree.remove(filter, route);
      this.matchCache.clear();
    }
    return true;
  }

  /**
   * The targets for one published message: at most one per session for its non-shared
   * subscriptions, plus one per matching shared group (MQTT 5 §4.8.2: a group's copy is separate
   * from a member's own non-shared subscriptions, so one client may get both).
   */
  route(topic: string, origin: string | undefined): Target[] {
    const targets: Target[] = [];
    let shared: Target[] | undefined;
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
      if (route.kind === 'direct') {
        if (route.options.noLocal && origin !== undefined && route.session.clientId === origin) continue;
        merge(route.session, route.options);
        continue;
      }
      const member = this.pickMember(route);
      if (!member) continue;
      const [session, options] = member;
      const subscriptionIds = options.subscriptionId === undefined ? undefined : [options.subscriptionId];
      (shared ??= []).push({ session, qos: options.qos, retainAsPublished: options.retainAsPublished, subscriptionIds });
    }
    return shared ? targets.concat(shared) : targets;
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

  /** Next connected member in turn; when none is connected, the next member in turn queues it. */
  private pickMember(route: GroupRoute): [Session, SubscriptionOptions] | undefined {
    const members = [...route.members];
    if (members.length === 0) return undefined;
    for (let i = 0; i < members.length; i++) {
      const candidate = members[(route.cursor + i) % members.length]!;
      if (candidate[0].connected) {
        route.cursor = (route.cursor + i + 1) % members.length;
        return candidate;
      }
    }
    const fallback = members[route.cursor % members.length]!;
    route.cursor = (route.cursor + 1) % members.length;
    return fallback;
  }
}
