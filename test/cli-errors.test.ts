import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EDDY_BIN, run } from './helpers/broker.js';
import { REPO_ROOT, readyPorts, start, type Running } from './helpers/cli-process.js';
import { tempDirs } from './helpers/temp-dir.js';

const tempDir = tempDirs('eddy-cli-errors-');
const fixture = (name: string): string => path.join(REPO_ROOT, 'test/fixtures/asyncapi', name);
const eddy = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => run(process.execPath, [EDDY_BIN, ...args], { timeoutMs: 20_000 });
const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);

const children: Running[] = [];
after(() => {
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
});

describe('each error is printed once', () => {
  test('eddy asyncapi validate of a missing file: one line, exit 1', async () => {
    const result = await eddy(['asyncapi', 'validate', 'missing.yaml']);
    assert.equal(result.code, 1);
    assert.deepEqual(lines(result.stderr), ['eddy: missing.yaml: no such file']);
  });

  test('eddy asyncapi validate of a broken file: the summary, then each diagnostic once', async () => {
    const result = await eddy(['asyncapi', 'validate', fixture('broken.yaml')]);
    assert.equal(result.code, 1);
    const errLines = lines(result.stderr);
    assert.match(errLines[0]!, /^eddy: .*broken\.yaml is not a valid AsyncAPI document \(\d+ errors?\)$/);
    assert.ok(errLines.length > 1 && errLines.slice(1).every((l) => /^ {2}\S*broken\.yaml:\d+:\d+ /.test(l)), result.stderr);
    assert.equal(new Set(errLines).size, errLines.length, `no line twice: ${result.stderr}`);
  });
});

describe('configuration errors exit 2', () => {
  test('eddy broker with a missing AsyncAPI document: one line, exit 2', async () => {
    const result = await eddy(['broker', '--memory', '--port', '0', '--http-port', '0', '--asyncapi', 'missing.yaml']);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.deepEqual(lines(result.stderr), ['eddy: missing.yaml: no such file']);
  });

  test('eddy broker with a broken AsyncAPI document: exit 2 with the diagnostics', async () => {
    const result = await eddy(['broker', '--memory', '--port', '0', '--http-port', '0', '--asyncapi', fixture('broken.yaml')]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /broken\.yaml:2:6 info:/);
  });
});

describe('unknown options', () => {
  test('name the command once and suggest the nearest flag', async () => {
    const cases: Array<[string[], string]> = [
      [['broker', '--htp-port', '1'], 'eddy broker: unknown option --htp-port (did you mean --http-port?)'],
      [['broker', '--data', 'x'], 'eddy broker: unknown option --data (did you mean --data-dir?)'],
      [['pub', 'x', 'y', '--qso', '1'], 'eddy pub: unknown option --qso (did you mean --qos?)'],
      [['sub', 'x', '--sesion-expiry', '5'], 'eddy sub: unknown option --sesion-expiry (did you mean --session-expiry?)'],
      [['pub', 'x', 'y', '--bogus'], 'eddy pub: unknown option --bogus (see eddy pub --help)'],
      [['sub', 'x', '--count'], 'eddy sub: option --count needs a value'],
      [['broker', '--memory=yes'], 'eddy broker: option --memory takes no value'],
      [['brokr'], 'eddy: unknown command "brokr" (did you mean eddy broker?)'],
    ];
    const results = await Promise.all(cases.map(([args]) => eddy(args)));
    cases.forEach(([args, expected], i) => {
      assert.equal(results[i]!.code, 2, args.join(' '));
      assert.deepEqual(lines(results[i]!.stderr), [expected], args.join(' '));
    });
  });
});

describe('config file paths', () => {
  test('dataDir and asyncapi are relative to the config file, not the working directory', async () => {
    const configDir = tempDir();
    const elsewhere = tempDir();
    fs.copyFileSync(fixture('signup.yaml'), path.join(configDir, 'signup.yaml'));
    fs.writeFileSync(path.join(configDir, 'eddy.yaml'), 'dataDir: state\nasyncapi: signup.yaml\nstrict: true\n');
    const broker = start(['broker', '--config', path.join(configDir, 'eddy.yaml'), '--port', '0', '--http-port', '0', '--log-level', 'warn'], { cwd: elsewhere });
    children.push(broker);
    const ports = await readyPorts(broker);
    assert.equal(fs.existsSync(path.join(configDir, 'state', 'LOCK')), true, 'the data directory is next to the config file');
    assert.equal(fs.existsSync(path.join(elsewhere, 'state')), false, 'not in the working directory');
    const url = `mqtt://127.0.0.1:${ports.mqtt}`;
    const undeclared = await eddy(['pub', 'not/declared', '{}', '--url', url]);
    assert.equal(undeclared.code, 1, 'the document next to the config file is enforced (strict)');
    assert.match(undeclared.stderr, /0x90/);
    broker.child.kill('SIGTERM');
    assert.equal((await broker.finished).code, 0);
    assert.equal(fs.existsSync(path.join(configDir, 'state', 'LOCK')), false);
  });
});
