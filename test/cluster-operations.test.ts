import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IDisconnectPacket, MqttClient } from 'mqtt';
import { brokerConfigFromArgs } from '../src/cli/broker.js';
import { validateConfig } from '../src/cli/config.js';
import type { ClusterDisabledView, ClusterView } from '../src/core/admin/views.js';
import { drainFarewell } from '../src/transport/farewell.js';
import { ConfigError } from '../src/util/errors.js';
import { startBroker } from './helpers/broker.js';
import { killQuietly, readyPorts, start, type Running } from './helpers/cli-process.js';
import { connectClient, sleep } from './helpers/mqtt.js';
import { startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/**
 * Issue 12, operations, on a real 3-node JetStream cluster with two `eddy broker --cluster`
 * processes on it: each node's heartbeat in `eddy-nodes`, /healthz `cluster` and
 * /v1/admin/cluster (and `eddy admin cluster`) showing both nodes and the streams' replicas; a
 * node's SIGTERM drains it (MQTT 5: DISCONNECT 0x9C with the Server Reference; MQTT 3.1.1: the socket
 * closed), exits 0 and deletes its key, so the other node sees it gone at once (not after the TTL);
 * with NATS down /healthz still answers at once, `reconnecting`.
 */

interface Node {
  running: Running;
  ports: { mqtt: number; http: number };
}

const STREAMS = ['EDDY_MESSAGES', 'EDDY_QUEUES', 'KV_eddy-retained', 'KV_eddy-sessions', 'KV_eddy-groups', 'KV_eddy-nodes'];

describe('cluster operations: node registry, cluster view, drain', () => {
  let nats: NatsCluster;
  let a: Node;
  let b: Node;
  const clients: MqttClient[] = [];

  const startNode = async (extra: string[] = []): Promise<Node> => {
    const running = start(['broker', '--cluster', nats.urls.join(','), '--port', '0', '--http-port', '0', '--log-level', 'info', ...extra]);
    return { running, ports: await readyPorts(running, 30_000) };
  };
  const getJson = async <T>(node: Node, path: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${node.ports.http}${path}`);
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = await probe();
      if (got !== undefined) return got;
      if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms; a: ${a?.running.stderr().slice(-2000)}; b: ${b?.running.stderr().slice(-2000)}`);
      await sleep(200);
    }
  };
  const nodeIds = (view: ClusterView): string[] => view.nodes.map((n) => n.id).sort();

  before(async () => {
    nats = await startNatsCluster();
    a = await startNode();
    b = await startNode(['--server-reference', 'other:1883']);
  });
  after(async () => {
    for (const c of clients) c.end(true);
    killQuietly(a?.running.child.pid);
    killQuietly(b?.running.child.pid);
    await nats?.stop();
  });

  test('/healthz shows cluster.node, this node (alive, with its listeners) among cluster.nodes, and every stream with 3 replicas', async () => {
    const h = await until(
      '/healthz with this node and the streams',
      async () => {
        const got = await getJson<{ status: string; cluster?: ClusterView }>(a, '/healthz');
        return got.cluster && got.cluster.nodes.some((n) => n.self) && got.cluster.streams.length === STREAMS.length ? got : undefined;
      },
      10_000,
    );
    const cluster = h.cluster!;
    assert.equal(h.status, 'ok');
    assert.equal(cluster.enabled, true);
    assert.equal(cluster.state, 'connected');
    assert.match(cluster.node, /^[0-9a-f]{8}$/);
    const self = cluster.nodes.find((n) => n.id === cluster.node);
    assert.ok(self, `cluster.node ${cluster.node} is among cluster.nodes ${JSON.stringify(cluster.nodes)}`);
    assert.equal(self.self, true);
    assert.equal(self.alive, true);
    assert.equal(self.mqtt, `127.0.0.1:${a.ports.mqtt}`);
    assert.equal(self.http, `127.0.0.1:${a.ports.http}`);
    assert.equal(typeof self.version, 'string');
    assert.deepEqual(cluster.streams.map((s) => s.name).sort(), [...STREAMS].sort());
    for (const s of cluster.streams) {
      assert.equal(s.error, null, `${s.name} readable`);
      assert.equal(s.replicas, 3, `${s.name} has 3 replicas`);
      assert.ok(s.leader, `${s.name} has a leader`);
      assert.equal(s.peers.length, 2, `${s.name}: two followers with their lag`);
      for (const p of s.peers) assert.equal(typeof p.lag, 'number');
    }
    assert.ok(cluster.checkedAt && Date.now() - Date.parse(cluster.checkedAt) < 10_000);
  });

  test('each of two Eddy nodes on the cluster sees both in /v1/admin/cluster; eddy admin cluster --json prints them', async () => {
    const both = async (node: Node): Promise<ClusterView> =>
      until(
        `both nodes on :${node.ports.http}`,
        async () => {
          const view = await getJson<ClusterView>(node, '/v1/admin/cluster');
          return view.nodes.filter((n) => n.alive).length === 2 ? view : undefined;
        },
        // A heartbeat every 5 s and a view cached 2 s; under CI's parallel load a first read of the
        // registry has taken longer than 10 s.
        20_000,
      );
    const fromA = await both(a);
    const fromB = await both(b);
    assert.notEqual(fromA.node, fromB.node, 'two nodes, two ids');
    assert.deepEqual(nodeIds(fromA), [fromA.node, fromB.node].sort());
    assert.deepEqual(nodeIds(fromB), nodeIds(fromA));
    // Each marks itself, and shows the other's listeners as that one heartbeats them.
    assert.deepEqual(fromA.nodes.filter((n) => n.self).map((n) => n.id), [fromA.node]);
    assert.equal(fromA.nodes.find((n) => n.id === fromB.node)!.mqtt, `127.0.0.1:${b.ports.mqtt}`);

    const cli = start(['admin', 'cluster', '--json', '--http', `http://127.0.0.1:${a.ports.http}`]);
    const exit = await cli.finished;
    assert.equal(exit.code, 0, cli.stderr());
    const printed = JSON.parse(cli.stdout()) as ClusterView;
    assert.equal(printed.node, fromA.node);
    assert.deepEqual(nodeIds(printed), nodeIds(fromA));
    const human = start(['admin', 'cluster', '--http', `http://127.0.0.1:${a.ports.http}`]);
    assert.equal((await human.finished).code, 0, human.stderr());
    for (const id of nodeIds(fromA)) assert.match(human.stdout(), new RegExp(`^${id}`, 'm'));
    assert.match(human.stdout(), /2 of 2 node\(s\) alive/);
    assert.match(human.stdout(), /^EDDY_MESSAGES +3\/3 current/m);
  });

  test('SIGTERM with --server-reference: MQTT 5 gets DISCONNECT 0x9C + Server Reference, MQTT 3.1.1 a closed socket, exit 0; the other node sees it gone at once', async () => {
    const bId = (await getJson<ClusterView>(b, '/v1/admin/cluster')).node;
    // Seen by node a first: its disappearance below is then the delete's doing.
    await until(`node ${bId} in node a's view`, async () => ((await getJson<ClusterView>(a, '/v1/admin/cluster')).nodes.some((n) => n.id === bId && n.alive) ? true : undefined), 10_000);
    const v5 = await connectClient(`mqtt://127.0.0.1:${b.ports.mqtt}`, { protocolVersion: 5, clientId: 'drain-v5' });
    const v3 = await connectClient(`mqtt://127.0.0.1:${b.ports.mqtt}`, { protocolVersion: 4, clientId: 'drain-v3' });
    clients.push(v5, v3);
    const disconnect = new Promise<IDisconnectPacket>((resolve) => v5.once('disconnect', resolve));
    const v3Packets: string[] = [];
    v3.on('packetreceive', (p) => v3Packets.push(p.cmd));
    const v3Closed = new Promise<void>((resolve) => v3.once('close', () => resolve()));

    b.running.child.kill('SIGTERM');
    const packet = await disconnect;
    assert.equal(packet.reasonCode, 0x9c, `0x9C use another server, got 0x${packet.reasonCode?.toString(16)}`);
    assert.equal(packet.properties?.serverReference, 'other:1883');
    await v3Closed;
    assert.ok(!v3Packets.includes('disconnect'), 'MQTT 3.1.1 has no server DISCONNECT: the socket just closes');
    const exit = await b.running.exited;
    const stoppedAt = Date.now();
    assert.equal(exit.code, 0, `exit 0; stderr: ${b.running.stderr()}`);
    assert.match(b.running.stderr(), /drained: 1 MQTT 5 client redirected to other:1883 \(0x9C\), 1 other connection closed/);

    // Deleted on close: gone well before the TTL (15 s after its last heartbeat) would have removed it.
    await until(
      `node ${bId} gone from node a's view`,
      async () => ((await getJson<ClusterView>(a, '/v1/admin/cluster')).nodes.some((n) => n.id === bId) ? undefined : true),
      6_000,
    );
    assert.ok(Date.now() - stoppedAt < 6_000);
  });

  test('with every NATS node down /healthz answers at once, cluster.state reconnecting; SIGTERM without --server-reference tells 0x8B and exits 0', async () => {
    await until('node a alone and connected', async () => ((await getJson<ClusterView>(a, '/v1/admin/cluster')).nodes.length === 1 ? true : undefined), 5_000);
    const v5 = await connectClient(`mqtt://127.0.0.1:${a.ports.mqtt}`, { protocolVersion: 5, clientId: 'down-v5' });
    clients.push(v5);
    await Promise.all([0, 1, 2].map((i) => nats.kill(i, 'SIGKILL')));
    const h = await until(
      '/healthz reporting the cluster unreachable',
      async () => {
        const began = Date.now();
        const got = await getJson<{ status: string; cluster: ClusterView }>(a, '/healthz');
        assert.ok(Date.now() - began < 1500, `/healthz answered in ${Date.now() - began} ms`);
        return got.cluster.state === 'reconnecting' ? got : undefined;
      },
      15_000,
    );
    assert.equal(h.status, 'degraded');
    // The last read is kept, dated: this node as it was.
    assert.equal(h.cluster.nodes.length, 1);
    // Past the cache's 2 s: each answer now comes from a stale cache, without a round trip to wait for.
    await sleep(2500);
    for (let i = 0; i < 3; i++) {
      const began = Date.now();
      assert.equal((await getJson<{ cluster: ClusterView }>(a, '/healthz')).cluster.state, 'reconnecting');
      assert.ok(Date.now() - began < 1500, `/healthz answered in ${Date.now() - began} ms while NATS is down`);
    }

    const disconnect = new Promise<IDisconnectPacket>((resolve) => v5.once('disconnect', resolve));
    a.running.child.kill('SIGTERM');
    const packet = await disconnect;
    assert.equal(packet.reasonCode, 0x8b, 'no server reference configured: server shutting down');
    assert.equal(packet.properties?.serverReference, undefined);
    const exit = await a.running.exited;
    assert.equal(exit.code, 0, `exit 0 with NATS down; stderr: ${a.running.stderr()}`);
    assert.match(a.running.stderr(), /drained: no cluster.serverReference, 1 MQTT 5 client told 0x8B/);
  });
});

describe('drain and cluster view outside cluster mode (in-process)', () => {
  test('stop() with a drain farewell redirects MQTT 5 clients and counts them in eddy_drain_redirected_total', async () => {
    const server = await startBroker();
    const first = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'r1' });
    const second = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'r2' });
    const v3 = await connectClient(server.mqttUrl, { protocolVersion: 4, clientId: 'r3' });
    // Room for the reason code and the Server Reference, not for the reason string as well.
    const tiny = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'r4', properties: { maximumPacketSize: 60 } });
    const got = Promise.all([first, second].map((c) => new Promise<IDisconnectPacket>((resolve) => c.once('disconnect', resolve))));
    const gotTiny = new Promise<{ packet: IDisconnectPacket; bytes: number }>((resolve) => tiny.once('packetreceive', (p) => p.cmd === 'disconnect' && resolve({ packet: p as IDisconnectPacket, bytes: (p.length ?? 0) + 2 })));
    try {
      assert.match(await server.metrics.scrape(), /^eddy_drain_redirected_total 0$/m);
      const result = await server.stop({ farewell: drainFarewell('eddy-b.example:1883 eddy-c.example:1883') });
      assert.deepEqual(result, { closed: 4, told: 3, redirected: 3 });
      for (const packet of await got) {
        assert.equal(packet.reasonCode, 0x9c);
        assert.equal(packet.properties?.serverReference, 'eddy-b.example:1883 eddy-c.example:1883');
        assert.match(packet.properties?.reasonString ?? '', /use another server/);
      }
      const small = await gotTiny;
      assert.equal(small.packet.reasonCode, 0x9c);
      assert.equal(small.packet.properties?.serverReference, 'eddy-b.example:1883 eddy-c.example:1883');
      assert.equal(small.packet.properties?.reasonString, undefined, 'the reason string would exceed the Maximum Packet Size of 60');
      assert.ok(small.bytes <= 60, `${small.bytes} bytes`);
      assert.match(await server.metrics.scrape(), /^eddy_drain_redirected_total 3$/m);
    } finally {
      for (const c of [first, second, v3, tiny]) c.end(true);
    }
  });

  test("a plain stop keeps today's 0x8B without Server Reference; /v1/admin/cluster answers enabled:false; /healthz has no cluster", async () => {
    const server = await startBroker();
    const client = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'plain' });
    try {
      const view = (await (await fetch(`${server.httpUrl}/v1/admin/cluster`)).json()) as ClusterDisabledView;
      assert.deepEqual(view, { enabled: false, storage: 'memory' });
      const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as Record<string, unknown>;
      assert.equal('cluster' in health, false);
      const disconnect = new Promise<IDisconnectPacket>((resolve) => client.once('disconnect', resolve));
      const result = await server.stop();
      const packet = await disconnect;
      assert.equal(packet.reasonCode, 0x8b);
      assert.equal(packet.properties?.serverReference, undefined);
      assert.equal(result.redirected, 0);
      assert.match(await server.metrics.scrape(), /^eddy_drain_redirected_total 0$/m);
    } finally {
      client.end(true);
    }
  });

  test('eddy admin cluster on a node of its own says so (and --json prints enabled:false)', async () => {
    const server = await startBroker();
    try {
      const text = start(['admin', 'cluster', '--http', server.httpUrl]);
      assert.equal((await text.finished).code, 0, text.stderr());
      assert.match(text.stdout(), /^not clustered: this node runs on the memory engine/);
      const json = start(['admin', 'cluster', '--json', '--http', server.httpUrl]);
      assert.equal((await json.finished).code, 0, json.stderr());
      assert.deepEqual(JSON.parse(json.stdout()), { enabled: false, storage: 'memory' });
    } finally {
      await server.stop();
    }
  });
});

describe('--server-reference and cluster.serverReference: parsing', () => {
  test('one or several host[:port] references, normalized to single spaces; flag and config key', () => {
    const config = brokerConfigFromArgs(['--cluster', 'nats://h:4222', '--server-reference', ' eddy-b.example:1883   10.0.0.2 [fe80::1]:1884 ']);
    assert.notEqual(config, 'help');
    assert.equal((config as { cluster?: { serverReference?: string } }).cluster?.serverReference, 'eddy-b.example:1883 10.0.0.2 [fe80::1]:1884');
    assert.equal(validateConfig({ cluster: { servers: ['nats://h:1'], serverReference: 'b:1883' } }, 'eddy.yaml').cluster?.serverReference, 'b:1883');
  });

  test('without --cluster, empty, a bad port, a URL or a non-string reference is a configuration error', () => {
    assert.throws(() => brokerConfigFromArgs(['--memory', '--server-reference', 'b:1883']), (err: unknown) => err instanceof ConfigError && /--cluster only/.test(err.message));
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://h:1', '--server-reference', '  ']), /at least one server/);
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://h:1', '--server-reference', 'b:99999']), /not host\[:port\]/);
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://h:1', '--server-reference', 'mqtt://b:1883']), /not host\[:port\]/);
    assert.throws(() => validateConfig({ cluster: { servers: ['nats://h:1'], serverReference: 1883 } }, 'eddy.yaml'), /cluster.serverReference must be a string/);
    assert.throws(() => validateConfig({ cluster: { servers: ['nats://h:1'], serverRef: 'b' } }, 'eddy.yaml'), /unknown key "cluster.serverRef" \(known: servers, replicas, serverReference\)/);
  });
});
