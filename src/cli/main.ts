import { readFileSync } from 'node:fs';
import { EddyError } from '../util/errors.js';
import { runBroker } from './broker.js';
import { exitCodeOf, reportError } from './report.js';
import { nearest } from './suggest.js';

const HELP = `Usage: eddy <command> [options]

Commands:
  broker     run the broker (eddy broker --help)
  pub        publish a message (eddy pub --help)
  sub        subscribe and print messages (eddy sub --help)
  dlq        list or redrive dead letters (eddy dlq --help)
  admin      clients, sessions, groups, channels, retained, dead letters, stats, cluster (eddy admin --help)
  passwd     add a user to a password file (eddy passwd --help)
  asyncapi   validate, generate or export AsyncAPI documents (eddy asyncapi --help)

Options:
  --version  print the version
  --help     print this help
`;

const COMMANDS = ['broker', 'pub', 'sub', 'dlq', 'admin', 'passwd', 'asyncapi', 'version', 'help'];

/**
 * Runs one CLI command; returns the exit code, or 'forever' for a command that keeps running.
 * Each command's module is loaded when it runs: the broker's start (and so its restart after a
 * crash) does not wait for the MQTT client, the NATS client or the AsyncAPI tooling it never uses.
 */
export async function main(argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'broker': {
        const result = await runBroker(rest);
        return result === 'forever' ? undefined : result;
      }
      case 'pub':
        return await (await import('./pub.js')).runPub(rest);
      case 'sub':
        return await (await import('./sub.js')).runSub(rest);
      case 'dlq':
        return await (await import('./dlq.js')).runDlq(rest);
      case 'admin':
        return await (await import('./admin.js')).runAdmin(rest);
      case 'passwd':
        return await (await import('./passwd.js')).runPasswd(rest);
      case 'asyncapi':
        return rest[0] === 'export' ? await (await import('./asyncapi-export.js')).runAsyncApiExport(rest.slice(1)) : await (await import('./asyncapi.js')).runAsyncApi(rest);
      case '--version':
      case 'version': {
        const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
        process.stdout.write(`${pkg.version}\n`);
        return 0;
      }
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP);
        return command === undefined ? 2 : 0;
      default: {
        const guess = nearest(command, COMMANDS);
        process.stderr.write(`eddy: unknown command "${command}" (${guess ? `did you mean eddy ${guess}?` : 'try eddy --help'})\n`);
        return 2;
      }
    }
  } catch (err) {
    if (!(err instanceof EddyError)) throw err;
    reportError(err);
    return exitCodeOf(err);
  }
}
