import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SkipCheck } from '../src/storage/jetstream/skip-check.js';

/**
 * When a queue on the JetStream engine decides that its consumer's new leader went past entries
 * (src/storage/jetstream/skip-check.ts). No test can make a real nats-server 2.9.10 replica keep a
 * higher starting position on demand; the cluster crash harness exercises the path on real
 * servers. These pin the decisions.
 */
const check = (): { skip: SkipCheck; events: string[] } => {
  const events: string[] = [];
  return { skip: new SkipCheck((event, detail) => events.push(`${event} ${detail}`)), events };
};

test('a first delivery above the stream leader\'s next entry means entries were skipped: recreate from that entry', async () => {
  const { skip, events } = check();
  skip.suspect(100, 'fetch failed');
  skip.delivered(90, 2); // a redelivery below: not new
  skip.delivered(250, 1);
  skip.delivered(200, 1);
  let asked: number | undefined;
  const from = await skip.check(async (after) => {
    asked = after;
    return 101;
  });
  assert.equal(asked, 100, 'asked for the first entry above what was seen');
  assert.equal(from, 101);
  assert.equal(skip.due, false, 'made');
  assert.match(events.at(-1)!, /^skip-found after 100: first delivery 200, stream has 101/);
});

test('a first delivery that is the stream leader\'s next entry (or no entry at all) is no skip', async () => {
  const { skip } = check();
  skip.suspect(100, 'open');
  skip.delivered(101, 1);
  assert.equal(await skip.check(async () => 101), undefined);
  skip.suspect(101, 'leader elected');
  skip.delivered(150, 1);
  assert.equal(await skip.check(async () => undefined), undefined, 'the entry was purged meanwhile');
});

test('acknowledgements above the suspected seq wait for the check; the stream keeps them once a new entry came', async () => {
  const { skip } = check();
  assert.equal(skip.holdsAck(500), false, 'nothing due: nothing held');
  skip.suspect(100, 'reconnect');
  assert.equal(skip.holdsAck(100), false, 'seen before: acknowledged');
  assert.equal(skip.holdsAck(101), true);
  assert.equal(skip.owedFrom, undefined, 'idle: the ack floor holds the entries, compaction is not held back');
  skip.delivered(120, 1);
  assert.equal(skip.owedFrom, 101);
  await skip.check(async () => 120);
  assert.equal(skip.holdsAck(101), false, 'released after the check');
  assert.equal(skip.owedFrom, undefined);
});

test('no check without a new entry; a failed check stays due; suspected again meanwhile, the lower seq is checked', async () => {
  const { skip } = check();
  skip.suspect(100, 'fetch failed');
  assert.equal(await skip.check(async () => assert.fail('no new entry yet: nothing to compare')), undefined);
  skip.delivered(300, 1);
  await assert.rejects(skip.check(async () => Promise.reject(new Error('timeout'))));
  assert.equal(skip.due, true, 'still due after a failure');
  const made = skip.check(async () => {
    skip.suspect(50, 'reconnect');
    return 101;
  });
  assert.equal(await made, undefined, 'the answer was for seq 100; a check from 50 is due now');
  assert.equal(skip.due, true);
  assert.equal(await skip.check(async (after) => (assert.equal(after, 50), 51)), 51);
});
