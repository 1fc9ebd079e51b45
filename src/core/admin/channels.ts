import type { Broker } from '../broker.js';
import type { ChannelRecord, ChannelStats } from './channel-stats.js';
import { AdminError, type PageRequest } from './page.js';
import { compareKeys } from './sorted-keys.js';
import type { ChannelView, DeclaredMessage, InferredChannel, Page } from './views.js';

/** A channel the AsyncAPI documents declare. */
export interface DeclaredChannel {
  /** As written, `user/{userId}/signedup`. */
  address: string;
  messages: DeclaredMessage[];
  /** The documents (files) that declare it. */
  documents: string[];
  /** Whether a subscription filter can receive messages of this channel. */
  overlaps(filter: string): boolean;
}

/** What the AsyncAPI layer tells the admin API about declared channels (asyncapi/admin-channels.ts). */
export interface DeclaredChannels {
  /** Sorted by address. */
  readonly channels: readonly DeclaredChannel[];
  /** The declared channel a topic belongs to. */
  channelOf(topic: string): DeclaredChannel | undefined;
}

export interface ChannelSources {
  declared: () => DeclaredChannels | undefined;
  inferred: (topic: string) => InferredChannel | undefined;
}

/** Clients and groups named in a list item; the detail view names up to DETAIL_NAMES. */
const LIST_NAMES = 10;
const DETAIL_NAMES = 1000;

/**
 * The channels view: the declared channels (AsyncAPI addresses) and every topic seen in traffic,
 * merged into one list ordered by name. Observed topics are indexed as they appear (ChannelStats);
 * the declared ones are few and already sorted, so a page is a merge of two sorted lists from the
 * cursor on, never a sort.
 */
export class ChannelsAdmin {
  constructor(
    private readonly broker: Broker,
    private readonly stats: ChannelStats,
    private readonly sources: ChannelSources,
  ) {}

  channels(request: PageRequest): Page<ChannelView> {
    const declared = this.sources.declared()?.channels ?? [];
    const observed = this.stats.channels;
    const topics = observed.index.keys();
    let d = request.after === undefined ? 0 : upperBoundBy(declared, request.after);
    let o = observed.index.startAfter(request.after);
    const names: string[] = [];
    while (names.length <= request.limit && (d < declared.length || o < topics.length)) {
      const a = declared[d]?.address;
      const b = topics[o];
      if (b === undefined || (a !== undefined && a < b)) {
        names.push(a!);
        d++;
      } else {
        if (a === b) d++;
        names.push(b);
        o++;
      }
    }
    let duplicates = 0;
    for (const channel of declared) if (observed.has(channel.address)) duplicates++;
    const more = names.length > request.limit;
    const page = more ? names.slice(0, request.limit) : names;
    const now = Date.now();
    return {
      items: page.map((name) => this.view(name, now, LIST_NAMES)),
      next: more ? page[page.length - 1]! : null,
      total: declared.length + observed.size - duplicates,
    };
  }

  /** One channel by topic or declared address, naming up to a thousand publishers and receivers. */
  channel(name: string): ChannelView {
    const declared = this.sources.declared();
    if (!this.stats.channels.has(name) && !declared?.channels.some((c) => c.address === name)) {
      throw new AdminError('not-found', `no channel ${JSON.stringify(name)} is declared or was seen in traffic`);
    }
    return this.view(name, Date.now(), DETAIL_NAMES);
  }

  private view(name: string, now: number, names: number): ChannelView {
    const record = this.stats.channels.get(name);
    const declared = this.sources.declared();
    const address = declared?.channels.find((c) => c.address === name);
    const belongs = record ? declared?.channelOf(name) : address;
    const inferred = belongs ? undefined : this.sources.inferred(name);
    return {
      channel: name,
      declared: belongs?.address ?? null,
      observed: record !== undefined,
      messagesIn: record?.messagesIn.total ?? 0,
      messagesOut: record?.messagesOut.total ?? 0,
      bytesIn: record?.bytesIn ?? 0,
      bytesOut: record?.bytesOut ?? 0,
      rateIn: record?.messagesIn.rate(now) ?? 0,
      rateOut: record?.messagesOut.rate(now) ?? 0,
      lastMessageAt: record && record.lastMessageAt > 0 ? new Date(record.lastMessageAt).toISOString() : null,
      ...publishersOf(record, names),
      receivers: record ? this.receiversOfTopic(name, names) : address ? this.receiversOfAddress(address, names) : { count: 0, clients: [], groups: [] },
      schema: belongs ? { declared: belongs.messages } : inferred ? { inferred } : null,
    };
  }

  /** The sessions and groups a message on this topic goes to now (the router's answer, and the ACL's right to receive). */
  private receiversOfTopic(topic: string, names: number): ChannelView['receivers'] {
    const routed = this.broker.router.route(topic, undefined);
    // The ACL is asked directly, not through the admission: a look is not a denied delivery to count.
    const clients = routed.targets.filter((t) => t.session.identity.acl.allowsEverything || t.session.identity.acl.mayReceive(topic)).map((t) => t.session.clientId);
    const groups = routed.groups.map((g) => g.name);
    return { count: clients.length + groups.length, clients: clients.sort(compareKeys).slice(0, names), groups: groups.sort(compareKeys).slice(0, names) };
  }

  /** For a declared address seen in no traffic as such: the subscriptions whose filter can match its topics. */
  private receiversOfAddress(channel: DeclaredChannel, names: number): ChannelView['receivers'] {
    const clients: string[] = [];
    for (const session of this.broker.sessions.values()) {
      for (const filter of session.subscriptions.keys()) {
        if (!filter.startsWith('$share/') && channel.overlaps(filter)) {
          clients.push(session.clientId);
          break;
        }
      }
    }
    const groups = [...this.broker.groups.values()].filter((g) => !g.pinned && channel.overlaps(g.filter)).map((g) => g.name);
    return { count: clients.length + groups.length, clients: clients.sort(compareKeys).slice(0, names), groups: groups.sort(compareKeys).slice(0, names) };
  }
}

function publishersOf(record: ChannelRecord | undefined, names: number): { publishers: string[]; morePublishers: boolean } {
  if (!record) return { publishers: [], morePublishers: false };
  const all = [...record.publishers].sort(compareKeys);
  return { publishers: all.slice(0, names), morePublishers: record.morePublishers || all.length > names };
}

function upperBoundBy(channels: readonly DeclaredChannel[], after: string): number {
  let lo = 0;
  let hi = channels.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (channels[mid]!.address <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
