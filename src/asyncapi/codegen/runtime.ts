import type { Perspective } from './model.js';
import { RUNTIME_API } from './runtime-api.js';

/**
 * The part of every generated client that does not depend on the document: the handle types and
 * errors (runtime-api.ts), and here the functions that map operations onto the Eddy SDK. It is
 * TypeScript source held as text (String.raw, so its regular expressions read as they are: the text
 * has no backtick and no dollar-brace); every generated client is compiled by the codegen tests with
 * --strict and --noUncheckedIndexedAccess (and --erasableSyntaxOnly: no parameter properties or
 * enums, so Node's type stripping can run the generated file as it is).
 */
const RUNTIME_FUNCTIONS = String.raw`
interface MessageSpec {
  readonly contentType?: string;
  readonly payload?: JsonSchema;
  readonly headers?: JsonSchema;
}

interface ReplySpec {
  readonly messages: readonly MessageSpec[];
  /** The reply channel's fixed address. */
  readonly address?: string;
  /** Where a request carries its reply address: '$message.header#/replyTo'. */
  readonly location?: string;
}

interface OperationSpec {
  readonly member: string;
  readonly id: string;
  readonly action: 'send' | 'receive';
  readonly address: string;
  readonly parameters: readonly { readonly name: string; readonly enum?: readonly string[] }[];
  readonly messages: readonly MessageSpec[];
  readonly reply?: ReplySpec;
}

type Values = Record<string, unknown>;
type AnyHandler = (message: Received<unknown, Values, Values>) => unknown;
type AnyReplyHandler = (payload: unknown, message: Received<unknown, Values, Values>) => unknown;
type Reply = (payload: unknown, options: { headers?: eddy.Headers; contentType?: string }) => Promise<unknown>;

const JSON_CONTENT_TYPE = /^application\/([a-z0-9.+-]+\+)?json(\s*;.*)?$/i;

function createOperations(bus: eddy.EddyClient, operations: readonly OperationSpec[], options: ClientOptions, perspective: Perspective): Record<string, Values> {
  const api: Record<string, Values> = {};
  for (const spec of operations) api[spec.member] = createHandle(bus, spec, perspective, options);
  return api;
}

function createHandle(bus: eddy.EddyClient, spec: OperationSpec, perspective: Perspective, options: ClientOptions): Values {
  const sends = (spec.action === 'send') !== (perspective === 'client');
  const validateOn = options.validateOn ?? 'both';
  const checkSent = validateOn === 'receive' ? undefined : options.validate;
  const checkReceived = validateOn === 'send' ? undefined : options.validate;
  const handle: Values = { operation: spec.id, address: spec.address };
  const reply = spec.reply;
  // Every method is async, so a bad argument rejects its promise as a refused publish does.
  if (sends) {
    // (params, payload, options): the params argument exists when the address has parameters.
    const outgoing = (args: unknown[]): Outgoing => {
      const [params, payload, sendOptions] = spec.parameters.length > 0 ? args : [{}, args[0], args[1]];
      return prepare(spec, (params ?? {}) as Values, payload, (sendOptions ?? {}) as SendOptions<Values> & { timeout?: number }, checkSent);
    };
    if (reply) {
      handle['request'] = async (...args: unknown[]): Promise<unknown> => {
        const out = outgoing(args);
        const result = await bus.request<unknown>(out.topic, out.body, out.options);
        const problem = checkReceived && firstFailure(reply.messages, (m) => check(checkReceived, m.payload, result, 'reply payload'));
        if (problem) throw new ValidationError(spec.id, 'receive', problem);
        return result;
      };
    } else {
      handle['publish'] = async (...args: unknown[]): Promise<eddy.PublishResult> => {
        const out = outgoing(args);
        return bus.publish(out.topic, out.body, out.options);
      };
    }
    return handle;
  }
  const pattern = addressPattern(spec.address);
  type Answer<F> = (handler: F, delivery: eddy.Delivery, message: Received<unknown, Values, Values>, problem: string | undefined) => unknown;
  // (params?, handler, options?): the params argument may be left out, and then every parameter is a wildcard.
  const open = async <F>(args: unknown[], answer: Answer<F>): Promise<eddy.Subscription> => {
    const [params, handler, subscribeOptions] = typeof args[0] === 'function' ? [{}, args[0], args[1]] : [args[0] ?? {}, args[1], args[2]];
    if (typeof handler !== 'function') throw new TypeError(spec.id + ': a handler function is required');
    return bus.subscribe<unknown>(
      filterOf(spec, params as Values),
      (delivery) => {
        const params = matchAddress(pattern, delivery.channel);
        if (params === undefined) return undefined; // another channel under the same filter: not this operation's
        const message: Received<unknown, Values, Values> = { ...delivery, headers: decodeHeaders(spec.messages, delivery.headers), params };
        const problem = checkReceived && incomingFailure(spec, message, checkReceived);
        return answer(handler as F, delivery, message, problem || undefined);
      },
      (subscribeOptions ?? {}) as eddy.SubscribeOptions,
    );
  };
  const refuse = (delivery: eddy.Delivery, problem: string): never => {
    const error = new ValidationError(spec.id, 'receive', problem);
    options.onInvalid?.(error, delivery);
    throw error; // the SDK refuses the message with this reason; the broker retries, then dead-letters it
  };
  if (!reply) {
    handle['subscribe'] = (...args: unknown[]) =>
      open<AnyHandler>(args, (handler, delivery, message, problem) => (problem === undefined ? handler(message) : refuse(delivery, problem)));
    return handle;
  }
  handle['respond'] = (...args: unknown[]) =>
    open<AnyReplyHandler>(args, async (handler, delivery, message, problem) => {
      const send = replyTo(bus, reply, delivery, message.headers);
      const fail = (reason: string) => (send ? send('', { headers: { 'eddy-error': reason } }) : undefined);
      if (problem !== undefined) {
        // A requester waits for an answer: tell it why, rather than refusing and letting it time out.
        if (!send) refuse(delivery, problem);
        options.onInvalid?.(new ValidationError(spec.id, 'receive', problem), delivery);
        return fail(spec.id + ': refused, ' + problem);
      }
      let result: unknown;
      try {
        result = await handler(message.payload, message);
      } catch (err) {
        if (!send) throw err;
        return fail(err instanceof Error ? err.message : String(err));
      }
      const invalid = checkSent && firstFailure(reply.messages, (m) => check(checkSent, m.payload, result, 'reply payload'));
      if (invalid) return fail(spec.id + ': reply not sent, ' + invalid);
      if (!send) return undefined; // a plain publish, with no reply address: nobody waits
      const contentType = commonContentType(reply.messages);
      return send(encodeBody(result ?? null, contentType), contentType === undefined ? {} : { contentType });
    });
  return handle;
}

interface Outgoing {
  topic: string;
  body: unknown;
  options: eddy.PublishOptions & { timeout?: number };
}

function prepare(spec: OperationSpec, params: Values, payload: unknown, options: SendOptions<Values> & { timeout?: number }, validate: Validator | undefined): Outgoing {
  const topic = topicOf(spec, params);
  if (validate) {
    const problem = firstFailure(spec.messages, (m) => check(validate, m.payload, payload, 'payload') ?? check(validate, m.headers, options.headers ?? {}, 'headers'));
    if (problem !== undefined) throw new ValidationError(spec.id, 'send', problem);
  }
  const contentType = options.contentType ?? commonContentType(spec.messages);
  const { headers, ...rest } = options;
  const encoded = encodeHeaders(headers);
  return {
    topic,
    body: encodeBody(payload, contentType),
    options: { ...rest, ...(encoded === undefined ? {} : { headers: encoded }), ...(contentType === undefined ? {} : { contentType }) },
  };
}

function check(validate: Validator, schema: JsonSchema | undefined, value: unknown, part: string): string | undefined {
  if (schema === undefined) return undefined;
  const problem = validate(schema, value);
  return problem === undefined ? undefined : part + ': ' + problem;
}

/** Valid when one of the messages accepts the value (as the broker checks it); else the first message's problem. */
function firstFailure(messages: readonly MessageSpec[], problemWith: (message: MessageSpec) => string | undefined): string | undefined {
  let first: string | undefined;
  for (const message of messages) {
    const problem = problemWith(message);
    if (problem === undefined) return undefined;
    first ??= problem;
  }
  return first;
}

function incomingFailure(spec: OperationSpec, message: Received<unknown, Values, Values>, validate: Validator): string | undefined {
  for (const parameter of spec.parameters) {
    const value = message.params[parameter.name];
    if (parameter.enum && typeof value === 'string' && !parameter.enum.includes(value)) {
      return 'channel parameter ' + parameter.name + ': ' + JSON.stringify(value) + ' is not one of ' + parameter.enum.join(', ');
    }
  }
  return firstFailure(spec.messages, (m) => check(validate, m.payload, message.payload, 'payload') ?? check(validate, m.headers, message.headers, 'headers'));
}

/**
 * Where a reply goes: the request's MQTT 5 response topic, which the SDK's request() sets and whose
 * correlation data the SDK sends back. A request without one (a plain publish) is answered at the
 * address the document names, read from where reply.address.location points or else the reply
 * channel's fixed address; such a reply carries no correlation data (handlers are not given it).
 */
function replyTo(bus: eddy.EddyClient, reply: ReplySpec, delivery: eddy.Delivery, headers: Values): Reply | undefined {
  if (delivery.reply) return delivery.reply;
  const address = (reply.location === undefined ? undefined : locate(reply.location, headers, delivery.payload)) ?? reply.address;
  if (address === undefined) return undefined;
  return (payload, options) => bus.publish(address, payload, options);
}

/** Follows a runtime expression such as '$message.header#/replyTo' to a string in the headers or payload. */
function locate(location: string, headers: Values, payload: unknown): string | undefined {
  const match = /^\$message\.(header|payload)#(\/.*)?$/.exec(location);
  if (!match) return undefined;
  let value: unknown = match[1] === 'header' ? headers : payload;
  for (const token of (match[2] ?? '').split('/').slice(1)) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Values)[token.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The content type all of an operation's messages declare, if they agree. */
function commonContentType(messages: readonly MessageSpec[]): string | undefined {
  const types = new Set(messages.map((m) => m.contentType));
  const [only] = types;
  return types.size === 1 ? only : undefined;
}

/** A JSON content type gets JSON even for a string payload, which the SDK would otherwise send as text. */
function encodeBody(payload: unknown, contentType: string | undefined): unknown {
  if (contentType === undefined || !JSON_CONTENT_TYPE.test(contentType) || payload instanceof Uint8Array) return payload;
  return Buffer.from(JSON.stringify(payload) ?? 'null', 'utf8');
}

function encodeHeaders(headers: Values | undefined): eddy.Headers | undefined {
  if (headers === undefined) return undefined;
  const encoded: eddy.Headers = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const strings = Array.isArray(value) && value.every((v) => typeof v === 'string');
    encoded[key] = typeof value === 'string' ? value : strings ? (value as string[]) : JSON.stringify(value);
  }
  return encoded;
}

/** User properties are strings: numbers, booleans, objects and arrays are read back as their headers schema declares them. */
function decodeHeaders(messages: readonly MessageSpec[], headers: eddy.Headers): Values {
  const decoded: Values = {};
  for (const [key, value] of Object.entries(headers)) decoded[key] = decodeHeader(declaredTypes(messages, key), value);
  return decoded;
}

function declaredTypes(messages: readonly MessageSpec[], key: string): string[] {
  for (const message of messages) {
    const properties = typeof message.headers === 'object' ? message.headers['properties'] : undefined;
    const property = typeof properties === 'object' && properties !== null ? (properties as Values)[key] : undefined;
    if (typeof property !== 'object' || property === null) continue;
    const type = (property as Values)['type'];
    if (typeof type === 'string') return [type];
    if (Array.isArray(type)) return type.filter((t): t is string => typeof t === 'string');
    if ('properties' in property) return ['object'];
  }
  return [];
}

function decodeHeader(types: string[], value: string | string[]): unknown {
  if (Array.isArray(value) || types.length === 0 || types.includes('string')) return value;
  if ((types.includes('integer') || types.includes('number')) && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  if (types.includes('boolean') && (value === 'true' || value === 'false')) return value === 'true';
  if (types.includes('array') && !value.startsWith('[')) return [value];
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value; // left as it came: validation, when on, says what is wrong with it
  }
}

/** The address with each {parameter} replaced by its value. */
function topicOf(spec: OperationSpec, params: Values): string {
  return spec.address.replace(/\{([^}]+)\}/g, (_placeholder: string, name: string) => parameterValue(spec, name, params[name]));
}

/** The address as a subscription filter: a topic level with a parameter not given is a '+' wildcard. */
function filterOf(spec: OperationSpec, params: Values): string {
  return spec.address
    .split('/')
    .map((level) => {
      const missing: string[] = [];
      const filled = level.replace(/\{([^}]+)\}/g, (_placeholder: string, name: string) => {
        if (params[name] === undefined) missing.push(name);
        return missing.length > 0 ? '' : parameterValue(spec, name, params[name]);
      });
      return missing.length > 0 ? '+' : filled;
    })
    .join('/');
}

function parameterValue(spec: OperationSpec, name: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw new ChannelParameterError(spec.id, name, 'is missing');
  const text = String(value);
  if (text === '' || /[\/+#\u0000]/.test(text)) throw new ChannelParameterError(spec.id, name, JSON.stringify(text) + ' cannot be part of a topic (empty, or holds / + #)');
  const allowed = spec.parameters.find((p) => p.name === name)?.enum;
  if (allowed && !allowed.includes(text)) throw new ChannelParameterError(spec.id, name, JSON.stringify(text) + ' is not one of ' + allowed.join(', '));
  return text;
}

interface AddressPattern {
  regex: RegExp;
  names: string[];
}

function addressPattern(address: string): AddressPattern {
  const names: string[] = [];
  const source = address.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_placeholder: string, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { regex: new RegExp('^' + source + '$'), names };
}

/** The channel parameters of a topic, or undefined when the topic is not one of the address's. */
function matchAddress(pattern: AddressPattern, topic: string): Values | undefined {
  const match = pattern.regex.exec(topic);
  if (!match) return undefined;
  const params: Values = {};
  pattern.names.forEach((name, i) => {
    params[name] = match[i + 1];
  });
  return params;
}
`;

/** The runtime's source, with the perspective createClient takes when none is given. */
export function runtimeSource(defaultPerspective: Perspective): string {
  return (RUNTIME_API + RUNTIME_FUNCTIONS).replace('__DEFAULT_PERSPECTIVE__', defaultPerspective);
}

/** The names the runtime declares (types, interfaces, classes): generated declarations must not take them. */
export function runtimeDeclarations(): string[] {
  return [...runtimeSource('application').matchAll(/^(?:export )?(?:interface|type|class) (\w+)/gm)].map((m) => m[1]!);
}
