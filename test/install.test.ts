import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from './helpers/broker.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('after npm ci, node_modules/.bin/eddy runs the CLI with no build step of its own', async () => {
  const bin = `${root}node_modules/.bin/eddy`;
  assert.ok(fs.existsSync(bin), `${bin} is missing: npm does not link a root package's own bin, the eddy workspace does`);
  const version = JSON.parse(fs.readFileSync(`${root}package.json`, 'utf8')).version as string;
  const { code, stdout } = await run(bin, ['--version']);
  assert.equal(code, 0);
  assert.equal(stdout.trim(), version);
});
