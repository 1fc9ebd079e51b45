/**
 * The examples run as the README says: the SDK seed scenario, the CLI seed scenario, and the curl
 * walkthrough of the HTTP gateway against a real broker.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EDDY_BIN, run, spawnBroker } from './helpers/broker.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
mkdirSync(`${root}.tmp`, { recursive: true });

describe('examples', () => {
  it('node dist/examples/seed/run.js: signups mailed once each by the mailer group, counted, milk ordered by request/reply', async () => {
    const out = await run(process.execPath, [`${root}dist/examples/seed/run.js`], { timeoutMs: 30_000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const mails = out.stdout.split('\n').filter((l) => /^mailer-\d +welcome mail to/.test(l));
    assert.equal(mails.length, 4, out.stdout);
    assert.equal(new Set(mails.map((l) => l.split('to ')[1])).size, 4, 'each user mailed once');
    assert.ok(mails.some((l) => l.startsWith('mailer-1')) && mails.some((l) => l.startsWith('mailer-2')), 'both mailer instances worked');
    assert.match(out.stdout, /analytics user\/signedup margaret \(from signup-service\): 4 signups so far/);
    assert.match(out.stdout, /fridge {4}order confirmed: o-1/);
  });

  it('examples/seed/events.ts is what eddy asyncapi generate makes of examples/seed/asyncapi.yaml today', async () => {
    // Same file name: the generated header names the module to import.
    const dir = `${root}.tmp/seed-events-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    const out = `${dir}/events.ts`;
    const gen = await run(process.execPath, [EDDY_BIN, 'asyncapi', 'generate', `${root}examples/seed/asyncapi.yaml`, '--out', out]);
    try {
      assert.equal(gen.code, 0, gen.stderr);
      assert.equal(readFileSync(out, 'utf8'), readFileSync(`${root}examples/seed/events.ts`, 'utf8'), 'regenerate: node bin/eddy.js asyncapi generate examples/seed/asyncapi.yaml --out examples/seed/events.ts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bash examples/seed-scenario.sh (the CLI version)', async () => {
    const out = await run('bash', [`${root}examples/seed-scenario.sh`], { timeoutMs: 60_000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /--- order command\nshop\/orders \{"item":"milk","quantity":2\}/);
  });

  it('bash examples/http-curl.sh against a running broker', async () => {
    const broker = await spawnBroker(['--memory', '--log-level', 'warn']);
    try {
      const out = await run('bash', [`${root}examples/http-curl.sh`], { timeoutMs: 60_000, env: { EDDY_HTTP: `http://127.0.0.1:${broker.httpPort}` } });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /"seq":\d+/);
      assert.match(out.stdout, /event: user\/signedup/);
      assert.match(out.stdout, /eddy_messages_in_total/);
    } finally {
      await broker.stop();
    }
  });
});

describe('README SDK program', () => {
  it('the README shows examples/sdk-quickstart.ts verbatim', () => {
    const readme = readFileSync(`${root}README.md`, 'utf8');
    const program = readFileSync(`${root}examples/sdk-quickstart.ts`, 'utf8').split('\n').slice(1).join('\n');
    assert.ok(readme.includes(program), 'README and examples/sdk-quickstart.ts differ');
  });

  it('examples/sdk-quickstart.ts (the README program) runs against a broker', async () => {
    const broker = await spawnBroker(['--memory', '--log-level', 'warn']);
    try {
      const out = await run(process.execPath, [`${root}dist/examples/sdk-quickstart.js`], { timeoutMs: 30_000, env: { EDDY_URL: `mqtt://127.0.0.1:${broker.mqttPort}` } });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /stored as seq \d+ \(id [0-9a-f-]{36}\)/);
      assert.match(out.stdout, /welcome mail to ada@example.com \(delivery 1\)/);
      assert.match(out.stdout, /\{ ordered: 'milk' \}/);
    } finally {
      await broker.stop();
    }
  });
});
