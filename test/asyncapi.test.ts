import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { IPublishPacket, MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import { loadRegistry, AsyncApiError } from '../src/asyncapi/index.js';
import type { EddyServer } from '../src/server.js';
import { EDDY_BIN, run, spawnBroker, startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string): string => `${root}test/fixtures/asyncapi/${name}`;
const SHARED = `${root}../shared/asyncapi-examples`;

const clients: MqttClient[] = [];
const raws: RawClient[] = [];
let server: EddyServer | undefined;

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  for (const r of raws.splice(0)) r.close();
  await server?.stop();
  server = undefined;
});

async function start(strict = false): Promise<EddyServer> {
  server = await startBroker({ asyncapi: [fixture('signup.yaml'), fixture('shop.yaml')], strict });
  return server;
}

/** Publishes with a raw MQTT 5 client and returns the PUBACK. */
async function publish5(topic: string, payload: string, properties: Record<string, unknown> = { contentType: 'application/json' }): Promise<Extract<Packet, { cmd: 'puback' }>> {
  const { client } = await RawClient.open(server!.mqtt.port, { clientId: `pub-${Math.random().toString(36).slice(2)}` });
  raws.push(client);
  client.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId: 1, retain: false, dup: false, properties } as Packet);
  return (await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>;
}

const VALID = JSON.stringify({ userId: 'ada', email: 'ada@example.com' });

describe('AsyncAPI documents', () => {
  it('every example document in ../shared/asyncapi-examples loads', async (t) => {
    if (!fs.existsSync(SHARED)) return t.skip(`${SHARED} is not here`);
    const files = fs.readdirSync(SHARED).filter((f) => /\.ya?ml$|\.json$/.test(f));
    assert.ok(files.length > 0);
    for (const file of files) {
      const { registry } = await loadRegistry([`${SHARED}/${file}`]);
      assert.ok(registry.channels.length > 0, `${file} declares channels`);
    }
  });

  it('documents merge into one registry, with $refs across files resolved', async () => {
    const { registry } = await loadRegistry([fixture('signup.yaml'), fixture('shop.yaml')]);
    assert.deepEqual(registry.channels.map((c) => c.address).sort(), ['fridge/{fridgeId}/level', 'notes/{noteId}', 'shop/orders', 'user/signedup']);
    const order = (quantity: number): Parameters<typeof registry.check>[0] => ({
      topic: 'shop/orders',
      payload: Buffer.from(JSON.stringify({ item: 'milk', quantity })),
      qos: 1,
      retain: false,
      properties: { contentType: 'application/json' },
      publishedAt: Date.now(),
    });
    assert.equal(registry.check(order(2), false), undefined);
    assert.match(registry.check(order(0), false)!.reason, /shop\/orders: \/quantity must be >= 1/);
  });

  it('a second document naming a channel without messages adds its declaration, not a way around the first one\'s messages', async () => {
    const { registry } = await loadRegistry([fixture('signup.yaml'), fixture('signup-listener.yaml')]);
    const signedUp = registry.channels.find((c) => c.address === 'user/signedup')!;
    assert.equal(registry.channels.length, 3, 'the channels of signup.yaml, user/signedup once');
    assert.deepEqual(signedUp.declarations.map((d) => d.channelId), ['userSignedUp', 'signups']);
    const message = (payload: unknown): Parameters<typeof registry.check>[0] => ({ topic: 'user/signedup', payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, properties: {}, publishedAt: 0 });
    assert.equal(registry.check(message({ userId: 'ada', email: 'ada@example.com' }), false), undefined);
    assert.equal(registry.check(message({ anything: true }), false)?.kind, 'invalid');
  });

  it('recursive schemas validate to any depth; JSON object headers are parsed before their schema sees them', async () => {
    const { registry } = await loadRegistry([fixture('recursive.yaml')]);
    const tree = (payload: unknown, headers: Record<string, string> = {}): Parameters<typeof registry.check>[0] => ({
      topic: 'tree/updates',
      payload: Buffer.from(JSON.stringify(payload)),
      qos: 1,
      retain: false,
      properties: { contentType: 'application/json', userProperties: headers },
      publishedAt: Date.now(),
    });
    assert.equal(registry.check(tree({ name: 'a', children: [{ name: 'b', children: [{ name: 'c' }] }] }), false), undefined);
    assert.equal(registry.check(tree({ name: 'a', children: [{ name: 'b', children: [{}] }] }), false)?.reason, "tree/updates: /children/0/children/0 must have required property 'name'");
    assert.equal(registry.check(tree({ name: 'a' }, { meta: '{"a":1}' }), false), undefined);
    assert.equal(registry.check(tree({ name: 'a' }, { meta: '{"a":"x"}' }), false)?.reason, 'tree/updates: headers/meta/a must be integer');
  });

  it('a document with errors fails with file:line diagnostics', async () => {
    await assert.rejects(loadRegistry([fixture('broken.yaml')]), (err: AsyncApiError) => {
      assert.equal(err.code, 'EDDY_ASYNCAPI');
      assert.ok(err.diagnostics.some((d) => /broken\.yaml:2:6 info: .*required property "version"/.test(d)), err.diagnostics.join('\n'));
      return true;
    });
    const cli = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'validate', fixture('broken.yaml')]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /broken\.yaml:10:17 channels\.a\.messages\.m\.payload\.type: /);
    const ok = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'validate', fixture('signup.yaml'), fixture('shop.yaml')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /valid: 2 documents, 4 channels/);
    const broker = await run(process.execPath, [EDDY_BIN, 'broker', '--memory', '--port', '0', '--http-port', '0', '--asyncapi', fixture('broken.yaml')]);
    assert.notEqual(broker.code, 0);
    assert.match(broker.stderr, /broken\.yaml:2:6 info:/, 'start-up stops with the diagnostics');
  });
});

describe('configuration', () => {
  it('the config file names documents relative to itself, and strict; --strict without a document is an error', async () => {
    const dir = fs.mkdtempSync(`${root}.tmp-config-`);
    try {
      fs.copyFileSync(fixture('signup.yaml'), `${dir}/signup.yaml`);
      fs.writeFileSync(`${dir}/eddy.yaml`, 'memory: true\nasyncapi: signup.yaml\nstrict: true\n');
      const broker = await spawnBroker(['--config', `${dir}/eddy.yaml`, '--log-level', 'warn']);
      try {
        const { client } = await RawClient.open(broker.mqttPort, { clientId: 'cfg' });
        raws.push(client);
        client.send({ cmd: 'publish', topic: 'not/declared', payload: Buffer.from('{}'), qos: 1, messageId: 1, retain: false, dup: false } as Packet);
        assert.equal(((await client.next('puback')) as Extract<Packet, { cmd: 'puback' }>).reasonCode, 0x90);
      } finally {
        await broker.stop();
      }
      const bad = await run(process.execPath, [EDDY_BIN, 'broker', '--memory', '--strict']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--strict needs at least one --asyncapi document/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('validation at the broker', () => {
  it('MQTT 5: a valid publish goes through; an invalid one gets 0x99 naming the channel, pointer and rule', async () => {
    await start();
    const sub = await connectClient(server!.mqttUrl, { protocolVersion: 5 });
    clients.push(sub);
    const got = collect(sub);
    await sub.subscribeAsync('#', { qos: 1 });
    assert.equal((await publish5('user/signedup', VALID, { contentType: 'application/json', userProperties: { source: 'web', attempt: '2' } })).reasonCode ?? 0, 0);
    const bad = await publish5('user/signedup', JSON.stringify({ userId: 'ada', email: 'not-an-email' }));
    assert.equal(bad.reasonCode, 0x99);
    assert.equal(bad.properties?.reasonString, 'user/signedup: /email must match format "email"');
    const missing = await publish5('user/signedup', JSON.stringify({ email: 'a@b.co' }));
    assert.match(missing.properties!.reasonString!, /must have required property 'userId'/);
    const header = await publish5('user/signedup', VALID, { contentType: 'application/json', userProperties: { source: 'fax' } });
    assert.match(header.properties!.reasonString!, /user\/signedup: headers\/source must be equal to one of the allowed values/);
    const notJson = await publish5('user/signedup', '{oops');
    assert.match(notJson.properties!.reasonString!, /payload is not valid JSON/);
    const wrongType = await publish5('user/signedup', VALID, { contentType: 'text/plain' });
    assert.match(wrongType.properties!.reasonString!, /content type text\/plain is not accepted here \(application\/json\)/);
    assert.equal((await publish5('fridge/kitchen/level', '{"level":0.4}')).reasonCode ?? 0, 0, 'parameter in its enum');
    assert.equal((await publish5('fridge/kitchen/level', '{"level":4}')).reasonCode, 0x99);
    assert.equal((await publish5('notes/1', 'short note', { contentType: 'text/plain' })).reasonCode ?? 0, 0, 'text payloads are checked as strings');
    assert.equal((await publish5('notes/1', 'a note that is far too long', { contentType: 'text/plain' })).reasonCode, 0x99);
    // Each publish above was answered before the next was sent, so it was routed (or not) before this valid marker.
    assert.equal((await publish5('notes/1', 'marker', { contentType: 'text/plain' })).reasonCode ?? 0, 0);
    assert.deepEqual((await beforeMarker(got.messages, isPublish('notes/1', 'marker'))).map((m) => m.topic), ['user/signedup', 'fridge/kitchen/level', 'notes/1'], 'only valid messages were delivered');
    assert.ok(server!.broker.stats.invalidPublishes >= 7);
  });

  it('MQTT 3.1.1: an invalid publish is acknowledged but not delivered; it waits on $DLQ/invalid/<topic> with its errors', async () => {
    await start();
    const sub = await connectClient(server!.mqttUrl, { protocolVersion: 4 });
    clients.push(sub);
    const plain = collect(sub);
    await sub.subscribeAsync('user/#', { qos: 1 });
    const watcher = await connectClient(server!.mqttUrl, { protocolVersion: 5 });
    clients.push(watcher);
    const invalid = collect(watcher);
    await watcher.subscribeAsync('$DLQ/invalid/#', { qos: 1 });
    const pub = await connectClient(server!.mqttUrl, { protocolVersion: 4 });
    clients.push(pub);
    await pub.publishAsync('user/signedup', JSON.stringify({ userId: 'x', email: 'nope' }), { qos: 1 });
    await pub.publishAsync('user/signedup', VALID, { qos: 1 });
    const [letter] = await invalid.take(1);
    assert.equal(letter!.topic, '$DLQ/invalid/user/signedup');
    assert.equal(letter!.properties?.userProperties?.['eddy-dlq-reason'], 'user/signedup: /email must match format "email"');
    assert.equal(letter!.properties?.userProperties?.['eddy-original-topic'], 'user/signedup');
    const [ok] = await plain.take(1);
    assert.equal(ok!.payload.toString(), VALID);
    // The valid publish, acknowledged after the invalid one from the same client, is the marker.
    assert.deepEqual(await beforeMarker(plain.messages, (m) => m.payload.toString() === VALID), [], 'the invalid one was not delivered');
    const listed = (await (await fetch(`${server!.httpUrl}/v1/dlq`)).json()) as { messages: Array<{ originalTopic: string }> };
    assert.deepEqual(listed.messages.map((m) => m.originalTopic), ['user/signedup'], 'eddy dlq list shows it');
  });

  it('HTTP: 202 when valid, 422 with the ajv errors when not, 415 for a content type the channel does not take', async () => {
    await start();
    const post = (topic: string, body: string, type = 'application/json'): Promise<Response> =>
      fetch(`${server!.httpUrl}/v1/publish/${topic}`, { method: 'POST', body, headers: { 'content-type': type } });
    assert.equal((await post('user/signedup', VALID)).status, 202);
    const bad = await post('user/signedup', JSON.stringify({ userId: 1, email: 'x' }));
    assert.equal(bad.status, 422);
    const body = (await bad.json()) as { error: string; message: string; errors: string[] };
    assert.equal(body.error, 'invalid_payload');
    assert.match(body.message, /^user\/signedup: \/userId must be string/);
    assert.ok(Array.isArray(body.errors) && body.errors.length >= 1);
    assert.equal((await post('user/signedup', VALID, 'application/xml')).status, 415);
    assert.equal((await post('not/declared', '{}')).status, 202, 'undeclared channels are allowed without --strict');
  });

  it('--strict refuses undeclared channels: publish 0x90 (HTTP 422), subscribe 0x8F; declared ones work', async () => {
    await start(true);
    const refused = await publish5('not/declared', '{}');
    assert.equal(refused.reasonCode, 0x90);
    assert.match(refused.properties!.reasonString!, /no AsyncAPI document declares this channel/);
    const attic = await publish5('fridge/attic/level', '{"level":0.5}');
    assert.equal(attic.reasonCode, 0x99, 'a parameter outside its enum is an invalid message of the declared channel, not an undeclared channel');
    assert.equal(attic.properties?.reasonString, 'fridge/attic/level: parameter fridgeId must be one of kitchen, garage');
    const http = await fetch(`${server!.httpUrl}/v1/publish/not/declared`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(http.status, 422);
    assert.equal(((await http.json()) as { error: string }).error, 'undeclared_channel');
    const { client } = await RawClient.open(server!.mqtt.port, { clientId: 'strict-sub' });
    raws.push(client);
    client.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'user/#', qos: 1 }, { topic: 'fridge/+/level', qos: 1 }, { topic: 'random/#', qos: 1 }, { topic: '$DLQ/#', qos: 1 }] });
    const suback = (await client.next('suback')) as Extract<Packet, { cmd: 'suback' }>;
    assert.deepEqual(suback.granted, [1, 1, 0x8f, 1]);
    assert.match(suback.properties?.reasonString ?? '', /random\/#: no AsyncAPI document declares a channel/);
    assert.equal((await publish5('user/signedup', VALID)).reasonCode ?? 0, 0);
    const delivered = (await client.next('publish')) as IPublishPacket;
    assert.equal(delivered.topic, 'user/signedup');
  });
});
