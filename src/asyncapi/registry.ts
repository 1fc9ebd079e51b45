import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { Message, UserProperties } from '../core/message.js';
import type { ChannelInterface, MessageInterface } from '@asyncapi/parser';
import type { LoadedDocument } from './load.js';
import { AsyncApiError } from './load.js';
import { describeParameter, parameterAccepts, readParameters, uniteParameters, type ChannelParameter } from './parameters.js';
import { securityByAddress, securityWarnings, type AppliedSecurity, type ChannelSecurity, type SecuredAction, type SecurityRequirement } from './security.js';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule as unknown as typeof AjvModule.default;
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/** Why a message was refused, as a reason string and the individual validation errors. */
export interface Refusal {
  /**
   * `content-type`: no message of the channel takes this content type (HTTP 415); `parameter`: the
   * topic has a declared channel's shape but a parameter outside its `enum`.
   */
  kind: 'invalid' | 'undeclared' | 'content-type' | 'parameter';
  /** One line for a reason string: `user/signedup: /email must match format "email"`. */
  reason: string;
  errors: string[];
}

interface CompiledMessage {
  /** The message's key in the first channel declaring it (the same message in other documents is not compiled again). */
  id: string;
  contentType: string;
  payload: ValidateFunction | undefined;
  headers: ValidateFunction | undefined;
}

/** One channel object of one document that declares an address. */
export interface ChannelDeclaration {
  file: string;
  channelId: string;
}

/**
 * One address, however many channel objects declare it (in one document or across documents):
 * it accepts the union of their messages, and a parameter value any of them allows.
 */
export interface DeclaredChannel {
  /** The address as written, e.g. `user/{userId}/signedup`. */
  address: string;
  /** The address as an MQTT filter (`{param}` levels become `+`). */
  filter: string;
  matcher: RegExp;
  parameters: ChannelParameter[];
  messages: CompiledMessage[];
  /** In load order; the first names the channel in logs and in `eddy asyncapi validate`. */
  declarations: ChannelDeclaration[];
  /** What the operations' `security` requires of clients to publish and to receive here, when any does. */
  security?: ChannelSecurity;
}

/** Topics (and filters) whose requirement is remembered; the cache starts over past this. */
const MAX_CACHED_REQUIREMENTS = 10_000;

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json$/i;
/** Schema formats ajv can check: the AsyncAPI schema (a JSON Schema superset) and JSON Schema. */
const JSON_SCHEMA_FORMAT = /^application\/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+json|schema\+yaml)(;.*)?$/;

/**
 * Every channel the loaded AsyncAPI documents declare, with compiled matchers for its address and
 * ajv validators for its messages' payloads and headers. Checks a publish against them. Channel
 * objects with the same address, in one document (Kraken's seven channels on `/`) or across
 * documents (one per service, each describing the shared channels from its side), are one channel.
 */
export class ChannelRegistry {
  readonly channels: DeclaredChannel[] = [];
  /** Message ids whose schema format Eddy cannot check (Avro, RAML...): accepted unchecked. */
  readonly unchecked: string[] = [];
  private readonly ajv = addFormats(new Ajv({ strict: false, allErrors: false }));
  /** User properties are strings on the wire: headers schemas see them coerced to their types. */
  private readonly headerAjv = addFormats(new Ajv({ strict: false, allErrors: false, coerceTypes: true }));
  /** Per channel, what identifies each of its compiled messages: a message repeated across documents is compiled once. */
  private readonly messageKeys = new Map<DeclaredChannel, Set<string>>();
  /** Whether any channel is secured: without, requiredIdentity answers at once (it is asked for every delivery). */
  private readonly secured: boolean;
  private readonly requirements = new Map<string, SecurityRequirement | undefined>();

  constructor(documents: LoadedDocument[]) {
    for (const loaded of documents) this.add(loaded);
    const byAddress = new Map<string, ChannelSecurity>();
    for (const loaded of documents) securityByAddress(loaded.document, byAddress);
    for (const channel of this.channels) {
      const security = byAddress.get(channel.address);
      if (security) channel.security = security;
    }
    this.secured = byAddress.size > 0;
  }

  /**
   * What the operations on a topic's channel require of a client's identity for an action. A
   * filter with wildcards gets the requirement of the declared channel that holds every topic it
   * can match (`fridge/+/level` for `fridge/{id}/level`), else none: a wider filter (`fridge/#`) is
   * granted, and each delivery is checked against its own topic's channel.
   */
  requiredIdentity(topicOrFilter: string, action: SecuredAction): SecurityRequirement | undefined {
    if (!this.secured) return undefined;
    const key = `${action} ${topicOrFilter}`;
    if (this.requirements.has(key)) return this.requirements.get(key);
    const wildcard = /(^|\/)[+#](\/|$)/.test(topicOrFilter);
    const channel = wildcard ? this.channels.find((c) => filterCovers(c.filter, topicOrFilter)) : this.channelOf(topicOrFilter)?.channel;
    const requirement = channel?.security?.[action];
    if (this.requirements.size >= MAX_CACHED_REQUIREMENTS) this.requirements.clear();
    this.requirements.set(key, requirement);
    return requirement;
  }

  /** Start-up warnings: security the documents require and the broker does not apply. */
  securityWarnings(applied: AppliedSecurity): string[] {
    return securityWarnings(this.channels, applied);
  }

  /**
   * The declared channel a topic belongs to, if any: the first whose address has the topic's shape
   * and whose parameters allow its values, else the first with the topic's shape, with the
   * parameters whose values it does not allow (a refusal names them).
   */
  channelOf(topic: string): { channel: DeclaredChannel; rejected: ChannelParameter[] } | undefined {
    let shaped: { channel: DeclaredChannel; rejected: ChannelParameter[] } | undefined;
    for (const channel of this.channels) {
      const m = channel.matcher.exec(topic);
      if (!m) continue;
      const rejected = channel.parameters.filter((p, i) => !parameterAccepts(p, m[i + 1]!));
      if (rejected.length === 0) return { channel, rejected };
      shaped ??= { channel, rejected };
    }
    return shaped;
  }

  /** Whether a document declares a channel of this topic's shape (its parameters may still refuse it). */
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
    const found = this.channelOf(message.topic);
    if (!found) {
      if (!strict) return undefined;
      const reason = `${message.topic}: no AsyncAPI document declares this channel (--strict)`;
      return { kind: 'undeclared', reason, errors: [reason] };
    }
    const { channel, rejected } = found;
    if (rejected.length > 0) {
      const errors = rejected.map((p) => `${message.topic}: ${describeParameter(p)}`);
      return { kind: 'parameter', reason: errors[0]!, errors };
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
    for (const declared of document.channels()) {
      const address = declared.address();
      if (!address) continue; // a channel without an address is declared elsewhere at run time
      const parameters = readParameters(declared, address);
      let channel = this.channels.find((c) => c.address === address);
      if (channel) {
        channel.parameters = uniteParameters(channel.parameters, parameters);
      } else {
        channel = { address, filter: address.replace(/\{[^}]+\}/g, '+'), matcher: addressMatcher(address), parameters, messages: [], declarations: [] };
        this.channels.push(channel);
        this.messageKeys.set(channel, new Set());
      }
      channel.declarations.push({ file, channelId: declared.id() });
      for (const msg of declared.messages()) this.addMessage(channel, declared, msg, file, defaultContentType);
    }
  }

  /** Adds a message to a channel's union, unless an identical one (content type, payload, headers) is there already. */
  private addMessage(channel: DeclaredChannel, declared: ChannelInterface, msg: MessageInterface, file: string, defaultContentType: string): void {
    const schemaFormat = msg.schemaFormat();
    const checkable = !schemaFormat || JSON_SCHEMA_FORMAT.test(schemaFormat);
    const contentType = baseType(msg.contentType() ?? defaultContentType)!;
    const payloadSchema = checkable && msg.hasPayload() ? schemaForAjv(msg.payload()!.json()) : undefined;
    const headersSchema = checkable && msg.hasHeaders() ? schemaForAjv(msg.headers()!.json()) : undefined;
    const key = JSON.stringify([contentType, checkable ? '' : schemaFormat, payloadSchema ?? null, headersSchema ?? null]);
    const keys = this.messageKeys.get(channel)!;
    if (keys.has(key)) return;
    keys.add(key);
    if (!checkable) this.unchecked.push(`${declared.id()}.${msg.id()} (${schemaFormat})`);
    const payload = payloadSchema === undefined ? undefined : this.compile(this.ajv, payloadSchema, file, msg.id());
    const headers = headersSchema === undefined ? undefined : this.compile(this.headerAjv, headersSchema, file, msg.id());
    channel.messages.push({ id: msg.id(), contentType, payload, headers });
  }

  private compile(ajv: InstanceType<typeof Ajv>, schema: unknown, file: string, id: string): ValidateFunction {
    try {
      return ajv.compile(schema as object);
    } catch (err) {
      throw new AsyncApiError(`${file}: the schema of message ${id} does not compile`, [`${file}: message ${id}: ${(err as Error).message}`]);
    }
  }
}

/** `fridge/{fridgeId}/level` → `^fridge/([^/]+)/level$`, one group per parameter. */
function addressMatcher(address: string): RegExp {
  const source = address.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '([^/]+)');
  return new RegExp(`^${source}$`);
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

/** Whether every topic `inner` matches also matches `outer` (both MQTT filters). */
export function filterCovers(outer: string, inner: string): boolean {
  const x = outer.split('/');
  const y = inner.split('/');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#') return true;
    if (p === undefined || q === undefined) return p === q;
    if (q === '#') return false;
    if (p !== '+' && p !== q) return false;
  }
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
