// Compiled files live in dist/bench/, so the repo root is two levels up from here;
// resolving from the module (not cwd) lets `node dist/bench/run.js` work from anywhere.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const resultsDir = path.join(repoRoot, 'bench/results');
