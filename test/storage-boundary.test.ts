import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const STORAGE = fileURLToPath(new URL('../../src/storage', import.meta.url));

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

// The boundary of docs/storage.md "The storage contract": engines depend on the core's types only,
// so that an engine can run where the core's code does not (a separate process, a networked store).
test('storage engines import the core as types only, never its code at run time', () => {
  const files = sources(STORAGE);
  assert.ok(files.length >= 10, `found ${files.length} sources under ${STORAGE}`);
  const offending: string[] = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)) {
      const target = path.resolve(path.dirname(file), m[3]!);
      if (!target.includes(`${path.sep}src${path.sep}core${path.sep}`)) continue;
      if (m[2] === undefined) offending.push(`${path.relative(STORAGE, file)}: ${m[0].split('\n')[0]}`);
    }
  }
  assert.deepEqual(offending, []);
});
