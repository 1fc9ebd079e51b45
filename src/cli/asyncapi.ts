import fs from 'node:fs';
import path from 'node:path';
import { AsyncApiError, loadDocument, loadRegistry } from '../asyncapi/index.js';
import { CodegenError, generateClient, type Perspective } from '../asyncapi/codegen/generate.js';
import { ConfigError } from '../util/errors.js';
import { buildLiveDocument } from '../asyncapi/live-document.js';
import { TrafficRecorder } from '../asyncapi/observed.js';
import { renderDocs } from '../asyncapi/html.js';
import { parseFlags } from './args.js';
import { reportError } from './report.js';

export const ASYNCAPI_HELP = `Usage: eddy asyncapi validate FILE... [options]
       eddy asyncapi generate FILE --out FILE.ts [options]
       eddy asyncapi docs FILE... [--out FILE.html]
       eddy asyncapi export [options]      (the running broker's live document: eddy asyncapi export --help)

validate: parses AsyncAPI 3.0/3.1 documents (YAML or JSON; $refs resolved relative to each file) the
way "eddy broker --asyncapi" loads them, merged into one channel registry. Prints the parser's
diagnostics (file:line:col path: message), then the channels and messages found.
Exits 0 when every document is valid, 1 when one has errors.

generate: writes a typed client for one document: a TypeScript module that imports only
@eddy/client, with types for every message payload and headers schema and createClient(bus), which
has one member per operation (publish, subscribe, request or respond). See docs/asyncapi-codegen.md.

docs: writes the documents (merged) as one HTML page, the page a broker serves at /docs, to
--out or standard output.

Options:
  --quiet                  validate: print errors only
  --out FILE               generate: the .ts file to write (required); docs: the .html file
  --perspective P          generate: the side createClient takes by default: application (the
                           document's operations as written, the default) or client (flipped:
                           a service's clients publish what it receives, and so on)
`;

const FLAGS = {
  quiet: { type: 'boolean', short: 'q' },
  out: { type: 'string', short: 'o' },
  perspective: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runAsyncApi(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy asyncapi');
  if (values.help) {
    process.stdout.write(ASYNCAPI_HELP);
    return 0;
  }
  const [action, ...files] = positionals;
  if (action !== 'validate' && action !== 'generate' && action !== 'docs') {
    throw new ConfigError(`expected validate, generate, docs or export, got ${action === undefined ? 'nothing' : JSON.stringify(action)}`, { command: 'eddy asyncapi' });
  }
  if (files.length === 0) throw new ConfigError('missing FILE', { command: `eddy asyncapi ${action}` });
  try {
    if (action === 'generate') return await generate(files, values.out, values.perspective);
    if (action === 'docs') return await docs(files, values.out);
    const { registry, documents } = await loadRegistry(files);
    if (!values.quiet) {
      for (const d of documents) for (const w of d.warnings) process.stdout.write(`warning ${w}\n`);
      for (const c of registry.channels) {
        process.stdout.write(`${c.address}  (${c.declarations.map((d) => d.channelId).join(', ')}; ${c.messages.map((m) => `${m.id} ${m.contentType}`).join(', ') || 'no messages'})\n`);
      }
      for (const u of registry.unchecked) process.stdout.write(`not checked (schema format): ${u}\n`);
      process.stdout.write(`valid: ${documents.length} document${documents.length === 1 ? '' : 's'}, ${registry.channels.length} channels\n`);
    }
    return 0;
  } catch (err) {
    // A document with errors is this command's answer (exit 1), not a usage error.
    if (!(err instanceof AsyncApiError)) throw err;
    reportError(err);
    return 1;
  }
}

/** The HTML page of the documents, as a broker serves it at /docs, without listeners or traffic. */
async function docs(files: string[], out: string | undefined): Promise<number> {
  const { documents } = await loadRegistry(files);
  const doc = buildLiveDocument({ version: documents.map((d) => d.document.info().version()).join(', '), documents, traffic: new TrafficRecorder() });
  const info = doc.info as Record<string, unknown>;
  info.title = documents.map((d) => d.document.info().title()).join(' + ');
  info.description = documents.map((d) => d.document.info().description() ?? '').filter(Boolean).join('\n\n') || undefined;
  const html = renderDocs(doc);
  if (!out) {
    process.stdout.write(html);
    return 0;
  }
  fs.writeFileSync(out, html);
  process.stderr.write(`wrote ${out}: ${Object.keys(doc.channels as object).length} channels\n`);
  return 0;
}

/** Writes the client; what the generator left out goes to stderr, one `warning` line each. */
async function generate(files: string[], out: string | undefined, perspective: string | undefined): Promise<number> {
  if (files.length > 1) throw new ConfigError(`one FILE at a time, got ${files.length}`, { command: 'eddy asyncapi generate' });
  if (out === undefined) throw new ConfigError('missing --out FILE.ts', { command: 'eddy asyncapi generate' });
  if (perspective !== undefined && perspective !== 'application' && perspective !== 'client') {
    throw new ConfigError(`--perspective must be application or client, got ${JSON.stringify(perspective)}`);
  }
  if (path.resolve(out) === path.resolve(files[0]!)) throw new ConfigError(`--out ${out} would overwrite the document`, { command: 'eddy asyncapi generate' });
  const loaded = await loadDocument(files[0]!);
  const generated = generateClient(loaded, { perspective: perspective as Perspective | undefined, fileName: path.basename(out) });
  for (const w of generated.warnings) process.stderr.write(`warning ${w}\n`);
  try {
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    fs.writeFileSync(out, generated.code);
  } catch (err) {
    throw new CodegenError(`cannot write ${out}: ${(err as Error).message}`, err);
  }
  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  process.stdout.write(
    `wrote ${out}: ${count(generated.types.length, 'type')}, ${count(generated.operations.length, 'operation')} (${generated.operations.join(', ') || 'none'}), perspective ${perspective ?? 'application'}\n`,
  );
  return 0;
}
