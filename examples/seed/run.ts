/**
 * The seed scenario end to end: starts `eddy broker --memory --asyncapi examples/seed/asyncapi.yaml`
 * on free ports (so every message is checked against the scenario's document), then the services of
 * services.ts, and plays it out: four users sign up (two mailer instances share the mails, analytics
 * counts them all), the fridge reports a low milk level and orders more from the shopping service.
 *
 *   npm ci && node dist/examples/seed/run.js          (or pass a broker URL to use a running broker)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { analytics, fridge, mailer, shoppingService, signupService } from './services.js';

const EDDY = fileURLToPath(new URL('../../../bin/eddy.js', import.meta.url));
/** The scenario's AsyncAPI document: the broker checks every message against it. */
const DOCUMENT = fileURLToPath(new URL('../../../examples/seed/asyncapi.yaml', import.meta.url));

async function startBroker(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [EDDY, 'broker', '--memory', '--port', '0', '--http-port', '0', '--log-level', 'warn', '--asyncapi', DOCUMENT], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /eddy ready mqtt=(\S+)/.exec(out);
      if (m) resolve(`mqtt://${m[1]}`);
    });
    child.once('exit', (code) => reject(new Error(`broker exited with ${code}`)));
  });
  return { url, child };
}

async function main(): Promise<void> {
  const broker = process.argv[2] ? undefined : await startBroker();
  const url = process.argv[2] ?? broker!.url;
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  log(`broker    ${url}`);
  const mailers = [await mailer(url, 1, log), await mailer(url, 2, log)];
  const stats = await analytics(url, log);
  const shop = await shoppingService(url, log);
  const signup = await signupService(url, log);
  const kitchen = await fridge(url, log);

  for (const email of ['ada@example.com', 'grace@example.com', 'linus@example.com', 'margaret@example.com']) await signup.signUp(email);
  await kitchen.report({ item: 'butter', level: 0.6 });
  const order = await kitchen.report({ item: 'milk', level: 0.1 });

  const deadline = Date.now() + 5000;
  while (stats.signups() < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const client of [signup.client, kitchen.client, shop, stats.client, ...mailers]) await client.close();
  broker?.child.kill('SIGTERM');
  if (stats.signups() !== 4 || !order) {
    log(`FAILED: analytics saw ${stats.signups()} of 4 signups; order ${order ? 'placed' : 'missing'}`);
    process.exitCode = 1;
    return;
  }
  log('done: 4 signups mailed once each and counted, 1 order placed');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
