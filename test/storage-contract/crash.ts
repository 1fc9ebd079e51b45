import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SessionRecord } from '../../src/core/storage.js';
import type { StorageFactory, StoreUnderTest } from './factory.js';
import { contractContext, readAll, shiftAll } from './helpers.js';

export const CRASH_SESSION = 'crash-sub';
export const CRASH_GROUP = '$share/crash/t';
export const crashSessionRecord: SessionRecord = { clientId: CRASH_SESSION, expiryInterval: 0xffffffff, subscriptions: [{ filter: 'crash/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] };

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

interface Round {
  confirmed: Array<{ n: number; seq: number }>;
  acked: number[];
}

/**
 * Runs the writer for `runMs` after it is ready (and at least until it confirmed 100 messages),
 * long enough for queue cursors (100 ms) and checkpoints (1 s) to be written, then kills it with
 * SIGKILL; resolves with what it confirmed and acknowledged.
 */
function writeAndKill(store: StoreUnderTest, from: number, runMs: number): Promise<Round> {
  const child = store.child!;
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CHILD, child.module, child.argument, String(from)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const confirmed: Array<{ n: number; seq: number }> = [];
    const acked: number[] = [];
    let readyAt = Infinity;
    let partial = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the writer confirmed ${confirmed.length} in 30 s; stderr: ${stderr}`));
    }, 30_000);
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.stdout.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!; // a line cut by the kill is not a confirmation
      for (const line of lines) {
        const [a, b] = line.split(' ');
        if (a === 'ready') readyAt = Date.now();
        else if (a === 'ack') acked.push(Number(b));
        else if (b !== undefined) confirmed.push({ n: Number(a), seq: Number(b) });
      }
      if (!killed && confirmed.length >= 100 && Date.now() - readyAt >= runMs) {
        killed = true;
        proc.kill('SIGKILL');
      }
    });
    proc.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && killed) resolve({ confirmed, acked });
      else reject(new Error(`the writer exited (${signal ?? _code}) before it was killed; stderr: ${stderr}`));
    });
  });
}

/** kill -9 of a process writing to the engine: nothing it confirmed is lost. Only for engines with a process to kill. */
export function crashContract(name: string, factory: StorageFactory): void {
  describe(`${name}: crash recovery (kill -9 while writing)`, () => {
    test('after 3 kills mid-write, every confirmed message not acknowledged is in the session queue, every confirmed one in the group queue, in order; seq and the retained message are not behind', async (t) => {
      const store = await factory.create();
      if (!store.child) {
        await store.destroy();
        return t.skip('the engine has no process of its own to kill');
      }
      try {
        const confirmed: Array<{ n: number; seq: number }> = [];
        const acked = new Set<number>();
        let from = 0;
        for (const runMs of [150, 1300, 600]) {
          const round = await writeAndKill(store, from, runMs);
          // A loop, not push(...): a fast engine confirms more in a round than a call's arguments may hold.
          for (const c of round.confirmed) confirmed.push(c);
          for (const n of round.acked) acked.add(n);
          // Numbers of the next round start past anything this one may have written unconfirmed.
          from = round.confirmed.reduce((max, c) => Math.max(max, c.n), from) + 1000;
        }
        const storage = store.engine();
        await storage.open(contractContext());
        try {
          const maxSeq = confirmed.reduce((max, c) => Math.max(max, c.seq), 0);
          assert.ok(storage.lastSeq >= maxSeq, `lastSeq ${storage.lastSeq} is behind a confirmed seq ${maxSeq}`);
          assert.ok((await storage.loadSessions()).some((s) => s.clientId === CRASH_SESSION));
          assert.ok((await storage.loadGroups()).includes(CRASH_GROUP));
          for (const [label, queue] of [['session', storage.queue(CRASH_SESSION)], ['group', storage.groupQueue(CRASH_GROUP)]] as const) {
            const got = (await shiftAll(queue, Infinity, 20_000)).map((d) => Number(d.message.payload.toString()));
            for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, `${label}: ${got[i]} came after ${got[i - 1]}`);
            const have = new Set(got);
            // The session's consumer acknowledged some: those need not come back (the group's were never taken).
            const missing = confirmed.filter((c) => !have.has(c.n) && !(label === 'session' && acked.has(c.n)));
            assert.equal(missing.length, 0, `${label}: ${missing.length} of ${confirmed.length} confirmed messages missing, first ${missing[0]?.n}`);
          }
          const lastRetained = confirmed.reduce((max, c) => (c.n % 10 === 0 ? Math.max(max, c.n) : max), -1);
          const [retained] = (await readAll(storage.retainedMatching('crash/t'))).messages;
          assert.ok(retained && Number(retained.payload.toString()) >= lastRetained, `retained ${retained?.payload.toString()} is older than the last confirmed one, ${lastRetained}`);
        } finally {
          await storage.close();
        }
      } finally {
        await store.destroy();
      }
    });
  });
}
