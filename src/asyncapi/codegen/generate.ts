import path from 'node:path';
import { EddyError } from '../../util/errors.js';
import type { LoadedDocument } from '../load.js';
import { emitApi, type MessageOutput, type OperationOutput } from './emit-api.js';
import { readDocument, type DocumentModel, type ModelMessage, type ModelOperation, type ModelSchema, type Perspective } from './model.js';
import { camelCase, docComment, NameTable, pascalCase, propertyKey, schemaIdBase, stringLiteral } from './names.js';
import { runtimeDeclarations, runtimeSource } from './runtime.js';
import { canonicalKey, embeddableSchema, formatJson, isSchemaObject } from './schema-data.js';
import { TypeWriter } from './schema-to-ts.js';

export type { Perspective } from './model.js';

export interface GenerateOptions {
  /** The perspective `createClient` takes when its caller names none. Default 'application'. */
  perspective?: Perspective;
  /** The generated file's name, for the import line of the usage comment at its top. */
  fileName?: string;
}

export interface GeneratedClient {
  /** The TypeScript source: one self-contained module importing only '@eddy/client'. */
  code: string;
  /** The exported type names for payloads, headers, schemas and channel parameters. */
  types: string[];
  /** The API's members, one per operation. */
  operations: string[];
  /** What was left out or typed `unknown`, one line each. */
  warnings: string[];
}

/** The generated client could not be written: `--out` is a directory, or not writable. */
export class CodegenError extends EddyError {
  constructor(message: string, cause?: unknown) {
    super('EDDY_CODEGEN', message, { cause });
  }
}

/**
 * Names a schema must not take, or it would shadow them: the runtime's own declarations and
 * the API's (read from their source, so the list cannot fall behind), and the globals the runtime
 * uses or a reader would not expect shadowed. Such a schema gets a `Type` suffix instead.
 */
const RESERVED = new Set([
  ...runtimeDeclarations(),
  'ApplicationApi',
  'ClientApi',
  'Array', 'Boolean', 'Buffer', 'Date', 'Error', 'Function', 'Infinity', 'JSON', 'Map', 'Math', 'NaN',
  'NodeJS', 'Number', 'Object', 'Omit', 'Partial', 'Pick', 'Promise', 'PromiseLike', 'Readonly',
  'ReadonlyArray', 'Record', 'RegExp', 'Required', 'Set', 'String', 'Symbol', 'TypeError', 'Uint8Array',
]);

/** Generates the client for a loaded document; `source` (the file) is named in the header. */
export function generateClient(loaded: LoadedDocument, options: GenerateOptions = {}): GeneratedClient {
  return generateFromModel(readDocument(loaded.document), path.basename(loaded.file), options);
}

export function generateFromModel(model: DocumentModel, source: string, options: GenerateOptions = {}): GeneratedClient {
  const perspective = options.perspective ?? 'application';
  const names = new NameTable(RESERVED);
  const components = new Map<string, string>();
  for (const c of model.componentSchemas) if (isSchemaObject(c.schema)) components.set(canonicalKey(c.schema), schemaIdBase(c.id));
  const writer = new TypeWriter(names, components);

  // Component schemas first, so they keep their own names; then each message's payload and headers.
  for (const c of model.componentSchemas) if (writer.reference(c.schema) === undefined) writer.declare(c.schema, pascalCase(schemaIdBase(c.id)));
  const schemaConstants = new SchemaConstants(names);
  const messages = new Map<ModelMessage, MessageOutput>();
  for (const m of model.messages) {
    messages.set(m, {
      payloadType: messageType(writer, names, m, m.payload, 'Payload') ?? 'unknown',
      headersType: messageType(writer, names, m, m.headers, 'Headers'),
      payloadSchema: schemaConstants.constantFor(m.payload, `${pascalCase(m.name, 'Message')}PayloadSchema`),
      headersSchema: schemaConstants.constantFor(m.headers, `${pascalCase(m.name, 'Message')}HeadersSchema`),
      contentType: m.contentType,
    });
  }
  const parameters = parameterInterfaces(model.operations, names);
  const members = new NameTable(new Set());
  const operations: OperationOutput[] = model.operations.map((operation) => ({
    operation,
    member: members.claim(camelCase(operation.id)),
    parametersType: parameters.names.get(operation.channelId),
  }));

  const { api, table } = emitApi(operations, messages, perspective);
  const code = [
    header(model, source, perspective, options.fileName),
    section('Message payloads and headers'),
    writer.render(),
    ...(parameters.code ? [section('Channel parameters'), parameters.code] : []),
    section('The API'),
    api,
    section('Schemas, embedded for validation and for reading headers back into their types'),
    schemaConstants.render(),
    table,
    runtimeSource(perspective),
  ].join('\n');
  return {
    code: code.replace(/\n{3,}/g, '\n\n'),
    types: [...writer.typeNames, ...parameters.names.values()],
    operations: operations.map((o) => o.member),
    warnings: [...model.warnings, ...writer.warnings],
  };
}

function header(model: DocumentModel, source: string, perspective: Perspective, fileName = 'events.ts'): string {
  const title = `${model.title} ${model.version}`.replace(/\s+/g, ' ');
  const specifier = `./${fileName.replace(/\.([mc]?)ts$/, '.$1js')}`;
  return `// ${title}: a typed Eddy client generated by \`eddy asyncapi generate\` from ${source}.
// Do not edit; generate again when the document changes. How to use it: docs/asyncapi-codegen.md.
//
//   import { connect } from '@eddy/client';
//   import { createClient } from '${specifier}';
//   const api = createClient(await connect('mqtt://localhost:1883')); // perspective '${perspective}'
import * as eddy from '@eddy/client';
`;
}

function section(title: string): string {
  return `\n// ---- ${title} ${'-'.repeat(Math.max(3, 96 - title.length))}\n`;
}

/**
 * The type of a message's payload or headers, named `<Message>Payload` / `<Message>Headers`. When
 * the schema is a named one already (a component), that name is the type and the message's name an
 * alias of it.
 */
function messageType(writer: TypeWriter, names: NameTable, m: ModelMessage, part: ModelSchema | undefined, suffix: 'Payload' | 'Headers'): string | undefined {
  if (part === undefined) return undefined;
  const preferred = `${pascalCase(m.name, 'Message')}${suffix}`;
  const description = suffix === 'Payload' ? m.summary : `The headers of message ${m.name}, carried as MQTT 5 user properties.`;
  if (part.foreignFormat !== undefined) {
    return writer.declare(undefined, preferred, `${description ?? `The ${suffix.toLowerCase()} of message ${m.name}`}: schema format ${part.foreignFormat}, which the generator does not read.`);
  }
  const own = writer.reference(part.schema);
  if (own === undefined) return writer.declare(part.schema, preferred, description);
  if (own === preferred) return own;
  const alias = names.claim(preferred);
  writer.alias(alias, own, description);
  return alias;
}

/** One interface per channel with parameters, typing each: a union of its `enum`, else string. */
function parameterInterfaces(operations: ModelOperation[], names: NameTable): { code: string; names: Map<string, string> } {
  const declared = new Map<string, string>();
  const blocks: string[] = [];
  for (const op of operations) {
    if (op.parameters.length === 0 || declared.has(op.channelId)) continue;
    const name = names.claim(`${pascalCase(op.channelId, 'Channel')}Parameters`);
    declared.set(op.channelId, name);
    const members = op.parameters.map((p) => `${docComment(p.description, '  ')}  ${propertyKey(p.name)}: ${p.enum ? p.enum.map(stringLiteral).join(' | ') : 'string'};`);
    blocks.push(`/** The parameters of ${op.address}. */\nexport interface ${name} {\n${members.join('\n')}\n}\n`);
  }
  return { code: blocks.join('\n'), names: declared };
}

/** Each distinct schema embedded once, as an exported constant the operations table refers to. */
class SchemaConstants {
  private readonly byContent = new Map<string, string>();
  private readonly declarations: string[] = [];

  constructor(private readonly names: NameTable) {}

  constantFor(part: ModelSchema | undefined, preferred: string): string | undefined {
    if (part === undefined || part.foreignFormat !== undefined || part.schema === undefined) return undefined;
    const json = formatJson(embeddableSchema(part.schema));
    const existing = this.byContent.get(json);
    if (existing !== undefined) return existing;
    const name = this.names.claim(preferred);
    this.byContent.set(json, name);
    this.declarations.push(`export const ${name}: JsonSchema = ${json};\n`);
    return name;
  }

  render(): string {
    return this.declarations.join('\n');
  }
}
