import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EDDY_BIN } from './broker.js';

/** The repository root (where `npx eddy` and node_modules/.bin/eddy resolve). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN_EDDY = `${REPO_ROOT}node_modules/.bin/eddy`;

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process started by a test, with its output so far. */
export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Settles when the process and every holder of its output pipes are done. */
  finished: Promise<Finished>;
  /** Settles when the process itself exits (children it left behind may still hold its pipes). */
  exited: Promise<Finished>;
  /** Resolves when `test` holds for the output; rejects after `ms`, or if the process exits first. */
  waitFor(test: (out: { stdout: string; stderr: string }) => boolean, what: string, ms?: number): Promise<void>;
}

/** Starts `command args` (by default `node bin/eddy.js …`) with piped output. */
export function start(args: string[], options: { command?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Running {
  const command = options.command ?? process.execPath;
  const argv = options.command ? args : [EDDY_BIN, ...args];
  const child = spawn(command, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const changed = (): void => listeners.forEach((l) => l());
  child.stdout!.on('data', (d: Buffer) => ((stdout += d), changed()));
  child.stderr!.on('data', (d: Buffer) => ((stderr += d), changed()));
  const finished = new Promise<Finished>((resolve) => child.once('close', (code, signal) => (resolve({ code, signal }), changed())));
  const exitedPromise = new Promise<Finished>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let exited = false;
  void finished.then(() => (exited = true));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    finished,
    exited: exitedPromise,
    waitFor(test, what, ms = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (test({ stdout, stderr })) return done();
          if (exited) done(new Error(`exited before ${what}; stdout: ${stdout}; stderr: ${stderr}`));
        };
        const timer = setTimeout(() => done(new Error(`no ${what} within ${ms} ms; stdout: ${stdout}; stderr: ${stderr}`)), ms);
        const done = (err?: Error): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** The ports of an `eddy ready mqtt=… http=…` line, once it is printed. */
export async function readyPorts(running: Running, ms = 15_000): Promise<{ mqtt: number; http: number }> {
  const pattern = /eddy ready mqtt=\S+:(\d+) http=\S+:(\d+)/;
  await running.waitFor(({ stdout }) => pattern.test(stdout), 'ready line', ms);
  const m = pattern.exec(running.stdout())!;
  return { mqtt: Number(m[1]), http: Number(m[2]) };
}

/** Kills what is left of a child (and a pid it started, if known) at the end of a test. */
export function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
