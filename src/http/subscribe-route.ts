import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { Reason, type Broker, type SubscribeRequest } from '../core/broker.js';
import { parseReplayStart, type ReplayStart } from '../core/replay.js';
import { isValidTopicFilter } from '../core/topics.js';
import type { Logger } from '../util/logger.js';
import { HttpError, sendError } from './respond.js';
import { identify, challengeFor } from './identity.js';
import { SSE_PING_INTERVAL_MS, SseLink } from './sse.js';

export const SUBSCRIBE_PATH = '/v1/subscribe';

const QUERY_OPTIONS = ['filter', 'group', 'from', 'lastEventId'];

const STREAM_HEADERS: http.OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  // nginx buffers responses unless told not to; a buffered event stream is no stream.
  'x-accel-buffering': 'no',
};

interface StreamRequest {
  filter: string;
  replay: ReplayStart | undefined;
  /** What the log line says about where the stream starts. */
  start: string;
}

/**
 * `GET /v1/subscribe`: a Server-Sent Events stream of the messages matching `filter`. Each stream
 * is a clean session of its own (client id `http-sse-<uuid>`), subscribed at QoS 1, that ends
 * when the client goes away. `group` joins a consumer group; `from` replays history first;
 * `Last-Event-ID` (or `lastEventId`) resumes after the last event seen, from history, so a
 * reconnecting EventSource misses nothing on a channel with retention.
 */
export class SubscribeRoute {
  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
    private readonly pingIntervalMs = SSE_PING_INTERVAL_MS,
  ) {}

  handle(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): void {
    this.open(req, res, query).catch((err: unknown) => {
      if (err instanceof HttpError) return this.refuse(res, query.get('filter'), err);
      this.broker.reportInternalError('SSE subscribe', err);
      if (!res.headersSent) this.refuse(res, query.get('filter'), new HttpError(500, 'internal_error', 'internal error'));
    });
  }

  private async open(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): Promise<void> {
    const request = streamRequestOf(req, query);
    if (this.broker.stats.connections >= this.broker.limits.maxConnections) {
      throw new HttpError(503, 'server_busy', `connection limit ${this.broker.limits.maxConnections} reached`);
    }
    const clientId = `http-sse-${randomUUID()}`;
    // The stream is a session of the request's identity: the ACL decides what it may receive, as for MQTT.
    const identity = await identify(req, this.broker, clientId);
    if (res.writableEnded || req.socket.destroyed) return;
    const link = new SseLink(res, this.broker);
    const { session } = this.broker.openSession({ clientId, cleanStart: true, expiryInterval: 0, will: undefined, identity }, link);
    link.attach(session);
    session.resume(link);
    const subscription: SubscribeRequest = { filter: request.filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 };
    const outcome = this.broker.subscribe(session, [subscription], request.replay);
    const code = outcome.codes[0]!;
    if (code >= 0x80) {
      this.broker.closeSession(session, link, { publishWill: false });
      // 0x80 is what a --deny-subscribe rule answers (it does not say why, as on MQTT), 0x87 the ACL.
      const refusal =
        code === Reason.UnspecifiedError || code === Reason.NotAuthorized
          ? new HttpError(403, 'forbidden', outcome.reason ?? `${request.filter}: subscribing is not allowed on this filter`)
          : new HttpError(400, 'bad_request', outcome.reason ?? `${request.filter}: subscription refused with reason code 0x${code.toString(16)}`);
      throw refusal;
    }
    // A clean session's subscription is not stored, so there is nothing to wait for: the stream starts now.
    link.start(STREAM_HEADERS, this.pingIntervalMs);
    outcome.afterSuback();
    this.log.debug({ clientId, filter: request.filter, start: request.start }, 'SSE stream started');
  }

  private refuse(res: http.ServerResponse, filter: string | null | undefined, err: HttpError): void {
    this.log.info({ filter, status: err.status, reason: err.message }, 'SSE subscription refused');
    sendError(res, err, err.status === 401 ? { 'www-authenticate': challengeFor(res.req) } : {});
  }
}

function streamRequestOf(req: http.IncomingMessage, query: URLSearchParams): StreamRequest {
  for (const name of new Set(query.keys())) {
    if (!QUERY_OPTIONS.includes(name)) throw badRequest(`unknown query parameter "${name}" (known: ${QUERY_OPTIONS.join(', ')})`);
    if (query.getAll(name).length > 1) throw badRequest(`query parameter "${name}" is given more than once`);
  }
  const inner = query.get('filter');
  if (inner === null) throw badRequest('filter is required, e.g. ?filter=user/%23');
  if (!isValidTopicFilter(inner)) throw badRequest(`filter must be a valid topic filter, got ${JSON.stringify(inner)}`);
  const group = query.get('group');
  if (group !== null && !/^[^/+#]+$/.test(group)) throw badRequest(`group must be a non-empty name without /, + or #, got ${JSON.stringify(group)}`);
  const filter = group === null ? inner : `$share/${group}/${inner}`;
  const from = query.get('from');
  if (from !== null && group !== null) throw badRequest('from applies to streams without a group: a group shares live work, it does not replay history');
  const replay = from === null ? undefined : parseReplayStart(from);
  if (from !== null && !replay) throw badRequest(`from must be earliest, seq:<n> or time:<RFC 3339>, got ${JSON.stringify(from)}`);
  // The group's queue, not the stream, keeps a group's place: a reconnecting member just rejoins.
  const lastEventId = group === null ? lastEventIdOf(req, query) : undefined;
  if (lastEventId !== undefined) {
    // An EventSource reconnects to the same URL (with its `from`) plus Last-Event-ID: the id wins.
    return { filter, replay: { kind: 'seq', seq: lastEventId + 1 }, start: `after seq ${lastEventId}` };
  }
  return { filter, replay, start: from ?? 'live' };
}

/** The seq of the last event the client saw: the `Last-Event-ID` header, or `lastEventId` for EventSource polyfills. */
function lastEventIdOf(req: http.IncomingMessage, query: URLSearchParams): number | undefined {
  const header = req.headers['last-event-id'];
  const text = (Array.isArray(header) ? header[0] : header) ?? query.get('lastEventId') ?? undefined;
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text)) throw badRequest(`Last-Event-ID must be the seq of an event (a whole number), got ${JSON.stringify(text)}`);
  return Number(text);
}

function badRequest(message: string): HttpError {
  return new HttpError(400, 'bad_request', message);
}
