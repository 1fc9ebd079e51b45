import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import asyncapiParser from '@asyncapi/parser';
import type { MqttClient } from 'mqtt';
import { connect, type EddyClient } from '@eddy/client';
import { loadRegistry } from '../src/asyncapi/index.js';
import { inferValue, mergeSchemas } from '../src/asyncapi/observed.js';
import type { EddyServer } from '../src/server.js';
import { EDDY_BIN, run, startBroker } from './helpers/broker.js';
import { connectClient, sleep } from './helpers/mqtt.js';

const { Parser } = asyncapiParser;
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string): string => `${root}test/fixtures/asyncapi/${name}`;

const clients: MqttClient[] = [];
const buses: EddyClient[] = [];
let server: EddyServer | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await Promise.all(buses.splice(0).map((b) => b.close().catch(() => {})));
  await server?.stop();
  server = undefined;
});

type Doc = { servers: Record<string, { host: string; protocol: string; pathname?: string }>; channels: Record<string, { address: string; messages: Record<string, { payload?: unknown; contentType?: string }>; 'x-eddy-observed'?: { messages: number } }>; operations: Record<string, { action: string; channel: { $ref: string } }> };

describe('the live AsyncAPI document', () => {
  it('describes the running broker: real listeners, declared channels and operations, observed channels with inferred schemas; it parses with zero errors', async () => {
    server = await startBroker({ asyncapi: [fixture('signup.yaml'), fixture('shop.yaml')] });
    const c = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    clients.push(c);
    await c.publishAsync('sensors/temp', JSON.stringify({ celsius: 21, room: 'kitchen', at: '2026-11-23T10:00:00Z' }), { qos: 1 });
    await c.publishAsync('sensors/temp', JSON.stringify({ celsius: 21.5, room: 'hall', humidity: 40 }), { qos: 1 });
    await c.publishAsync('user/signedup', JSON.stringify({ userId: 'ada', email: 'ada@example.com' }), { qos: 1, properties: { contentType: 'application/json' } });
    await sleep(50);
    const json = (await (await fetch(`${server.httpUrl}/asyncapi.json`)).json()) as Doc;
    const parsed = await new Parser().parse(json as never);
    assert.deepEqual(parsed.diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`), []);
    assert.equal(json.servers.mqtt!.host, `127.0.0.1:${server.mqtt.port}`);
    assert.equal(json.servers.ws!.pathname, '/mqtt');
    assert.equal(json.servers.http!.host, `127.0.0.1:${server.http.port}`);
    const byAddress = new Map(Object.values(json.channels).map((ch) => [ch.address, ch]));
    assert.ok(byAddress.has('user/signedup') && byAddress.has('shop/orders') && byAddress.has('fridge/{fridgeId}/level'));
    assert.equal(byAddress.get('user/signedup')!['x-eddy-observed'], undefined, 'declared channels are not listed as observed');
    const observed = byAddress.get('sensors/temp')!;
    assert.equal(observed['x-eddy-observed']!.messages, 2);
    assert.deepEqual(observed.messages.observed!.payload, {
      type: 'object',
      properties: { celsius: { type: 'number' }, room: { type: 'string' }, at: { type: 'string', format: 'date-time' }, humidity: { type: 'integer' } },
      required: ['celsius', 'room'],
    });
    assert.ok(Object.values(json.operations).some((op) => op.action === 'send' && op.channel.$ref === '#/channels/userSignedUp'));
    const yaml = await (await fetch(`${server.httpUrl}/asyncapi.yaml`)).text();
    const parsedYaml = await new Parser().parse(yaml);
    assert.equal(parsedYaml.diagnostics.filter((d) => d.severity === 0).length, 0);
    const exported = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'export', '--http', server.httpUrl, '--format', 'json']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.ok((JSON.parse(exported.stdout) as Doc).channels.observed_sensors_temp, 'eddy asyncapi export writes the live document');
    const html = await fetch(`${server.httpUrl}/docs`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    const page = await html.text();
    assert.match(page, /<code>user\/signedup<\/code>/);
    assert.match(page, /<code>sensors\/temp<\/code> <span class="tag observed">observed<\/span>/);
  });

  it('without any document the live document still lists the servers and what traffic shows', async () => {
    server = await startBroker();
    const c = await connectClient(server.mqttUrl, { protocolVersion: 4 });
    clients.push(c);
    await c.publishAsync('fridge/kitchen/level', '{"level":0.4}', { qos: 1 });
    await sleep(50);
    const json = (await (await fetch(`${server.httpUrl}/asyncapi.json`)).json()) as Doc;
    assert.equal((await new Parser().parse(json as never)).diagnostics.filter((d) => d.severity === 0).length, 0);
    assert.deepEqual(Object.values(json.channels).map((ch) => ch.address), ['fridge/kitchen/level']);
  });

  it("SDK request() inboxes are not channels: after a request/respond round trip the live document lists the request's channel and other undeclared traffic, and no _inbox channel", async () => {
    server = await startBroker();
    const shop = await connect(server.mqttUrl);
    const fridge = await connect(server.mqttUrl);
    buses.push(shop, fridge);
    await shop.respond<{ item: string }>('shop/order', (order) => ({ ordered: order.item }));
    assert.deepEqual(await fridge.request('shop/order', { item: 'milk' }), { ordered: 'milk' });
    assert.deepEqual(await fridge.request('shop/order', { item: 'tea' }), { ordered: 'tea' });
    await fridge.publish('fridge/kitchen/level', { level: 0.4 });
    const json = (await (await fetch(`${server.httpUrl}/asyncapi.json`)).json()) as Doc;
    const addresses = Object.values(json.channels).map((ch) => ch.address);
    assert.deepEqual(addresses.sort(), ['fridge/kitchen/level', 'shop/order']);
    assert.equal(json.channels.observed_shop_order!['x-eddy-observed']!.messages, 2);
  });

  it('a recursive schema is a $ref to itself in the live document, which parses', async () => {
    server = await startBroker({ asyncapi: [fixture('recursive.yaml')] });
    const res = await fetch(`${server.httpUrl}/asyncapi.json`);
    assert.equal(res.status, 200);
    const json = (await res.json()) as { channels: { tree: { messages: { tree: { payload: { properties: { children: { items: unknown } } } } } } } };
    assert.deepEqual(json.channels.tree.messages.tree.payload.properties.children.items, { $ref: '#/channels/tree/messages/tree/payload' });
    const parsed = await new Parser().parse(json as never);
    assert.deepEqual(parsed.diagnostics.filter((d) => d.severity === 0).map((d) => d.message), []);
    assert.equal((await fetch(`${server.httpUrl}/asyncapi.yaml`)).status, 200);
  });

  it('schema inference merges samples: union of properties, required only when always present, number over integer', () => {
    const merged = mergeSchemas(inferValue({ a: 1, b: 'x', list: [1] }), inferValue({ a: 2.5, list: [1.5, 'y'], c: null }));
    assert.deepEqual(merged, {
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'string' }, list: { type: 'array', items: { type: ['number', 'string'] } }, c: { type: 'null' } },
      required: ['a', 'list'],
    });
  });

  it('eddy asyncapi docs writes the HTML page of documents, operations included', async () => {
    const out = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'docs', fixture('signup.yaml'), fixture('shop.yaml')]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /<title>Signup service \+ Shopping service<\/title>/);
    assert.match(out.stdout, /<code>fridge\/\{fridgeId\}\/level<\/code>/);
    assert.match(out.stdout, /<span class="op send">send<\/span> <code>publishSignup<\/code>/);
    assert.match(out.stdout, /one of <code>kitchen<\/code>, <code>garage<\/code>/);
  });

  it('an AsyncAPI 2.6 document is converted to 3.0 and loads', async () => {
    const { registry, documents } = await loadRegistry([fixture('legacy-v2.yaml')]);
    assert.deepEqual(registry.channels.map((c) => c.address), ['legacy/{fridgeId}/level']);
    assert.match(documents[0]!.warnings[0]!, /converted to 3\.0\.0/);
    const refusal = registry.check({ topic: 'legacy/kitchen/level', payload: Buffer.from('{"level":"high"}'), qos: 1, retain: false, properties: {}, publishedAt: 0 }, false);
    assert.match(refusal!.reason, /\/level must be number/);
  });
});
