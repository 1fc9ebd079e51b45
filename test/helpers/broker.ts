import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { EddyServer, type EddyServerOptions } from '../../src/server.js';

/** Starts an in-process broker on ephemeral ports. */
export async function startBroker(options: EddyServerOptions = {}): Promise<EddyServer> {
  return EddyServer.start({ host: '127.0.0.1', port: 0, httpPort: 0, ...options });
}

export const EDDY_BIN = fileURLToPath(new URL('../../../bin/eddy.js', import.meta.url));

export interface BrokerProcess {
  child: ChildProcess;
  mqttPort: number;
  httpPort: number;
  stdout: () => string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `eddy broker` as a child process and waits for its ready line. */
export async function spawnBroker(args: string[] = ['--memory'], timeoutMs = 10_000): Promise<BrokerProcess> {
  const child = spawn(process.execPath, [EDDY_BIN, 'broker', '--port', '0', '--http-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker not ready in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    const check = (): void => {
      const m = out.match(/eddy ready mqtt=(\S+):(\d+) http=(\S+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before ready; stderr: ${err}`));
    });
  });
  return {
    child,
    mqttPort: Number(ready[2]),
    httpPort: Number(ready[4]),
    stdout: () => out,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** Runs a command to completion and collects its output. */
export function run(command: string, args: string[], options: { timeoutMs?: number; input?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out; stdout: ${stdout}; stderr: ${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}
