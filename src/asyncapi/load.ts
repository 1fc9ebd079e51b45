import path from 'node:path';
import asyncapiParser from '@asyncapi/parser';
import type { AsyncAPIDocumentInterface, Diagnostic } from '@asyncapi/parser';
import { EddyError } from '../util/errors.js';

const { Parser, fromFile } = asyncapiParser;

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
 * Parses one AsyncAPI 3.x document from a file (YAML or JSON), resolving `$ref`s relative to it.
 * Errors throw an AsyncApiError with the parser's diagnostics.
 */
export async function loadDocument(file: string): Promise<LoadedDocument> {
  const absolute = path.resolve(file);
  const parser = new Parser();
  let output;
  try {
    output = await fromFile(parser, absolute).parse();
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
  return { file: absolute, document: output.document, warnings };
}
