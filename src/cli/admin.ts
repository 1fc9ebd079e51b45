import { ConfigError } from '../util/errors.js';
import { parseFlags, parseInteger } from './args.js';
import { COLUMNS, keyValues, table } from './admin-format.js';
import { HTTP_CLIENT_FLAGS, HTTP_CLIENT_HELP, HttpClient } from './http-client.js';
import { clusterText } from './admin-cluster.js';
import type { ClusterDisabledView, ClusterView } from '../core/admin/views.js';

export const ADMIN_HELP = `Usage: eddy admin <resource> [action] [ID] [options]

Reads and changes a running broker through its admin API (/v1/admin/…, admin role).

  eddy admin clients [list|show ID|kick ID]       connected clients; kick disconnects with 0x98
  eddy admin sessions [list|show ID|end ID]       sessions; end removes one with its queue
  eddy admin subscriptions [--client ID] [--filter FILTER]
  eddy admin groups [list|show NAME|delete NAME]  consumer groups ($share/NAME/FILTER, or NAME/FILTER)
  eddy admin channels [list|show TOPIC]           declared and observed channels
  eddy admin retained [list|show TOPIC|clear TOPIC]
  eddy admin dlq [list|redrive|purge] [--topic FILTER] [--limit N]
  eddy admin stats                                 one snapshot of the live stats
  eddy admin cluster                               cluster nodes (heartbeats) and stream replicas (--cluster)

Options:
${HTTP_CLIENT_HELP}
  --json              one JSON object per line
  --limit N           list: items per page (default 100, at most 1000); redrive/purge: at most N
  --after CURSOR      list: start after this cursor (the "next" of the page before)
  --all               list: every page, following the cursors
`;

const FLAGS = {
  ...HTTP_CLIENT_FLAGS,
  json: { type: 'boolean' },
  limit: { type: 'string' },
  after: { type: 'string' },
  all: { type: 'boolean' },
  client: { type: 'string' },
  filter: { type: 'string' },
  topic: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMAND = 'eddy admin';

/** Actions of each resource besides `list`, and whether they take an ID. */
const ACTIONS: Record<string, Record<string, { method: string; needsId: boolean }>> = {
  clients: { show: { method: 'GET', needsId: true }, kick: { method: 'DELETE', needsId: true } },
  sessions: { show: { method: 'GET', needsId: true }, end: { method: 'DELETE', needsId: true } },
  subscriptions: {},
  groups: { show: { method: 'GET', needsId: true }, delete: { method: 'DELETE', needsId: true } },
  channels: { show: { method: 'GET', needsId: true } },
  retained: { show: { method: 'GET', needsId: true }, clear: { method: 'DELETE', needsId: true } },
  dlq: { redrive: { method: 'POST', needsId: false }, purge: { method: 'POST', needsId: false } },
  stats: {},
  cluster: {},
};

type Values = ReturnType<typeof parseFlags<typeof FLAGS>>['values'];

export async function runAdmin(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, COMMAND);
  if (values.help || positionals.length === 0) {
    process.stdout.write(ADMIN_HELP);
    return values.help ? 0 : 2;
  }
  const [resource, action = 'list', id, extra] = positionals as [string, string | undefined, string | undefined, string | undefined];
  const actions = Object.hasOwn(ACTIONS, resource) ? ACTIONS[resource]! : undefined;
  if (!actions) throw new ConfigError(`unknown resource ${JSON.stringify(resource)} (${Object.keys(ACTIONS).join(', ')})`, { command: COMMAND });
  if (action !== 'list' && !Object.hasOwn(actions, action)) {
    throw new ConfigError(`eddy admin ${resource} takes ${['list', ...Object.keys(actions)].join(', ')}, not ${JSON.stringify(action)}`, { command: COMMAND });
  }
  const spec = action === 'list' ? { method: 'GET', needsId: false } : actions[action]!;
  if (spec.needsId && id === undefined) throw new ConfigError(`eddy admin ${resource} ${action} needs an ID`, { command: COMMAND });
  if ((!spec.needsId && id !== undefined) || extra !== undefined) throw new ConfigError(`unexpected argument ${JSON.stringify(extra ?? id)}`, { command: COMMAND });
  checkFlags(resource, action, values);
  const client = new HttpClient(values, COMMAND);

  if (resource === 'stats') {
    const { body } = await client.request('GET', '/v1/admin/stats');
    process.stdout.write(values.json ? `${JSON.stringify(body)}\n` : keyValues(body));
    return 0;
  }
  if (resource === 'cluster') {
    const { body } = await client.request('GET', '/v1/admin/cluster');
    process.stdout.write(values.json ? `${JSON.stringify(body)}\n` : clusterText(body as unknown as ClusterView | ClusterDisabledView));
    return 0;
  }
  if (resource === 'dlq' && action !== 'list') return dlqOperation(client, action, values);
  if (action !== 'list') {
    const path = `/v1/admin/${resource}/${encodeURIComponent(id!)}`;
    const { body } = await client.request(spec.method, path);
    if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
    else if (spec.method === 'GET') process.stdout.write(keyValues(body));
    else process.stdout.write(`${done(resource, action, id!, body)}\n`);
    return 0;
  }
  return list(client, resource, values);
}

/** Flags that belong to some resources only are refused elsewhere, rather than silently ignored. */
function checkFlags(resource: string, action: string, values: Values): void {
  const refuse = (flag: string, where: string): never => {
    throw new ConfigError(`--${flag} applies to ${where} only`, { command: COMMAND });
  };
  if ((values.client !== undefined || values.filter !== undefined) && resource !== 'subscriptions') refuse(values.client !== undefined ? 'client' : 'filter', 'eddy admin subscriptions');
  if (values.topic !== undefined && resource !== 'dlq') refuse('topic', 'eddy admin dlq');
  if ((values.after !== undefined || values.all) && action !== 'list') refuse(values.all ? 'all' : 'after', 'listing');
  if (values.limit !== undefined && action !== 'list' && resource !== 'dlq') refuse('limit', 'listing, redrive and purge');
}

function done(resource: string, action: string, id: string, body: Record<string, unknown>): string {
  switch (`${resource} ${action}`) {
    case 'clients kick':
      return `disconnected ${id} (0x98 administrative action)`;
    case 'sessions end':
      return `ended session ${id}`;
    case 'groups delete':
      return `deleted group ${String(body.name)}: ${String(body.members)} member subscription(s) removed, ${String(body.dropped)} message(s) dropped`;
    case 'retained clear':
      return `cleared the retained message of ${id}`;
    default:
      return JSON.stringify(body);
  }
}

async function dlqOperation(client: HttpClient, action: string, values: Values): Promise<number> {
  const query = new URLSearchParams();
  const limit = parseInteger(values.limit, '--limit', 1, Number.MAX_SAFE_INTEGER);
  if (limit !== undefined) query.set('limit', String(limit));
  if (values.topic !== undefined) query.set('topic', values.topic);
  const { status, body } = await client.request('POST', `/v1/admin/dlq/${action}?${query}`, [507]);
  if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
  else if (action === 'purge') process.stdout.write(`purged ${String(body.purged)}\n`);
  else process.stdout.write(`redriven ${String(body.redriven)}${body.failed ? `, failed ${String(body.failed)}: ${String(body.error)}` : ''}${body.refused ? `, refused ${String(body.refused)} (their publishers may not publish there)` : ''}\n`);
  return status === 507 ? 1 : 0;
}

/** Prints one page (or, with --all, every page) as a table, or one JSON object per item. */
async function list(client: HttpClient, resource: string, values: Values): Promise<number> {
  const query = new URLSearchParams();
  const limit = parseInteger(values.limit, '--limit', 1, 1000);
  if (limit !== undefined) query.set('limit', String(limit));
  if (values.client !== undefined) query.set('client', values.client);
  if (values.filter !== undefined) query.set('filter', values.filter);
  if (values.topic !== undefined) query.set('topic', values.topic);
  let after = values.after;
  const items: Array<Record<string, unknown>> = [];
  let total = 0;
  let next: string | null = null;
  do {
    if (after !== undefined) query.set('after', after);
    const { body } = await client.request('GET', `/v1/admin/${resource}?${query}`);
    const page = body.items as Array<Record<string, unknown>>;
    total = body.total as number;
    next = body.next as string | null;
    // JSON lines go out as they come: --all over many pages holds nothing back.
    if (values.json) for (const item of page) process.stdout.write(`${JSON.stringify(item)}\n`);
    else items.push(...page);
    after = next ?? undefined;
  } while (values.all && next !== null);
  if (values.json) return 0;
  process.stdout.write(table(COLUMNS[resource]!, items));
  process.stdout.write(`${items.length} shown of ${total}${next !== null ? `; next page: --after ${JSON.stringify(next)}` : ''}\n`);
  return 0;
}
