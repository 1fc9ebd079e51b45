import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { brokerConfigFromArgs } from '../src/cli/broker.js';
import { validateConfig } from '../src/cli/config.js';
import { ConfigError } from '../src/util/errors.js';
import { killQuietly, readyPorts, start, type Running } from './helpers/cli-process.js';
import { collect, connectClient, publishWithAck, sleep } from './helpers/mqtt.js';
import { freePorts, startNatsCluster, type NatsCluster } from './helpers/nats-cluster.js';

/**
 * `eddy broker --cluster nats://…` end to end, on a real 3-node JetStream cluster: the engine is
 * selected and shown on /healthz; QoS 1 round trip; a persistent session's queue and a retained
 * message survive an Eddy restart; with every NATS node killed a QoS 1 publish is refused (0x97) and
 * the broker stays up; once NATS is back, publishes are accepted again.
 */
describe('eddy broker --cluster', () => {
  let nats: NatsCluster;
  let broker: Running | undefined;
  let ports: { mqtt: number; http: number };
  const clients: MqttClient[] = [];

  const startEddy = async (): Promise<void> => {
    broker = start(['broker', '--cluster', nats.urls.join(','), '--port', '0', '--http-port', '0', '--log-level', 'warn']);
    ports = await readyPorts(broker, 30_000);
  };
  const stopEddy = async (): Promise<void> => {
    broker!.child.kill('SIGTERM');
    const exit = await broker!.exited;
    assert.equal(exit.code, 0, `eddy exits 0 on SIGTERM; stderr: ${broker!.stderr()}`);
  };
  const client = async (options: Parameters<typeof connectClient>[1]): Promise<MqttClient> => {
    const c = await connectClient(`mqtt://127.0.0.1:${ports.mqtt}`, { reconnectPeriod: 0, ...options });
    clients.push(c);
    return c;
  };
  const health = async (): Promise<{ status: string; storage: string; storageConnection?: { state: string; replicas: number } }> => {
    const res = await fetch(`http://127.0.0.1:${ports.http}/healthz`);
    assert.equal(res.status, 200);
    return (await res.json()) as never;
  };
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = await probe();
      if (got !== undefined) return got;
      if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms; eddy stderr: ${broker?.stderr()}`);
      await sleep(200);
    }
  };

  before(async () => {
    nats = await startNatsCluster();
    await startEddy();
  });
  after(async () => {
    for (const c of clients) c.end(true);
    if (broker) killQuietly(broker.child.pid);
    await nats?.stop();
  });

  test('/healthz shows the jetstream engine, connected, 3 replicas', async () => {
    const h = await health();
    assert.equal(h.storage, 'jetstream');
    assert.equal(h.status, 'ok');
    assert.equal(h.storageConnection?.state, 'connected');
    assert.equal(h.storageConnection?.replicas, 3);
  });

  test('QoS 1 round trip; a persistent queue and a retained message survive an Eddy restart', async () => {
    let sub = await client({ protocolVersion: 5, clientId: 'cl-sub', clean: false, properties: { sessionExpiryInterval: 3600 } });
    await sub.subscribeAsync('cl/#', { qos: 1 });
    let inbox = collect(sub);
    const pub = await client({ protocolVersion: 5, clientId: 'cl-pub' });
    assert.equal((await publishWithAck(pub, 'cl/a', 'one')).reasonCode, 0);
    assert.deepEqual((await inbox.take(1)).map((m) => m.payload.toString()), ['one']);
    assert.equal((await publishWithAck(pub, 'cl/r', 'kept', { retain: true })).reasonCode, 0);
    assert.deepEqual((await inbox.take(2)).map((m) => m.payload.toString()), ['one', 'kept']);
    sub.end(true);
    // Queued for the offline persistent session, confirmed only once in JetStream.
    for (const p of ['two', 'three']) assert.equal((await publishWithAck(pub, 'cl/a', p)).reasonCode, 0);
    pub.end(true);

    await stopEddy();
    await startEddy();
    sub = await client({ protocolVersion: 5, clientId: 'cl-sub', clean: false, properties: { sessionExpiryInterval: 3600 } });
    inbox = collect(sub);
    assert.deepEqual((await inbox.take(2, 15_000)).map((m) => m.payload.toString()), ['two', 'three']);
    const fresh = await client({ protocolVersion: 5, clientId: 'cl-fresh' });
    const retained = collect(fresh);
    await fresh.subscribeAsync('cl/r', { qos: 1 });
    const [r] = await retained.take(1);
    assert.equal(r!.payload.toString(), 'kept');
    assert.equal(r!.retain, true);
  });

  test('every NATS node killed: a QoS 1 publish is refused with 0x97, the broker stays up; NATS back: accepted and delivered again', async () => {
    const sub = await client({ protocolVersion: 5, clientId: 'down-sub', clean: false, properties: { sessionExpiryInterval: 3600 } });
    await sub.subscribeAsync('down/#', { qos: 1 });
    const inbox = collect(sub);
    const pub = await client({ protocolVersion: 5, clientId: 'down-pub' });
    assert.equal((await publishWithAck(pub, 'down/a', 'before')).reasonCode, 0);

    await Promise.all([0, 1, 2].map((i) => nats.kill(i, 'SIGKILL')));
    await until('healthz showing the storage cluster down', async () => ((await health()).storageConnection?.state !== 'connected' ? true : undefined), 15_000);
    const refused = await publishWithAck(pub, 'down/a', 'while down');
    assert.equal(refused.reasonCode, 0x97, `refused with 0x97, got ${refused.reasonCode} ${refused.reasonString}`);
    assert.match(refused.reasonString ?? '', /cluster/);
    // HTTP: 503; MQTT 3.1.1 cannot refuse, so the broker closes the connection (the client resends later).
    const http = await fetch(`http://127.0.0.1:${ports.http}/v1/publish/down/http`, { method: 'POST', body: 'while down', headers: { 'content-type': 'text/plain' } });
    assert.equal(http.status, 503);
    assert.equal(((await http.json()) as { error?: string }).error, 'cluster_unavailable');
    const v3 = await client({ protocolVersion: 4, clientId: 'down-v3' });
    const closed = new Promise<void>((resolve) => v3.once('close', () => resolve()));
    v3.publish('down/v3', 'while down', { qos: 1 });
    await closed;
    const h = await health();
    assert.equal(h.status, 'degraded');
    assert.equal(h.storage, 'jetstream');
    assert.ok(pub.connected, 'the publisher stays connected at v5');

    await Promise.all([0, 1, 2].map((i) => nats.restart(i)));
    // Reconnect, then stream leaders are elected again: a publish is accepted within a few seconds.
    await until(
      'a QoS 1 publish accepted after NATS came back',
      async () => ((await publishWithAck(pub, 'down/a', 'after')).reasonCode === 0 ? true : undefined),
      60_000,
    );
    assert.equal((await health()).storageConnection?.state, 'connected');
    const got = (await inbox.take(2, 15_000)).map((m) => m.payload.toString());
    assert.deepEqual(got, ['before', 'after'], 'the refused message was never delivered; the accepted one was');
  });
});

describe('--cluster and cluster: parsing', () => {
  test('--cluster takes comma-separated nats:// URLs; the config key takes servers and replicas', () => {
    const config = brokerConfigFromArgs(['--cluster', 'nats://10.0.0.1:4222, nats://10.0.0.2:4222']);
    assert.notEqual(config, 'help');
    assert.deepEqual((config as { cluster?: unknown }).cluster, { servers: ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222'] });
    assert.deepEqual(validateConfig({ cluster: { servers: ['nats://h:1'], replicas: 1 } }, 'eddy.yaml').cluster, { servers: ['nats://h:1'], replicas: 1 });
  });

  test('a URL that is not nats://, replicas out of 1..5, an unknown key, or --cluster with --memory/--data-dir are configuration errors', () => {
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'http://h:4222']), (err: unknown) => err instanceof ConfigError && /nats:\/\/HOST:PORT/.test(err.message));
    assert.throws(() => brokerConfigFromArgs(['--cluster', '']), ConfigError);
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://h:1', '--memory']), /excludes/);
    assert.throws(() => brokerConfigFromArgs(['--cluster', 'nats://h:1', '--data-dir', 'x']), /excludes/);
    assert.throws(() => validateConfig({ cluster: { servers: ['nats://h:1'], replicas: 7 } }, 'eddy.yaml'), /replicas must be 1 to 5/);
    assert.throws(() => validateConfig({ cluster: { servers: ['nats://h:1'], replica: 3 } }, 'eddy.yaml'), /unknown key "cluster.replica"/);
    assert.throws(() => validateConfig({ cluster: { servers: [] } }, 'eddy.yaml'), /cluster.servers/);
  });

  test('with no NATS server reachable at start, eddy broker --cluster says so in one line and exits non-zero', async () => {
    const [port] = await freePorts(1);
    const eddy = start(['broker', '--cluster', `nats://127.0.0.1:${port}`, '--port', '0', '--http-port', '0', '--log-level', 'silent']);
    try {
      const exit = await eddy.exited;
      assert.notEqual(exit.code, 0);
      assert.match(eddy.stderr(), /no NATS server reachable/);
      assert.equal(eddy.stderr().trim().split('\n').length, 1, `one line: ${eddy.stderr()}`);
    } finally {
      killQuietly(eddy.child.pid);
    }
  });
});
