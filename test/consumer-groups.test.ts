import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDirs } from './helpers/temp-dir.js';
import { startBroker, run, EDDY_BIN } from './helpers/broker.js';
import { ENGINES, type EngineName } from './helpers/engines.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';

const clients: MqttClient[] = [];
const raws: RawClient[] = [];
let server: EddyServer | undefined;

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  for (const r of raws.splice(0)) r.close();
  await server?.stop();
  server = undefined;
});

const tempDir = tempDirs('eddy-groups-');

/** A broker on `engine`; a test that restarts on the same data passes its `dir` (the disk engine, whatever `engine` is). */
async function start(engine: EngineName, options: EddyServerOptions & { dir?: string } = {}): Promise<EddyServer> {
  const { dir, ...rest } = options;
  const storage = dir || engine === 'disk' ? new DiskStorage({ dir: dir ?? tempDir(), fsync: { kind: 'always' }, logger: silentLogger }) : undefined;
  server = await startBroker({ redelivery: { initialBackoffMs: 20, maxBackoffMs: 200 }, ...(storage ? { storage } : {}), ...rest });
  return server;
}

async function client(options: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectClient(server!.mqttUrl, { protocolVersion: 5, ...options });
  clients.push(c);
  return c;
}

async function raw(clientId: string, receiveMaximum = 100): Promise<RawClient> {
  const { client: r } = await RawClient.open(server!.mqtt.port, { clientId, properties: { receiveMaximum } });
  raws.push(r);
  return r;
}

async function rawSubscribe(r: RawClient, filter: string, qos: 0 | 1 | 2 = 1): Promise<void> {
  r.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] });
  const suback = await r.next('suback');
  assert.deepEqual((suback as Extract<Packet, { cmd: 'suback' }>).granted, [qos]);
}

async function publish(topics: string | string[], payloads: string[], qos: 1 | 2 = 1, options: IClientOptions = {}): Promise<void> {
  const pub = await client(options);
  for (let i = 0; i < payloads.length; i++) await pub.publishAsync(Array.isArray(topics) ? topics[i]! : topics, payloads[i]!, { qos });
}

async function waitFor(cond: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(10);
  }
}

const text = (ps: IPublishPacket[]): string[] => ps.map((p) => p.payload.toString());
const userProp = (p: IPublishPacket, key: string): string | undefined => {
  const v = p.properties?.userProperties?.[key];
  return Array.isArray(v) ? v[0] : v;
};

for (const engine of ENGINES) {
  describe(`consumer groups (${engine} engine)`, () => {
    it('a message in flight to a member that disconnects goes to another member', async () => {
      await start(engine);
      // A takes its share and never acknowledges; B acknowledges everything.
      const a = await raw('holder');
      await rawSubscribe(a, '$share/workers/jobs/#');
      const b = await client();
      const got = collect(b);
      await b.subscribeAsync('$share/workers/jobs/#', { qos: 1 });
      await publish('jobs/1', ['j0', 'j1', 'j2', 'j3']);
      const held = [(await a.next('publish')) as IPublishPacket, (await a.next('publish')) as IPublishPacket].map((p) => p.payload.toString());
      await got.take(2);
      a.close();
      const all = await got.take(4);
      const payloads = all.map((p) => p.payload.toString());
      assert.deepEqual([...payloads].sort(), ['j0', 'j1', 'j2', 'j3'], 'B ends with every job exactly once');
      for (const p of all.slice(2)) {
        assert.ok(held.includes(p.payload.toString()), `${p.payload} came back from A`);
        assert.equal(userProp(p, 'eddy-delivery-count'), '2', 'the handed-over copy says it is the second delivery');
      }
      // The handover happened as the broker saw A go; a copy it sent B then comes before this marker.
      await b.subscribeAsync('jobs-marker', { qos: 1 });
      await publish('jobs-marker', ['marker']);
      assert.equal((await beforeMarker(got.messages, isPublish('jobs-marker', 'marker'))).length, 4, 'no duplicates after the handover');
    });

    it('each message goes to exactly one member, with members joining and leaving mid-stream', async () => {
      await start(engine);
      const filter = '$share/g/churn/t';
      const seen: string[] = [];
      const members: MqttClient[] = [];
      const join = async (): Promise<void> => {
        const m = await client();
        m.on('message', (_t, p) => seen.push(p.toString()));
        await m.subscribeAsync(filter, { qos: 1 });
        members.push(m);
      };
      await join();
      await join();
      const pub = await client();
      const sent: string[] = [];
      for (let i = 0; i < 300; i++) {
        sent.push(`c${i}`);
        await pub.publishAsync('churn/t', `c${i}`, { qos: 1 });
        if (i === 100) await join();
        if (i === 200) members.shift()!.end(true);
      }
      await waitFor(() => new Set(seen).size >= 300, () => `${new Set(seen).size} distinct of 300`);
      assert.deepEqual([...new Set(seen)].sort(), [...sent].sort(), 'every message reached the group');
      // A member cut off mid-stream may have held unacknowledged messages, which were handed over: those
      // are the only duplicates allowed, and each at most once more.
      const counts = new Map<string, number>();
      for (const s of seen) counts.set(s, (counts.get(s) ?? 0) + 1);
      assert.ok([...counts.values()].every((n) => n <= 2));
    });

    it('a group with no member connected keeps queueing, durably across a restart', async () => {
      const dir = tempDir();
      await start(engine, { dir });
      const opts = { clientId: 'grp-durable', clean: false, properties: { sessionExpiryInterval: 3600 } };
      const m = await client(opts);
      await m.subscribeAsync('$share/billing/invoices/+', { qos: 1 });
      m.end(true);
      await sleep(50);
      const sent = Array.from({ length: 20 }, (_, i) => `inv${i}`);
      await publish('invoices/new', sent);
      assert.equal(server!.broker.groups.get('$share/billing/invoices/+')!.queue.pendingCount, 20);
      await server!.stop();
      server = undefined;
      clients.splice(0);
      await start(engine, { dir });
      assert.equal(server!.broker.groups.get('$share/billing/invoices/+')?.queue.pendingCount, 20, 'the group queue survived the restart');
      // A new member (not the one that subscribed) drains it: the queue belongs to the group.
      const other = await client();
      const got = collect(other);
      await other.subscribeAsync('$share/billing/invoices/+', { qos: 1 });
      const all = await got.take(20);
      assert.deepEqual(all.map((p) => p.payload.toString()), sent, 'in order, all of them');
    });

    it('a full group queue refuses further QoS 1 publishes with 0x97 naming the group; nothing stored is dropped', async () => {
      await start(engine, { dir: tempDir(), limits: { maxQueued: 5 } });
      const m = await client({ clientId: 'grp-limit', clean: false, properties: { sessionExpiryInterval: 600 } });
      await m.subscribeAsync('$share/slow/limit/#', { qos: 1 });
      m.end(true);
      await sleep(50);
      const pub = await raw('grp-limit-pub');
      const codes: number[] = [];
      const reasons: string[] = [];
      for (let i = 0; i < 7; i++) {
        pub.send({ cmd: 'publish', topic: 'limit/x', payload: Buffer.from(`l${i}`), qos: 1, messageId: i + 1, retain: false, dup: false });
        const ack = (await pub.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
        codes.push(ack.reasonCode ?? 0);
        if (ack.properties?.reasonString) reasons.push(ack.properties.reasonString);
      }
      assert.deepEqual(codes, [0, 0, 0, 0, 0, 0x97, 0x97]);
      assert.match(reasons[0]!, /group \$share\/slow\/limit\/# holds 5 messages/);
      // Listen before CONNACK: the queued messages follow it at once.
      const back = mqtt.connect(server!.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'grp-limit', clean: false, properties: { sessionExpiryInterval: 600 } });
      clients.push(back);
      const got = collect(back);
      assert.deepEqual(text(await got.take(5)), ['l0', 'l1', 'l2', 'l3', 'l4']);
    });

    it('a negative acknowledgement is redelivered with growing backoff, then dead-lettered with its story', async () => {
      await start(engine, { channels: [{ pattern: 'orders/#', maxDeliveries: 3 }] });
      const watcher = await client();
      const letters = collect(watcher);
      await watcher.subscribeAsync('$DLQ/#', { qos: 1 });
      const times: number[] = [];
      const counts: Array<string | undefined> = [];
      const refuser = await client({
        customHandleAcks: (_topic, _payload, packet, done) => {
          times.push(Date.now());
          counts.push(userProp(packet, 'eddy-delivery-count'));
          done(0x80);
        },
      });
      await refuser.subscribeAsync('$share/shop/orders/#', { qos: 1 });
      await publish('orders/42', ['{"sku":"milk"}'], 1);
      const [letter] = await letters.take(1);
      assert.equal(letter!.topic, '$DLQ/orders/42');
      assert.equal(letter!.payload.toString(), '{"sku":"milk"}');
      assert.equal(userProp(letter!, 'eddy-original-topic'), 'orders/42');
      assert.equal(userProp(letter!, 'eddy-delivery-count'), '3');
      assert.equal(userProp(letter!, 'eddy-group'), '$share/shop/orders/#');
      assert.match(userProp(letter!, 'eddy-dlq-reason')!, /0x80/);
      assert.deepEqual(counts, [undefined, '2', '3'], 'three deliveries, redeliveries numbered');
      assert.ok(times[1]! - times[0]! >= 18, `first retry waited the initial backoff (${times[1]! - times[0]!} ms)`);
      assert.ok(times[2]! - times[1]! >= 38, `second retry waited twice as long (${times[2]! - times[1]!} ms)`);
      assert.equal(server!.broker.redelivery.stats.deadLettered, 1);
      assert.equal(server!.broker.redelivery.stats.nacks, 3);
    });

    it('a redelivery after a nack may go to any member of the group', async () => {
      await start(engine, { channels: [{ pattern: 'tasks/#', maxDeliveries: 10 }] });
      const refused: string[] = [];
      const done: string[] = [];
      const picky = await client({
        customHandleAcks: (_t, payload, _p, ack) => {
          refused.push(payload.toString());
          ack(0x83);
        },
      });
      await picky.subscribeAsync('$share/w/tasks/#', { qos: 1 });
      const worker = await client();
      worker.on('message', (_t, p) => done.push(p.toString()));
      await worker.subscribeAsync('$share/w/tasks/#', { qos: 1 });
      const sent = Array.from({ length: 10 }, (_, i) => `t${i}`);
      await publish('tasks/x', sent);
      await waitFor(() => done.length >= 10, () => `done ${done}`);
      assert.deepEqual([...done].sort(), [...sent].sort(), 'the accepting member processed everything');
      assert.ok(refused.length > 0, 'the picky member refused some first');
      assert.equal(server!.broker.redelivery.stats.deadLettered, 0);
    });

    it('a plain (non-shared) subscriber that nacks gets the message again, and an ack ends it', async () => {
      await start(engine);
      const attempts: string[] = [];
      const c = await client({
        customHandleAcks: (_t, payload, _packet, ack) => {
          attempts.push(payload.toString());
          ack(attempts.length === 1 ? 0x80 : 0);
        },
      });
      const got = collect(c);
      await c.subscribeAsync('direct/t', { qos: 1 });
      await publish('direct/t', ['once']);
      const [m] = await got.take(1);
      assert.equal(m!.payload.toString(), 'once');
      assert.equal(userProp(m!, 'eddy-delivery-count'), '2');
      // A redelivery waits out a backoff of at most maxBackoffMs (200): had the ack not ended it, its
      // timer (in this process) fires before this sleep ends, and the copy comes before the marker.
      await sleep(400);
      await publish('direct/t', ['marker']);
      assert.deepEqual(await beforeMarker(attempts, (p) => p === 'marker'), ['once', 'once']);
    });

    it('a QoS 2 PUBREC with a failure code is a nack too', async () => {
      await start(engine, { channels: [{ pattern: 'q2/#', maxDeliveries: 2 }] });
      const watcher = await client();
      const letters = collect(watcher);
      await watcher.subscribeAsync('$DLQ/q2/#', { qos: 2 });
      const r = await raw('q2-refuser');
      await rawSubscribe(r, 'q2/#', 2);
      await publish('q2/x', ['two'], 2);
      for (let i = 0; i < 2; i++) {
        const p = (await r.next('publish')) as IPublishPacket;
        r.send({ cmd: 'pubrec', messageId: p.messageId!, reasonCode: 0x80, properties: { reasonString: 'cannot parse' } });
      }
      const [letter] = await letters.take(1);
      assert.equal(userProp(letter!, 'eddy-client-id'), 'q2-refuser');
      assert.match(userProp(letter!, 'eddy-dlq-reason')!, /0x80: cannot parse/);
    });

    it('dead letters are listed and redriven over HTTP and with eddy dlq', async () => {
      await start(engine, { channels: [{ pattern: 'mail/#', maxDeliveries: 1 }] });
      let failing = true;
      const received: string[] = [];
      const mailer = await client({
        customHandleAcks: (_t, p, _packet, ack) => {
          if (!failing) received.push(p.toString());
          ack(failing ? 0x80 : 0);
        },
      });
      await mailer.subscribeAsync('$share/mailer/mail/#', { qos: 1 });
      await publish(['mail/welcome', 'mail/reset', 'mail/welcome'], ['w1', 'r1', 'w2']);
      await waitFor(() => server!.broker.deadLetters.queue.pendingCount === 3, () => `dlq holds ${server!.broker.deadLetters.queue.pendingCount}`);

      const listed = (await (await fetch(`${server!.httpUrl}/v1/dlq`)).json()) as { count: number; messages: Array<{ originalTopic: string; payload: string; deliveryCount: number; group: string }> };
      assert.equal(listed.count, 3);
      assert.deepEqual(listed.messages.map((m) => `${m.originalTopic}:${m.payload}`), ['mail/welcome:w1', 'mail/reset:r1', 'mail/welcome:w2']);
      assert.equal(listed.messages[0]!.group, '$share/mailer/mail/#');
      const bad = await fetch(`${server!.httpUrl}/v1/dlq?limit=x`);
      assert.equal(bad.status, 400);

      const cliList = await run(process.execPath, [EDDY_BIN, 'dlq', 'list', '--http', server!.httpUrl, '--json', '--topic', 'mail/welcome']);
      assert.equal(cliList.code, 0, cliList.stderr);
      assert.deepEqual(cliList.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { payload: string }).payload), ['w1', 'w2']);

      failing = false;
      const redrive = await run(process.execPath, [EDDY_BIN, 'dlq', 'redrive', '--http', server!.httpUrl, '--topic', 'mail/welcome']);
      assert.equal(redrive.code, 0, redrive.stderr);
      assert.match(redrive.stdout, /redriven 2/);
      await waitFor(() => received.length >= 2, () => `mailer got ${received}`);
      assert.deepEqual(received, ['w1', 'w2']);
      assert.equal(server!.broker.deadLetters.queue.pendingCount, 1, 'the one not redriven is still there');
      const rest = (await (await fetch(`${server!.httpUrl}/v1/dlq`)).json()) as { messages: Array<{ payload: string }> };
      assert.deepEqual(rest.messages.map((m) => m.payload), ['r1']);
    });

    it('dead letters survive a restart on the disk engine', async () => {
      const dir = tempDir();
      await start(engine, { dir, channels: [{ pattern: 'pay/#', maxDeliveries: 1 }] });
      const c = await client({ customHandleAcks: (_t, _p, _packet, ack) => ack(0x80) });
      await c.subscribeAsync('$share/pay/pay/#', { qos: 1 });
      await publish('pay/1', ['p1']);
      await waitFor(() => server!.broker.deadLetters.queue.pendingCount === 1, () => 'not dead-lettered');
      await server!.stop();
      server = undefined;
      clients.splice(0);
      await start(engine, { dir });
      const listed = (await (await fetch(`${server!.httpUrl}/v1/dlq`)).json()) as { messages: Array<{ payload: string; reason: string }> };
      assert.deepEqual(listed.messages.map((m) => m.payload), ['p1']);
      assert.match(listed.messages[0]!.reason, /refused by/);
    });
  });
}
