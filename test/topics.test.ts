import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TopicTree } from '../src/core/topic-tree.js';
import { isValidTopicFilter, isValidTopicName, parseSharedFilter, topicMatches } from '../src/core/topics.js';

/** Small alphabets so that random filters and topics actually collide. */
const level = fc.constantFrom('a', 'b', 'c', '', '$x', 'sport');
const topicArb = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
const filterLevel = fc.constantFrom('a', 'b', 'c', '', '+', '$x', 'sport');
const filterArb = fc
  .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .chain((f) => fc.constantFrom(f, '#', '+/#'));

describe('topic matching', () => {
  it('the topic tree agrees with the reference matcher for any set of filters and topics', () => {
    fc.assert(
      fc.property(fc.uniqueArray(filterArb, { maxLength: 20 }), fc.array(topicArb, { minLength: 1, maxLength: 10 }), (filters, topics) => {
        const tree = new TopicTree<string>();
        for (const f of filters) tree.add(f, f);
        for (const topic of topics) {
          const got: string[] = [];
          tree.match(topic, (f) => got.push(f));
          const expected = filters.filter((f) => topicMatches(f, topic));
          assert.deepEqual(got.sort(), expected.sort(), `topic ${topic}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('removing filters leaves exactly the remaining ones matching', () => {
    fc.assert(
      fc.property(fc.uniqueArray(filterArb, { maxLength: 15 }), fc.array(fc.boolean(), { minLength: 15, maxLength: 15 }), topicArb, (filters, drop, topic) => {
        const tree = new TopicTree<string>();
        for (const f of filters) tree.add(f, f);
        const kept = filters.filter((f, i) => {
          if (drop[i]) {
            assert.equal(tree.remove(f, f), true);
            return false;
          }
          return true;
        });
        assert.equal(tree.size, kept.length);
        const got: string[] = [];
        tree.match(topic, (f) => got.push(f));
        assert.deepEqual(got.sort(), kept.filter((f) => topicMatches(f, topic)).sort());
      }),
      { numRuns: 1000 },
    );
  });

  it('follows the MQTT examples', () => {
    assert.equal(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1/ranking'), true);
    assert.equal(topicMatches('sport/#', 'sport'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking'), false);
    assert.equal(topicMatches('sport/+', 'sport'), false);
    assert.equal(topicMatches('sport/+', 'sport/'), true);
    assert.equal(topicMatches('+/+', '/finance'), true);
    assert.equal(topicMatches('/+', '/finance'), true);
    assert.equal(topicMatches('+', '/finance'), false);
    assert.equal(topicMatches('#', '$SYS/uptime'), false);
    assert.equal(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients'), false);
    assert.equal(topicMatches('$SYS/#', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients'), true);
  });

  it('validates names and filters', () => {
    assert.equal(isValidTopicName('a/b'), true);
    assert.equal(isValidTopicName('a/+'), false);
    assert.equal(isValidTopicName('#'), false);
    assert.equal(isValidTopicName(''), false);
    assert.equal(isValidTopicFilter('a/#'), true);
    assert.equal(isValidTopicFilter('a/#/b'), false);
    assert.equal(isValidTopicFilter('a/b#'), false);
    assert.equal(isValidTopicFilter('a+/b'), false);
    assert.deepEqual(parseSharedFilter('$share/g/a/+'), { group: 'g', filter: 'a/+' });
    assert.equal(parseSharedFilter('$share//a'), null);
    assert.equal(parseSharedFilter('$share/g'), null);
    assert.equal(parseSharedFilter('a/b'), undefined);
  });
});
