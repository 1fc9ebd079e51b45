import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { connect, EddyClientError, RemoteError, RequestTimeoutError, type EddyClient } from '@eddy/client';
import { loadDocument } from '../src/asyncapi/load.js';
import { generateClient, type GeneratedClient, type Perspective } from '../src/asyncapi/codegen/generate.js';
import { embeddableSchema } from '../src/asyncapi/codegen/schema-data.js';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { EDDY_BIN, run, startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = path.join(root, 'test/fixtures/asyncapi-codegen');
const SHOP = path.join(FIXTURES, 'shop.yaml');
const SHARED = path.join(root, '../shared/asyncapi-examples');
const SEED = path.join(root, 'examples/seed/asyncapi.yaml');
const TSC = path.join(root, 'node_modules/typescript/bin/tsc');

// Generated code goes under the repository's .tmp/ (gitignored), so '@eddy/client' resolves from node_modules.
const workDirs: string[] = [];
after(() => {
  for (const dir of workDirs) fs.rmSync(dir, { recursive: true, force: true });
});
function workDir(): string {
  fs.mkdirSync(path.join(root, '.tmp'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, '.tmp', 'codegen-'));
  workDirs.push(dir);
  return dir;
}

async function generate(file: string, perspective?: Perspective, fileName?: string): Promise<GeneratedClient> {
  return generateClient(await loadDocument(file), { ...(perspective ? { perspective } : {}), ...(fileName ? { fileName } : {}) });
}

/** Options beyond --strict that projects turn on; the generated code (without usage files) passes them too. */
const STRICTEST = {
  exactOptionalPropertyTypes: true,
  noPropertyAccessFromIndexSignature: true,
  noImplicitOverride: true,
  noImplicitReturns: true,
  noUnusedLocals: true,
  noUnusedParameters: true,
  verbatimModuleSyntax: true,
  erasableSyntaxOnly: true,
  // A library that re-exports the client needs its .d.ts.
  declaration: true,
  emitDeclarationOnly: true,
};

/**
 * Runs tsc in `dir` with --strict and --noUncheckedIndexedAccess, which the generated code promises
 * to pass, plus `extra` options; `outDir` emits JavaScript.
 */
async function compile(dir: string, outDir?: string, extra: Record<string, boolean> = {}): Promise<void> {
  const compilerOptions = {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    ...extra,
    ...(outDir ? { outDir } : { noEmit: true }),
  };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.ts'] }, null, 2));
  const result = await run(process.execPath, [TSC, '-p', dir], { timeoutMs: 120_000 });
  assert.equal(result.code, 0, `tsc in ${dir}:\n${result.stdout}${result.stderr}`);
}

/** Typed use of the shop client: compiles only if the generated types are as precise as the document. */
const SHOP_USAGE = `
import { connect } from '@eddy/client';
import { Ajv } from 'ajv';
import { createClient, ValidationError, type ApplicationApi, type ClientApi, type Order } from './shop.js';

export async function usage(): Promise<void> {
  const bus = await connect('mqtt://127.0.0.1:1883');
  const ajv = new Ajv({ strict: false });
  const app: ApplicationApi = createClient(bus, { validate: (schema, value) => (ajv.validate(schema, value) ? undefined : ajv.errorsText(ajv.errors)) });
  const client: ClientApi = createClient(bus, { perspective: 'client' });
  const order: Order = { id: '1', lines: [{ sku: 'tea', quantity: 1 }], status: 'placed', customer: { name: 'Ada', email: 'ada@example.com' } };
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, order, { headers: { source: 'web', attempt: 1 } });
  // @ts-expect-error region is one of the parameter's enum
  await app.placeOrder.publish({ region: 'asia', orderId: '1' }, order, { headers: { source: 'web' } });
  const web = { headers: { source: 'web' as const } };
  // @ts-expect-error status is an enum
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, { ...order, status: 'lost' }, web);
  // @ts-expect-error lines is required
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, { id: '1', status: 'placed', customer: { name: 'Ada', email: 'a@b.c' } }, web);
  // @ts-expect-error additionalProperties: false, so no extra properties
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, { id: '1', lines: [], status: 'placed', customer: { name: 'Ada', email: 'a@b.c' }, extra: 1 }, web);
  // @ts-expect-error allOf: the customer needs the email of the second schema
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, { ...order, customer: { name: 'Ada' } }, web);
  // @ts-expect-error the source header is required
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, order, { headers: { attempt: 1 } });
  // @ts-expect-error so the options, with the headers, are required
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, order);
  // @ts-expect-error with them
  await app.placeOrder.publish({ region: 'eu', orderId: '1' }, order, { qos: 0 });
  // @ts-expect-error the application publishes orders: subscribing is the client's side
  await app.placeOrder.subscribe(() => undefined);
  await client.placeOrder.subscribe({ region: 'us' }, (m) => {
    const region: 'eu' | 'us' = m.params.region;
    const attempt: number | undefined = m.headers.attempt;
    const kind: 'card' | 'transfer' | undefined = m.payload.payment?.kind;
    const tags: Record<string, string> | undefined = m.payload.tags;
    const note: string | null | undefined = m.payload.note;
    void [region, attempt, kind, tags, note];
  });
  await client.placeOrder.subscribe((m) => void m.params.orderId.toUpperCase());
  const price = await client.getPrice.request({ sku: 'tea' }, { timeout: 100 });
  const amount: number = price.amount;
  await app.getPrice.respond((request) => ({ sku: request.sku, amount: 1, currency: request.currency ?? 'EUR' }));
  // @ts-expect-error a reply must be a Price
  await app.getPrice.respond(() => ({ sku: 'tea' }));
  const level = await app.checkStock.request({ warehouse: 'north' }, { sku: 'tea' });
  const available: number = level.available;
  await client.checkStock.respond({ warehouse: 'north' }, async (check, m) => ({ sku: check.sku + m.params.warehouse, available: 1 }));
  await app.writeNote.publish('a note');
  // @ts-expect-error a note is a string
  await app.writeNote.publish(42);
  await client.forwardLegacy.publish(Buffer.from('avro bytes: any payload, typed unknown'));
  try {
    await app.placeOrder.publish({ region: 'eu', orderId: '1' }, order, { headers: { source: 'mobile', gift: true, trace: { id: 't' } } });
  } catch (err) {
    if (err instanceof ValidationError) console.log(err.code, err.direction, err.reason);
  }
  void [amount, available];
}
`;

/** With --perspective client, createClient(bus) is the client's side. */
const CLIENT_USAGE = `
import type { EddyClient } from '@eddy/client';
import { createClient, type ApplicationApi, type ClientApi } from './shop-client.js';

export function usage(bus: EddyClient): void {
  const client: ClientApi = createClient(bus);
  // @ts-expect-error without a perspective this client takes the client's side
  const app: ApplicationApi = createClient(bus);
  const explicit: ApplicationApi = createClient(bus, { perspective: 'application' });
  void [client, app, explicit];
}
`;

describe('eddy asyncapi generate: types', () => {
  it('turns JSON Schema into TypeScript: required and optional, enum and const, oneOf unions, allOf intersections, index signatures, named and recursive schemas', async () => {
    const { code, types, operations, warnings } = await generate(SHOP);
    const has = (snippet: string): void => assert.ok(code.includes(snippet), `expected in the generated code:\n${snippet}`);
    has(`export interface Order {
  id: string;
  lines: OrderLine[];
  status: 'placed' | 'paid' | 'shipped';
  customer: Person & {
    email: string;
  };
  payment?: CardPayment | BankTransfer;
  tags?: {
    [key: string]: string;
  };
  note?: string | null;
  placedAt?: string;`);
    has(`export interface CardPayment {\n  kind: 'card';`);
    has('export type OrderPlacedPayload = Order;');
    has(`export interface OrderPlacedHeaders {\n  source: 'web' | 'mobile';\n  attempt?: number;`);
    has(`export interface OrderPlacedParameters {\n  /** Where the order was placed. */\n  region: 'eu' | 'us';\n  /** The order's id. */\n  orderId: string;\n}`);
    has('export type NotePayload = string;');
    has('export type LegacyOrderPayload = unknown;');
    has("import * as eddy from '@eddy/client';");
    assert.deepEqual(code.match(/^import .*$/gm), ["import * as eddy from '@eddy/client';"], 'the only import');
    assert.ok(!/ajv/i.test(code.replace(/^ \*.*$/gm, '')), 'no validator dependency outside comments');
    assert.deepEqual(operations, ['placeOrder', 'getPrice', 'checkStock', 'writeNote', 'forwardLegacy']);
    assert.ok(types.includes('Order') && types.includes('OrderPlacedParameters'), types.join(', '));
    assert.deepEqual(warnings, ['message legacyOrder: payload schema format application/vnd.apache.avro;version=1.9.0 is not JSON Schema; typed unknown and not validated']);
  });

  it('names: reserved and clashing names get suffixes, $id and free-text ids become identifiers, odd property keys are quoted', async () => {
    const { code, operations } = await generate(path.join(FIXTURES, 'edge-cases.yaml'));
    assert.deepEqual(operations, ['getUserProfile', 'getUserProfile2', 'keepPromise', 'drawShape', 'publishCategory', 'ping']);
    for (const snippet of [
      '/** A schema named like a TypeScript global. */\nexport interface PromiseType {',
      '/** Named like a type of the generated runtime. */\nexport interface ReceivedType {',
      'export type ProfileUpdatedPayload = UserProfile;',
      'export type ProfileUpdatedHeaders = TraceHeaders;',
      "'user-id': string;",
      'point?: [number, number];',
      'pair?: [string?, number?, ...unknown[]];',
      'either?: string | number;',
      'sealed?: {\n    [key: string]: never;\n  };',
      'open?: {\n    known?: number;\n    [key: string]: unknown;\n  };',
      'counts?: {\n    total?: number;\n    [key: string]: number | undefined;\n  };',
      `'it\\'s'?: string;`,
      "'2fa'?: boolean;",
      'notAnInteger?: unknown;',
      'a comment end *\\/ must not end the doc comment.\n   * @deprecated',
      'deep?: string[][];',
      'ghost: unknown;',
      '/** A category of articles, with its subcategories. */\nexport interface Category {\n  name: string;\n  children?: Category[];\n}',
      'export type CategoryPayload = Category;',
    ]) {
      assert.ok(code.includes(snippet), `expected in the generated code:\n${snippet}`);
    }
    assert.ok(!code.includes('"$schema"'), 'embedded schemas carry no $schema');
  });

  it('a recursive schema is embedded with a $ref to itself, which a validator follows', async () => {
    const { document } = await loadDocument(path.join(FIXTURES, 'edge-cases.yaml'));
    const category = document.components().schemas().get('Category')!.json();
    const embedded = embeddableSchema(category) as { properties: { children: { items: unknown } } };
    assert.deepEqual(embedded.properties.children.items, { $ref: '#' });
    const ajv = new Ajv({ strict: false });
    const valid = ajv.compile(embedded as object);
    assert.equal(valid({ name: 'tea', children: [{ name: 'green', children: [{ name: 'sencha' }] }] }), true);
    assert.equal(valid({ name: 'tea', children: [{ name: 'green', children: [{ title: 'no name' }] }] }), false);
    assert.match(ajv.errorsText(valid.errors), /children\/0\/children\/0 must have required property 'name'/);
  });

  it('traits copy schemas; the copies are the component types, not new ones', async (t) => {
    const file = path.join(SHARED, 'streetlights-mqtt-asyncapi.yml');
    if (!fs.existsSync(file)) return t.skip(`${SHARED} is not here`);
    const { code } = await generate(file);
    assert.ok(code.includes('export interface LightMeasuredPayload {\n  /** Light intensity measured in lumens. */\n  lumens?: number;'));
    assert.ok(!/LightMeasuredPayload2|SentAt2/.test(code), 'no numbered duplicates of component schemas');
    assert.ok(code.includes("readonly receiveLightMeasurement: ParameterizedSubscriber<LightingMeasuredParameters, LightMeasuredPayload, LightMeasuredHeaders>;"));
  });
});

describe('eddy asyncapi generate: the generated code compiles', () => {
  it('own fixtures and the seed document, both perspectives, with typed usage, under tsc --strict --noUncheckedIndexedAccess', async () => {
    const dir = workDir();
    for (const file of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml'))) {
      fs.writeFileSync(path.join(dir, file.replace(/\.yaml$/, '.ts')), (await generate(path.join(FIXTURES, file))).code);
    }
    if (fs.existsSync(SEED)) fs.writeFileSync(path.join(dir, 'seed.ts'), (await generate(SEED)).code);
    fs.writeFileSync(path.join(dir, 'shop-client.ts'), (await generate(SHOP, 'client')).code);
    fs.writeFileSync(path.join(dir, 'shop-usage.ts'), SHOP_USAGE);
    fs.writeFileSync(path.join(dir, 'client-usage.ts'), CLIENT_USAGE);
    await compile(dir);
  });

  it('the generated code alone also passes exactOptionalPropertyTypes, verbatimModuleSyntax, erasableSyntaxOnly, noUnusedLocals and friends', async () => {
    const dir = workDir();
    for (const file of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml'))) {
      fs.writeFileSync(path.join(dir, file.replace(/\.yaml$/, '.ts')), (await generate(path.join(FIXTURES, file))).code);
      fs.writeFileSync(path.join(dir, file.replace(/\.yaml$/, '-client.ts')), (await generate(path.join(FIXTURES, file), 'client')).code);
    }
    await compile(dir, 'types', STRICTEST);
  });

  it('every document in ../shared/asyncapi-examples compiles (with the strictest options too)', async (t) => {
    if (!fs.existsSync(SHARED)) return t.skip(`${SHARED} is not here`);
    const files = fs.readdirSync(SHARED).filter((f) => /\.(ya?ml|json)$/.test(f));
    assert.ok(files.length > 0);
    const dir = workDir();
    for (const file of files) {
      const generated = await generate(path.join(SHARED, file));
      assert.ok(generated.operations.length > 0, `${file}: operations`);
      fs.writeFileSync(path.join(dir, `${file.replace(/\.[a-z]+$/, '').replace(/[^A-Za-z0-9]+/g, '-')}.ts`), generated.code);
    }
    await compile(dir);
    await compile(dir, 'types', STRICTEST);
  });
});

/** What the round-trip tests use of the generated module; its precise types are checked by the compile test above. */
interface Message {
  channel: string;
  payload: unknown;
  headers: Record<string, unknown>;
  params: Record<string, string>;
}
interface Handle {
  publish(...args: unknown[]): Promise<{ id: string }>;
  subscribe(...args: unknown[]): Promise<{ close(): Promise<void> }>;
  request(...args: unknown[]): Promise<unknown>;
  respond(...args: unknown[]): Promise<{ close(): Promise<void> }>;
}
interface ShopModule {
  createClient(bus: EddyClient, options?: Record<string, unknown>): Record<string, Handle>;
  ValidationError: new (...args: never[]) => Error & { code: string; direction: string; reason: string };
  ChannelParameterError: new (...args: never[]) => Error & { code: string; parameter: string };
}

const ORDER = { id: 'o-1', lines: [{ sku: 'tea', quantity: 2 }], status: 'placed', customer: { name: 'Ada', email: 'ada@example.com' }, tags: { gift: 'yes' } };

async function waitFor(condition: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(10);
  }
}

describe('eddy asyncapi generate: the generated client against a real broker', () => {
  let shop: ShopModule;
  let server: EddyServer | undefined;
  const buses: EddyClient[] = [];

  before(async () => {
    const dir = workDir();
    fs.writeFileSync(path.join(dir, 'shop.ts'), (await generate(SHOP)).code);
    await compile(dir, 'out');
    shop = (await import(pathToFileURL(path.join(dir, 'out', 'shop.js')).href)) as ShopModule;
  });

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close().catch(() => {})));
    await server?.stop();
    server = undefined;
  });

  async function start(options: EddyServerOptions = {}): Promise<void> {
    server = await startBroker({ redelivery: { initialBackoffMs: 10, maxBackoffMs: 100 }, ...options });
  }

  async function bus(): Promise<EddyClient> {
    const b = await connect(server!.mqttUrl);
    buses.push(b);
    return b;
  }

  it('publish → subscribe: typed payload, channel parameters fixed and wildcard, headers read back into their types; the broker enforcing the same document accepts it all', async () => {
    await start({ asyncapi: [SHOP] });
    const app = shop.createClient(await bus());
    const client = shop.createClient(await bus(), { perspective: 'client' });
    const everywhere: Message[] = [];
    const onlyUs: Message[] = [];
    const notes: Message[] = [];
    await client.placeOrder!.subscribe((m: Message) => void everywhere.push(m));
    await client.placeOrder!.subscribe({ region: 'us' }, (m: Message) => void onlyUs.push(m));
    await client.writeNote!.subscribe((m: Message) => void notes.push(m));
    const sent = await app.placeOrder!.publish({ region: 'eu', orderId: 'o-1' }, ORDER, { headers: { source: 'web', attempt: 2, gift: true } });
    await app.placeOrder!.publish({ region: 'us', orderId: 'o-2' }, { ...ORDER, id: 'o-2' }, { headers: { source: 'mobile' } });
    await app.writeNote!.publish('fragile: handle with care');
    await waitFor(() => everywhere.length === 2 && onlyUs.length === 1 && notes.length === 1, () => `${everywhere.length} ${onlyUs.length} ${notes.length}`);
    const [first, second] = everywhere;
    assert.equal(first!.channel, 'shop/eu/orders/o-1');
    assert.deepEqual(first!.params, { region: 'eu', orderId: 'o-1' });
    assert.deepEqual(first!.payload, ORDER);
    assert.deepEqual(first!.headers, { source: 'web', attempt: 2, gift: true }, 'integer and boolean headers come back as numbers and booleans');
    assert.equal((first as unknown as { id: string }).id, sent.id);
    assert.deepEqual(second!.params, { region: 'us', orderId: 'o-2' });
    assert.deepEqual(onlyUs.map((m) => m.params.orderId), ['o-2'], 'the fixed parameter filters');
    assert.equal(notes[0]!.payload, 'fragile: handle with care', 'a text/plain payload stays a string');
    assert.equal(server!.broker.stats.invalidPublishes, 0);
  });

  it('channel parameters: a value that is not allowed, or cannot be part of a topic, is refused before sending', async () => {
    await start();
    const app = shop.createClient(await bus());
    for (const [params, pattern] of [
      [{ region: 'asia', orderId: '1' }, /region "asia" is not one of eu, us/],
      [{ region: 'eu', orderId: 'a/b' }, /orderId "a\/b" cannot be part of a topic/],
      [{ region: 'eu' }, /orderId is missing/],
    ] as const) {
      await assert.rejects(app.placeOrder!.publish(params, ORDER, { headers: { source: 'web' } }), (err: Error & { code: string }) => {
        assert.ok(err instanceof shop.ChannelParameterError && err instanceof EddyClientError);
        assert.equal(err.code, 'EDDY_CHANNEL_PARAMETER');
        assert.match(err.message, pattern);
        return true;
      });
    }
  });

  it('request/reply: reply address from a header location and from a static reply channel, through the response topic; failures come back as RemoteError', async () => {
    await start({ asyncapi: [SHOP] });
    const appBus = await bus();
    const clientBus = await bus();
    const app = shop.createClient(appBus);
    const client = shop.createClient(clientBus, { perspective: 'client' });
    await app.getPrice!.respond((request: { sku: string; currency?: string }) => {
      if (request.sku === 'unobtainium') throw new Error('no price for unobtainium');
      return { sku: request.sku, amount: 4.5, currency: request.currency ?? 'EUR' };
    });
    assert.deepEqual(await client.getPrice!.request({ sku: 'tea', currency: 'USD' }), { sku: 'tea', amount: 4.5, currency: 'USD' });
    await assert.rejects(client.getPrice!.request({ sku: 'unobtainium' }), (err: Error) => err instanceof RemoteError && /no price for unobtainium/.test(err.message));

    await client.checkStock!.respond({ warehouse: 'north' }, (check: { sku: string }, m: Message) => ({ sku: `${check.sku}@${m.params.warehouse}`, available: 3 }));
    assert.deepEqual(await app.checkStock!.request({ warehouse: 'north' }, { sku: 'tea' }), { sku: 'tea@north', available: 3 });
    await assert.rejects(app.checkStock!.request({ warehouse: 'south' }, { sku: 'tea' }, { timeout: 200 }), RequestTimeoutError);

    // A request published without a response topic is answered where the document says.
    const raw = await bus();
    const replies: Array<{ channel: string; payload: unknown }> = [];
    await raw.subscribe('shop/stock/replies', (d) => void replies.push(d));
    await raw.subscribe('desk/7/replies', (d) => void replies.push(d));
    await raw.publish('shop/stock/north/checks', { sku: 'cups' });
    await raw.publish('shop/prices', { sku: 'mugs' }, { headers: { replyTo: 'desk/7/replies' } });
    await waitFor(() => replies.length === 2, () => JSON.stringify(replies));
    assert.deepEqual(
      replies.map((r) => [r.channel, r.payload]).sort(),
      [
        ['desk/7/replies', { sku: 'mugs', amount: 4.5, currency: 'EUR' }],
        ['shop/stock/replies', { sku: 'cups@north', available: 3 }],
      ],
    );
  });

  it('runtime validation (ajv as the validator): publish throws before sending, invalid deliveries are refused with the reason and never reach the handler, requests and replies are checked', async () => {
    await start({ channels: [{ pattern: 'shop/#', maxDeliveries: 1 }] });
    const ajv = new Ajv({ strict: false });
    (addFormatsModule as unknown as typeof addFormatsModule.default)(ajv);
    const validate = (schema: unknown, value: unknown): string | undefined => (ajv.validate(schema as object, value) ? undefined : ajv.errorsText(ajv.errors));
    const invalid: Array<{ reason: string; direction: string }> = [];
    const app = shop.createClient(await bus(), { validate });
    const client = shop.createClient(await bus(), { perspective: 'client', validate, onInvalid: (e: { reason: string; direction: string }) => void invalid.push(e) });
    const received: Message[] = [];
    await client.placeOrder!.subscribe((m: Message) => void received.push(m));
    const watcher = await connectClient(server!.mqttUrl, { protocolVersion: 5 });
    const dead = collect(watcher);
    await watcher.subscribeAsync('$DLQ/#', { qos: 1 });

    const params = { region: 'eu', orderId: 'o-1' };
    await assert.rejects(app.placeOrder!.publish(params, { ...ORDER, status: 'lost' }, { headers: { source: 'web' } }), (err: Error & { code: string; direction: string; reason: string }) => {
      assert.ok(err instanceof shop.ValidationError && err instanceof EddyClientError);
      assert.equal(err.code, 'EDDY_VALIDATION');
      assert.equal(err.direction, 'send');
      assert.match(err.reason, /^payload: data\/status must be equal to one of the allowed values/);
      return true;
    });
    await assert.rejects(app.placeOrder!.publish(params, ORDER), /placeOrder: not sent, headers: data must have required property 'source'/);
    await assert.rejects(app.placeOrder!.publish(params, { ...ORDER, customer: { name: 'Ada', email: 'not-an-email' } }, { headers: { source: 'web' } }), /format "email"/);
    await assert.rejects(app.writeNote!.publish('x'.repeat(41)), /payload: data must NOT have more than 40 characters/);

    // Sent without the generated client: the subscriber's validation refuses it, so the broker dead-letters it.
    const raw = await bus();
    await raw.publish('shop/eu/orders/bad', { id: 'bad' }, { headers: { source: 'web' } });
    await raw.publish('shop/eu/orders/good', ORDER, { headers: { source: 'web', trace: '{"id":"t-1"}' } });
    await waitFor(() => received.length === 1 && dead.messages.length === 1, () => `received ${received.length}, dead ${dead.messages.length}`);
    assert.equal(received[0]!.params.orderId, 'good', 'only the valid message reaches the handler');
    assert.deepEqual(received[0]!.headers, { source: 'web', trace: { id: 't-1' } }, 'an object header is read back from JSON');
    assert.equal(invalid.length, 1);
    assert.equal(invalid[0]!.direction, 'receive');
    assert.match(invalid[0]!.reason, /^payload: data must have required property 'lines'/);
    const letter = dead.messages[0]!;
    assert.equal(letter.topic, '$DLQ/shop/eu/orders/bad');
    assert.match(String((letter.properties?.userProperties as Record<string, string>)['eddy-dlq-reason']), /placeOrder: refused, payload: data must have required property 'lines'/);
    watcher.end(true);

    // validateOn: 'receive' lets an invalid publish go; the validating subscriber still refuses it.
    const lenient = shop.createClient(raw, { validate, validateOn: 'receive' });
    await lenient.placeOrder!.publish(params, { id: 'lenient' }, { headers: { source: 'web' } });
    await waitFor(() => invalid.length === 2, () => `invalid ${invalid.length}`);

    // A responder answers an invalid request with the reason rather than let the requester time out.
    await client.checkStock!.respond((check: { sku: string }) => ({ sku: check.sku, available: check.sku === 'negative' ? -1 : 5 }));
    const lenientRequester = shop.createClient(raw, { validate, validateOn: 'receive' });
    await assert.rejects(lenientRequester.checkStock!.request({ warehouse: 'north' }, { nosku: true }), (err: Error) => err instanceof RemoteError && /refused, payload: data must have required property 'sku'/.test(err.message));
    await assert.rejects(app.checkStock!.request({ warehouse: 'north' }, { sku: 'negative' }), (err: Error) => err instanceof RemoteError && /reply not sent, reply payload: data\/available must be >= 0/.test(err.message));
    assert.deepEqual(await app.checkStock!.request({ warehouse: 'north' }, { sku: 'tea' }), { sku: 'tea', available: 5 });
  });

  it('eddy asyncapi generate writes the file and prints one line; --out is required, must be writable and not the document; --perspective is checked', async () => {
    const dir = workDir();
    const out = path.join(dir, 'nested', 'events.ts');
    const ok = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', SHOP, '--out', out, '--perspective', 'client']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `wrote ${out}: 16 types, 5 operations (placeOrder, getPrice, checkStock, writeNote, forwardLegacy), perspective client\n`);
    assert.match(ok.stderr, /^warning message legacyOrder: payload schema format application\/vnd\.apache\.avro/);
    assert.equal(fs.readFileSync(out, 'utf8'), (await generate(SHOP, 'client', 'events.ts')).code);
    assert.match(fs.readFileSync(out, 'utf8'), /^\/\/ {3}import \{ createClient \} from '\.\/events\.js';$/m);
    const noOut = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', SHOP]);
    assert.equal(noOut.code, 2);
    assert.match(noOut.stderr, /missing --out FILE\.ts/);
    const badPerspective = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', SHOP, '--out', out, '--perspective', 'server']);
    assert.equal(badPerspective.code, 2);
    assert.match(badPerspective.stderr, /--perspective must be application or client, got "server"/);
    const intoDirectory = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', SHOP, '--out', dir]);
    assert.equal(intoDirectory.code, 1);
    assert.match(intoDirectory.stderr, /cannot write .*EISDIR/);
    const overDocument = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', SHOP, '--out', SHOP]);
    assert.equal(overDocument.code, 2);
    assert.match(overDocument.stderr, /would overwrite the document/);
    const broken = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', path.join(root, 'test/fixtures/asyncapi/broken.yaml'), '--out', out]);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /broken\.yaml:\d+:\d+ /);
  });
});
