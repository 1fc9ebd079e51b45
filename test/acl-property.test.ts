import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import type { AclAction, AclRule } from '../src/core/admission/index.js';
import { startBroker } from './helpers/broker.js';
import { aclFile, passwordFile } from './helpers/auth.js';
import { RawClient } from './helpers/raw-client.js';
import { isPublish } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';

/**
 * Authorization as a property: for random ACLs, subscription filters and topics, a message reaches
 * a subscriber exactly when one of its granted filters matches the topic and a plain reference
 * reading of the ACL (first rule that selects the client and matches the topic decides; none: deny)
 * says the subscriber may receive it. A filter the broker refuses (0x87) must match nothing the
 * reference allows. The reference below shares no code with src/core/admission.
 */

const LEVELS = ['a', 'b', 'u1'];
const TOPICS = ['a', 'b', 'a/a', 'a/b', 'b/a', 'b/b', 'a/u1', 'u1/a', 'a/a/a', 'a/b/u1'];

/** Naive MQTT matching (no `$` topics in this universe). */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

interface Subject {
  user: string;
  roles: string[];
}

function referenceMayReceive(rules: AclRule[], who: Subject, topic: string): boolean {
  for (const rule of rules) {
    if (rule.user !== undefined && rule.user !== '*' && rule.user !== who.user) continue;
    if (rule.role !== undefined && !who.roles.includes(rule.role)) continue;
    if (rule.anonymous) continue; // the subject is authenticated
    const actions = (rule.allow ?? rule.deny)!;
    if (!actions.includes('subscribe') && !actions.includes('all')) continue;
    if (!rule.topics.some((f) => matches(f.replace(/%u/g, who.user), topic))) continue;
    return rule.allow !== undefined;
  }
  return false;
}

const level = fc.constantFrom(...LEVELS, '+', '%u');
const filterArb = fc
  .tuple(fc.array(level, { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => !/(^|\/)#\//.test(f));
const ruleArb: fc.Arbitrary<AclRule> = fc
  .record({
    who: fc.constantFrom<Partial<AclRule>>({ user: 'u1' }, { user: 'u2' }, { user: '*' }, { role: 'r1' }, { role: 'r2' }, { anonymous: true }),
    allow: fc.boolean(),
    actions: fc.constantFrom<AclAction[]>(['subscribe'], ['publish'], ['all'], ['publish', 'subscribe']),
    topics: fc.array(filterArb, { minLength: 1, maxLength: 2 }),
  })
  .map(({ who, allow, actions, topics }) => ({ ...who, ...(allow ? { allow: actions } : { deny: actions }), topics }) as AclRule);
const subscriptionArb = fc.array(filterArb.map((f) => f.replace(/%u/g, 'u1')), { minLength: 1, maxLength: 3 });

const tempDir = tempDirs('eddy-acl-prop-');
/** Always first: the admin publishes everything, and everyone receives the marker. */
const FIXED: AclRule[] = [
  { user: 'admin', allow: ['all'], topics: ['#'] },
  { user: '*', allow: ['subscribe'], topics: ['marker/#'] },
];

describe('ACL property: delivered exactly when the reference says the subscriber may receive', () => {
  let server: EddyServer;
  let dir: string;
  let admin: RawClient;
  let messageId = 1;

  before(async () => {
    dir = tempDir();
    const acl = aclFile(dir, FIXED);
    server = await startBroker({ auth: { passwordFile: await passwordFile(dir, { admin: { password: 'x' }, u1: { password: 'p', roles: ['r1'] } }), acl } });
    admin = (await RawClient.open(server.mqtt.port, { clientId: 'prop-admin', username: 'admin', password: Buffer.from('x') })).client;
  });
  after(async () => {
    admin.close();
    await server.stop();
  });

  test('random ACLs, filters and topics (fast-check, 40 runs)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(ruleArb, { minLength: 1, maxLength: 6 }), subscriptionArb, async (rules, filters) => {
        run++;
        const all = [...FIXED, ...rules];
        aclFile(dir, all);
        await server.reload({});
        const { client: sub } = await RawClient.open(server.mqtt.port, { clientId: `prop-sub-${run}`, username: 'u1', password: Buffer.from('p') });
        try {
          sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [...filters.map((topic) => ({ topic, qos: 1 as const })), { topic: 'marker/u1', qos: 1 }] } as Packet);
          const granted = ((await sub.next('suback')) as Extract<Packet, { cmd: 'suback' }>).granted as number[];
          const who: Subject = { user: 'u1', roles: ['r1'] };
          const grantedFilters = filters.filter((_, i) => granted[i]! < 0x80);
          for (const [i, filter] of filters.entries()) {
            if (granted[i]! < 0x80) continue;
            const allowed = TOPICS.filter((tp) => matches(filter, tp) && referenceMayReceive(all, who, tp));
            assert.deepEqual(allowed, [], `filter ${filter} was refused (0x${granted[i]!.toString(16)}) although it can receive ${allowed.join(', ')}`);
          }
          for (const topic of TOPICS) admin.send({ cmd: 'publish', topic, payload: topic, qos: 1, messageId: messageId++ % 65535 || 1, retain: false, dup: false } as Packet);
          const marker = `end-${run}`;
          admin.send({ cmd: 'publish', topic: 'marker/u1', payload: marker, qos: 1, messageId: messageId++ % 65535 || 1, retain: false, dup: false } as Packet);
          const before = await sub.until(isPublish('marker/u1', marker), 5000);
          const received = [...new Set(before.filter((p) => p.cmd === 'publish').map((p) => (p as Extract<Packet, { cmd: 'publish' }>).topic))].sort();
          const expected = TOPICS.filter((tp) => grantedFilters.some((f) => matches(f, tp)) && referenceMayReceive(all, who, tp)).sort();
          assert.deepEqual(received, expected, `ACL ${JSON.stringify(rules)}; filters ${JSON.stringify(filters)}`);
        } finally {
          sub.close();
          while (admin.packets.length > 0) admin.packets.pop(); // PUBACKs of this run
        }
      }),
      { numRuns: 40, seed: Number(process.env.EDDY_FUZZ_SEED ?? 20261201) },
    );
  });
});
