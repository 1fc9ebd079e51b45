import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { mergeWorkerMetrics, withWorkerLabel } from '../src/http/metrics-merge.js';
import { asPrimaryMessage, asWorkerMessage } from '../src/cli/worker-messages.js';

/** The text of a real prom-client registry with a counter, a labelled gauge and a histogram. */
async function registryText(n: number): Promise<string> {
  const registry = new Registry();
  new Counter({ name: 'eddy_test_total', help: 'A counter', registers: [registry] }).inc(n);
  const gauge = new Gauge({ name: 'eddy_test_by_kind', help: 'A gauge with a label', labelNames: ['kind'], registers: [registry] });
  gauge.set({ kind: 'a b}' }, n);
  gauge.set({ kind: 'c' }, n * 2);
  new Histogram({ name: 'eddy_test_seconds', help: 'A histogram', buckets: [0.1, 1], registers: [registry] }).observe(n / 10);
  return registry.metrics();
}

test('withWorkerLabel adds the label before any other, also where a label value holds braces or spaces', () => {
  assert.equal(withWorkerLabel('eddy_x 1', '2'), 'eddy_x{worker="2"} 1');
  assert.equal(withWorkerLabel('eddy_x{kind="a b}"} 1', '2'), 'eddy_x{worker="2",kind="a b}"} 1');
  assert.equal(withWorkerLabel('eddy_x{} 1', '3'), 'eddy_x{worker="3"} 1');
});

test('mergeWorkerMetrics keeps each family once, with every worker’s samples under it', async () => {
  const merged = mergeWorkerMetrics([
    { worker: '1', text: await registryText(1) },
    { worker: '2', text: await registryText(5) },
  ]);
  for (const family of ['eddy_test_total', 'eddy_test_by_kind', 'eddy_test_seconds']) {
    assert.equal(merged.match(new RegExp(`^# HELP ${family} `, 'gm'))?.length, 1, family);
    assert.equal(merged.match(new RegExp(`^# TYPE ${family} `, 'gm'))?.length, 1, family);
  }
  assert.match(merged, /^eddy_test_total\{worker="1"\} 1$/m);
  assert.match(merged, /^eddy_test_total\{worker="2"\} 5$/m);
  assert.match(merged, /^eddy_test_by_kind\{worker="2",kind="a b}"\} 5$/m);
  assert.match(merged, /^eddy_test_seconds_bucket\{worker="1",le="1"\} 1$/m);
  assert.match(merged, /^eddy_test_seconds_count\{worker="2"\} 1$/m);
  // Every sample sits under its own family's header.
  let family = '';
  for (const line of merged.trim().split('\n')) {
    const header = /^# TYPE (\S+)/.exec(line);
    if (header) family = header[1]!;
    else if (!line.startsWith('#')) assert.ok(line.startsWith(family), `${line} under ${family}`);
  }
});

test('IPC messages are checked field by field; anything else is ignored', () => {
  assert.deepEqual(asWorkerMessage({ eddy: 'ready', line: 'eddy ready mqtt=a:1 http=a:2' }), { eddy: 'ready', line: 'eddy ready mqtt=a:1 http=a:2' });
  assert.deepEqual(asWorkerMessage({ eddy: 'scraped', id: 3, text: 'x 1\n', extra: true }), { eddy: 'scraped', id: 3, text: 'x 1\n' });
  for (const bad of [null, 'ready', { eddy: 'ready' }, { eddy: 'metrics', id: '1' }, { eddy: 'scraped', id: 1 }, { eddy: 'other', id: 1 }, { cmd: 'NODE_CLUSTER' }]) {
    assert.equal(asWorkerMessage(bad), undefined, JSON.stringify(bad));
  }
  assert.deepEqual(asPrimaryMessage({ eddy: 'merged', id: 1, text: '' }), { eddy: 'merged', id: 1, text: '' });
  assert.equal(asPrimaryMessage({ eddy: 'merged', id: 1 }), undefined);
  assert.equal(asPrimaryMessage({ eddy: 'ready', line: 'x' }), undefined);
});
