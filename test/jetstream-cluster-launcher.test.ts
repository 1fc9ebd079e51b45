import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/** The launcher itself: three nodes that form one JetStream meta group, and survive a kill and restart. */
describe('NATS cluster launcher', () => {
  let cluster: NatsCluster;
  before(async () => {
    cluster = await startNatsCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('three nodes on distinct free ports agree on one meta leader', async () => {
    assert.equal(cluster.urls.length, 3);
    const all = cluster.ports.flatMap((p) => [p.client, p.cluster, p.monitor]);
    assert.equal(new Set(all).size, 9);
    const leader = await cluster.waitForMetaLeader();
    assert.match(leader, /^n[012]$/);
    const jsz = (await (await fetch(`http://127.0.0.1:${cluster.ports[0]!.monitor}/jsz`)).json()) as { meta_cluster?: { cluster_size?: number } };
    assert.equal(jsz.meta_cluster?.cluster_size, 3);
  });

  test('a SIGKILLed node is gone, and restart brings it back into the same meta group', async () => {
    const leader = await cluster.waitForMetaLeader();
    const i = Number(leader.slice(1));
    await cluster.kill(i, 'SIGKILL');
    assert.equal(cluster.running(i), false);
    assert.match(cluster.log(i), /signal=SIGKILL/);
    // The two survivors elect a new leader among themselves.
    const next = await cluster.waitForMetaLeader();
    assert.notEqual(next, leader);
    await cluster.restart(i);
    assert.equal(cluster.running(i), true);
    const jsz = (await (await fetch(`http://127.0.0.1:${cluster.ports[i]!.monitor}/jsz`)).json()) as { meta_cluster?: { leader?: string } };
    assert.equal(jsz.meta_cluster?.leader, await cluster.waitForMetaLeader());
  });

  test('stop removes the temporary directory', async () => {
    const other = await startNatsCluster({ nodes: 3, name: 'eddy-test-2' });
    assert.ok(fs.existsSync(other.dir));
    await other.stop();
    assert.equal(fs.existsSync(other.dir), false);
    assert.equal([0, 1, 2].some((i) => other.running(i)), false);
  });
});
