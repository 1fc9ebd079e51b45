/**
 * The public half of the runtime every generated client carries: the option, error and handle
 * types its API is made of. TypeScript source held as text (String.raw: no backtick, no
 * dollar-brace inside); see runtime.ts for the functions behind it.
 */
export const RUNTIME_API = String.raw`
// ---------------------------------------------------------------------------------------------------
// Runtime: the same in every generated client. It maps the operations above onto the Eddy SDK.
// ---------------------------------------------------------------------------------------------------

/** A JSON Schema of the document, embedded as data (parser keys, $id and $schema removed; a cycle is a local $ref). */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

/**
 * Checks a value against one of the embedded schemas: undefined when it is valid, else why not, in
 * one line. The generated code carries no validator of its own; with ajv (npm install ajv):
 *
 *   import { Ajv } from 'ajv';
 *   const ajv = new Ajv({ strict: false });
 *   const api = createClient(bus, { validate: (schema, value) => (ajv.validate(schema, value) ? undefined : ajv.errorsText(ajv.errors)) });
 */
export type Validator = (schema: JsonSchema, value: unknown) => string | undefined;

/**
 * Whose side of the document to take. 'application': the operations as written (send publishes,
 * receive subscribes), for the service the document describes. 'client': flipped, for its peers.
 */
export type Perspective = 'application' | 'client';

export interface ClientOptions<P extends Perspective = Perspective> {
  /** Default '__DEFAULT_PERSPECTIVE__' (chosen when generating, with --perspective). */
  perspective?: P;
  /** Turns on validation of payloads and headers against the document's schemas; without it nothing is checked. */
  validate?: Validator;
  /** What validate checks: outgoing messages ('send'), incoming ones ('receive'), or both (the default). */
  validateOn?: 'send' | 'receive' | 'both';
  /** Told about each incoming message that failed validation, before it is refused. */
  onInvalid?: (error: ValidationError, delivery: eddy.Delivery) => void;
}

/** A password or a JWT, or a function returning one (or a Promise of one) that the SDK asks at each connect: how a token is refreshed. */
export type PasswordSource = string | (() => string | Promise<string>);

/** PEM text of certificates or a key: one, or several. */
export type Pem = string | Buffer | Array<string | Buffer>;

/**
 * How connectClient reaches the broker: the SDK's connect() options, with the credentials and TLS
 * files for a broker that asks for them (a password file, JWT, client certificates). They are
 * handed to the SDK's connect() as they are.
 */
export type ConnectionOptions = Omit<eddy.ConnectOptions, 'username' | 'password' | 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> & {
  username?: string;
  password?: PasswordSource;
  /** CA certificate(s) to verify the broker with (mqtts://, wss://), instead of the system's. */
  ca?: Pem;
  /** Client certificate and its key, for a broker that takes client certificates (the AsyncAPI X509 scheme). */
  cert?: Pem;
  key?: Pem;
  rejectUnauthorized?: boolean;
};

/** What connectClient resolves with: the document's operations, and the connection they use (bus.close() ends it). */
export interface Connected<A> {
  readonly api: A;
  readonly bus: eddy.EddyClient;
}

/** A message does not match the document's schemas: not sent ('send'), or refused on arrival ('receive'). */
export class ValidationError extends eddy.EddyClientError {
  readonly operation: string;
  readonly direction: 'send' | 'receive';
  /** What failed: 'payload: data/email must match format "email"' (the validator's words). */
  readonly reason: string;
  constructor(operation: string, direction: 'send' | 'receive', reason: string) {
    super('EDDY_VALIDATION', operation + (direction === 'send' ? ': not sent, ' : ': refused, ') + reason);
    this.operation = operation;
    this.direction = direction;
    this.reason = reason;
  }
}

/** A channel parameter is missing, cannot be part of a topic, or is not a value the document allows. */
export class ChannelParameterError extends eddy.EddyClientError {
  readonly operation: string;
  readonly parameter: string;
  constructor(operation: string, parameter: string, problem: string) {
    super('EDDY_CHANNEL_PARAMETER', operation + ': channel parameter ' + parameter + ' ' + problem);
    this.operation = operation;
    this.parameter = parameter;
  }
}

/**
 * Publish options with the message's headers typed. Headers travel as MQTT 5 user properties:
 * strings (and lists of strings) as they are, other values as JSON; a receiver reads them back by
 * the headers schema.
 */
export type SendOptions<H> = Omit<eddy.PublishOptions, 'headers'> & { headers?: H };
export type RequestOptions<H> = Omit<eddy.RequestOptions, 'headers'> & { headers?: H };

/** The options argument of publish: optional, unless the headers schema requires a header. */
export type SendArgs<H> = {} extends H ? [options?: SendOptions<H>] : [options: SendOptions<H> & { headers: H }];
/** The options argument of request: optional, unless the headers schema requires a header. */
export type RequestArgs<H> = {} extends H ? [options?: RequestOptions<H>] : [options: RequestOptions<H> & { headers: H }];

/** The channel parameters of a channel that has none. */
export type NoParameters = Record<string, never>;

/** A received message: the SDK's delivery, its headers read back into their types, the channel parameters taken from its topic. */
export interface Received<P, H, A> extends Omit<eddy.Delivery<P>, 'headers'> {
  headers: H;
  params: A;
}

/** Returning acknowledges the message; throwing refuses it, and the broker retries it, then dead-letters it. */
export type Handler<P, H, A> = (message: Received<P, H, A>) => unknown;

/** Returns the reply; a throw sends the error back instead (the requester gets an eddy.RemoteError). */
export type ReplyHandler<P, H, A, R> = (payload: P, message: Received<P, H, A>) => R | Promise<R>;

export interface OperationHandle {
  /** The operation's id in the document. */
  readonly operation: string;
  /** Its channel's address, parameters as {placeholders}. */
  readonly address: string;
}

export interface Publisher<P, H> extends OperationHandle {
  /** Resolves once the broker has the message (QoS 1 unless options.qos says otherwise). */
  publish(payload: P, ...options: SendArgs<H>): Promise<eddy.PublishResult>;
}

export interface ParameterizedPublisher<A, P, H> extends OperationHandle {
  /** Resolves once the broker has the message (QoS 1 unless options.qos says otherwise). */
  publish(params: A, payload: P, ...options: SendArgs<H>): Promise<eddy.PublishResult>;
}

export interface Subscriber<P, H> extends OperationHandle {
  subscribe(handler: Handler<P, H, NoParameters>, options?: eddy.SubscribeOptions): Promise<eddy.Subscription>;
}

export interface ParameterizedSubscriber<A, P, H> extends OperationHandle {
  /** Every channel of the address: each parameter a wildcard. */
  subscribe(handler: Handler<P, H, A>, options?: eddy.SubscribeOptions): Promise<eddy.Subscription>;
  /** The parameters given fixed, the others wildcards. */
  subscribe(params: Partial<A>, handler: Handler<P, H, A>, options?: eddy.SubscribeOptions): Promise<eddy.Subscription>;
}

export interface Requester<P, H, R> extends OperationHandle {
  /** Resolves with the reply; eddy.RequestTimeoutError after options.timeout ms (default 5000), eddy.RemoteError when the responder failed. */
  request(payload: P, ...options: RequestArgs<H>): Promise<R>;
}

export interface ParameterizedRequester<A, P, H, R> extends OperationHandle {
  /** Resolves with the reply; eddy.RequestTimeoutError after options.timeout ms (default 5000), eddy.RemoteError when the responder failed. */
  request(params: A, payload: P, ...options: RequestArgs<H>): Promise<R>;
}

export interface Responder<P, H, R> extends OperationHandle {
  respond(handler: ReplyHandler<P, H, NoParameters, R>, options?: eddy.SubscribeOptions): Promise<eddy.Subscription>;
}

export interface ParameterizedResponder<A, P, H, R> extends OperationHandle {
  /** Every channel of the address: each parameter a wildcard. */
  respond(handler: ReplyHandler<P, H, A, R>, options?: eddy.SubscribeOptions): Promise<eddy.Subscription>;
  /** The parameters given fixed, the others wildcards. */
  respond(params: Partial<A>, handler: ReplyHandler<P, H, A, R>, options?: eddy.SubscribeOptions): Promise<eddy.Subscription>;
}

`;
