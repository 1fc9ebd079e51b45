import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncPipeline } from '../src/storage/disk/sync-pipeline.js';

interface Write {
  segment: string;
  count: number;
  name: string;
}

/** A pipeline whose fsyncs the test ends by hand, recording what each confirmed or failed. */
function harness() {
  const syncs: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  const confirmed: string[][] = [];
  const failed: string[][] = [];
  const observed: number[] = [];
  const pipeline = new SyncPipeline<string, Write>({
    sync: () => new Promise<void>((resolve, reject) => syncs.push({ resolve, reject })),
    confirm: (writes) => confirmed.push(writes.map((w) => w.name)),
    fail: (writes) => failed.push(writes.map((w) => w.name)),
    observe: (_ms, records) => observed.push(records),
    report: (err) => assert.fail(`a hook threw: ${String(err)}`),
  });
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  return { pipeline, syncs, confirmed, failed, observed, turn };
}

const write = (name: string, count = 1): Write => ({ segment: 'tail', count, name });

describe('SyncPipeline: group commit that pipelines', () => {
  test('what is written while an fsync runs waits for the next one, and one fsync covers all of it', async () => {
    const h = harness();
    h.pipeline.add(write('a', 3));
    assert.equal(h.syncs.length, 1, 'the first write starts an fsync at once');
    h.pipeline.add(write('b', 2));
    h.pipeline.add(write('c', 5));
    assert.equal(h.syncs.length, 1, 'no second fsync while one runs');
    h.syncs[0]!.resolve();
    await h.turn();
    assert.deepEqual(h.confirmed, [['a']], 'the running fsync confirms only what was written before it started');
    assert.equal(h.syncs.length, 2, 'the next fsync starts as soon as the last one ends');
    h.syncs[1]!.resolve();
    await h.pipeline.drained();
    assert.deepEqual(h.confirmed, [['a'], ['b', 'c']]);
    assert.deepEqual(h.observed, [3, 7], 'records confirmed per fsync');
    assert.equal(h.pipeline.busy, false);
  });

  test('a failed fsync fails its writes and every write after them; the pipeline goes on', async () => {
    const h = harness();
    h.pipeline.add(write('a'));
    h.pipeline.add(write('b'));
    h.syncs[0]!.reject(new Error('EIO'));
    await h.turn();
    assert.deepEqual(h.failed, [['a', 'b']]);
    assert.deepEqual(h.confirmed, []);
    assert.equal(h.syncs.length, 1, 'nothing left to sync');
    h.pipeline.add(write('c'));
    h.syncs[1]!.resolve();
    await h.pipeline.drained();
    assert.deepEqual(h.confirmed, [['c']]);
  });

  test('drained waits for the fsyncs still owed, the one running and the next', async () => {
    const h = harness();
    h.pipeline.add(write('a'));
    h.pipeline.add(write('b'));
    let drained = false;
    const done = h.pipeline.drained().then(() => (drained = true));
    h.syncs[0]!.resolve();
    await h.turn();
    assert.equal(drained, false, 'b still waits');
    h.syncs[1]!.resolve();
    await done;
    assert.deepEqual(h.confirmed, [['a'], ['b']]);
  });
});
