import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** Finds an executable on PATH without running it, so a suite can skip when a peer is missing. */
export function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}
