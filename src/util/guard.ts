/** Told about an exception that a guarded callback caught: where it happened, and what it was. */
export type ErrorReporter = (where: string, err: unknown) => void;

/**
 * Wraps a timer or event callback so that nothing it throws escapes to the event loop (where it
 * would end the process): the error goes to `report`, which logs and counts it.
 */
export function guarded<A extends unknown[]>(report: ErrorReporter, where: string, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A): void => {
    try {
      fn(...args);
    } catch (err) {
      report(where, err);
    }
  };
}
