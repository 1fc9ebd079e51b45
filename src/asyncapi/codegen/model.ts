import type { AsyncAPIDocumentInterface, ChannelInterface, MessageInterface, OperationInterface, SchemaInterface } from '@asyncapi/parser';
import { isAnonymousId } from './names.js';
import { isJsonSchemaFormat, unwrapMultiFormat } from './schema-data.js';

/**
 * What the generator needs from a parsed AsyncAPI 3 document, as plain data: operations with their
 * channel address, parameters, messages and reply; every message; the component schemas.
 */

export type Action = 'send' | 'receive';

/** Whose side of the document generated code takes: the application's as written, or its clients' (flipped). */
export type Perspective = 'application' | 'client';

/** A payload or headers schema, or the reason there is none to type. */
export interface ModelSchema {
  /** The JSON Schema (multi-format wrapper removed); undefined when the format is not JSON Schema. */
  schema: unknown;
  /** The schema format, when it is one the generator cannot read (Avro, RAML, Protobuf...). */
  foreignFormat?: string;
}

/** One per message object of the parser: a message referred to from several places is one entry. */
export interface ModelMessage {
  /** The message's `name`, else its key. */
  name: string;
  summary: string | undefined;
  contentType: string | undefined;
  payload: ModelSchema | undefined;
  headers: ModelSchema | undefined;
}

export interface ModelParameter {
  name: string;
  description: string | undefined;
  enum: string[] | undefined;
}

export interface ModelReply {
  messages: ModelMessage[];
  /** The reply channel's address when it is a fixed topic (no parameters). */
  address: string | undefined;
  /** Where a request carries its reply address, e.g. `$message.header#/replyTo`. */
  location: string | undefined;
}

export interface ModelOperation {
  id: string;
  action: Action;
  summary: string | undefined;
  channelId: string;
  address: string;
  parameters: ModelParameter[];
  messages: ModelMessage[];
  reply: ModelReply | undefined;
}

export interface DocumentModel {
  title: string;
  version: string;
  operations: ModelOperation[];
  /** Every message of the document (channels' and components'), once each. */
  messages: ModelMessage[];
  componentSchemas: Array<{ id: string; schema: unknown }>;
  /** What the generator leaves out, and why. */
  warnings: string[];
}

/** `{name}` placeholders of a channel address, in order. */
export function addressParameters(address: string): string[] {
  return [...address.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
}

export function readDocument(document: AsyncAPIDocumentInterface): DocumentModel {
  const warnings: string[] = [];
  const messages = new Map<object, ModelMessage>();
  const messageOf = (m: MessageInterface): ModelMessage => {
    const identity = m.json() as object;
    let model = messages.get(identity);
    if (!model) {
      model = readMessage(m);
      messages.set(identity, model);
    }
    return model;
  };
  for (const m of document.allMessages()) messageOf(m);

  const operations: ModelOperation[] = [];
  for (const op of document.operations()) {
    const operation = readOperation(op, messageOf, warnings);
    if (operation) operations.push(operation);
  }
  const componentSchemas = document
    .components()
    .schemas()
    .all()
    .filter((s) => isJsonSchemaFormat(s.schemaFormat()))
    .map((s) => ({ id: s.id(), schema: unwrapMultiFormat(s.json()) }));
  for (const m of messages.values()) {
    if (m.payload?.foreignFormat) warnings.push(`message ${m.name}: payload schema format ${m.payload.foreignFormat} is not JSON Schema; typed unknown and not validated`);
  }
  return { title: document.info().title(), version: document.info().version(), operations, messages: [...messages.values()], componentSchemas, warnings };
}

function readMessage(m: MessageInterface): ModelMessage {
  const key = m.id();
  const name = m.name() ?? (isAnonymousId(key) ? 'Message' : key);
  return {
    name,
    summary: m.summary() ?? m.title() ?? m.description(),
    contentType: m.contentType(),
    payload: m.hasPayload() ? readSchema(m.payload()!, m.schemaFormat()) : undefined,
    headers: m.hasHeaders() ? readSchema(m.headers()!, m.headers()!.schemaFormat()) : undefined,
  };
}

function readSchema(schema: SchemaInterface, schemaFormat: string | undefined): ModelSchema {
  if (!isJsonSchemaFormat(schemaFormat)) return { schema: undefined, foreignFormat: schemaFormat };
  return { schema: unwrapMultiFormat(schema.json()) };
}

function readOperation(op: OperationInterface, messageOf: (m: MessageInterface) => ModelMessage, warnings: string[]): ModelOperation | undefined {
  const id = op.id() ?? 'operation';
  const action = op.action();
  if (action !== 'send' && action !== 'receive') {
    warnings.push(`operation ${id}: action ${action} is AsyncAPI 2; left out`);
    return undefined;
  }
  const channel = op.channels().all()[0];
  const address = channel?.address();
  if (!channel || !address) {
    warnings.push(`operation ${id}: its channel has no address (known only at run time); left out`);
    return undefined;
  }
  if (/[+#]/.test(address)) {
    warnings.push(`operation ${id}: address ${address} holds MQTT wildcards, which cannot be published to; left out`);
    return undefined;
  }
  return {
    id,
    action,
    summary: op.summary() ?? op.description(),
    channelId: channel.id(),
    address,
    parameters: readParameters(channel, address),
    messages: op.messages().all().map(messageOf),
    reply: readReply(op, messageOf, warnings),
  };
}

function readParameters(channel: ChannelInterface, address: string): ModelParameter[] {
  return addressParameters(address).map((name) => {
    const declared = channel.parameters().get(name);
    const json = (declared?.json() ?? {}) as { enum?: unknown[] };
    return {
      name,
      description: declared?.description(),
      enum: Array.isArray(json.enum) ? json.enum.map(String) : undefined,
    };
  });
}

function readReply(op: OperationInterface, messageOf: (m: MessageInterface) => ModelMessage, warnings: string[]): ModelReply | undefined {
  const reply = op.reply();
  if (!reply) return undefined;
  const channel = reply.channel();
  const own = reply.messages().all();
  const messages = (own.length > 0 ? own : (channel?.messages().all() ?? [])).map(messageOf);
  let address = channel?.address() ?? undefined;
  if (address && addressParameters(address).length > 0) {
    warnings.push(`operation ${op.id()}: reply address ${address} has parameters; replies go to the request's response topic only`);
    address = undefined;
  }
  return { messages, address, location: reply.address()?.location() };
}
