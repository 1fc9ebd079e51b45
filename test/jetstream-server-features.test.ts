import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AckPolicy, type StreamConfig } from '@nats-io/jetstream';
import { ClusterConnection } from '../src/storage/jetstream/connection.js';
import { UnsupportedServerError } from '../src/storage/jetstream/errors.js';
import { JETSTREAM_FEATURES, requireFeature, supports, versionAtLeast } from '../src/storage/jetstream/features.js';
import { publishConfirmed } from '../src/storage/jetstream/publish.js';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/**
 * Which JetStream features the installed nats-server has, tried for real (docs/cluster.md, "Minimum
 * NATS version"). Each test asserts what the server does on either side of the feature's version:
 * on Debian's 2.9.10 the 2.10+/2.11+ features are refused or silently ignored, on a newer server
 * they work. So the test passes on both, and fails if the table in features.ts is wrong.
 */

describe('JetStream features of the installed nats-server', () => {
  let cluster: NatsCluster;
  let conn: ClusterConnection;
  before(async () => {
    cluster = await startNatsCluster();
    conn = await ClusterConnection.open({ servers: cluster.urls });
  });
  after(async () => {
    await conn?.close();
    await cluster?.stop();
  });

  test('version comparison', () => {
    assert.equal(versionAtLeast('2.9.10', '2.9.0'), true);
    assert.equal(versionAtLeast('2.9.10', '2.10.0'), false);
    assert.equal(versionAtLeast('2.10.0', '2.9.10'), true);
    assert.equal(versionAtLeast('v2.11.1', '2.11.0'), true);
    assert.equal(versionAtLeast('junk', '2.0.0'), false);
    assert.equal(conn.server.version, cluster.version);
  });

  test('multiple filter subjects per consumer (2.10): refused by nats.js below, working at or above', async () => {
    await conn.jsm.streams.add({ name: 'FEAT_FILTERS', subjects: ['feat.f.>'], num_replicas: 1 });
    const attempt = conn.jsm.consumers.add('FEAT_FILTERS', {
      durable_name: 'two-filters',
      ack_policy: AckPolicy.Explicit,
      filter_subjects: ['feat.f.a', 'feat.f.a.>'],
    });
    if (supports(conn.nc, 'multiple-consumer-filters')) {
      const info = await attempt;
      assert.deepEqual(info.config.filter_subjects, ['feat.f.a', 'feat.f.a.>']);
      requireFeature(conn.nc, 'multiple-consumer-filters');
    } else {
      await assert.rejects(attempt, /'filter_subjects' requires server 2\.10\.0/);
      assert.throws(() => requireFeature(conn.nc, 'multiple-consumer-filters'), (err: unknown) => {
        assert.ok(err instanceof UnsupportedServerError);
        assert.equal(err.code, 'unsupported-server');
        assert.equal(err.required, '2.10.0');
        assert.equal(err.actual, cluster.version);
        return true;
      });
    }
  });

  test('per-message TTL (2.11): an older server drops allow_msg_ttl from the stream config and keeps the message', async () => {
    const config = { name: 'FEAT_TTL', subjects: ['feat.t.>'], num_replicas: 1, allow_msg_ttl: true } as StreamConfig;
    if (supports(conn.nc, 'per-message-ttl')) {
      const info = await conn.jsm.streams.add(config);
      assert.equal(info.config.allow_msg_ttl, true);
      return;
    }
    // Silently: no error, the field is simply gone, so Eddy must check the version, not the reply.
    const info = await conn.jsm.streams.add(config);
    assert.notEqual(info.config.allow_msg_ttl, true);
    const h = (await import('@nats-io/transport-node')).headers();
    h.set('Nats-TTL', '1s');
    const ack = await publishConfirmed(conn, 'feat.t.x', new Uint8Array([1]), { msgID: 'ttl:1', headers: h });
    await new Promise((r) => setTimeout(r, 2500));
    const stored = await conn.jsm.streams.getMessage('FEAT_TTL', { seq: ack.seq });
    assert.ok(stored, 'the message outlived its 1 s Nats-TTL: the header was ignored');
  });

  test('consumer pause (2.11): the pause API has no responder below, pauses at or above', async () => {
    await conn.jsm.streams.add({ name: 'FEAT_PAUSE', subjects: ['feat.p.>'], num_replicas: 1 });
    await conn.jsm.consumers.add('FEAT_PAUSE', { durable_name: 'pausable', ack_policy: AckPolicy.Explicit });
    const attempt = conn.jsm.consumers.pause('FEAT_PAUSE', 'pausable', new Date(Date.now() + 60_000));
    if (supports(conn.nc, 'consumer-pause')) {
      const r = await attempt;
      assert.equal(r.paused, true);
    } else {
      // An unknown $JS.API subject gets no answer at all: a timeout, not an error reply.
      await assert.rejects(attempt);
    }
  });

  test('every feature in the table has a version, and the installed server is at least 2.9 (direct get, KV)', () => {
    for (const [feature, version] of Object.entries(JETSTREAM_FEATURES)) assert.match(version, /^\d+\.\d+\.\d+$/, feature);
    assert.ok(supports(conn.nc, 'kv') && supports(conn.nc, 'direct-get'), `server ${conn.server.version} is older than Eddy's floor 2.9.0`);
  });
});
