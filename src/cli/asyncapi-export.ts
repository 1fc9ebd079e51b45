import { writeFileSync } from 'node:fs';
import { ConfigError, EddyError } from '../util/errors.js';
import { parseFlags } from './args.js';

export const EXPORT_HELP = `Usage: eddy asyncapi export [--out FILE] [--http URL] [--format yaml|json]

Writes the running broker's live AsyncAPI document (what GET /asyncapi.yaml serves: its
listeners, the declared channels, and the channels observed in traffic with inferred schemas)
to FILE, or to standard output.

Options:
  --out FILE       where to write it (default: standard output)
  --http URL       the broker's HTTP address (default $EDDY_HTTP_URL or http://127.0.0.1:8080)
  --format F       yaml (default, or from a .json FILE name: json)
`;

const FLAGS = {
  out: { type: 'string', short: 'o' },
  http: { type: 'string' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runAsyncApiExport(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy asyncapi export');
  if (values.help) {
    process.stdout.write(EXPORT_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new ConfigError(`unexpected argument "${positionals[0]}"`, { command: 'eddy asyncapi export' });
  const format = values.format ?? (values.out?.endsWith('.json') ? 'json' : 'yaml');
  if (format !== 'yaml' && format !== 'json') throw new ConfigError(`--format must be yaml or json, got ${JSON.stringify(format)}`);
  const base = values.http ?? process.env.EDDY_HTTP_URL ?? 'http://127.0.0.1:8080';
  const url = new URL(`/asyncapi.${format}`, base);
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new EddyError('EDDY_CONNECT', `cannot reach the broker at ${url.origin}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
  }
  if (!res.ok) throw new EddyError('EDDY_HTTP', `GET ${url.pathname}: ${res.status} ${res.statusText}`);
  const text = await res.text();
  if (!values.out) {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    return 0;
  }
  writeFileSync(values.out, text);
  process.stderr.write(`wrote ${values.out} (${format}, ${text.length} bytes) from ${url.origin}\n`);
  return 0;
}
