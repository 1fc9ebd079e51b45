import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import asyncapiParser from '@asyncapi/parser';
import { Ajv } from 'ajv';
import type { MqttClient } from 'mqtt';
import { connect, type EddyClient } from '@eddy/client';
import { loadDocument, loadRegistry } from '../src/asyncapi/index.js';
import { generateClient } from '../src/asyncapi/codegen/generate.js';
import type { EddyServer } from '../src/server.js';
import { EDDY_BIN, run, spawnBroker, startBroker, type BrokerProcess } from './helpers/broker.js';
import { collect, connectClient, publishWithAck, sleep } from './helpers/mqtt.js';

// Several channel objects with one address, in one document (Kraken) or across documents (one per
// service: the social-media example, and the fridges here), are one channel of the broker.

const { Parser } = asyncapiParser;
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string): string => `${root}test/fixtures/asyncapi/${name}`;
const SOCIAL_MEDIA = ['backend', 'comments-service', 'frontend', 'notification-service', 'public-api'].map((s) => fixture(`spec-examples/social-media/${s}/asyncapi.yaml`));
const KRAKEN = fixture('spec-examples/kraken-websocket-request-reply-multiple-channels-asyncapi.yml');
const FRIDGES = ['kitchen-fridge', 'garage-fridge', 'dashboard'].map((s) => fixture(`merge/${s}.yaml`));

type Ref = { $ref: string };
interface LiveChannel {
  address: string;
  description?: string;
  parameters?: Record<string, { enum?: string[] }>;
  messages: Record<string, unknown>;
  'x-eddy-declared-by'?: Array<{ document: string; channel: string }>;
}
interface LiveDoc {
  channels: Record<string, LiveChannel>;
  operations: Record<string, { action: string; channel: Ref; messages: Ref[]; reply?: { channel?: Ref; messages?: Ref[] }; 'x-eddy-document': string }>;
}

const clients: MqttClient[] = [];
const buses: EddyClient[] = [];
let server: EddyServer | undefined;
let child: BrokerProcess | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await Promise.all(buses.splice(0).map((b) => b.close().catch(() => {})));
  await server?.stop();
  server = undefined;
  await child?.stop();
  child = undefined;
});

async function client(url: string): Promise<MqttClient> {
  const c = await connectClient(url, { protocolVersion: 5 });
  clients.push(c);
  return c;
}

/** The live document, after checking that @asyncapi/parser reads it (JSON and YAML) with no error. */
async function liveDocument(httpUrl: string): Promise<LiveDoc> {
  const json = (await (await fetch(`${httpUrl}/asyncapi.json`)).json()) as LiveDoc;
  const errors = async (input: unknown): Promise<string[]> =>
    (await new Parser().parse(input as never)).diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
  assert.deepEqual(await errors(json), [], 'the live JSON document parses with 0 errors');
  assert.deepEqual(await errors(await (await fetch(`${httpUrl}/asyncapi.yaml`)).text()), [], 'the live YAML document parses with 0 errors');
  return json;
}

const declared = (doc: LiveDoc): LiveChannel[] => Object.values(doc.channels).filter((c) => !('x-eddy-observed' in c));
const target = (ref: Ref): string => decodeURIComponent(ref.$ref.split('/')[2]!);

describe('channels with the same address merge', () => {
  it('the social-media example: five services, one document each, in one broker (--asyncapi five times) accept the union of their messages and list each channel once with every operation', async () => {
    child = await spawnBroker(['--memory', ...SOCIAL_MEDIA.flatMap((f) => ['--asyncapi', f])]);
    const url = `mqtt://127.0.0.1:${child.mqttPort}`;
    const httpUrl = `http://127.0.0.1:${child.httpPort}`;
    const watcher = await client(url);
    const seen = collect(watcher);
    await watcher.subscribeAsync('#', { qos: 1 });
    const pub = await client(url);
    const valid: Array<[string, object]> = [
      ['like/comment', { commentId: 'c1', likedBy: 'ada' }], // frontend → backend
      ['comment/liked', { commentId: 'c1' }], // backend → comments, notifications, public API
      ['comment/c1/changed', { commentId: 'c1', likeCount: 3 }], // comments → backend
      ['update/comment/likes', { commentId: 'c1', likeCount: 3 }], // backend → frontend
    ];
    for (const [topic, payload] of valid) assert.deepEqual(await publishWithAck(pub, topic, JSON.stringify(payload)), { reasonCode: 0, reasonString: undefined }, topic);
    const wrongType = await publishWithAck(pub, 'comment/liked', JSON.stringify({ commentId: 1 }));
    assert.equal(wrongType.reasonCode, 0x99);
    assert.equal(wrongType.reasonString, 'comment/liked: /commentId must be string');
    const otherChannels = await publishWithAck(pub, 'comment/liked', JSON.stringify({ commentId: 'c1', likeCount: 3 }));
    assert.equal(otherChannels.reasonCode, 0x99, "a message of another channel is not this channel's");
    assert.match(otherChannels.reasonString!, /must NOT have additional properties \(likeCount\)/);
    assert.equal((await publishWithAck(pub, 'sentinel/done', '{}')).reasonCode, 0);
    const got = await seen.take(valid.length + 1);
    assert.deepEqual(got.map((m) => m.topic), [...valid.map(([t]) => t), 'sentinel/done'], 'the valid messages arrive, the refused ones do not');

    const doc = await liveDocument(httpUrl);
    const channels = declared(doc);
    assert.deepEqual(channels.map((c) => c.address).sort(), ['comment/liked', 'comment/{commentId}/changed', 'like/comment', 'update/comment/likes'], 'each address once');
    const byAddress = new Map(channels.map((c) => [c.address, c]));
    assert.deepEqual(byAddress.get('comment/liked')!['x-eddy-declared-by']!.map((d) => d.document), ['Website Backend', 'Comments Service', 'Notifications Service', 'Public API']);
    assert.equal(Object.keys(byAddress.get('comment/liked')!.messages).length, 1, 'the message the four documents share is listed once');
    assert.match(byAddress.get('comment/liked')!.description!, /^Website Backend \(notifyAllCommentLiked\): Notify all the services.*\n\nComments Service \(commentLiked\): Updates the likes count/s);
    // Every operation of every document, on the merged channel of its address.
    const expected: string[] = [];
    for (const file of SOCIAL_MEDIA) {
      const { document } = await loadDocument(file);
      for (const op of document.operations()) expected.push(`${document.info().title()} ${op.action()} ${op.channels().all()[0]!.address()}`);
    }
    const listed = Object.values(doc.operations).map((op) => `${op['x-eddy-document']} ${op.action} ${doc.channels[target(op.channel)]!.address}`);
    assert.equal(expected.length, 10);
    assert.deepEqual(listed.sort(), expected.sort());
    for (const op of Object.values(doc.operations)) {
      for (const m of op.messages) assert.equal(target(m), target(op.channel), `${m.$ref} is a message of the operation's channel`);
    }
  });

  it("Kraken's seven channels on one address in one document are one channel: any of their eight messages is accepted, one matching none is refused", async () => {
    server = await startBroker({ asyncapi: [KRAKEN] });
    const watcher = await client(server.mqttUrl);
    const seen = collect(watcher);
    await watcher.subscribeAsync('/', { qos: 1 });
    const pub = await client(server.mqttUrl);
    const valid = [
      { event: 'ping', reqid: 7 }, // channel ping
      { event: 'heartbeat' }, // channel heartbeat
      { event: 'systemStatus', connectionID: 1, status: 'online', version: '1.8.0' }, // channel systemStatus
      { event: 'subscribe', pair: ['XBT/EUR'], subscription: { name: 'ohlc', interval: 5 } }, // channel subscribe
      { event: 'subscriptionStatus', reqid: 7, errorMessage: 'no such pair' }, // channel currencyInfo
    ];
    for (const payload of valid) assert.equal((await publishWithAck(pub, '/', JSON.stringify(payload))).reasonCode, 0, JSON.stringify(payload));
    const none = await publishWithAck(pub, '/', JSON.stringify({ event: 'nonsense' }));
    assert.equal(none.reasonCode, 0x99);
    assert.match(none.reasonString!, /^\/: .*\(and 7 other message definitions do not match\)$/);
    assert.equal((await publishWithAck(pub, '/', JSON.stringify({ event: 'subscribe', subscription: { name: 'nope' } }))).reasonCode, 0x99);
    assert.equal((await publishWithAck(pub, '/', JSON.stringify({ event: 'heartbeat', sentinel: true }))).reasonCode, 0);
    const got = await seen.take(valid.length + 1);
    assert.deepEqual(got.map((m) => JSON.parse(m.payload.toString()) as unknown), [...valid, { event: 'heartbeat', sentinel: true }], 'the refused messages were not delivered');

    const doc = await liveDocument(server.httpUrl);
    const channels = declared(doc);
    assert.equal(channels.length, 1);
    assert.equal(channels[0]!.address, '/');
    assert.deepEqual(Object.keys(channels[0]!.messages).sort(), ['dummyCurrencyInfo', 'heartbeat', 'ping', 'pong', 'subscribe', 'subscriptionStatus', 'systemStatus', 'unsubscribe']);
    assert.deepEqual(Object.keys(doc.operations).sort(), ['heartbeat', 'receivePing', 'subscribe', 'systemStatus', 'unsubscribe']);
    const messagesOf = (refs: Ref[] | undefined): string[] => (refs ?? []).map((r) => r.$ref.split('/').pop()!);
    assert.deepEqual(messagesOf(doc.operations.receivePing!.reply!.messages), ['pong'], 'a reply keeps the messages of its own channel, not all of the merged one');
    assert.deepEqual(messagesOf(doc.operations.subscribe!.reply!.messages), ['subscriptionStatus', 'dummyCurrencyInfo']);
    assert.deepEqual(messagesOf(doc.operations.unsubscribe!.reply!.messages), ['subscriptionStatus']);
  });

  it('a parameter the documents limit differently takes a value any of them allows; their messages unite (HTTP)', async () => {
    server = await startBroker({ asyncapi: FRIDGES.slice(0, 2) });
    const post = async (topic: string, body: unknown): Promise<{ status: number; body: { error?: string; message?: string; errors?: string[] } }> => {
      const res = await fetch(`${server!.httpUrl}/v1/publish/${topic}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      return { status: res.status, body: (await res.json()) as { error?: string; message?: string } };
    };
    assert.equal((await post('fridge/kitchen/level', { level: 0.5 })).status, 202, "the kitchen fridge's value and message");
    assert.equal((await post('fridge/garage/level', { litres: 3 })).status, 202, "the garage fridge's value and message");
    assert.equal((await post('fridge/garage/level', { level: 0.5 })).status, 202, 'the messages are those of the channel, whichever value its parameter has');
    const attic = await post('fridge/attic/level', { level: 0.5 });
    assert.equal(attic.status, 422);
    assert.deepEqual(attic.body, { error: 'invalid_parameter', message: 'fridge/attic/level: parameter fridgeId must be one of kitchen, garage', errors: ['fridge/attic/level: parameter fridgeId must be one of kitchen, garage'] });
    const neither = await post('fridge/kitchen/level', { level: 'full' });
    assert.equal(neither.status, 422);
    assert.equal(neither.body.error, 'invalid_payload');
    assert.match(neither.body.message!, /^fridge\/kitchen\/level: \/level must be number \(and 1 other message definition do not match\)$/);

    const doc = await liveDocument(server.httpUrl);
    const [fridge] = declared(doc);
    assert.equal(declared(doc).length, 1);
    assert.deepEqual(fridge!.parameters!.fridgeId!.enum, ['kitchen', 'garage'], 'the live document states the union');
    assert.deepEqual(Object.keys(fridge!.messages), ['fraction', 'litres']);
    assert.deepEqual(Object.keys(doc.operations), ['reportLevel', 'reportLevel_2'], 'operation ids that clash across documents stay apart');
    assert.deepEqual(Object.values(doc.operations).map((op) => op['x-eddy-document']), ['Kitchen fridge', 'Garage fridge']);
  });

  it('a document that does not limit the parameter leaves the merged one unlimited; a message repeated across documents is compiled once', async () => {
    const { registry } = await loadRegistry(FRIDGES);
    const message = (topic: string, payload: unknown): Parameters<typeof registry.check>[0] => ({ topic, payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, properties: {}, publishedAt: 0 });
    assert.equal(registry.check(message('fridge/attic/level', { level: 0.5 }), false), undefined);
    assert.equal(registry.channels.length, 1);
    assert.deepEqual(registry.channels[0]!.declarations.map((d) => d.channelId), ['levels', 'fridgeLevel', 'levels']);
    assert.deepEqual(registry.channels[0]!.messages.map((m) => m.id), ['fraction', 'litres']);
    const limited = (await loadRegistry(FRIDGES.slice(0, 2))).registry;
    assert.equal(limited.check(message('fridge/attic/level', { level: 0.5 }), false)?.kind, 'parameter');
  });
});

/** What the round trip uses of a generated module (its precise types are checked by tsc). */
interface Handle {
  publish(...args: unknown[]): Promise<{ id: string }>;
  subscribe(...args: unknown[]): Promise<{ close(): Promise<void> }>;
}
type Generated = { createClient(bus: EddyClient, options?: Record<string, unknown>): Record<string, Handle> };

async function waitFor(condition: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(10);
  }
}

describe('generated code for each single document', () => {
  // Under the repository's .tmp/ (gitignored), so '@eddy/client' resolves from node_modules.
  const dir = path.join(root, '.tmp', `merge-codegen-${process.pid}`);
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('each social-media service and Kraken generate a client that compiles under tsc --strict; the services talk through one broker that merged all five documents', async () => {
    fs.mkdirSync(dir, { recursive: true });
    const names = new Map<string, string>();
    for (const file of [...SOCIAL_MEDIA, KRAKEN]) {
      const name = file === KRAKEN ? 'kraken' : path.basename(path.dirname(file));
      const generated = await generateClient(await loadDocument(file));
      assert.ok(generated.operations.length > 0, `${name}: operations`);
      fs.writeFileSync(path.join(dir, `${name}.ts`), generated.code);
      names.set(name, path.join(dir, 'out', `${name}.js`));
    }
    const compilerOptions = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noUncheckedIndexedAccess: true, skipLibCheck: true, outDir: 'out' };
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.ts'] }));
    const tsc = await run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { timeoutMs: 120_000 });
    assert.equal(tsc.code, 0, `${tsc.stdout}${tsc.stderr}`);

    server = await startBroker({ asyncapi: SOCIAL_MEDIA });
    const ajv = new Ajv({ strict: false });
    const validate = (schema: unknown, value: unknown): string | undefined => (ajv.validate(schema as object, value) ? undefined : ajv.errorsText(ajv.errors));
    const service = async (name: string): Promise<Record<string, Handle>> => {
      const bus = await connect(server!.mqttUrl);
      buses.push(bus);
      return ((await import(pathToFileURL(names.get(name)!).href)) as Generated).createClient(bus, { validate });
    };
    const [frontend, backend, comments, notifications, publicApi] = await Promise.all(['frontend', 'backend', 'comments-service', 'notification-service', 'public-api'].map(service));
    const got: string[] = [];
    const note = (who: string) => (m: { channel: string; payload: unknown }) => void got.push(`${who} ${m.channel} ${JSON.stringify(m.payload)}`);
    await backend!.receiveCommentLike!.subscribe(note('backend'));
    await backend!.receiveCommentChange!.subscribe(note('backend'));
    await comments!.receiveCommentLiked!.subscribe(note('comments'));
    await notifications!.receiveCommentLiked!.subscribe(note('notifications'));
    await publicApi!.receiveCommentLiked!.subscribe(note('public-api'));
    await frontend!.receiveUpdateCommentLiked!.subscribe(note('frontend'));
    await frontend!.sendLikeComment!.publish({ commentId: 'c1', likedBy: 'ada' });
    await backend!.sendCommentLiked!.publish({ commentId: 'c1' });
    await comments!.sendCommentChange!.publish({ commentId: 'c1' }, { commentId: 'c1', likeCount: 1 });
    await backend!.sendCommentLikeUpdate!.publish({ commentId: 'c1', likeCount: 1 });
    await waitFor(() => got.length === 6, () => got.join('; '));
    assert.deepEqual(got.sort(), [
      'backend comment/c1/changed {"commentId":"c1","likeCount":1}',
      'backend like/comment {"commentId":"c1","likedBy":"ada"}',
      'comments comment/liked {"commentId":"c1"}',
      'frontend update/comment/likes {"commentId":"c1","likeCount":1}',
      'notifications comment/liked {"commentId":"c1"}',
      'public-api comment/liked {"commentId":"c1"}',
    ]);
    assert.equal(server.broker.stats.invalidPublishes, 0);
    const cli = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', KRAKEN, '--out', path.join(dir, 'kraken-cli.ts')]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stderr + cli.stdout, /5 operations/);
  });
});
