import { readFile } from 'node:fs/promises';
import path from 'node:path';
import asyncapiParser from '@asyncapi/parser';
import { convert } from '@asyncapi/converter';
import type { AsyncAPIDocumentInterface, Diagnostic } from '@asyncapi/parser';
import { EddyError } from '../util/errors.js';

const { Parser } = asyncapiParser;

/** `asyncapi: 2.x` in YAML or JSON, near the top of the file. */
const VERSION_2 = /^\s*["']?asyncapi["']?\s*:\s*["']?2\./m;

/** A document that does not parse: one line per diagnostic, `file:line:col path: message`. */
export class AsyncApiError extends EddyError {
  constructor(
    message: string,
    readonly diagnostics: string[],
  ) {
    super('EDDY_ASYNCAPI', message);
  }
}

export interface LoadedDocument {
  file: string;
  document: AsyncAPIDocumentInterface;
  /** Warnings and hints, formatted like errors. */
  warnings: string[];
}

/** Severity 0 in the parser's diagnostics (spectral's DiagnosticSeverity.Error). */
const ERROR = 0;

export function formatDiagnostic(file: string, d: Diagnostic): string {
  const where = d.range ? `${d.range.start.line + 1}:${d.range.start.character + 1}` : '1:1';
  const at = d.path.length > 0 ? ` ${d.path.join('.')}` : '';
  const source = typeof d.source === 'string' && d.source !== file ? ` (in ${path.relative(process.cwd(), d.source)})` : '';
  return `${path.relative(process.cwd(), file) || file}:${where}${at}: ${d.message}${source}`;
}

/**
 * Parses one AsyncAPI document from a file (YAML or JSON), resolving `$ref`s relative to it. 3.0 and
 * 3.1 are read as they are; a 2.x document is converted to 3.0 first (@asyncapi/converter).
 * Errors throw an AsyncApiError with the parser's diagnostics.
 */
export async function loadDocument(file: string): Promise<LoadedDocument> {
  const absolute = path.resolve(file);
  const parser = new Parser();
  let output;
  let converted = false;
  try {
    let text = await readFile(absolute, 'utf8');
    if (VERSION_2.test(text)) {
      text = convert(text, '3.0.0');
      converted = true;
    }
    output = await parser.parse(text, { source: absolute });
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new AsyncApiError(`${file}: ${reason}`, [`${file}: ${reason}`]);
  }
  const errors = output.diagnostics.filter((d) => d.severity === ERROR).map((d) => formatDiagnostic(absolute, d));
  if (!output.document || errors.length > 0) {
    throw new AsyncApiError(`${file} is not a valid AsyncAPI document (${errors.length} error${errors.length === 1 ? '' : 's'})`, errors.length > 0 ? errors : [`${file}: not parsed`]);
  }
  const version = output.document.version();
  if (!version.startsWith('3.')) {
    throw new AsyncApiError(`${file}: AsyncAPI ${version} is not supported; Eddy reads 3.0 and 3.1 documents`, [`${file}: asyncapi ${version}: convert it to 3.x first (npx @asyncapi/cli convert)`]);
  }
  const warnings = output.diagnostics.filter((d) => d.severity !== ERROR).map((d) => formatDiagnostic(absolute, d));
  if (converted) warnings.unshift(`${path.relative(process.cwd(), absolute)}: AsyncAPI 2.x, converted to 3.0.0 to load it (line numbers refer to the converted document)`);
  return { file: absolute, document: output.document, warnings };
}
