/**
 * kill -9 safety of `eddy broker --cluster` on a real 3-node JetStream cluster, short form of
 * test/crash/cluster-harness.ts: one Eddy node, two Eddy kills and two NATS kills in a seeded
 * random order under QoS 1 traffic; every PUBACKed message must reach both durable subscribers and
 * the consumer group (duplicates allowed, counted). The long form runs by hand:
 *
 *   node dist/test/crash/cluster-harness.js --eddy-kills 20 --nats-kills 20
 *
 * A failing run prints its seed; EDDY_CRASH_SEED=<seed> replays its kill order and timings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runClusterCrash } from './crash/cluster-harness.js';
import { summarize } from './crash/cluster-report.js';
import { natsServerVersion } from './helpers/nats-cluster.js';

const seed = process.env.EDDY_CRASH_SEED ? Number(process.env.EDDY_CRASH_SEED) : undefined;

test('cluster: every confirmed QoS 1 message survives 2 Eddy kills and 2 NATS kills', { timeout: 240_000, skip: natsServerVersion() ? false : 'nats-server not installed' }, async (t) => {
  const report = await runClusterCrash({ eddyNodes: 1, eddyKills: 2, natsKills: 2, negativeControl: true, seed });
  for (const line of summarize(report).split('\n')) t.diagnostic(line);
  assert.ok(report.confirmed > 0, `nothing confirmed (seed ${report.seed}): ${report.errors.join('; ')}`);
  const problems: string[] = [];
  for (const s of report.subscribers) {
    if (s.missing > 0) problems.push(`${s.clientId} is missing ${s.missing} of ${s.confirmed} confirmed messages, e.g. ${s.missingSamples.join(', ')}`);
    if (s.sessionLost > 0) problems.push(`${s.clientId} found no session on ${s.sessionLost} reconnect(s)`);
  }
  const g = report.group!;
  if (g.missing > 0) problems.push(`group ${g.filter} is missing ${g.missing} of ${g.confirmed} confirmed messages, e.g. ${g.missingSamples.join(', ')}`);
  for (const e of report.errors) problems.push(`harness: ${e.split('\n')[0]}`);
  assert.deepEqual(problems, [], `seed ${report.seed}`);
  // The negative control (clean session, never subscribes again) must show what the durable ones are
  // spared: after the first Eddy kill it gets nothing. A harness that cannot see losses would pass anything.
  assert.ok(report.control!.missing > 0, `the negative control missed nothing: the harness would not see a loss (seed ${report.seed})`);
  assert.equal(report.ok, true);
});
