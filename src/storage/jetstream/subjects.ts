/**
 * MQTT topic ↔ NATS subject mapping for the JetStream store (docs/cluster.md, "Subject mapping").
 *
 * MQTT separates levels with `/` and allows any UTF-8 in a level, including nothing (`a//b`, `/a`).
 * NATS separates tokens with `.`; a token may not be empty, `*` and `>` are wildcards, and whitespace
 * ends a subject on the wire. So every MQTT level becomes exactly one NATS token, escaped so that the
 * mapping is reversible and a literal level can never read as a wildcard:
 *
 *  - message subjects (the message stream): UTF-8 bytes of `%`, `.`, `*`, `>`, C0 controls, space,
 *    DEL and any Unicode whitespace become `%HH`; every other character stays as it is (readable in
 *    `nats` tooling). An empty level is the token `%` alone (no escape is a lone `%`).
 *  - KV keys (retained, sessions): the KV client only allows `[-/=.\w]` in keys, so only
 *    `[A-Za-z0-9_-]` stay; every other character's UTF-8 bytes become `=HH`; an empty level is `=`.
 *
 * Topics starting with `$` (`$SYS`, `$DLQ`) live in their own subject space (`<root>.s.` beside
 * `<root>.m.`): MQTT's `#` and `+` at the root must not match them, and NATS's `>` would. The root
 * prefix keeps every Eddy subject clear of NATS's own `$JS.`, `$KV.`, `$SYS.` subjects.
 *
 * Shared-subscription filters (`$share/group/filter`) are not topics: callers strip the `$share/group/`
 * part before mapping the filter.
 */

export type SubjectMappingErrorCode = 'invalid-topic' | 'invalid-filter' | 'invalid-root' | 'not-an-eddy-subject' | 'bad-escape';

export class SubjectMappingError extends Error {
  override readonly name = 'SubjectMappingError';
  constructor(
    readonly code: SubjectMappingErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The default root token of Eddy's subjects: messages on `eddy.m.…`, `$` topics on `eddy.s.…`. */
export const DEFAULT_SUBJECT_ROOT = 'eddy';

/** The subject space of ordinary topics, and of topics whose first level starts with `$`. */
const ORDINARY = 'm';
const SYSTEM = 's';

/** One escaping alphabet: which characters stay literal, the escape character, the empty-level token. */
interface TokenAlphabet {
  /** Matches a level that needs no escaping at all (the fast path). */
  plain: RegExp;
  /** Whether one character (a whole code point) stays literal. */
  literal(ch: string): boolean;
  escape: '%' | '=';
}

/** Characters that end or split a NATS subject, or that are wildcards, plus the escape itself. */
function subjectLiteral(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  if (c <= 0x20 || c === 0x7f) return false;
  if (ch === '%' || ch === '.' || ch === '*' || ch === '>') return false;
  return !/\s/u.test(ch);
}

const SUBJECT_TOKENS: TokenAlphabet = {
  // No `%`, `.`, `*`, `>`, no C0/space/DEL, no Unicode whitespace; at least one character.
  plain: /^[^%.*>\s\u0000-\u0020\u007f]+$/u,
  literal: subjectLiteral,
  escape: '%',
};

const KEY_TOKENS: TokenAlphabet = {
  plain: /^[A-Za-z0-9_-]+$/,
  literal: (ch) => /^[A-Za-z0-9_-]$/.test(ch),
  escape: '=',
};

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const HEX = '0123456789ABCDEF';

function encodeToken(level: string, alphabet: TokenAlphabet): string {
  if (level === '') return alphabet.escape;
  if (alphabet.plain.test(level)) return level;
  let out = '';
  for (const ch of level) {
    if (alphabet.literal(ch)) {
      out += ch;
      continue;
    }
    for (const byte of utf8.encode(ch)) out += alphabet.escape + HEX[byte >> 4] + HEX[byte & 15];
  }
  return out;
}

function decodeToken(token: string, alphabet: TokenAlphabet): string {
  if (token === alphabet.escape) return '';
  if (!token.includes(alphabet.escape)) {
    if (!alphabet.plain.test(token)) throw new SubjectMappingError('bad-escape', `token ${JSON.stringify(token)} holds a character that must be escaped`);
    return token;
  }
  let out = '';
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length === 0) return;
    try {
      out += strictUtf8.decode(new Uint8Array(bytes));
    } catch {
      throw new SubjectMappingError('bad-escape', `token ${JSON.stringify(token)} escapes bytes that are not UTF-8`);
    }
    bytes = [];
  };
  for (let i = 0; i < token.length; ) {
    if (token[i] === alphabet.escape) {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new SubjectMappingError('bad-escape', `token ${JSON.stringify(token)} has a malformed escape at ${i}`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      flush();
      const ch = String.fromCodePoint(token.codePointAt(i)!);
      out += ch;
      i += ch.length;
    }
  }
  flush();
  // One topic, one subject: a token that escapes what need not be escaped (or the reverse) is not
  // one this mapping wrote, and accepting it would let two subjects name the same topic.
  if (encodeToken(out, alphabet) !== token) throw new SubjectMappingError('bad-escape', `token ${JSON.stringify(token)} is not in canonical form`);
  return out;
}

/** One MQTT level as one NATS subject token. */
export const encodeSubjectToken = (level: string): string => encodeToken(level, SUBJECT_TOKENS);
export const decodeSubjectToken = (token: string): string => decodeToken(token, SUBJECT_TOKENS);
/** One MQTT level (or a client identifier) as one KV key token. */
export const encodeKeyToken = (level: string): string => encodeToken(level, KEY_TOKENS);
export const decodeKeyToken = (token: string): string => decodeToken(token, KEY_TOKENS);

function checkRoot(root: string): void {
  if (root === '' || root.split('.').some((t) => t === '' || !/^[A-Za-z0-9_-]+$/.test(t))) {
    throw new SubjectMappingError('invalid-root', `subject root ${JSON.stringify(root)} must be dot-separated tokens of [A-Za-z0-9_-]`);
  }
}

function checkTopic(topic: string): void {
  if (topic === '') throw new SubjectMappingError('invalid-topic', 'an MQTT topic name is at least one character');
  // MQTT strings are well-formed UTF-8 [MQTT-1.5.4-1]; a lone surrogate has no UTF-8 form to escape.
  if (/\p{Surrogate}/u.test(topic)) throw new SubjectMappingError('invalid-topic', 'topic name is not well-formed UTF-16 (a lone surrogate)');
  if (topic.includes('+') || topic.includes('#')) throw new SubjectMappingError('invalid-topic', `topic name ${JSON.stringify(topic)} holds a wildcard`);
}

function spaceOf(firstLevel: string): string {
  return firstLevel.startsWith('$') ? SYSTEM : ORDINARY;
}

function topicTokens(topic: string, alphabet: TokenAlphabet): string[] {
  checkTopic(topic);
  const levels = topic.split('/');
  return [spaceOf(levels[0]!), ...levels.map((l) => encodeToken(l, alphabet))];
}

/**
 * The NATS subjects (one, or two for a trailing `#` below a level) that together match exactly the
 * topics the MQTT filter matches. `a/#` matches `a` itself as well as everything below it, and NATS's
 * `a.>` needs at least one more token, so it maps to both `a` and `a.>`.
 */
function filterTokenLists(filter: string, alphabet: TokenAlphabet): string[][] {
  if (filter === '') throw new SubjectMappingError('invalid-filter', 'an MQTT topic filter is at least one character');
  const levels = filter.split('/');
  const tokens: string[] = [];
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '+') tokens.push('*');
    else if (level === '#') {
      if (i !== levels.length - 1) throw new SubjectMappingError('invalid-filter', `filter ${JSON.stringify(filter)}: # must be the last level`);
      tokens.push('>');
    } else if (level.includes('+') || level.includes('#')) {
      throw new SubjectMappingError('invalid-filter', `filter ${JSON.stringify(filter)}: a wildcard must be a whole level`);
    } else tokens.push(encodeToken(level, alphabet));
  }
  // A wildcard first level never matches `$` topics (MQTT 4.7.2), so it stays in the ordinary space.
  const first = levels[0]!;
  const space = first === '+' || first === '#' ? ORDINARY : spaceOf(first);
  const subject = [space, ...tokens];
  if (levels.length > 1 && levels[levels.length - 1] === '#') return [subject.slice(0, -1), subject];
  return [subject];
}

function decodeTokens(tokens: string[], alphabet: TokenAlphabet, what: string): string {
  const [space, ...rest] = tokens;
  if ((space !== ORDINARY && space !== SYSTEM) || rest.length === 0) {
    throw new SubjectMappingError('not-an-eddy-subject', `${what} is not an Eddy topic ${space === undefined ? '' : `(space ${JSON.stringify(space)})`}`);
  }
  const topic = rest.map((t) => decodeToken(t, alphabet)).join('/');
  if (spaceOf(topic) !== space) throw new SubjectMappingError('not-an-eddy-subject', `${what}: topic ${JSON.stringify(topic)} is in the wrong subject space`);
  return topic;
}

/** The subject a message on `topic` is stored under: `eddy.m.<levels>` or `eddy.s.<levels>` for `$` topics. */
export function messageSubject(topic: string, root: string = DEFAULT_SUBJECT_ROOT): string {
  checkRoot(root);
  return `${root}.${topicTokens(topic, SUBJECT_TOKENS).join('.')}`;
}

/** The topic a message subject names; throws SubjectMappingError for a subject this mapping did not write. */
export function topicOfMessageSubject(subject: string, root: string = DEFAULT_SUBJECT_ROOT): string {
  checkRoot(root);
  if (!subject.startsWith(`${root}.`)) throw new SubjectMappingError('not-an-eddy-subject', `subject ${JSON.stringify(subject)} is not under ${root}.`);
  return decodeTokens(subject.slice(root.length + 1).split('.'), SUBJECT_TOKENS, `subject ${JSON.stringify(subject)}`);
}

/** The NATS filter subjects (1 or 2) that match exactly the topics the MQTT filter matches. */
export function filterSubjects(filter: string, root: string = DEFAULT_SUBJECT_ROOT): string[] {
  checkRoot(root);
  return filterTokenLists(filter, SUBJECT_TOKENS).map((t) => `${root}.${t.join('.')}`);
}

/** The subjects the message stream captures: every ordinary and every `$` topic under the root. */
export function streamSubjects(root: string = DEFAULT_SUBJECT_ROOT): string[] {
  checkRoot(root);
  return [`${root}.${ORDINARY}.>`, `${root}.${SYSTEM}.>`];
}

/** The KV key for a topic (the retained bucket): `m.<levels>` or `s.<levels>`, levels in the key alphabet. */
export function topicKey(topic: string): string {
  return topicTokens(topic, KEY_TOKENS).join('.');
}

export function topicOfKey(key: string): string {
  return decodeTokens(key.split('.'), KEY_TOKENS, `key ${JSON.stringify(key)}`);
}

/** KV key filters (for `keys()`/`watch()`) matching exactly the topics the MQTT filter matches. */
export function topicKeyFilters(filter: string): string[] {
  return filterTokenLists(filter, KEY_TOKENS).map((t) => t.join('.'));
}

/** The KV key for a client identifier (the sessions bucket): one token, so any identifier, even empty, fits. */
export function clientKey(clientId: string): string {
  return encodeKeyToken(clientId);
}

export function clientIdOfKey(key: string): string {
  return decodeKeyToken(key);
}
