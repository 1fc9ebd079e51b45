import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { topicMatches } from '../src/core/topics.js';
import {
  SubjectMappingError,
  clientIdOfKey,
  clientKey,
  filterSubjects,
  messageSubject,
  streamSubjects,
  topicKey,
  topicKeyFilters,
  topicOfKey,
  topicOfMessageSubject,
} from '../src/storage/jetstream/subjects.js';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/**
 * The MQTT topic ↔ NATS subject mapping as properties: it is reversible, it writes only valid NATS
 * subjects and KV keys, and the mapped filter subjects match exactly the topics the broker's own
 * MQTT matcher (src/core/topics.ts) matches — checked against a small NATS matcher written from the
 * NATS subject rules, and against a real nats-server.
 */

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. Written from the NATS docs. */
function natsMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== '*' && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

/** A publishable NATS subject: non-empty tokens, no wildcard characters at all, no whitespace or controls. */
function isLiteralSubject(subject: string): boolean {
  return subject.split('.').every((t) => t.length > 0 && !/[*>\s\u0000-\u001f\u007f]/u.test(t));
}

/** A subscribable NATS subject: `*` and `>` only as whole tokens, `>` only last. */
function isFilterSubject(subject: string): boolean {
  const tokens = subject.split('.');
  return tokens.every((t, i) => {
    if (t === '*') return true;
    if (t === '>') return i === tokens.length - 1;
    return t.length > 0 && !/[*>\s\u0000-\u001f\u007f]/u.test(t);
  });
}

/** What the KV client accepts as a key (its validKeyRe), and as a key filter. */
const isKvKey = (k: string): boolean => /^[-/=.\w]+$/.test(k) && !k.startsWith('.') && !k.endsWith('.');
const isKvKeyFilter = (k: string): boolean => /^[-/=.>*\w]+$/.test(k) && !k.startsWith('.') && !k.endsWith('.') && !k.includes('..');

/** The characters that stress the mapping, mixed with ordinary ones and full-range Unicode. */
const TRICKY = ['.', '*', '>', ' ', '%', '=', '$', '\t', '\n', '\u0000', '\u007f', '\u00a0', '\u3000', '\u2028', 'é', '日', '😀', '%2E', '=2E', '_', '-', 'a', 'Z', '9'];
const trickyChar = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
);
/** A topic level: any text without `/`, `+`, `#` (which a topic name cannot hold), possibly empty. */
const level = fc
  .array(trickyChar, { maxLength: 6 })
  .map((parts) => parts.join('').replace(/[/+#]/g, ''));
const topic = fc
  .array(level, { minLength: 1, maxLength: 6 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0);

/** A small universe of levels, so random filters and topics actually match each other often. */
const SMALL_LEVELS = ['a', 'b', '', '$SYS', '$x', '.', '*', '>', ' ', '%', 'é'];
const smallTopic = fc
  .array(fc.constantFrom(...SMALL_LEVELS), { minLength: 1, maxLength: 4 })
  .map((ls) => ls.join('/'))
  .filter((t) => t.length > 0);
const smallFilter = fc
  .tuple(fc.array(fc.constantFrom(...SMALL_LEVELS, '+'), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([ls, hash]) => (hash ? [...ls, '#'] : ls).join('/'))
  .chain((f) => fc.constantFrom(f, '#', '+', `${f}/#`.replace(/#\/#$/, '#')))
  .filter((f) => f.length > 0 && !/#./.test(f));

const RUNS = { numRuns: 2000 };

describe('topic ↔ subject mapping', () => {
  test('decode(encode(topic)) is the topic, for message subjects and KV keys', () => {
    fc.assert(
      fc.property(topic, (t) => {
        assert.equal(topicOfMessageSubject(messageSubject(t)), t);
        assert.equal(topicOfKey(topicKey(t)), t);
        assert.equal(topicOfMessageSubject(messageSubject(t, 'x.y'), 'x.y'), t);
      }),
      RUNS,
    );
  });

  test('client identifiers round-trip through one KV key token, the empty one included', () => {
    fc.assert(
      fc.property(fc.oneof(level, fc.string({ unit: 'binary' }), fc.constant('')), (id) => {
        const key = clientKey(id);
        assert.ok(isKvKey(key) && !key.includes('.'), key);
        assert.equal(clientIdOfKey(key), id);
      }),
      RUNS,
    );
  });

  test('encoded topics are valid literal NATS subjects and valid KV keys, inside the stream subjects', () => {
    fc.assert(
      fc.property(topic, (t) => {
        const subject = messageSubject(t);
        assert.ok(isLiteralSubject(subject), `not a literal subject: ${JSON.stringify(subject)}`);
        assert.ok(!subject.startsWith('$'), 'Eddy subjects stay clear of $JS/$KV/$SYS');
        assert.equal(subject.split('.').length, t.split('/').length + 2, 'one token per level');
        assert.ok(streamSubjects().some((s) => natsMatches(s, subject)));
        assert.ok(isKvKey(topicKey(t)), `not a KV key: ${JSON.stringify(topicKey(t))}`);
      }),
      RUNS,
    );
  });

  test('different topics never share a subject or a key', () => {
    fc.assert(
      fc.property(topic, topic, (a, b) => {
        fc.pre(a !== b);
        assert.notEqual(messageSubject(a), messageSubject(b));
        assert.notEqual(topicKey(a), topicKey(b));
      }),
      RUNS,
    );
  });

  test('MQTT filter matching agrees with NATS matching of the mapped filter subjects and key filters', () => {
    fc.assert(
      fc.property(smallFilter, smallTopic, (f, t) => {
        const subjects = filterSubjects(f);
        const keys = topicKeyFilters(f);
        for (const s of subjects) assert.ok(isFilterSubject(s), `bad filter subject ${JSON.stringify(s)}`);
        for (const k of keys) assert.ok(isKvKeyFilter(k), `bad key filter ${JSON.stringify(k)}`);
        const expected = topicMatches(f, t);
        assert.equal(subjects.some((s) => natsMatches(s, messageSubject(t))), expected, `filter ${JSON.stringify(f)} topic ${JSON.stringify(t)} via ${subjects}`);
        assert.equal(keys.some((k) => natsMatches(k, topicKey(t))), expected, `key filter ${keys} topic ${JSON.stringify(t)}`);
      }),
      { numRuns: 5000 },
    );
  });

  test('the table in docs/cluster.md', () => {
    assert.equal(messageSubject('sensors/kitchen/temp'), 'eddy.m.sensors.kitchen.temp');
    assert.equal(messageSubject('a//b'), 'eddy.m.a.%.b');
    assert.equal(messageSubject('/a'), 'eddy.m.%.a');
    assert.equal(messageSubject('a/'), 'eddy.m.a.%');
    assert.equal(messageSubject('v1.2/x*y/>'), 'eddy.m.v1%2E2.x%2Ay.%3E');
    assert.equal(messageSubject('100%/a b'), 'eddy.m.100%25.a%20b');
    assert.equal(messageSubject('café/日本'), 'eddy.m.café.日本');
    assert.equal(messageSubject('$SYS/broker/uptime'), 'eddy.s.$SYS.broker.uptime');
    assert.equal(messageSubject('$DLQ/orders'), 'eddy.s.$DLQ.orders');
    assert.equal(messageSubject('a/$b'), 'eddy.m.a.$b');
    assert.deepEqual(filterSubjects('#'), ['eddy.m.>']);
    assert.deepEqual(filterSubjects('+/temp'), ['eddy.m.*.temp']);
    assert.deepEqual(filterSubjects('sensors/#'), ['eddy.m.sensors', 'eddy.m.sensors.>']);
    assert.deepEqual(filterSubjects('$SYS/#'), ['eddy.s.$SYS', 'eddy.s.$SYS.>']);
    assert.deepEqual(streamSubjects(), ['eddy.m.>', 'eddy.s.>']);
    assert.equal(topicKey('sensors/kitchen/temp'), 'm.sensors.kitchen.temp');
    assert.equal(topicKey('a//b.c'), 'm.a.=.b=2Ec');
    assert.equal(topicKey('café'), 'm.caf=C3=A9');
    assert.equal(topicKey('$SYS/x'), 's.=24SYS.x');
    assert.deepEqual(topicKeyFilters('a/+/#'), ['m.a.*', 'm.a.*.>']);
    assert.deepEqual(filterSubjects('a/+/#'), ['eddy.m.a.*', 'eddy.m.a.*.>']);
    assert.deepEqual(['/a', 'a/', 'v1.2/x*y/>', '100%/a b', 'café/日本', '$DLQ/orders', 'a/$b'].map(topicKey), [
      'm.=.a',
      'm.a.=',
      'm.v1=2E2.x=2Ay.=3E',
      'm.100=25.a=20b',
      'm.caf=C3=A9.=E6=97=A5=E6=9C=AC',
      's.=24DLQ.orders',
      'm.a.=24b',
    ]);
    assert.equal(clientKey(''), '=');
    assert.equal(clientKey('sensor-1'), 'sensor-1');
  });

  test('subjects and keys this mapping did not write are refused with a typed error', () => {
    const refused = (f: () => unknown, code: SubjectMappingError['code']): void => {
      assert.throws(f, (err: unknown) => err instanceof SubjectMappingError && err.code === code);
    };
    refused(() => topicOfMessageSubject('other.m.a'), 'not-an-eddy-subject');
    refused(() => topicOfMessageSubject('eddy.x.a'), 'not-an-eddy-subject');
    refused(() => topicOfMessageSubject('eddy.m'), 'not-an-eddy-subject');
    refused(() => topicOfMessageSubject('eddy.m.$SYS'), 'not-an-eddy-subject'); // a $ topic in the ordinary space
    refused(() => topicOfMessageSubject('eddy.s.SYS'), 'not-an-eddy-subject');
    refused(() => topicOfMessageSubject('eddy.m.%61'), 'bad-escape'); // 'a' escaped: not canonical
    refused(() => topicOfMessageSubject('eddy.m.%2'), 'bad-escape');
    refused(() => topicOfMessageSubject('eddy.m.%FF'), 'bad-escape'); // not UTF-8
    refused(() => topicOfKey('m.a b'), 'bad-escape');
    refused(() => messageSubject(''), 'invalid-topic');
    refused(() => messageSubject('a/+'), 'invalid-topic');
    refused(() => messageSubject('a\ud800'), 'invalid-topic');
    refused(() => filterSubjects('a/#/b'), 'invalid-filter');
    refused(() => filterSubjects('a+/b'), 'invalid-filter');
    refused(() => messageSubject('a', 'bad root'), 'invalid-root');
  });
});

describe('topic ↔ subject mapping on a real nats-server', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  before(async () => {
    cluster = await startNatsCluster();
    nc = await connect({ servers: cluster.urls[0] });
  });
  after(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  test('a subscription on the mapped filter subjects receives exactly the topics the MQTT filter matches', async () => {
    const filters = fc.sample(smallFilter, { numRuns: 40, seed: 12 });
    const topics = [...new Set(fc.sample(smallTopic, { numRuns: 80, seed: 34 }))];
    const received = new Map<string, Set<string>>();
    const marker = `eddy-test.marker.${Date.now()}`;
    const done: Promise<void>[] = [];
    for (const f of new Set(filters)) {
      const got = new Set<string>();
      received.set(f, got);
      // Callback subscriptions run in the order the connection receives messages, and core NATS
      // delivers one connection's publishes in order: once the marker's callback runs, every
      // earlier publish this filter matches has been counted.
      done.push(
        new Promise<void>((resolve, reject) => {
          const subs = filterSubjects(f).map((s) =>
            nc.subscribe(s, {
              callback: (err, m) => {
                if (err) return reject(err);
                try {
                  const t = topicOfMessageSubject(m.subject);
                  if (got.has(t)) throw new Error(`filter ${f}: ${t} delivered twice`);
                  got.add(t);
                } catch (e) {
                  reject(e);
                }
              },
            }),
          );
          const markerSub = nc.subscribe(marker, {
            callback: (err) => {
              for (const sub of [...subs, markerSub]) sub.unsubscribe();
              if (err) reject(err);
              else resolve();
            },
          });
        }),
      );
    }
    await nc.flush();
    for (const t of topics) nc.publish(messageSubject(t), t);
    nc.publish(marker, '');
    await Promise.all(done);
    for (const [f, got] of received) {
      const expected = topics.filter((t) => topicMatches(f, t)).sort();
      assert.deepEqual([...got].sort(), expected, `filter ${JSON.stringify(f)}`);
    }
  });
});
