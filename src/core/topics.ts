/** Topic name and filter rules of MQTT (3.1.1 §4.7, 5.0 §4.7), shared by every front end. */

const MAX_TOPIC_BYTES = 65535;

/** A topic name that a PUBLISH may carry: non-empty, no wildcards, no NUL. */
export function isValidTopicName(topic: string): boolean {
  if (topic.length === 0 || Buffer.byteLength(topic) > MAX_TOPIC_BYTES) return false;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x23 /* # */ || c === 0x2b /* + */ || c === 0) return false;
  }
  return true;
}

/** A topic filter: `+` fills a whole level, `#` only as the whole last level. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || Buffer.byteLength(filter) > MAX_TOPIC_BYTES) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('\u0000')) return false;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return false;
    if (level.includes('+') && level !== '+') return false;
  }
  return true;
}

/** The limits a client's topic names and filters are held to (BrokerLimits has both). */
export interface TopicLimits {
  maxTopicLevels: number;
  maxTopicLength: number;
}

/**
 * Why a client's topic name or filter is beyond the broker's limits, or undefined when it is
 * within them. Deep topics cost routing work per level and are how a client could exhaust the stack.
 */
export function topicOverLimits(topic: string, limits: TopicLimits): string | undefined {
  if (topic.length > limits.maxTopicLength || Buffer.byteLength(topic) > limits.maxTopicLength) {
    return `topic of ${Buffer.byteLength(topic)} bytes is longer than the broker's limit of ${limits.maxTopicLength} (maxTopicLength)`;
  }
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  if (levels > limits.maxTopicLevels) return `topic has ${levels} levels, more than the broker's limit of ${limits.maxTopicLevels} (maxTopicLevels)`;
  return undefined;
}

/**
 * A topic for a log line or reason string: as it is when short and plain, otherwise quoted (so
 * control characters show) and cut short (a hostile topic may be 64 KiB).
 */
export function showTopic(topic: string): string {
  if (topic.length <= 120 && !/[\u0000-\u001f"\u007f]/.test(topic)) return topic;
  return quoteTopic(topic);
}

/** A topic quoted for a reason string about the topic itself (an invalid one), cut short when long. */
export function quoteTopic(topic: string): string {
  return JSON.stringify(topic.length > 120 ? `${topic.slice(0, 120)}…` : topic);
}


export interface SharedFilter {
  group: string;
  filter: string;
}

/**
 * Splits `$share/{group}/{filter}`. Returns undefined for a plain filter and null for a
 * malformed shared one (empty or wildcard group name, missing filter).
 */
export function parseSharedFilter(filter: string): SharedFilter | null | undefined {
  if (!filter.startsWith('$share/')) return undefined;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const group = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (group.includes('+') || group.includes('#') || !isValidTopicFilter(inner)) return null;
  return { group, filter: inner };
}

/**
 * Plain reference matcher: straightforward and slow, used where one topic meets one filter
 * (retained messages on subscribe) and as the oracle for the topic tree's property test.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
