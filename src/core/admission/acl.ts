import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../util/errors.js';
import { isValidTopicFilter, topicMatches } from '../topics.js';
import { filterCovers, filtersOverlap } from './filters.js';

/** `publish`, `subscribe` (the right to receive messages of those topics, through any filter), or both. */
export type AclAction = 'publish' | 'subscribe' | 'all';

/**
 * One rule of the ACL file (YAML, an ordered list; design note "Security files"). The rule applies to
 * the clients its selectors match (all of them must: `user` — `*` for every client —, `role`,
 * `clientId`, `anonymous: true`; none at all matches every client) and to the topics its filters
 * match, `%u` and `%c` standing for the user name and the client id.
 */
export interface AclRule {
  user?: string;
  role?: string;
  clientId?: string;
  anonymous?: boolean;
  allow?: AclAction[];
  deny?: AclAction[];
  topics: string[];
}

/** Who a rule is matched against. */
export interface AclSubject {
  user: string | undefined;
  roles: readonly string[];
  clientId: string;
}

/** One rule compiled for one client: a filter with `%u`/`%c` replaced, and what it decides for which action. */
export interface AclEntry {
  filter: string;
  allow: boolean;
  publish: boolean;
  subscribe: boolean;
  /**
   * A subscription this entry refuses is answered 0x80 (unspecified), not 0x87: the `--deny-subscribe`
   * rules, which do not say why (MQTT 5 §3.9.3), as Paho's interoperability suite expects.
   */
  quiet?: boolean;
}

/** How a subscription filter fares against a client's ACL. */
export type SubscribeDecision = 'granted' | 'denied' | 'denied-quietly';

const RULE_KEYS = new Set(['user', 'role', 'clientId', 'anonymous', 'allow', 'deny', 'topics']);
const ACTIONS = new Set(['publish', 'subscribe', 'all']);

/** Reads and checks an ACL file; every mistake is a ConfigError naming the rule. */
export function loadAclFile(file: string): AclRule[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ACL file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`ACL file ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseAcl(raw ?? [], file);
}

/** Checks rules given as data (the ACL file, or a JWT's `acl` claim). */
export function parseAcl(raw: unknown, source: string): AclRule[] {
  if (!Array.isArray(raw)) throw new ConfigError(`${source}: the ACL must be a list of rules`);
  return raw.map((rule, i) => parseRule(rule, `${source}: rule ${i + 1}`));
}

function parseRule(raw: unknown, where: string): AclRule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${where} must be a mapping`);
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!RULE_KEYS.has(key)) throw new ConfigError(`${where}: unknown key "${key}" (known: ${[...RULE_KEYS].join(', ')})`);
  for (const key of ['user', 'role', 'clientId'] as const) {
    if (r[key] !== undefined && (typeof r[key] !== 'string' || r[key] === '')) throw new ConfigError(`${where}: ${key} must be a non-empty string`);
  }
  if (r.anonymous !== undefined && r.anonymous !== true) throw new ConfigError(`${where}: anonymous can only be true`);
  if ((r.allow === undefined) === (r.deny === undefined)) throw new ConfigError(`${where}: give exactly one of allow and deny`);
  const actions = (r.allow ?? r.deny) as unknown;
  if (!Array.isArray(actions) || actions.length === 0 || actions.some((a) => typeof a !== 'string' || !ACTIONS.has(a))) {
    throw new ConfigError(`${where}: ${r.allow !== undefined ? 'allow' : 'deny'} must list publish, subscribe or all`);
  }
  if (!Array.isArray(r.topics) || r.topics.length === 0 || r.topics.some((t) => typeof t !== 'string')) throw new ConfigError(`${where}: topics must be a list of topic filters`);
  for (const topic of r.topics as string[]) {
    // `%u`/`%c` stand for whole levels' worth of text; the filter must be valid with them filled in.
    if (!isValidTopicFilter(topic.replace(/%[uc]/g, 'x'))) throw new ConfigError(`${where}: ${JSON.stringify(topic)} is not a valid topic filter`);
  }
  const rule: AclRule = { topics: r.topics as string[] };
  if (r.user !== undefined) rule.user = r.user as string;
  if (r.role !== undefined) rule.role = r.role as string;
  if (r.clientId !== undefined) rule.clientId = r.clientId as string;
  if (r.anonymous) rule.anonymous = true;
  if (r.allow !== undefined) rule.allow = r.allow as AclAction[];
  else rule.deny = r.deny as AclAction[];
  return rule;
}

function selects(rule: AclRule, who: AclSubject): boolean {
  if (rule.user !== undefined && rule.user !== '*' && rule.user !== who.user) return false;
  if (rule.role !== undefined && !who.roles.includes(rule.role)) return false;
  if (rule.clientId !== undefined && rule.clientId !== who.clientId) return false;
  if (rule.anonymous && who.user !== undefined) return false;
  return true;
}

/** A value that may stand in a filter: not empty, and no `/`, `+` or `#` (which would widen the rule). */
function substitutable(value: string | undefined): value is string {
  return value !== undefined && value.length > 0 && !/[/+#\u0000]/.test(value);
}

/**
 * The entries of `rules` that apply to one client, in order, with `%u`/`%c` filled in. A filter that
 * names `%u` does not apply to a client without a user name, and neither `%u` nor `%c` applies when
 * the name holds `/`, `+` or `#`: a user called `#` must not get `fridge/#/…` for `fridge/%u/…`.
 */
export function compileFor(rules: readonly AclRule[], who: AclSubject): AclEntry[] {
  const entries: AclEntry[] = [];
  for (const rule of rules) {
    if (!selects(rule, who)) continue;
    const actions = rule.allow ?? rule.deny!;
    const all = actions.includes('all');
    for (const topic of rule.topics) {
      if (topic.includes('%u') && !substitutable(who.user)) continue;
      if (topic.includes('%c') && !substitutable(who.clientId)) continue;
      const filter = topic.replace(/%u/g, who.user ?? '').replace(/%c/g, who.clientId);
      entries.push({ filter, allow: rule.allow !== undefined, publish: all || actions.includes('publish'), subscribe: all || actions.includes('subscribe') });
    }
  }
  return entries;
}

/**
 * Decisions kept per compiled ACL; beyond it the cache starts over (topics repeat far more often
 * than they are new). Clients with the same rules share one ClientAcl (see Admission.compile), so
 * this is per distinct rule set, not per connection.
 */
const DECISION_CACHE = 1024;

/**
 * What one client may do, decided by its compiled entries: the first entry for the action whose
 * filter matches the topic decides; none matching gives `fallback`. A JWT's `acl` claim narrows it
 * (`narrowedBy`): both must allow. Decisions per topic are cached, so the check on the delivery
 * path is a map lookup.
 */
export class ClientAcl {
  private readonly receiveCache = new Map<string, boolean>();
  private readonly publishCache = new Map<string, boolean>();

  constructor(
    private readonly entries: readonly AclEntry[],
    private readonly fallback: boolean,
    private readonly narrowedBy?: ClientAcl,
  ) {}

  /** True when no entry and no narrowing can refuse anything: checks can be skipped. */
  get allowsEverything(): boolean {
    return this.fallback && !this.narrowedBy && this.entries.every((e) => e.allow);
  }

  mayPublish(topic: string): boolean {
    return this.cached(this.publishCache, topic, 'publish');
  }

  /** The right to receive a message of this topic, through any subscription. */
  mayReceive(topic: string): boolean {
    return this.cached(this.receiveCache, topic, 'subscribe');
  }

  /**
   * Whether a subscription with this filter can deliver anything at all: refused when an entry that
   * denies covers the whole filter before anything allowed overlaps it, or when nothing allowed
   * overlaps it. A filter that overlaps denied topics is granted; those messages are filtered out
   * at delivery, which is the decision that counts.
   */
  subscription(filter: string): SubscribeDecision {
    const here = this.subscriptionHere(filter);
    if (here !== 'granted') return here;
    return this.narrowedBy?.subscription(filter) ?? 'granted';
  }

  private subscriptionHere(filter: string): SubscribeDecision {
    let someAllowed = false;
    for (const entry of this.entries) {
      if (!entry.subscribe) continue;
      if (filterCovers(entry.filter, filter)) {
        if (entry.allow || someAllowed) return 'granted';
        return entry.quiet ? 'denied-quietly' : 'denied';
      }
      if (entry.allow && filtersOverlap(entry.filter, filter)) someAllowed = true;
    }
    return someAllowed || this.fallback ? 'granted' : 'denied';
  }

  private cached(cache: Map<string, boolean>, topic: string, action: 'publish' | 'subscribe'): boolean {
    const known = cache.get(topic);
    if (known !== undefined) return known;
    const decision = this.decide(topic, action) && (this.narrowedBy ? (action === 'publish' ? this.narrowedBy.mayPublish(topic) : this.narrowedBy.mayReceive(topic)) : true);
    if (cache.size >= DECISION_CACHE) cache.clear();
    cache.set(topic, decision);
    return decision;
  }

  private decide(topic: string, action: 'publish' | 'subscribe'): boolean {
    for (const entry of this.entries) {
      if (!entry[action]) continue;
      if (topicMatches(entry.filter, topic)) return entry.allow;
    }
    return this.fallback;
  }
}
