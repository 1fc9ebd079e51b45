import type { Action, ModelMessage, ModelOperation, ModelReply, Perspective } from './model.js';
import { docComment, stringLiteral } from './names.js';

/**
 * Writes the document-specific half of the runtime: the two API interfaces (one per perspective),
 * the operations table the runtime reads, and `createClient`.
 */

/** What the type declarations gave a message: type names, and the constants its schemas are embedded in. */
export interface MessageOutput {
  payloadType: string;
  headersType: string | undefined;
  payloadSchema: string | undefined;
  headersSchema: string | undefined;
  contentType: string | undefined;
}

export interface OperationOutput {
  operation: ModelOperation;
  /** Its property on the API: the operation id in camelCase. */
  member: string;
  /** The channel parameters' interface, when the address has parameters. */
  parametersType: string | undefined;
}

const NO_HEADERS = 'eddy.Headers';

/** The API interfaces and createClient; and the operations table, which must follow the schema constants it names. */
export function emitApi(operations: OperationOutput[], messages: ReadonlyMap<ModelMessage, MessageOutput>, defaultPerspective: Perspective): { api: string; table: string } {
  const out = (m: ModelMessage): MessageOutput => messages.get(m)!;
  const other: Perspective = defaultPerspective === 'application' ? 'client' : 'application';
  const api = [
    apiInterface('ApplicationApi', 'application', operations, out),
    apiInterface('ClientApi', 'client', operations, out),
    `/**
 * The document's operations on an Eddy connection, as the application the document describes
 * performs them (perspective 'application', send → publish, receive → subscribe) or as its clients
 * do (perspective 'client', flipped). Without a perspective: '${defaultPerspective}'.
 */
export function createClient(bus: eddy.EddyClient, options?: ClientOptions<'${defaultPerspective}'>): ${apiName(defaultPerspective)};
export function createClient(bus: eddy.EddyClient, options: ClientOptions<'${other}'>): ${apiName(other)};
export function createClient(bus: eddy.EddyClient, options?: ClientOptions): ApplicationApi | ClientApi;
export function createClient(bus: eddy.EddyClient, options: ClientOptions = {}): ApplicationApi | ClientApi {
  // OPERATIONS and both interfaces are generated from the same document: each handle has what its interface declares.
  return createOperations(bus, OPERATIONS, options, options.perspective ?? '${defaultPerspective}') as unknown as ApplicationApi | ClientApi;
}

/**
 * Connects to the broker at url (mqtt://, mqtts://, ws://, wss://) and returns the document's
 * operations on that connection, with the connection (bus). Credentials and TLS go to the SDK's
 * connect(): username and password (or a function giving a fresh password or JWT), ca, cert, key.
 */
export function connectClient(url: string, connection?: ConnectionOptions, options?: ClientOptions<'${defaultPerspective}'>): Promise<Connected<${apiName(defaultPerspective)}>>;
export function connectClient(url: string, connection: ConnectionOptions | undefined, options: ClientOptions<'${other}'>): Promise<Connected<${apiName(other)}>>;
export async function connectClient(url: string, connection: ConnectionOptions = {}, options: ClientOptions = {}): Promise<Connected<ApplicationApi | ClientApi>> {
  // Handed over as they are, typed here rather than by the SDK, so that a generated client compiles
  // against SDK versions from before its TLS options and password functions too.
  const bus = await eddy.connect(url, { ...connection } as eddy.ConnectOptions);
  return { bus, api: createClient(bus, options) };
}
`,
  ].join('\n');
  return { api, table: operationsTable(operations, out) };
}

function apiName(perspective: Perspective): string {
  return perspective === 'application' ? 'ApplicationApi' : 'ClientApi';
}

function apiInterface(name: string, perspective: Perspective, operations: OperationOutput[], out: (m: ModelMessage) => MessageOutput): string {
  const intro =
    perspective === 'application'
      ? `/** The operations as the application the document describes performs them: createClient(bus, { perspective: 'application' }). */`
      : `/** The operations from the other side, for the application's peers: createClient(bus, { perspective: 'client' }). */`;
  const members = operations.map((o) => {
    const action = effectiveAction(o.operation.action, perspective);
    const text = [o.operation.summary, describeAction(o.operation, action)].filter(Boolean).join('\n');
    return `${docComment(text, '  ')}  readonly ${o.member}: ${handleType(o, action, out)};`;
  });
  return `${intro}\nexport interface ${name} {\n${members.join('\n')}${members.length > 0 ? '\n' : ''}}\n`;
}

function effectiveAction(action: Action, perspective: Perspective): Action {
  if (perspective === 'application') return action;
  return action === 'send' ? 'receive' : 'send';
}

function describeAction(operation: ModelOperation, action: Action): string {
  const where = operation.address;
  const reply = operation.reply;
  if (!reply) return action === 'send' ? `Publishes to ${where}.` : `Subscribes to ${where}.`;
  const documented = [reply.location === undefined ? undefined : describeLocation(reply.location), reply.address]
    .filter((a): a is string => a !== undefined)
    .join(', else to ');
  if (action === 'send') {
    const informational = reply.address === undefined ? '' : ` (not on ${reply.address}, which the SDK's request() does not use)`;
    return `Requests on ${where}; the reply comes back on this client's own inbox, the MQTT 5 response topic${informational}.`;
  }
  return `Answers requests on ${where}, to the request's response topic${documented ? ` (else to ${documented})` : ''}.`;
}

/** `$message.header#/replyTo` → `the address in header replyTo`. */
function describeLocation(location: string): string {
  const match = /^\$message\.(header|payload)#\/?(.*)$/.exec(location);
  if (!match) return location;
  return match[1] === 'header' ? `the address in header ${match[2]}` : `the address at payload /${match[2]}`;
}

function handleType(o: OperationOutput, action: Action, out: (m: ModelMessage) => MessageOutput): string {
  const { operation } = o;
  const payload = union(operation.messages.map((m) => out(m).payloadType));
  const withHeaders = operation.messages.some((m) => out(m).headersType !== undefined);
  const headers = withHeaders ? union(operation.messages.map((m) => out(m).headersType ?? NO_HEADERS)) : NO_HEADERS;
  const params = o.parametersType;
  const args = (...types: string[]): string => `<${[...(params ? [params] : []), ...types].join(', ')}>`;
  const prefix = params ? 'Parameterized' : '';
  if (operation.reply) {
    const reply = union(operation.reply.messages.map((m) => out(m).payloadType));
    return `${prefix}${action === 'send' ? 'Requester' : 'Responder'}${args(payload, headers, reply)}`;
  }
  return `${prefix}${action === 'send' ? 'Publisher' : 'Subscriber'}${args(payload, headers)}`;
}

function union(types: string[]): string {
  const distinct = [...new Set(types)];
  if (distinct.length === 0 || distinct.includes('unknown')) return 'unknown';
  return distinct.join(' | ');
}

function operationsTable(operations: OperationOutput[], out: (m: ModelMessage) => MessageOutput): string {
  const entries = operations.map(({ operation: op, member }) => {
    const fields = [
      `member: ${stringLiteral(member)}`,
      `id: ${stringLiteral(op.id)}`,
      `action: ${stringLiteral(op.action)}`,
      `address: ${stringLiteral(op.address)}`,
      `parameters: [${op.parameters.map((p) => `{ name: ${stringLiteral(p.name)}${p.enum ? `, enum: [${p.enum.map(stringLiteral).join(', ')}]` : ''} }`).join(', ')}]`,
      `messages: ${messageSpecs(op.messages, out)}`,
      ...(op.reply ? [`reply: ${replySpec(op.reply, out)}`] : []),
    ];
    return `  {\n${fields.map((f) => `    ${f},`).join('\n')}\n  },`;
  });
  return `const OPERATIONS: readonly OperationSpec[] = [\n${entries.join('\n')}${entries.length > 0 ? '\n' : ''}];\n`;
}

function messageSpecs(messages: ModelMessage[], out: (m: ModelMessage) => MessageOutput): string {
  const specs = messages.map((m) => {
    const o = out(m);
    const fields = [
      ...(o.contentType !== undefined ? [`contentType: ${stringLiteral(o.contentType)}`] : []),
      ...(o.payloadSchema !== undefined ? [`payload: ${o.payloadSchema}`] : []),
      ...(o.headersSchema !== undefined ? [`headers: ${o.headersSchema}`] : []),
    ];
    return fields.length > 0 ? `{ ${fields.join(', ')} }` : '{}';
  });
  return `[${specs.join(', ')}]`;
}

function replySpec(reply: ModelReply, out: (m: ModelMessage) => MessageOutput): string {
  const fields = [
    `messages: ${messageSpecs(reply.messages, out)}`,
    ...(reply.address !== undefined ? [`address: ${stringLiteral(reply.address)}`] : []),
    ...(reply.location !== undefined ? [`location: ${stringLiteral(reply.location)}`] : []),
  ];
  return `{ ${fields.join(', ')} }`;
}
