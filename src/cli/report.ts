import { ConfigError, EddyError } from '../util/errors.js';

/** Lines that explain an error: a ConfigError's details, or an AsyncAPI document's diagnostics. */
function detailsOf(err: EddyError): string[] {
  if (err instanceof ConfigError) return err.details;
  const diagnostics = (err as EddyError & { diagnostics?: unknown }).diagnostics;
  return Array.isArray(diagnostics) ? (diagnostics as string[]) : [];
}

/**
 * Prints an error the one way every eddy command does: `eddy: message` (or `eddy broker: message`
 * for a command's usage error), then each detail indented, leaving out a detail that only repeats
 * the message (a missing AsyncAPI file's diagnostic is its message).
 */
export function reportError(err: EddyError): void {
  const prefix = err instanceof ConfigError && err.command ? err.command : 'eddy';
  let text = `${prefix}: ${err.message}\n`;
  for (const line of detailsOf(err)) if (line !== err.message) text += `  ${line}\n`;
  process.stderr.write(text);
}

/** The exit code for an error: 2 for a bad flag or configuration (the README's promise), 1 for the rest. */
export function exitCodeOf(err: EddyError): number {
  return err.code === 'EDDY_CONFIG' ? 2 : 1;
}
