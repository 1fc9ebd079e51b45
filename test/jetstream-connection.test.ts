import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { ClusterConnection } from '../src/storage/jetstream/connection.js';
import { ClusterStoreError, PublishTimeoutError, type ClusterStoreErrorCode } from '../src/storage/jetstream/errors.js';
import { DEFAULT_STREAM_NAME, ensureMessageStream, ensureStoreLayout, type StoreLayout } from '../src/storage/jetstream/layout.js';
import { publishConfirmed } from '../src/storage/jetstream/publish.js';
import { clusterStatus, streamStatus } from '../src/storage/jetstream/status.js';
import { messageSubject } from '../src/storage/jetstream/subjects.js';
import { freePorts, NATS_SERVER, startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/**
 * The JetStream connection, stream layout and confirmed publish against a real 3-node nats-server
 * cluster: replication, quorum loss and recovery, reconnects, typed failures.
 */

const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

async function waitUntil<T>(probe: () => Promise<T | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

function rejectsWith(code: ClusterStoreErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ClusterStoreError, `expected a ClusterStoreError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

/** The index of the node whose server name (n0, n1, n2) is `name`. */
const nodeIndex = (name: string | undefined): number => {
  assert.match(name ?? '', /^n\d$/);
  return Number(name!.slice(1));
};

describe('JetStream connection on a 3-node cluster', () => {
  let cluster: NatsCluster;
  let conn: ClusterConnection;
  let layout: StoreLayout;
  const events: string[] = [];

  before(async () => {
    cluster = await startNatsCluster();
    conn = await ClusterConnection.open({ servers: cluster.urls, name: 'eddy-test', onEvent: (e) => events.push(e.type) });
    layout = await ensureStoreLayout(conn, { replicas: 3 });
  });
  after(async () => {
    await conn?.close();
    await cluster?.stop();
  });

  /** Waits until every node runs and the stream reports all 3 replicas current, so tests start from a whole cluster. */
  async function wholeCluster(): Promise<void> {
    for (let i = 0; i < 3; i++) if (!cluster.running(i)) await cluster.restart(i);
    await waitUntil(async () => {
      const s = await streamStatus(conn, DEFAULT_STREAM_NAME);
      return 'currentReplicas' in s && s.currentReplicas === 3;
    }, 'all three replicas current');
  }

  test('the message stream and both KV buckets are created with 3 replicas; a second ensure reuses them', async () => {
    assert.equal(layout.stream.config.num_replicas, 3);
    assert.deepEqual(layout.stream.config.subjects, ['eddy.m.>', 'eddy.s.>']);
    for (const name of [DEFAULT_STREAM_NAME, 'KV_eddy-retained', 'KV_eddy-sessions']) {
      const info = await conn.jsm.streams.info(name);
      assert.equal(info.config.num_replicas, 3, name);
      assert.ok(info.cluster?.leader, `${name} has a leader`);
      assert.equal(info.cluster?.replicas?.length, 2, `${name} has two followers`);
    }
    const again = await ensureStoreLayout(conn, { replicas: 3 });
    assert.equal(again.stream.created.toString(), layout.stream.created.toString());
  });

  test('ensure brings an existing stream to the configured replica count', async () => {
    const name = 'EDDY_SCALE';
    const one = await ensureMessageStream(conn, { streamName: name, subjectRoot: 'scale', replicas: 1 });
    assert.equal(one.config.num_replicas, 1);
    const three = await ensureMessageStream(conn, { streamName: name, subjectRoot: 'scale', replicas: 3 });
    assert.equal(three.config.num_replicas, 3);
    // The scale-up is real once the two new peers have caught up. (The stream is left in place: on
    // 2.9.10 a delete right after a scale-up can outlast a 5 s API timeout.)
    await waitUntil(async () => {
      const st = await streamStatus(conn, name);
      return 'currentReplicas' in st && st.currentReplicas === 3;
    }, 'the scaled stream to have three current replicas');
  });

  test('a confirmed publish resolves with the PubAck; a re-send with the same msgID is acked as a duplicate', async () => {
    const subject = messageSubject('orders/1');
    const ack = await publishConfirmed(conn, subject, encode('first'), { msgID: 'node-a:1' });
    assert.equal(ack.stream, DEFAULT_STREAM_NAME);
    assert.ok(ack.seq > 0);
    assert.equal(ack.duplicate, false);
    const again = await publishConfirmed(conn, subject, encode('first'), { msgID: 'node-a:1' });
    assert.equal(again.duplicate, true);
    assert.equal(again.seq, ack.seq);
    const stored = await conn.jsm.streams.getMessage(DEFAULT_STREAM_NAME, { seq: ack.seq });
    assert.equal(decode(stored!.data), 'first');
  });

  test('a durable explicit-ack consumer reads a message after the client reconnects to another node', async () => {
    await wholeCluster();
    const subject = messageSubject('reconnect/test');
    await conn.jsm.consumers.add(DEFAULT_STREAM_NAME, {
      durable_name: 'reconnect-reader',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subject,
    });
    const ack = await publishConfirmed(conn, subject, encode('across a reconnect'), { msgID: 'reconnect:1' });
    const before = conn.counters.reconnects;
    const onNode = nodeIndex(conn.server.name);
    await cluster.kill(onNode, 'SIGKILL');
    await waitUntil(async () => conn.counters.reconnects > before && !conn.closed, 'the client to reconnect');
    assert.notEqual(conn.server.name, `n${onNode}`);
    assert.ok(events.includes('disconnect') && events.includes('reconnect'), events.join(','));
    // The consumer's own Raft group may have had its leader on the killed node: it answers once it elected another.
    const consumer = await waitUntil(() => conn.js.consumers.get(DEFAULT_STREAM_NAME, 'reconnect-reader'), 'the consumer to answer after the node kill');
    const msg = await waitUntil(async () => (await consumer.next({ expires: 2000 })) ?? undefined, 'the message from the durable consumer');
    assert.equal(msg.seq, ack.seq);
    assert.equal(decode(msg.data), 'across a reconnect');
    await msg.ackAck();
    const info = await waitUntil(() => consumer.info(), 'consumer info');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.ack_floor.stream_seq, ack.seq);
  });

  test('with the stream leader SIGKILLed, publishes are still acked by the quorum of 2 of 3', async () => {
    await wholeCluster();
    const s = await streamStatus(conn, DEFAULT_STREAM_NAME);
    assert.ok('leader' in s && s.leader);
    const leader = nodeIndex(s.leader);
    await cluster.kill(leader, 'SIGKILL');
    // The survivors elect a new stream leader within a few seconds; publishConfirmed rides out the gap.
    const subject = messageSubject('quorum/one-down');
    const ack = await publishConfirmed(conn, subject, encode('2 of 3'), { msgID: 'quorum:1', timeoutMs: 20_000 });
    assert.ok(ack.seq > 0);
    const after = await waitUntil(async () => {
      const st = await streamStatus(conn, DEFAULT_STREAM_NAME);
      return 'leader' in st && st.leader && st.leader !== `n${leader}` ? st : undefined;
    }, 'a new stream leader');
    assert.equal(after.replicas, 3);
    assert.ok(after.currentReplicas >= 2 && after.currentReplicas < 3, `current replicas ${after.currentReplicas}`);
    const lost = after.peers.find((p) => p.name === `n${leader}`);
    assert.ok(lost && (!lost.current || lost.offline), JSON.stringify(after.peers));
    for (let i = 0; i < 5; i++) await publishConfirmed(conn, subject, encode(`more ${i}`), { msgID: `quorum:more:${i}` });
    await cluster.restart(leader);
    // The restarted node catches up from the others and is current again.
    await wholeCluster();
  });

  test('with two of three nodes SIGKILLed a publish fails with PublishTimeoutError in time, and succeeds after a restart', async () => {
    await wholeCluster();
    const stay = nodeIndex(conn.server.name);
    const others = [0, 1, 2].filter((i) => i !== stay);
    await Promise.all(others.map((i) => cluster.kill(i, 'SIGKILL')));
    const subject = messageSubject('quorum/two-down');
    const started = Date.now();
    await assert.rejects(publishConfirmed(conn, subject, encode('no quorum'), { msgID: 'noquorum:1', timeoutMs: 3000 }), (err: unknown) => {
      assert.ok(err instanceof PublishTimeoutError, String(err));
      assert.equal(err.code, 'publish-timeout');
      assert.equal(err.msgID, 'noquorum:1');
      return true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 2500 && elapsed < 6000, `failed after ${elapsed} ms`);
    await cluster.restart(others[0]!);
    // Unknown outcome, retried with the same msgID: acked, and stored exactly once either way
    // (the first attempt may have been in the old leader's log and committed after the restart).
    const ack = await publishConfirmed(conn, subject, encode('no quorum'), { msgID: 'noquorum:1', timeoutMs: 30_000 });
    assert.ok(ack.seq > 0);
    const info = await conn.jsm.streams.info(DEFAULT_STREAM_NAME, { subjects_filter: subject });
    assert.equal(info.state.subjects?.[subject], 1);
    await cluster.restart(others[1]!);
    await wholeCluster();
  });

  test('a KV value put before a node kill is read after it, and a put with one node down is kept', async () => {
    await wholeCluster();
    const kv = layout.retained;
    // The node this connection is on may have been restarted by the test before, and answer "jetstream
    // is not enabled" for a moment after its cluster is whole again.
    const rev = await waitUntil(async () => kv.put('m.sensors.kitchen', encode('21.5')), 'a KV put on the whole cluster');
    const info = await conn.jsm.streams.info('KV_eddy-retained');
    const leader = nodeIndex(info.cluster?.leader);
    await cluster.kill(leader, 'SIGKILL');
    const entry = await waitUntil(async () => (await kv.get('m.sensors.kitchen')) ?? undefined, 'the KV entry with the leader down');
    assert.equal(entry.revision, rev);
    assert.equal(entry.string(), '21.5');
    const rev2 = await waitUntil(async () => kv.put('m.sensors.kitchen', encode('22.0')), 'a KV put with one node down');
    assert.ok(rev2 > rev);
    await cluster.restart(leader);
    await wholeCluster();
    const latest = await kv.get('m.sensors.kitchen');
    assert.equal(latest?.string(), '22.0');
    assert.equal(latest?.revision, rev2);
  });

  test('the status names the server, its RTT, the reconnects so far and current replicas', async () => {
    await wholeCluster();
    const status = await clusterStatus(conn, [DEFAULT_STREAM_NAME]);
    assert.equal(status.connected, true);
    assert.match(status.server.name ?? '', /^n\d$/);
    assert.equal(status.server.version, cluster.version);
    assert.equal(typeof status.rttMs, 'number');
    assert.ok(status.reconnects >= 1, 'the reconnect test moved the client at least once');
    const stream = status.streams[0]!;
    assert.ok(!('error' in stream && stream.error), JSON.stringify(stream));
    assert.ok('currentReplicas' in stream);
    assert.equal(stream.replicas, 3);
    assert.equal(stream.currentReplicas, 3);
    assert.equal(stream.peers.length, 2);
    assert.ok(stream.peers.every((p) => p.current && p.lag === 0));
    const missing = await clusterStatus(conn, ['NO_SUCH_STREAM']);
    assert.ok('error' in missing.streams[0]! && missing.streams[0].error, 'a missing stream is reported, not thrown');
  });

  test('a stream that exists with other storage, or subjects that overlap another stream, is a StreamConfigConflictError', async () => {
    await conn.jsm.streams.add({ name: 'EDDY_MEMORY', subjects: ['mem.m.>', 'mem.s.>'], storage: StorageType.Memory, num_replicas: 1 });
    await assert.rejects(ensureMessageStream(conn, { streamName: 'EDDY_MEMORY', subjectRoot: 'mem', replicas: 1 }), rejectsWith('stream-config-conflict'));
    await conn.jsm.streams.add({ name: 'OTHER_WORKQUEUE', subjects: ['wq.m.>'], retention: RetentionPolicy.Workqueue, num_replicas: 1 });
    await assert.rejects(ensureMessageStream(conn, { streamName: 'EDDY_WQ', subjectRoot: 'wq', replicas: 1 }), rejectsWith('stream-config-conflict'));
    await conn.jsm.streams.delete('EDDY_MEMORY');
    await conn.jsm.streams.delete('OTHER_WORKQUEUE');
  });
});

describe('JetStream connection failures', () => {
  test('no reachable server is a NatsUnreachableError within the connect timeout', async () => {
    const [port] = await freePorts(1);
    const started = Date.now();
    await assert.rejects(ClusterConnection.open({ servers: [`nats://127.0.0.1:${port}`], connectTimeoutMs: 1500 }), rejectsWith('nats-unreachable'));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1400 && elapsed < 4000, `gave up after ${elapsed} ms`);
  });

  test('a server without JetStream is a JetStreamUnavailableError', async () => {
    const [port] = await freePorts(1);
    const child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await assert.rejects(
        ClusterConnection.open({ servers: [`nats://127.0.0.1:${port}`], connectTimeoutMs: 5000, apiTimeoutMs: 500 }),
        rejectsWith('jetstream-unavailable'),
      );
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
