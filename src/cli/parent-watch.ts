import { isAlive } from '../util/process.js';
import { readFileSync } from 'node:fs';

/**
 * The parent pid of `pid` as the kernel sees it now (Linux /proc); `gone` when there is no such
 * process; undefined where that cannot be read: no /proc, or not now (no file descriptor left,
 * EMFILE, which a broker under load may well be short of: that is no sign of anyone's exit).
 */
function parentOf(pid: number | 'self'): number | 'gone' | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // `pid (comm) state ppid …`; comm may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : undefined;
  }
}

/**
 * The parent and grandparent as they were when this module was loaded, at the start of the CLI:
 * read later (once the broker is listening), npm may already have exited, and the orphaned broker
 * would watch its new parent, init, for ever.
 */
const ANCESTORS_AT_START = ((): { parent: number; grandparent: number | undefined } => {
  const parent = process.ppid;
  const grandparent = parentOf(parent);
  return { parent, grandparent: typeof grandparent === 'number' ? grandparent : undefined };
})();

/** Whether this process was started by npm (npx eddy, npm exec, npm run): npm sets these for its scripts. */
export function startedByNpm(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.npm_execpath !== undefined || env.npm_lifecycle_event !== undefined;
}

/**
 * Calls `onGone` once, when the process that started this one, or the one above it, exits.
 *
 * Why: npm runs a bin as `sh -c 'eddy …'` and passes SIGTERM and SIGINT only to that shell, which
 * dies of them without passing them on; SIGHUP it does not pass at all, and dies of it itself. The
 * broker would stay behind, orphaned, holding its ports and its LOCK file. Watching the parent (the
 * shell) and the grandparent (npm) turns either exit into a graceful shutdown. `process.ppid` is
 * read once at start, so the current parent comes from /proc where there is one; elsewhere the
 * original parent is polled for being alive.
 */
export function watchAncestors(onGone: (what: string) => void, intervalMs = 500): () => void {
  const { parent, grandparent } = ANCESTORS_AT_START;
  const timer = setInterval(() => {
    const now = parentOf('self');
    let gone: string | undefined;
    if (now === undefined && process.platform === 'linux') return; // /proc unreadable just now (EMFILE): look again next time
    if (typeof now === 'number' ? now !== parent : !isAlive(parent)) gone = `parent process ${parent} exited`;
    else if (grandparent !== undefined) {
      const above = parentOf(parent);
      if (above !== undefined && above !== grandparent) gone = `process ${grandparent}, which started the parent process ${parent}, exited`;
    }
    if (gone === undefined) return;
    clearInterval(timer);
    onGone(gone);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
