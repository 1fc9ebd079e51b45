import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IndexedMap, SortedKeys } from '../src/core/admin/sorted-keys.js';
import { pageOf } from '../src/core/admin/page.js';

const codeUnitOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

type Step = { op: 'set'; key: string } | { op: 'delete'; key: string } | { op: 'read' } | { op: 'page'; after: string; limit: number };

const key = fc.stringMatching(/^[a-c$/]{0,4}$/);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), key }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
  { weight: 1, arbitrary: fc.constant({ op: 'read' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('page' as const), after: key, limit: fc.integer({ min: 1, max: 5 }) }) },
);

describe('SortedKeys and IndexedMap', () => {
  it('always reads the keys in code-unit order, whatever sequence of changes and reads came before', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const map = new IndexedMap<number>();
        for (const s of steps) {
          if (s.op === 'set') map.set(s.key, 1);
          else if (s.op === 'delete') map.delete(s.key);
          else if (s.op === 'read') assert.deepEqual(map.index.keys(), [...map.keys()].sort(codeUnitOrder));
          else if (s.op === 'page') {
            const expected = [...map.keys()].sort(codeUnitOrder).filter((k) => k > s.after);
            const page = pageOf(map.index, { limit: s.limit, after: s.after }, map.size, (k) => k);
            assert.deepEqual(page.items, expected.slice(0, s.limit));
            assert.equal(page.next, expected.length > s.limit ? expected[s.limit - 1] : null);
          }
        }
        assert.deepEqual(map.index.keys(), [...map.keys()].sort(codeUnitOrder));
      }),
      { numRuns: 300 },
    );
  });

  it('patches many changes between reads without losing any, and starts afresh past its patch limit', () => {
    const source = new Map<string, true>();
    const index = new SortedKeys(source);
    for (let i = 0; i < 3000; i++) source.set(`k${i}`, true);
    assert.equal(index.keys().length, 3000);
    for (let i = 0; i < 3000; i += 2) {
      source.delete(`k${i}`);
      index.touch(`k${i}`);
    }
    for (let i = 0; i < 500; i++) {
      source.set(`n${i}`, true);
      index.touch(`n${i}`);
    }
    assert.deepEqual(index.keys(), [...source.keys()].sort(codeUnitOrder));
    // A change nobody reported: the size differs, so the index is read again from its source.
    source.set('unreported', true);
    assert.ok(index.keys().includes('unreported'));
  });
});
