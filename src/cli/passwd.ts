import { setPassword } from '../core/admission/index.js';
import { ConfigError } from '../util/errors.js';
import { parseFlags } from './args.js';

export const PASSWD_HELP = `Usage: eddy passwd FILE USER [--role ROLE]...

Adds USER to the password file FILE (created, mode 0600, if it does not exist), or replaces its
password and roles. The password is read from standard input (its first line), never from the
command line, and stored as a salted scrypt hash: one line "user:<hash>[:role,role]".

  echo -n 's3cret' | eddy passwd eddy-passwd alice --role admin

Options:
  --role ROLE   a role of the user (repeatable), e.g. admin for the admin API and console
`;

const FLAGS = { role: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } } as const;

export async function runPasswd(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy passwd');
  if (values.help) {
    process.stdout.write(PASSWD_HELP);
    return 0;
  }
  if (positionals.length !== 2) throw new ConfigError('expected FILE and USER (see eddy passwd --help)', { command: 'eddy passwd' });
  const [file, user] = positionals as [string, string];
  const password = await firstLine(process.stdin);
  const outcome = await setPassword(file, user, password, values.role ?? []);
  process.stderr.write(`eddy passwd: ${outcome === 'added' ? 'added' : 'updated'} ${user} in ${file}\n`);
  return 0;
}

/** The first line of a stream (all of it when it has no newline), without the line break. */
async function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) {
    text += chunk.toString();
    if (text.includes('\n')) break;
  }
  return text.split(/\r?\n/)[0] ?? '';
}
