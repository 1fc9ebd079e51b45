#!/usr/bin/env node
// The CLI is compiled by `npm ci` (the `prepare` script), so the bin needs no loader.
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => {
    process.stderr.write(`eddy: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
