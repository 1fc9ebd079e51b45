import { AsyncApiError, loadRegistry } from '../asyncapi/index.js';
import { ConfigError } from '../util/errors.js';
import { parseFlags } from './args.js';

export const ASYNCAPI_HELP = `Usage: eddy asyncapi validate FILE... [options]

Parses AsyncAPI 3.0/3.1 documents (YAML or JSON; $refs resolved relative to each file) the way
"eddy broker --asyncapi" loads them, merged into one channel registry. Prints the parser's
diagnostics (file:line:col path: message), then the channels and messages found.
Exits 0 when every document is valid, 1 when one has errors.

Options:
  --quiet    print errors only
`;

const FLAGS = {
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runAsyncApi(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy asyncapi');
  if (values.help) {
    process.stdout.write(ASYNCAPI_HELP);
    return 0;
  }
  const [action, ...files] = positionals;
  if (action !== 'validate') throw new ConfigError(`eddy asyncapi: expected validate, got ${action === undefined ? 'nothing' : JSON.stringify(action)} (generate and export are not built yet)`);
  if (files.length === 0) throw new ConfigError('eddy asyncapi validate: missing FILE');
  try {
    const { registry, documents } = await loadRegistry(files);
    if (!values.quiet) {
      for (const d of documents) for (const w of d.warnings) process.stdout.write(`warning ${w}\n`);
      for (const c of registry.channels) {
        process.stdout.write(`${c.address}  (${c.id}; ${c.messages.map((m) => `${m.id} ${m.contentType}`).join(', ') || 'no messages'})\n`);
      }
      for (const u of registry.unchecked) process.stdout.write(`not checked (schema format): ${u}\n`);
      process.stdout.write(`valid: ${documents.length} document${documents.length === 1 ? '' : 's'}, ${registry.channels.length} channels\n`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof AsyncApiError)) throw err;
    process.stderr.write(`${err.message}\n`);
    for (const line of err.diagnostics) process.stderr.write(`${line}\n`);
    return 1;
  }
}
