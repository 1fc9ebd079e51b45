import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { Broker } from '../core/broker.js';
import type { Message, MessageProperties, QoS, UserProperties } from '../core/message.js';
import { isValidTopicName, quoteTopic, showTopic } from '../core/topics.js';
import { answerFor } from '../core/refusals.js';
import { httpRefusal, identify, challengeFor } from './identity.js';
import type { Logger } from '../util/logger.js';
import { requestTimeoutOf } from './connection-guard.js';
import { HttpError, sendError, sendJson, utf8FromLatin1 } from './respond.js';

/** `POST /v1/publish/<topic>`: the topic is the rest of the path, percent-decoded. */
export const PUBLISH_PATH = '/v1/publish/';

/** Largest message expiry MQTT 5 can carry (a four-byte interval in seconds). */
const MAX_EXPIRY_SECONDS = 0xffffffff;
const QUERY_OPTIONS = ['qos', 'retain', 'expiry'];
const EMPTY = Buffer.alloc(0);

/** Header prefixes copied into user properties: CloudEvents binary mode keeps `ce-*` as is, `eddy-h-<key>` becomes `<key>`. */
const CLOUDEVENTS_PREFIX = 'ce-';
const USER_PROPERTY_PREFIX = 'eddy-h-';

/**
 * Checks a message before it is published (the place for AsyncAPI schema validation). It answers
 * with a refusal, sent to the client as is (415 for a content type the channel does not take,
 * 422 for a payload that does not match its schema), or undefined to let the message through.
 */
export type PublishValidator = (message: Message) => PublishRefusal | undefined | Promise<PublishRefusal | undefined>;

export interface PublishRefusal {
  status: 415 | 422;
  error: string;
  message: string;
  /** Every problem found (e.g. each schema error), answered as `errors`. */
  errors?: string[];
}

interface PublishOptions {
  qos: QoS;
  retain: boolean;
  expirySeconds: number | undefined;
}

/**
 * The HTTP publish route. It answers 202 with the message's id and seq only once the broker has
 * confirmed the message, which with the disk engine (fsync always) means written and fsynced: a
 * 202 is as good as an MQTT PUBACK. Every refusal is a JSON error, logged, and counted in the broker's
 * `refusedPublishes` under `http-<status>`.
 */
export class PublishRoute {
  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
  ) {}

  async handle(req: http.IncomingMessage, res: http.ServerResponse, rawTopic: string, query: URLSearchParams): Promise<void> {
    let topic: string | undefined;
    try {
      topic = topicOf(rawTopic);
      const options = publishOptionsOf(query);
      const identity = await identify(req, this.broker);
      // The topic's checks before the body is read: a refused topic costs no upload.
      const early = this.broker.admitPublish(identity, { topic, payload: EMPTY, qos: options.qos, retain: options.retain, properties: {}, publishedAt: 0 }, { topicOnly: true });
      if (early) throw httpRefusal(early);
      const properties = propertiesOf(req);
      const payload = await readBody(req, this.broker.limits.maxPacketSize);
      const now = Date.now();
      const message: Message = { topic, payload, qos: options.qos, retain: options.retain, properties: properties.properties, publishedAt: now, origin: identity.clientId };
      if (identity.user !== undefined) message.originUser = identity.user;
      if (options.expirySeconds !== undefined) message.expiresAt = now + options.expirySeconds * 1000;
      const refusal = this.broker.admitPublish(identity, message);
      if (refusal) throw httpRefusal(refusal);
      await this.broker.publishConfirmed(message).catch((err: Error) => {
        throw storageRefusal(message.topic, err);
      });
      sendJson(res, 202, { id: properties.id, ...(message.seq === undefined ? {} : { seq: message.seq }) });
    } catch (err) {
      this.refuse(res, topic, err instanceof HttpError ? err : new HttpError(500, 'internal_error', `${topic ?? rawTopic}: ${(err as Error).message}`));
    }
  }

  private refuse(res: http.ServerResponse, topic: string | undefined, err: HttpError): void {
    const key = `http-${err.status}`;
    this.broker.stats.refusedPublishes[key] = (this.broker.stats.refusedPublishes[key] ?? 0) + 1;
    // As on MQTT: quota and storage refusals are logged where they arise (rate-limited there), not once
    // per request here; a request cut off by its timeout is logged by the connection guard, rate-limited too.
    const level = err.status === 507 || err.status === 503 || err.code === 'request_timeout' ? 'debug' : err.status === 500 ? 'error' : 'warn';
    this.log[level]({ topic, status: err.status, error: err.code, reason: err.message }, 'HTTP publish refused');
    // A body left unread is discarded by Node before the next request on the connection; one of
    // unknown or excessive length is not worth reading, so the connection closes instead.
    const req = res.req;
    const discardable = req.readableEnded || Number(req.headers['content-length'] ?? Infinity) <= this.broker.limits.maxPacketSize;
    sendError(res, err, { ...(discardable ? {} : { connection: 'close' }), ...(err.status === 401 ? { 'www-authenticate': challengeFor(req) } : {}) });
  }
}

function topicOf(rawTopic: string): string {
  let topic: string;
  try {
    topic = decodeURIComponent(utf8FromLatin1(rawTopic));
  } catch {
    throw new HttpError(400, 'invalid_topic', `the topic in the path is not valid percent-encoding: ${JSON.stringify(rawTopic)}`);
  }
  if (!isValidTopicName(topic)) {
    throw new HttpError(400, 'invalid_topic', `${quoteTopic(topic)} is not a valid topic name: it must be non-empty, with no wildcard (+ or #) and no NUL`);
  }
  return topic;
}

function publishOptionsOf(query: URLSearchParams): PublishOptions {
  for (const name of new Set(query.keys())) {
    if (!QUERY_OPTIONS.includes(name)) throw badQuery(`unknown query parameter "${name}" (known: ${QUERY_OPTIONS.join(', ')})`);
    if (query.getAll(name).length > 1) throw badQuery(`query parameter "${name}" is given more than once`);
  }
  const qosText = query.get('qos') ?? '1';
  if (!/^[012]$/.test(qosText)) throw badQuery(`qos must be 0, 1 or 2, got ${JSON.stringify(qosText)}`);
  const retainText = query.get('retain') ?? 'false';
  if (retainText !== 'true' && retainText !== 'false') throw badQuery(`retain must be true or false, got ${JSON.stringify(retainText)}`);
  const expiryText = query.get('expiry');
  let expirySeconds: number | undefined;
  if (expiryText !== null) {
    expirySeconds = Number(expiryText);
    if (!/^\d+$/.test(expiryText) || expirySeconds < 1 || expirySeconds > MAX_EXPIRY_SECONDS) {
      throw badQuery(`expiry must be a whole number of seconds from 1 to ${MAX_EXPIRY_SECONDS}, got ${JSON.stringify(expiryText)}`);
    }
  }
  return { qos: Number(qosText) as QoS, retain: retainText === 'true', expirySeconds };
}

function badQuery(message: string): HttpError {
  return new HttpError(400, 'bad_request', message);
}

/**
 * Message properties from the request headers: `Content-Type`; `ce-*` (CloudEvents binary mode)
 * and `eddy-h-<key>` as user properties; `eddy-response-topic` and `eddy-correlation-id` for
 * commands. The id is `ce-id` when given, else a new UUID; it travels as user property `eddy-id`.
 */
function propertiesOf(req: http.IncomingMessage): { id: string; properties: MessageProperties } {
  const properties: MessageProperties = {};
  const userProperties: UserProperties = {};
  for (const [name, raw] of Object.entries(req.headersDistinct)) {
    if (!raw) continue;
    const values = raw.map(utf8FromLatin1);
    const value = values.length === 1 ? values[0]! : values;
    if (name.startsWith(CLOUDEVENTS_PREFIX)) userProperties[name] = value;
    else if (name.startsWith(USER_PROPERTY_PREFIX) && name.length > USER_PROPERTY_PREFIX.length) userProperties[name.slice(USER_PROPERTY_PREFIX.length)] = value;
  }
  const contentType = singleHeader(req, 'content-type');
  if (contentType !== undefined) properties.contentType = contentType;
  const responseTopic = singleHeader(req, 'eddy-response-topic');
  if (responseTopic !== undefined) {
    if (!isValidTopicName(responseTopic)) throw new HttpError(400, 'bad_request', `eddy-response-topic must be a topic name without + or #, got ${JSON.stringify(responseTopic)}`);
    properties.responseTopic = responseTopic;
  }
  const correlationId = singleHeader(req, 'eddy-correlation-id');
  if (correlationId !== undefined) properties.correlationData = Buffer.from(correlationId, 'utf8');
  const id = singleHeader(req, 'ce-id') ?? randomUUID();
  userProperties['eddy-id'] = id;
  properties.userProperties = userProperties;
  return { id, properties };
}

function singleHeader(req: http.IncomingMessage, name: string): string | undefined {
  const values = req.headersDistinct[name];
  if (!values) return undefined;
  if (values.length > 1) throw new HttpError(400, 'bad_request', `header ${name} is given more than once`);
  return utf8FromLatin1(values[0]!);
}

/** The request body, refused with 413 as soon as it is known to be larger than `limit` bytes. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = (size: string): HttpError =>
    new HttpError(413, 'payload_too_large', `the payload is ${size} bytes; the broker takes at most ${limit} (its maximum packet size)`);
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge(`more than ${limit}`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    // The client went away mid-body ('error' is the reset, 'close' covers the rest), or the
    // listener cut it off at httpRequestTimeout: nobody hears the answer, but the request must not hang.
    const incomplete = (): void =>
      reject(requestTimeoutOf(req) ?? new HttpError(400, 'bad_request', `the request body ended after ${size} bytes, before it was complete`));
    req.once('error', incomplete);
    req.once('close', incomplete);
  });
}

/** A publish the broker did not accept: 507 when storage, a queue or the retained store is full, 503 when storage is unavailable, 500 otherwise. */
function storageRefusal(topic: string, err: Error): HttpError {
  const answer = answerFor(err, topic);
  return new HttpError(answer.status, answer.error, answer.reason);
}
