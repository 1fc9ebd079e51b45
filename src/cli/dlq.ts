import { ConfigError, EddyError } from '../util/errors.js';
import type { DeadLetterView } from '../core/admin/views.js';
import { parseFlags, parseInteger } from './args.js';
import { HTTP_AUTH_FLAGS, HTTP_AUTH_HELP, httpTarget, requestJson } from './http-request.js';

export const DLQ_HELP = `Usage: eddy dlq list|redrive [options]

Dead letters are messages that failed their last allowed delivery; the broker keeps them on
$DLQ/<original topic> in its dead-letter queue. This command talks to the broker's HTTP port.

  eddy dlq list       prints the waiting dead letters, oldest first
  eddy dlq redrive    publishes them again on their original topics and removes them

Options:
  --http URL       broker HTTP address (default $EDDY_HTTP_URL or http://127.0.0.1:8080)
  --topic FILTER   only dead letters whose original topic matches FILTER
  --limit N        at most N dead letters (default 100 for list, all for redrive)
  --json           list: one JSON object per line
${HTTP_AUTH_HELP}
`;

const FLAGS = {
  http: { type: 'string' },
  topic: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  ...HTTP_AUTH_FLAGS,
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runDlq(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy dlq');
  if (values.help) {
    process.stdout.write(DLQ_HELP);
    return 0;
  }
  const [action, extra] = positionals;
  if (action !== 'list' && action !== 'redrive') throw new ConfigError(`expected list or redrive, got ${action === undefined ? 'nothing' : JSON.stringify(action)}`, { command: 'eddy dlq' });
  if (extra !== undefined) throw new ConfigError(`unexpected argument "${extra}"`, { command: 'eddy dlq' });
  const base = values.http ?? process.env.EDDY_HTTP_URL ?? 'http://127.0.0.1:8080';
  const limit = parseInteger(values.limit, '--limit', 1, Number.MAX_SAFE_INTEGER) ?? (action === 'list' ? 100 : Number.MAX_SAFE_INTEGER);
  let url: URL;
  try {
    url = new URL(action === 'list' ? '/v1/dlq' : '/v1/dlq/redrive', base);
  } catch {
    throw new ConfigError(`--http must be an http:// or https:// URL, got ${JSON.stringify(base.replace(/\/\/[^@/]*@/, '//…@'))}`, { command: 'eddy dlq' });
  }
  url.searchParams.set('limit', String(limit));
  if (values.topic) url.searchParams.set('topic', values.topic);
  const body = await request(httpTarget(url, values, 'eddy dlq'), action === 'list' ? 'GET' : 'POST');
  if (action === 'redrive') {
    const result = body as { redriven: number; failed: number; error?: string };
    process.stdout.write(`redriven ${result.redriven}${result.failed ? `, failed ${result.failed}: ${result.error}` : ''}\n`);
    return result.failed > 0 ? 1 : 0;
  }
  const { messages, waiting } = body as { messages: DeadLetterView[]; waiting: number };
  for (const m of messages) {
    if (values.json) {
      process.stdout.write(`${JSON.stringify(m)}\n`);
      continue;
    }
    const who = m.group ? `group ${m.group}` : `client ${m.clientId ?? '?'}`;
    process.stdout.write(`${m.deadLetteredAt}  ${m.originalTopic}  seq=${m.seq ?? '-'}  deliveries=${m.deliveryCount ?? '-'}  ${who}\n  reason: ${m.reason ?? '-'}\n  payload: ${m.encoding === 'base64' ? `(base64) ${m.payload}` : m.payload}\n`);
  }
  if (!values.json) process.stdout.write(`${messages.length} shown, ${waiting} waiting\n`);
  return 0;
}

async function request(target: ReturnType<typeof httpTarget>, method: string): Promise<unknown> {
  const res = await requestJson(target, method);
  const body = res.body as { message?: string };
  if (res.status >= 400 && res.status !== 507) throw new EddyError('EDDY_HTTP', `${method} ${target.url.pathname}: ${res.status} ${body.message ?? res.statusText}`);
  return body;
}
