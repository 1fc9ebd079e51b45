// Builds the web console into dist/console: one JavaScript bundle and one stylesheet with content
// hashes in their names, and index.html naming them. The same sources give the same files.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(root, '..', 'dist', 'console');
fs.rmSync(out, { recursive: true, force: true });

const result = await build({
  entryPoints: [path.join(root, 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: out,
  entryNames: '[name]-[hash]',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
const script = outputs.find((f) => f.endsWith('.js'));
const style = outputs.find((f) => f.endsWith('.css'));
if (!script || !style) throw new Error(`the console build wrote ${outputs.join(', ')}: a .js and a .css were expected`);

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Eddy console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/${style}">
<script type="module" src="/console/${script}"></script>
</head>
<body>
<div id="app"></div>
</body>
</html>
`;
fs.writeFileSync(path.join(out, 'index.html'), html);
for (const file of [script, style]) {
  console.log(`console: dist/console/${file} ${fs.statSync(path.join(out, file)).size} bytes`);
}
