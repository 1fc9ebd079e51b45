import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LostEntries } from '../src/storage/jetstream/lost-entries.js';

/**
 * When a queue on the JetStream engine decides that its consumer handed entries out to nobody, and
 * recreates it (src/storage/jetstream/lost-entries.ts). The crash harness exercises the whole path
 * on real servers; these pin the decisions, which no test could force a real server into on demand.
 */
const watch = (sole = true): { lost: LostEntries; events: string[] } => {
  const events: string[] = [];
  return { lost: new LostEntries(sole, (event, detail) => events.push(`${event} ${detail}`)), events };
};

test('an appended entry a fetch went past is recovered from its seq, once; passed again it is forgotten', () => {
  const { lost } = watch();
  assert.deepEqual(lost.passed([10, 20, 30], 25), [], 'nothing forgotten the first time');
  assert.deepEqual(lost.due(10_000), { from: 10 }, 'recovered from the lowest passed entry');
  assert.equal(lost.due(20_000), undefined, 'nothing more is due');
  assert.deepEqual(lost.passed([10, 20, 30], 40), [10, 20], 'passed again after the recovery: gone');
  assert.deepEqual(lost.due(30_000), { from: 30 }, 'the newly passed one is recovered');
});

test('an entry that arrives is no longer waited for', () => {
  const { lost } = watch();
  lost.passed([10], 11);
  lost.accepted(10, 1);
  assert.deepEqual(lost.passed([10], 12), [], 'seen once more as waiting, it counts as new, not as retried');
});

test('a gap in delivery seqs or a failed fetch makes a recovery from the ack floor due; a lower seq is a new consumer', () => {
  const { lost, events } = watch();
  lost.accepted(1, 1);
  lost.accepted(2, 2);
  assert.equal(lost.due(10_000), undefined, 'no gap');
  lost.accepted(9, 5);
  assert.ok(events.some((e) => e === 'delivery-gap 2 -> 5'));
  assert.deepEqual(lost.due(20_000), { from: undefined });
  lost.accepted(3, 1); // a recreated consumer counts from 1 again
  lost.accepted(4, 2);
  assert.equal(lost.due(30_000), undefined);
  lost.markLost();
  assert.deepEqual(lost.due(40_000), { from: undefined });
});

test('recoveries are at most one per 2 s; a failed one is due again with its start kept', () => {
  const { lost } = watch();
  lost.markLost();
  assert.deepEqual(lost.due(10_000), { from: undefined });
  lost.passed([5], 6);
  assert.equal(lost.due(11_000), undefined, 'too soon');
  const r = lost.due(12_000);
  assert.deepEqual(r, { from: 5 });
  lost.failed(r!.from);
  assert.deepEqual(lost.due(14_000), { from: 5 }, 'tried again from the same entry');
});

test('a queue read by several nodes forgets passed entries and leaves recovery to the ack wait', () => {
  const { lost } = watch(false);
  assert.deepEqual(lost.passed([10, 20], 25), [10, 20]);
  lost.accepted(1, 1);
  lost.accepted(2, 7); // another node took 2..6
  lost.markLost();
  assert.equal(lost.due(10_000), undefined, 'no recreation of a consumer other nodes read');
  lost.setSole(true);
  lost.passed([30], 31);
  assert.deepEqual(lost.due(20_000), { from: 30 }, 'alone again, it recovers');
});
