import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import mqtt, { type MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';

describe('MQTT over WebSocket', () => {
  let server: EddyServer;
  const clients: MqttClient[] = [];
  const connect = async (url: string, protocolVersion: 4 | 5): Promise<MqttClient> => {
    const client = await connectClient(url, { protocolVersion });
    clients.push(client);
    return client;
  };

  before(async () => {
    server = await startBroker();
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await server.stop();
  });

  test('wsUrl points at /mqtt on the HTTP port', () => {
    assert.equal(server.wsUrl, `ws://127.0.0.1:${server.http.port}/mqtt`);
    assert.notEqual(server.http.port, server.mqtt.port);
  });

  for (const version of [4, 5] as const) {
    test(`MQTT ${version === 5 ? '5' : '3.1.1'} over WebSocket publishes and receives at QoS 0, 1 and 2`, async () => {
      const sub = await connect(server.wsUrl, version);
      const pub = await connect(server.wsUrl, version);
      const inbox = collect(sub);
      const granted = await sub.subscribeAsync(`ws/v${version}/#`, { qos: 2 });
      assert.deepEqual(granted.map((g) => g.qos), [2]);
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(`ws/v${version}/q${qos}`, `payload-${qos}`, { qos });
      const got = await inbox.take(3);
      assert.deepEqual(
        got.map((m) => [m.topic, m.payload.toString(), m.qos]),
        [0, 1, 2].map((q) => [`ws/v${version}/q${q}`, `payload-${q}`, q]),
      );
    });
  }

  test('MQTT 5 properties survive the WebSocket transport', async () => {
    const sub = await connect(server.wsUrl, 5);
    const pub = await connect(server.wsUrl, 5);
    const inbox = collect(sub);
    await sub.subscribeAsync('ws/props', { qos: 1 });
    await pub.publishAsync('ws/props', Buffer.from([0, 1, 2, 255]), { qos: 1, properties: { userProperties: { k: 'v' }, contentType: 'application/octet-stream' } });
    const [msg] = await inbox.take(1);
    assert.deepEqual([...msg!.payload], [0, 1, 2, 255]);
    assert.deepEqual({ ...msg!.properties?.userProperties }, { k: 'v' });
    assert.equal(msg!.properties?.contentType, 'application/octet-stream');
  });

  for (const version of [4, 5] as const) {
    test(`across transports at MQTT ${version === 5 ? '5' : '3.1.1'}: WebSocket → TCP and TCP → WebSocket`, async () => {
      const wsClient = await connect(server.wsUrl, version);
      const tcpClient = await connect(server.mqttUrl, version);
      const wsInbox = collect(wsClient);
      const tcpInbox = collect(tcpClient);
      await wsClient.subscribeAsync(`cross/v${version}/to-ws`, { qos: 1 });
      await tcpClient.subscribeAsync(`cross/v${version}/to-tcp`, { qos: 1 });

      await wsClient.publishAsync(`cross/v${version}/to-tcp`, 'from-ws', { qos: 1 });
      await tcpClient.publishAsync(`cross/v${version}/to-ws`, 'from-tcp', { qos: 1 });

      const [atTcp] = await tcpInbox.take(1);
      const [atWs] = await wsInbox.take(1);
      assert.deepEqual([atTcp!.topic, atTcp!.payload.toString(), atTcp!.qos], [`cross/v${version}/to-tcp`, 'from-ws', 1]);
      assert.deepEqual([atWs!.topic, atWs!.payload.toString(), atWs!.qos], [`cross/v${version}/to-ws`, 'from-tcp', 1]);
    });
  }

  test('a retained message published over TCP is delivered to a later WebSocket subscriber', async () => {
    const tcpClient = await connect(server.mqttUrl, 5);
    await tcpClient.publishAsync('cross/retained', 'kept', { qos: 1, retain: true });
    const wsClient = await connect(server.wsUrl, 4);
    const inbox = collect(wsClient);
    await wsClient.subscribeAsync('cross/retained', { qos: 1 });
    const [msg] = await inbox.take(1);
    assert.deepEqual([msg!.topic, msg!.payload.toString(), msg!.retain], ['cross/retained', 'kept', true]);
    await tcpClient.publishAsync('cross/retained', '', { qos: 1, retain: true });
  });

  test('a WebSocket upgrade at another path is refused with 404', async () => {
    const url = `ws://127.0.0.1:${server.http.port}/not-mqtt`;
    const status = await new Promise<number | string>((resolve) => {
      const ws = new WebSocket(url, 'mqtt');
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 'no status');
        ws.terminate();
      });
      ws.once('open', () => {
        resolve('opened');
        ws.close();
      });
      ws.once('error', (err) => resolve(`error: ${err.message}`));
    });
    assert.equal(status, 404);
  });

  test('an mqtt.js client pointed at the wrong path fails to connect', async () => {
    const url = `ws://127.0.0.1:${server.http.port}/wrong`;
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 2000 });
    try {
      const outcome = await new Promise<string>((resolve) => {
        client.once('connect', () => resolve('connected'));
        client.once('close', () => resolve('closed'));
        client.once('error', (err) => resolve(`error: ${err.message}`));
      });
      assert.equal(outcome, 'closed');
      assert.equal(client.connected, false);
    } finally {
      client.end(true);
    }
  });

  test('GET /healthz returns 200 JSON with status ok', async () => {
    const res = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.status, 'ok');
    assert.equal(body.storage, 'memory');
    assert.equal(typeof body.connections, 'number');
  });

  test('an unknown HTTP path returns 404 JSON', async () => {
    const res = await fetch(`${server.httpUrl}/nope`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.error, 'not_found');
  });
});
