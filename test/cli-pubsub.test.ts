import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Packet } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { EDDY_BIN, run, startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { start, type Running } from './helpers/cli-process.js';

const SEED = fileURLToPath(new URL('../../examples/seed/asyncapi.yaml', import.meta.url));

const eddy = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  run(process.execPath, [EDDY_BIN, ...args], { timeoutMs: 20_000 });
const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);

let server: EddyServer;
let url: string;
const children: Running[] = [];
const raws: RawClient[] = [];
before(async () => {
  server = await startBroker({ asyncapi: [SEED], limits: { maxPacketSize: 256 }, access: { denySubscribe: ['hidden/#'] } });
  url = server.mqttUrl;
});
after(async () => {
  for (const c of raws.splice(0)) c.close();
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await server.stop();
});

/** What the broker itself answers a QoS 1 publish: the PUBACK's reason code and reason string. */
async function pubackFor(topic: string, payload: string): Promise<{ reasonCode?: number; reason?: string }> {
  const { client } = await RawClient.open(server.mqtt.port);
  raws.push(client);
  client.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId: 1, retain: false, dup: false } as Packet);
  const ack = (await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
  client.close();
  return { reasonCode: ack.reasonCode, reason: ack.properties?.reasonString };
}

describe('eddy sub with a persistent session', () => {
  /** Runs `eddy sub` once to create the session, then stops it: the session keeps the subscription. */
  async function createSession(clientId: string, filter: string): Promise<void> {
    const sub = start(['sub', filter, '--url', url, '--client-id', clientId, '--session-expiry', '300']);
    children.push(sub);
    const deadline = Date.now() + 10_000;
    while (!server.broker.sessions.get(clientId)?.subscriptions.has(filter)) {
      assert.ok(Date.now() < deadline && sub.child.exitCode === null, `eddy sub did not subscribe: ${sub.stderr()}`);
      await sleep(20);
    }
    sub.child.kill('SIGTERM');
    assert.equal((await sub.finished).code, 0, sub.stderr());
  }

  test('messages queued while it was away are printed when it comes back', async () => {
    await createSession('cli-persistent', 'away/news');
    for (const n of [1, 2, 3]) assert.equal((await eddy(['pub', 'away/news', `queued-${n}`, '--qos', '1', '--url', url])).code, 0);
    const back = await eddy(['sub', 'away/news', '--url', url, '--client-id', 'cli-persistent', '--session-expiry', '300', '--count', '3']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(lines(back.stdout), ['queued-1', 'queued-2', 'queued-3']);
  });

  test('past --count, queued messages are left for the next run, not acknowledged and lost', async () => {
    await createSession('cli-partial', 'away/jobs');
    for (const n of [1, 2, 3, 4, 5]) assert.equal((await eddy(['pub', 'away/jobs', `job-${n}`, '--url', url])).code, 0);
    const first = await eddy(['sub', 'away/jobs', '--url', url, '--client-id', 'cli-partial', '--session-expiry', '300', '--count', '3']);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(lines(first.stdout), ['job-1', 'job-2', 'job-3']);
    const second = await eddy(['sub', 'away/jobs', '--url', url, '--client-id', 'cli-partial', '--session-expiry', '300', '--count', '2']);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(lines(second.stdout), ['job-4', 'job-5']);
  });
});

describe('eddy pub prints the broker’s reason', () => {
  const badEmail = JSON.stringify({ userId: 'u1', email: 'not-an-email' });

  test('a PUBACK refusal (AsyncAPI validation): reason code and the broker’s reason string, exit 1', async () => {
    const broker = await pubackFor('user/signedup', badEmail);
    assert.equal(broker.reasonCode, 0x99);
    assert.match(broker.reason ?? '', /email must match format "email"/);
    for (const qos of ['1', '2']) {
      const result = await eddy(['pub', 'user/signedup', badEmail, '--qos', qos, '--url', url]);
      assert.equal(result.code, 1, `QoS ${qos}`);
      assert.deepEqual(lines(result.stderr), [`eddy: publish to user/signedup refused: 0x99 payload format invalid: ${broker.reason}`], `QoS ${qos}`);
    }
  });

  test('a DISCONNECT refusal (0x90 topic name invalid) exits 1 with its reason, at QoS 0 too; an accepted QoS 0 publish exits 0', async () => {
    for (const qos of ['0', '1']) {
      const result = await eddy(['pub', 'bad/+/topic', 'x', '--qos', qos, '--url', url]);
      assert.equal(result.code, 1, `QoS ${qos}: ${result.stderr}`);
      const errLines = lines(result.stderr);
      assert.equal(errLines.length, 1, result.stderr);
      assert.match(errLines[0]!, /^eddy: publish to bad\/\+\/topic refused: the broker disconnected with 0x90 topic name invalid: .*bad\/\+\/topic/);
    }
    // Waiting for the broker's verdict on QoS 0 must not turn an accepted publish into a failure.
    const watcher = await connectClient(url, { protocolVersion: 5 });
    try {
      const got = collect(watcher);
      await watcher.subscribeAsync('fine/zero', { qos: 0 });
      const result = await eddy(['pub', 'fine/zero', 'sentinel', '--qos', '0', '--url', url]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '');
      const [message] = await got.take(1);
      assert.equal(message!.payload.toString(), 'sentinel');
    } finally {
      watcher.end(true);
    }
  });

  test('a DISCONNECT refusal (0x95 packet too large) exits 1 with its reason, at QoS 0 too', async () => {
    const big = 'x'.repeat(400);
    for (const qos of ['0', '1']) {
      const result = await eddy(['pub', 'big/one', big, '--qos', qos, '--url', url]);
      assert.equal(result.code, 1, `QoS ${qos}: ${result.stderr}`);
      assert.match(result.stderr, /^eddy: publish to big\/one refused: the broker disconnected with 0x95 packet too large: .*256/);
    }
  });
});

describe('eddy sub prints the broker’s SUBACK reason', () => {
  /** The SUBACK the broker itself sends for a SUBSCRIBE of `filter`. */
  async function subackFor(filter: string, properties?: Record<string, unknown>): Promise<{ code: number; reason?: string }> {
    const { client } = await RawClient.open(server.mqtt.port);
    raws.push(client);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }], ...(properties ? { properties } : {}) } as Packet);
    const suback = (await client.next('suback')) as Extract<Packet, { cmd: 'suback' }>;
    client.close();
    return { code: suback.granted[0] as number, reason: suback.properties?.reasonString };
  }

  test('a denied filter: reason code and reason string, exit 1', async () => {
    const broker = await subackFor('hidden/x');
    assert.equal(broker.code, 0x80, 'the README: SUBACK 0x80 for a denied filter');
    assert.ok(broker.reason, 'with a reason string');
    const result = await eddy(['sub', 'hidden/x', '--url', url, '--count', '1']);
    assert.equal(result.code, 1);
    assert.deepEqual(lines(result.stderr), [`eddy: subscribe to hidden/x refused: 0x${broker.code.toString(16)} unspecified error: ${broker.reason}`]);
  });

  test('--from on a consumer group: the broker’s 0x83 and its reason string, exit 1', async () => {
    const broker = await subackFor('$share/g/replay/x', { userProperties: { 'eddy-from': 'earliest' } });
    assert.equal(broker.code, 0x83);
    const result = await eddy(['sub', 'replay/x', '--group', 'g', '--from', 'earliest', '--url', url, '--count', '1']);
    assert.equal(result.code, 1);
    assert.deepEqual(lines(result.stderr), [`eddy: subscribe to $share/g/replay/x refused: 0x83 implementation specific error: ${broker.reason}`]);
  });

  test('a malformed filter is a usage error (exit 2), not a lost connection', async () => {
    const result = await eddy(['sub', 'a/#/b', '--url', url]);
    assert.equal(result.code, 2);
    assert.deepEqual(lines(result.stderr), ['eddy sub: "a/#/b" is not a valid topic filter (# only at the end, + and # each a whole level)']);
  });
});
