import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';
import { isPublish } from './helpers/sentinel.js';

/** `$DLQ/…` and `$SYS/…` are the broker's: clients may not publish there, nor join its dead-letter group. */
describe('the broker-owned topics and group', () => {
  let server: EddyServer;
  const opened: RawClient[] = [];
  before(async () => {
    server = await startBroker();
  });
  after(async () => {
    for (const c of opened) c.close();
    await server.stop();
  });

  async function open(clientId: string): Promise<RawClient> {
    const { client } = await RawClient.open(server.mqtt.port, { clientId });
    opened.push(client);
    return client;
  }

  test('a client publish to $DLQ/… or $SYS/… is refused with 0x87 (QoS 1) or not routed (QoS 0)', async () => {
    const watcher = await open('dlq-watcher');
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$DLQ/#', qos: 1 }, { topic: '$SYS/#', qos: 1 }, { topic: 'reserved/sentinel', qos: 1 }] } as Packet);
    await watcher.next('suback');
    const client = await open('dlq-writer');
    for (const [id, topic] of [[2, '$DLQ/control/door'], [3, '$SYS/broker/uptime']] as const) {
      client.send({ cmd: 'publish', topic, payload: 'OPEN-THE-DOOR', qos: 1, messageId: id, retain: false, dup: false } as Packet);
      const ack = (await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
      assert.equal(ack.reasonCode, 0x87, topic);
      assert.match(ack.properties?.reasonString ?? '', /only the broker publishes/);
    }
    client.send({ cmd: 'publish', topic: '$DLQ/control/door', payload: 'qos0', qos: 0, retain: false, dup: false } as Packet);
    client.send({ cmd: 'publish', topic: 'reserved/sentinel', payload: 'after', qos: 1, messageId: 4, retain: false, dup: false } as Packet);
    const before = await watcher.until(isPublish('reserved/sentinel', 'after'));
    // The broker's own $SYS/… reports do come (as retained values on subscribing); nothing the client wrote does.
    const written = before.filter((p) => p.cmd === 'publish' && ['OPEN-THE-DOOR', 'qos0'].includes((p as Extract<Packet, { cmd: 'publish' }>).payload.toString()));
    assert.deepEqual(written, [], 'nothing the client wrote reached $DLQ/# or $SYS/#');
    const dlq = (await (await fetch(`${server.httpUrl}/v1/dlq`)).json()) as { waiting: number };
    assert.equal(dlq.waiting, 0, 'the dead-letter queue holds nothing a client wrote');
  });

  test('HTTP publish to $DLQ/… answers 403', async () => {
    const res = await fetch(`${server.httpUrl}/v1/publish/${encodeURIComponent('$DLQ')}/x`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 403);
  });

  test('a will on $DLQ/… is refused at CONNECT with 0x87', async () => {
    const client = await RawClient.connect(server.mqtt.port);
    opened.push(client);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'dlq-will', clean: true, keepalive: 60, will: { topic: '$DLQ/x', payload: Buffer.from('w'), qos: 1, retain: false } } as Packet);
    const connack = (await client.next('connack')) as Extract<Packet, { cmd: 'connack' }>;
    assert.equal(connack.reasonCode, 0x87);
  });

  test("joining the broker's eddy-dlq group is refused with 0x87; watching $DLQ/# is not", async () => {
    const client = await open('dlq-joiner');
    client.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: '$share/eddy-dlq/$DLQ/#', qos: 1 }, { topic: '$DLQ/#', qos: 1 }] } as Packet);
    const suback = (await client.next('suback')) as Extract<Packet, { cmd: 'suback' }>;
    assert.deepEqual(suback.granted, [0x87, 1]);
    assert.match(suback.properties?.reasonString ?? '', /broker's own/);
  });
});
