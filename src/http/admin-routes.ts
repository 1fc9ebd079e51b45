import type http from 'node:http';
import type { Broker } from '../core/broker.js';
import type { AdminModel } from '../core/admin/model.js';
import { AdminError, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, type PageRequest } from '../core/admin/page.js';
import { isValidTopicFilter } from '../core/topics.js';
import { HttpError, sendError, sendJson, utf8FromLatin1 } from './respond.js';
import { identifyAdmin, challengeFor } from './identity.js';

export const ADMIN_PATH = '/v1/admin/';

const PAGE = ['limit', 'after'];
const STREAM_HEADERS: http.OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

type Query = URLSearchParams;
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, query: Query, id: string | undefined) => Promise<void> | void;

/** What one resource answers: per method, for the collection (no id) and for one item (an id after it). */
interface Resource {
  list?: { GET?: Handler; POST?: Handler };
  item?: { GET?: Handler; DELETE?: Handler; POST?: Handler };
}

/**
 * The admin API, `/v1/admin/…`, over the core's admin model: JSON lists paged with `?limit=&after=`
 * (`{items, next, total}`), one item by id, and the operator's operations (DELETE a client,
 * session, group or retained message; redrive and purge dead letters), plus the live stats and
 * their SSE stream. Every route needs the admin role (`identifyAdmin`: 401 without credentials,
 * 403 without the role; with no authentication configured every client has it), checked before
 * anything else is looked at.
 */
export class AdminRoutes {
  private readonly resources: Record<string, Resource>;

  constructor(
    private readonly broker: Broker,
    private readonly admin: AdminModel,
  ) {
    const model = admin;
    const ok = (res: http.ServerResponse, body: unknown): void => sendJson(res, 200, body);
    this.resources = {
      clients: {
        list: { GET: (_req, res, query) => ok(res, model.clients.clients(page(query))) },
        item: {
          GET: (_req, res, query, id) => (only(query, []), ok(res, model.clients.client(id!))),
          DELETE: (_req, res, query, id) => {
            only(query, []);
            model.clients.disconnect(id!);
            ok(res, { disconnected: id, reasonCode: 0x98 });
          },
        },
      },
      sessions: {
        list: { GET: (_req, res, query) => ok(res, model.clients.sessions(page(query))) },
        item: {
          GET: (_req, res, query, id) => (only(query, []), ok(res, model.clients.session(id!))),
          DELETE: (_req, res, query, id) => {
            only(query, []);
            model.clients.end(id!);
            ok(res, { ended: id });
          },
        },
      },
      subscriptions: {
        list: {
          GET: (_req, res, query) => {
            const request = page(query, ['client', 'filter']);
            const client = query.get('client') ?? undefined;
            const filter = query.get('filter') ?? undefined;
            if (filter !== undefined && !isValidTopicFilter(filter)) throw badRequest(`filter must be a valid topic filter, got ${JSON.stringify(filter)}`);
            ok(res, model.subscriptions({ ...request, ...(client !== undefined ? { client } : {}), ...(filter !== undefined ? { filter } : {}) }));
          },
        },
      },
      groups: {
        list: { GET: async (_req, res, query) => ok(res, await model.groups.groups(page(query))) },
        item: {
          GET: async (_req, res, query, id) => (only(query, []), ok(res, await model.groups.group(id!))),
          DELETE: async (_req, res, query, id) => {
            only(query, []);
            ok(res, await model.groups.delete(id!));
          },
        },
      },
      channels: {
        list: { GET: (_req, res, query) => ok(res, model.channels.channels(page(query))) },
        item: { GET: (_req, res, query, id) => (only(query, []), ok(res, model.channels.channel(id!))) },
      },
      retained: {
        list: { GET: async (_req, res, query) => ok(res, await model.retained.list(page(query))) },
        item: {
          GET: async (_req, res, query, id) => (only(query, []), ok(res, await model.retained.get(id!))),
          DELETE: async (_req, res, query, id) => {
            only(query, []);
            await model.retained.clear(id!);
            ok(res, { cleared: id });
          },
        },
      },
      dlq: {
        list: {
          GET: async (_req, res, query) => {
            const request = page(query, ['topic']);
            ok(res, await model.deadLetters.list({ ...request, ...topicOf(query) }));
          },
        },
        item: {
          // `/v1/admin/dlq/redrive` and `/v1/admin/dlq/purge` are operations on the queue, not items.
          POST: async (_req, res, query, id) => {
            only(query, id === 'redrive' ? ['limit', 'topic', 'seq'] : ['limit', 'topic']);
            const limit = whole(query.get('limit'), 'limit', Number.MAX_SAFE_INTEGER) ?? Number.MAX_SAFE_INTEGER;
            if (id === 'purge') return ok(res, await model.deadLetters.purge({ limit, ...topicOf(query) }));
            if (id !== 'redrive') throw new HttpError(404, 'not_found', `no dead-letter operation ${JSON.stringify(id)} (redrive, purge)`);
            // `?seq=N`: that one dead letter (the console's "redrive" on a row).
            const seq = whole(query.get('seq'), 'seq', Number.MAX_SAFE_INTEGER);
            const result = await model.deadLetters.redrive({ limit, ...topicOf(query), ...(seq !== undefined ? { seq } : {}) });
            sendJson(res, result.failed > 0 ? 507 : 200, result);
          },
        },
      },
      cluster: {
        list: { GET: async (_req, res, query) => (only(query, []), ok(res, await model.cluster())) },
      },
      stats: {
        list: { GET: (_req, res, query) => (only(query, []), ok(res, model.stats.snapshot())) },
        item: {
          GET: (req, res, query, id) => {
            only(query, []);
            if (id !== 'stream') throw new HttpError(404, 'not_found', `no route for GET /v1/admin/stats/${id}`);
            this.stream(req, res);
          },
        },
      },
    };
  }

  /** A request whose path starts with ADMIN_PATH. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: Query): void {
    identifyAdmin(req, this.broker)
      .then(() => this.route(req, res, path, query))
      .catch((err: unknown) => this.fail(req, res, err));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: Query): Promise<void> {
    const rest = path.slice(ADMIN_PATH.length);
    const slash = rest.indexOf('/');
    const name = slash === -1 ? rest : rest.slice(0, slash);
    const resource = Object.hasOwn(this.resources, name) ? this.resources[name] : undefined;
    if (!resource) throw new HttpError(404, 'not_found', `no admin resource ${JSON.stringify(name)} (${Object.keys(this.resources).join(', ')})`);
    // The id is the rest of the path, percent-decoded: client ids and topics may hold `/`.
    const id = slash === -1 || slash === rest.length - 1 ? undefined : decodeId(rest.slice(slash + 1));
    const methods: Record<string, Handler | undefined> = (id === undefined ? resource.list : resource.item) ?? {};
    const handler = methods[req.method ?? 'GET'];
    if (!handler) {
      const allowed = Object.keys(methods);
      if (allowed.length === 0) throw new HttpError(404, 'not_found', `no route for ${req.method} ${path}`);
      throw new MethodNotAllowed(`${req.method} ${path}: this route takes ${allowed.join(', ')}`, allowed);
    }
    await handler(req, res, query, id);
  }

  /** `GET /v1/admin/stats/stream`: one `stats` event at once, then one after every sample (a second). */
  private stream(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, STREAM_HEADERS);
    const send = (): void => {
      if (!res.writableEnded) res.write(`event: stats\ndata: ${JSON.stringify(this.admin.stats.snapshot())}\n\n`);
    };
    send();
    const stop = this.admin.stats.onSample(send);
    req.socket.once('close', stop);
    res.once('close', stop);
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof MethodNotAllowed) return sendError(res, new HttpError(405, 'method_not_allowed', err.message), { allow: err.allowed.join(', ') });
    if (err instanceof HttpError) return sendError(res, err, err.status === 401 ? { 'www-authenticate': challengeFor(req) } : {});
    if (err instanceof AdminError) {
      const status = err.kind === 'not-found' ? 404 : err.kind === 'conflict' ? 409 : 400;
      return sendError(res, new HttpError(status, err.kind.replace('-', '_'), err.message));
    }
    this.broker.reportInternalError(`HTTP ${req.method} ${(req.url ?? '').slice(0, 200)}`, err);
    // A storage failure (disk full while clearing a retained message) says what it was.
    const message = err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('EDDY_') ? err.message : 'internal error';
    sendError(res, new HttpError(500, 'internal_error', message));
  }
}

class MethodNotAllowed extends Error {
  constructor(
    message: string,
    readonly allowed: string[],
  ) {
    super(message);
  }
}

function badRequest(message: string): HttpError {
  return new HttpError(400, 'bad_request', message);
}

/** Only these query parameters, each at most once. */
function only(query: Query, known: string[]): void {
  for (const key of new Set(query.keys())) {
    if (!known.includes(key)) throw badRequest(`unknown query parameter "${key}"${known.length > 0 ? ` (known: ${known.join(', ')})` : ''}`);
    if (query.getAll(key).length > 1) throw badRequest(`query parameter "${key}" is given more than once`);
  }
}

/** `?limit=&after=` (and the route's own parameters). */
function page(query: Query, extra: string[] = []): PageRequest {
  only(query, [...PAGE, ...extra]);
  const limit = whole(query.get('limit'), 'limit', MAX_PAGE_LIMIT) ?? DEFAULT_PAGE_LIMIT;
  const after = query.get('after');
  return after === null ? { limit } : { limit, after };
}

function whole(text: string | null, name: string, max: number): number | undefined {
  if (text === null) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw badRequest(`${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

function topicOf(query: Query): { filter?: string } {
  const filter = query.get('topic');
  if (filter === null) return {};
  if (!isValidTopicFilter(filter)) throw badRequest(`topic must be a valid topic filter, got ${JSON.stringify(filter)}`);
  return { filter };
}

function decodeId(raw: string): string {
  try {
    return decodeURIComponent(utf8FromLatin1(raw));
  } catch {
    throw badRequest(`the path is not valid percent-encoding: ${JSON.stringify(raw)}`);
  }
}
