import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { Message, UserProperties } from '../core/message.js';
import type { LoadedDocument } from './load.js';
import { AsyncApiError } from './load.js';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule as unknown as typeof AjvModule.default;
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/** Why a message was refused, as a reason string and the individual validation errors. */
export interface Refusal {
  /** `content-type`: no message of the channel takes this content type (HTTP 415). */
  kind: 'invalid' | 'undeclared' | 'content-type';
  /** One line for a reason string: `user/signedup: /email must match format "email"`. */
  reason: string;
  errors: string[];
}

interface CompiledMessage {
  id: string;
  contentType: string;
  payload: ValidateFunction | undefined;
  headers: ValidateFunction | undefined;
}

interface CompiledParameter {
  name: string;
  enum?: string[];
  pattern?: RegExp;
}

export interface DeclaredChannel {
  id: string;
  /** The address as written, e.g. `user/{userId}/signedup`. */
  address: string;
  file: string;
  /** The address as an MQTT filter (`{param}` levels become `+`). */
  filter: string;
  matcher: RegExp;
  parameters: CompiledParameter[];
  messages: CompiledMessage[];
}

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json$/i;
/** Schema formats ajv can check: the AsyncAPI schema (a JSON Schema superset) and JSON Schema. */
const JSON_SCHEMA_FORMAT = /^application\/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+json|schema\+yaml)(;.*)?$/;

/**
 * Every channel the loaded AsyncAPI documents declare, with compiled matchers for its address and
 * ajv validators for its messages' payloads and headers. Checks a publish against them.
 */
export class ChannelRegistry {
  readonly channels: DeclaredChannel[] = [];
  /** Message ids whose schema format Eddy cannot check (Avro, RAML...): accepted unchecked. */
  readonly unchecked: string[] = [];
  private readonly ajv = addFormats(new Ajv({ strict: false, allErrors: false }));
  /** User properties are strings on the wire: headers schemas see them coerced to their types. */
  private readonly headerAjv = addFormats(new Ajv({ strict: false, allErrors: false, coerceTypes: true }));

  constructor(documents: LoadedDocument[]) {
    for (const loaded of documents) this.add(loaded);
  }

  /** The declared channel a topic belongs to, if any. */
  channelOf(topic: string): DeclaredChannel | undefined {
    for (const channel of this.channels) {
      const m = channel.matcher.exec(topic);
      if (!m) continue;
      if (channel.parameters.every((p, i) => parameterAccepts(p, m[i + 1]!))) return channel;
    }
    return undefined;
  }

  declares(topic: string): boolean {
    return this.channelOf(topic) !== undefined;
  }

  /** Whether a subscription filter can match any declared channel (for --strict). */
  filterIsDeclared(filter: string): boolean {
    return this.channels.some((c) => filtersOverlap(filter, c.filter));
  }

  /**
   * Checks a publish: undefined when it is fine (or its channel is not declared and `strict` is off),
   * else why not. A message is valid when one of its channel's messages accepts its content type,
   * payload and headers.
   */
  check(message: Message, strict: boolean): Refusal | undefined {
    const channel = this.channelOf(message.topic);
    if (!channel) {
      if (!strict) return undefined;
      const reason = `${message.topic}: no AsyncAPI document declares this channel (--strict)`;
      return { kind: 'undeclared', reason, errors: [reason] };
    }
    if (channel.messages.length === 0) return undefined;
    const errors: string[] = [];
    const contentType = baseType(message.properties.contentType);
    let typeMatched = false;
    for (const candidate of channel.messages) {
      if (contentType !== undefined && contentType !== candidate.contentType) continue;
      typeMatched = true;
      const problem = this.checkMessage(candidate, message);
      if (problem === undefined) return undefined;
      errors.push(problem);
    }
    if (!typeMatched) {
      const accepted = [...new Set(channel.messages.map((m) => m.contentType))].join(', ');
      const reason = `${message.topic}: content type ${contentType} is not accepted here (${accepted})`;
      return { kind: 'content-type', reason, errors: [reason] };
    }
    const reason = `${message.topic}: ${errors[0]}${errors.length > 1 ? ` (and ${errors.length - 1} other message definition${errors.length > 2 ? 's' : ''} do not match)` : ''}`;
    return { kind: 'invalid', reason, errors };
  }

  private checkMessage(candidate: CompiledMessage, message: Message): string | undefined {
    if (candidate.payload) {
      let value: unknown = message.payload.toString('utf8');
      if (JSON_TYPE.test(candidate.contentType)) {
        try {
          value = JSON.parse(value as string);
        } catch {
          return `payload is not valid JSON (${candidate.contentType})`;
        }
      }
      if (!candidate.payload(value)) return describe(candidate.payload.errors, '');
    }
    if (candidate.headers && !candidate.headers(headersOf(message.properties.userProperties))) {
      return describe(candidate.headers.errors, 'headers');
    }
    return undefined;
  }

  private add(loaded: LoadedDocument): void {
    const { document, file } = loaded;
    const defaultContentType = document.defaultContentType() ?? 'application/json';
    for (const channel of document.channels()) {
      const address = channel.address();
      if (!address) continue; // a channel without an address is declared elsewhere at run time
      const existing = this.channels.find((c) => c.address === address);
      if (existing) {
        throw new AsyncApiError(`channel address ${address} is declared twice`, [`${file}: channel ${channel.id()} declares ${address}, already declared as ${existing.id} in ${existing.file}`]);
      }
      const names: string[] = [];
      const source = address.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_, name: string) => {
        names.push(name);
        return '([^/]+)';
      });
      const parameters = names.map((name) => {
        const json = (channel.parameters().get(name)?.json() ?? {}) as { enum?: unknown[]; pattern?: string; schema?: { pattern?: string; enum?: unknown[] } };
        const values = json.enum ?? json.schema?.enum;
        const pattern = json.pattern ?? json.schema?.pattern;
        return { name, ...(values ? { enum: values.map(String) } : {}), ...(pattern ? { pattern: new RegExp(pattern) } : {}) };
      });
      const messages: CompiledMessage[] = [];
      for (const msg of channel.messages()) {
        const schemaFormat = msg.schemaFormat();
        const checkable = !schemaFormat || JSON_SCHEMA_FORMAT.test(schemaFormat);
        if (!checkable) this.unchecked.push(`${channel.id()}.${msg.id()} (${schemaFormat})`);
        const payload = checkable && msg.hasPayload() ? this.compile(this.ajv, msg.payload()!.json(), file, msg.id()) : undefined;
        const headers = checkable && msg.hasHeaders() ? this.compile(this.headerAjv, msg.headers()!.json(), file, msg.id()) : undefined;
        messages.push({ id: msg.id(), contentType: baseType(msg.contentType() ?? defaultContentType)!, payload, headers });
      }
      this.channels.push({
        id: channel.id(),
        address,
        file,
        filter: address.replace(/\{[^}]+\}/g, '+'),
        matcher: new RegExp(`^${source}$`),
        parameters,
        messages,
      });
    }
  }

  private compile(ajv: InstanceType<typeof Ajv>, schema: unknown, file: string, id: string): ValidateFunction {
    try {
      return ajv.compile(schemaForAjv(schema) as object);
    } catch (err) {
      throw new AsyncApiError(`${file}: the schema of message ${id} does not compile`, [`${file}: message ${id}: ${(err as Error).message}`]);
    }
  }
}

function parameterAccepts(p: CompiledParameter, value: string): boolean {
  if (p.enum && !p.enum.includes(value)) return false;
  if (p.pattern && !p.pattern.test(value)) return false;
  return true;
}

function baseType(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]!.trim().toLowerCase();
}

/**
 * User properties as the headers schema sees them. Values are strings on the wire; ajv coerces them
 * to numbers and booleans, and a JSON object or array (how the SDK sends object headers) is parsed here.
 */
function headersOf(properties: UserProperties | undefined): Record<string, unknown> {
  const headers: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(properties ?? {})) {
    if (typeof value === 'string' && /^\s*[[{]/.test(value)) {
      try {
        headers[key] = JSON.parse(value);
        continue;
      } catch {
        // not JSON: the string as it is
      }
    }
    headers[key] = value;
  }
  return headers;
}

/** `/email must match format "email"`, the first ajv error with its JSON pointer. */
function describe(errors: ErrorObject[] | null | undefined, prefix: string): string {
  const e = errors?.[0];
  if (!e) return 'does not match its schema';
  const pointer = `${prefix ? `${prefix}` : ''}${e.instancePath || (prefix ? '' : '/')}`;
  const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
  return `${pointer || '/'} ${e.message ?? 'is invalid'}${extra}`;
}

/**
 * A copy of a parsed schema for ajv: without the parser's `x-parser-*` keys, and with recursion
 * (the parser resolves a self-referencing schema into a cyclic object) turned back into `$ref`s
 * to `$defs`, which ajv follows.
 */
export function schemaForAjv(schema: unknown): unknown {
  const defs: Record<string, unknown> = {};
  const ids = new Map<object, string>();
  const onPath = new Set<object>();
  const copies = new Map<object, Record<string, unknown>>();
  const copy = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(copy);
    if (typeof value !== 'object' || value === null) return value;
    if (onPath.has(value)) {
      let id = ids.get(value);
      if (!id) {
        id = `s${ids.size + 1}`;
        ids.set(value, id);
      }
      return { $ref: `#/$defs/${id}` };
    }
    onPath.add(value);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!k.startsWith('x-parser-')) out[k] = copy(v);
    onPath.delete(value);
    copies.set(value, out);
    return out;
  };
  const root = copy(schema);
  for (const [source, id] of ids) defs[id] = copies.get(source);
  if (ids.size === 0 || typeof root !== 'object' || root === null) return root;
  return { ...(root as object), $defs: { ...((root as { $defs?: object }).$defs ?? {}), ...defs } };
}

/** Whether some topic matches both filters (`+`/`#` in either). */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true;
    if (p === undefined || q === undefined) return p === q;
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
}
