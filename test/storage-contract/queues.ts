import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SessionRecord, Storage } from '../../src/core/storage.js';
import type { StorageFactory } from './factory.js';
import { appendTo, message, OpenStore, payloads, range, shiftAll } from './helpers.js';

const persistent = (clientId: string): SessionRecord => ({ clientId, expiryInterval: 3600, subscriptions: [{ filter: 'q/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });

/** Appending, queues, sessions and groups: what every engine must do the same way. */
export function queueContract(name: string, factory: StorageFactory): void {
  describe(`${name}: append and confirm`, () => {
    let open: OpenStore;
    before(async () => (open = await OpenStore.open(factory)));
    after(() => open.destroy());

    test('append assigns increasing seqs, resolves once stored, and lastSeq follows', async () => {
      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const m = message('a/b', `m${i}`);
        await open.storage.append(m, []);
        seqs.push(m.seq!);
      }
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `seqs increase: ${seqs.join(',')}`);
      assert.equal(open.storage.lastSeq, seqs.at(-1));
    });

    test('500 appends made at once all confirm, with seqs in the order they were made; settled() waits for them', async () => {
      const messages = Array.from({ length: 500 }, (_, i) => message('a/many', `m${i}`));
      const confirmed = messages.map((m) => open.storage.append(m, []));
      await open.storage.settled();
      await Promise.all(confirmed);
      const seqs = messages.map((m) => m.seq!);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!);
      assert.equal(open.storage.lastSeq, seqs.at(-1));
    });
  });

  describe(`${name}: queues`, () => {
    let open: OpenStore;
    before(async () => (open = await OpenStore.open(factory)));
    after(() => open.destroy());

    test('a queue gives back what was pushed, in order; unshift puts a delivery in front; counts and bytes follow', async () => {
      await open.storage.saveSession(persistent('q-order'));
      const queue = open.storage.queue('q-order');
      for (const p of ['one', 'two', 'three']) await appendTo(open.storage, queue, message('q/a', p));
      assert.equal(queue.pendingCount, 3);
      assert.equal(queue.pendingBytes, 3 + 3 + 5);
      const first = queue.shift()!;
      assert.equal(first.message.payload.toString(), 'one');
      queue.unshift(first);
      assert.deepEqual(payloads(await shiftAll(queue)), ['one', 'two', 'three']);
      assert.equal(queue.pendingCount, 0);
      assert.equal(queue.pendingBytes, 0);
      assert.equal(queue.shift(), undefined);
    });

    test('a durable backlog far beyond any memory window (3000) comes back whole and in order', async () => {
      await open.storage.saveSession(persistent('q-backlog'));
      const queue = open.storage.queue('q-backlog');
      await Promise.all(range(3000).map((p) => appendTo(open.storage, queue, message('q/backlog', p))));
      assert.equal(queue.pendingCount, 3000);
      assert.deepEqual(payloads(await shiftAll(queue)), range(3000));
      assert.equal(queue.pendingCount, 0);
    });

    test('deliveries stored while the queue reads its backlog from storage come back exactly once, in order', async () => {
      await open.storage.saveSession(persistent('q-race'));
      const queue = open.storage.queue('q-race');
      // 4 KiB each, so that reading a backlog takes many reads, during which the producer's appends confirm.
      const padded = (p: string): Buffer => Buffer.concat([Buffer.from(p), Buffer.alloc(4096 - p.length, 32)]);
      const race = (p: string) => message('q/race', padded(p));
      await Promise.all(range(1500).map((p) => appendTo(open.storage, queue, race(p))));
      const producer = (async () => {
        for (let from = 1500; from < 2500; from += 20) {
          await Promise.all(range(20, from).map((p) => appendTo(open.storage, queue, race(p))));
          await new Promise((r) => setImmediate(r));
        }
      })();
      const got: string[] = [];
      const deadline = Date.now() + 15_000;
      while (got.length < 2500 && Date.now() < deadline) {
        const batch = await shiftAll(queue, 2500 - got.length);
        got.push(...payloads(batch).map((p) => p.trimEnd()));
        if (batch.length === 0) await new Promise((r) => setTimeout(r, 5)); // the producer is behind
      }
      await producer;
      got.push(...payloads(await shiftAll(queue)).map((p) => p.trimEnd()));
      assert.deepEqual(got, range(2500));
      assert.equal(queue.pendingCount, 0);
    });

    test('a queue cleared while it reads from storage brings nothing of it back', async () => {
      await open.storage.saveSession(persistent('q-cleared'));
      const queue = open.storage.queue('q-cleared');
      await Promise.all(range(2500).map((p) => appendTo(open.storage, queue, message('q/cleared', p))));
      await shiftAll(queue, 1000);
      queue.shift(); // memory is empty now: a durable engine starts reading the rest
      queue.clear();
      // Markers pushed after the clear: whatever the read brought back would come before them.
      for (const p of ['m1', 'm2']) await appendTo(open.storage, queue, message('q/cleared', p));
      assert.deepEqual(payloads(await shiftAll(queue)), ['m1', 'm2']);
    });

    test('deliveries that need no durability (a clean session) come back in order past the memory window too', async () => {
      const queue = open.storage.queue('q-clean');
      for (const p of range(2500)) queue.push({ message: message('q/clean', p, { seq: 1 }), qos: 1, retain: false }, false);
      assert.equal(queue.pendingCount, 2500);
      assert.deepEqual(payloads(await shiftAll(queue)), range(2500));
    });

    test('peek shows the oldest pending without taking them, beyond memory too; take reads what waits in storage', async () => {
      await open.storage.saveSession(persistent('q-peek'));
      const queue = open.storage.queue('q-peek');
      await Promise.all(range(2200).map((p) => appendTo(open.storage, queue, message('q/peek', p))));
      assert.deepEqual(payloads(await queue.peek(3)), ['0', '1', '2']);
      assert.deepEqual(payloads(await queue.peek(2200)), range(2200));
      assert.equal(queue.pendingCount, 2200, 'peek takes nothing');
      const taken: string[] = [];
      for (let d = await queue.take(); d; d = await queue.take()) taken.push(d.message.payload.toString());
      assert.deepEqual(taken, range(2200));
      assert.equal(await queue.take(), undefined);
    });

    test('in flight, held and cleared: counts and bytes follow each change', async () => {
      await open.storage.saveSession(persistent('q-flight'));
      const queue = open.storage.queue('q-flight');
      for (const p of ['aa', 'bbb', 'c']) await appendTo(open.storage, queue, message('q/f', p));
      const [a, b] = [queue.shift()!, queue.shift()!];
      queue.setInflight({ ...a, packetId: 1, released: false });
      queue.setInflight({ ...b, packetId: 2, released: false });
      assert.equal(queue.inflight.size, 2);
      assert.equal(queue.inflightBytes, 5);
      queue.setInflight({ ...b, packetId: 2, released: true });
      assert.equal(queue.inflightBytes, 5, 'replacing an entry does not count it twice');
      queue.deleteInflight(1);
      assert.equal(queue.inflightBytes, 3);
      const c = queue.shift()!;
      queue.hold(c);
      assert.ok(queue.held.has(c));
      assert.equal(queue.release(c), true);
      assert.equal(queue.release(c), false, 'a second release finds nothing');
      queue.hold(c);
      queue.clear();
      assert.equal(queue.pendingCount + queue.inflight.size + queue.held.size, 0);
      assert.equal(queue.release(c), false, 'clear ended the hold');
    });

    if (!factory.durable) return;

    test('after a restart, pending and in-flight deliveries come back in order; those acknowledged before them do not', async () => {
      await open.storage.saveSession(persistent('q-restart'));
      let queue = open.storage.queue('q-restart');
      for (const p of range(10)) await appendTo(open.storage, queue, message('q/r', p));
      for (let id = 1; id <= 4; id++) queue.setInflight({ ...queue.shift()!, packetId: id, released: false });
      queue.deleteInflight(1);
      queue.deleteInflight(2);
      const storage = await open.restart();
      assert.ok((await storage.loadSessions()).some((s) => s.clientId === 'q-restart'));
      queue = storage.queue('q-restart');
      assert.deepEqual(payloads(await shiftAll(queue)), range(8, 2), 'in flight 2 and 3, pending 4 to 9');
    });

    test('a delivery held for a retry backoff comes back after a restart', async () => {
      await open.storage.saveSession(persistent('q-held'));
      let queue = open.storage.queue('q-held');
      for (const p of ['x', 'y']) await appendTo(open.storage, queue, message('q/h', p));
      queue.hold(queue.shift()!);
      queue.setInflight({ ...queue.shift()!, packetId: 7, released: false });
      queue.deleteInflight(7);
      const storage = await open.restart();
      queue = storage.queue('q-held');
      assert.deepEqual(payloads(await shiftAll(queue)), ['x', 'y'], 'x was held; y, acknowledged after it, may come again');
    });

    test('a backlog of 2500 survives a restart, whole and in order', async () => {
      await open.storage.saveSession(persistent('q-big'));
      const queue = open.storage.queue('q-big');
      await Promise.all(range(2500).map((p) => appendTo(open.storage, queue, message('q/big', p))));
      const storage = await open.restart();
      const restored = storage.queue('q-big');
      assert.ok(restored.pendingCount > 0);
      assert.deepEqual(payloads(await shiftAll(restored)), range(2500));
    });

    test('a session that ended is gone after a restart, and so is its queue', async () => {
      await open.storage.saveSession(persistent('q-ended'));
      const queue = open.storage.queue('q-ended');
      for (const p of range(5)) await appendTo(open.storage, queue, message('q/e', p));
      await open.storage.deleteSession('q-ended');
      const storage = await open.restart();
      assert.ok(!(await storage.loadSessions()).some((s) => s.clientId === 'q-ended'));
      assert.equal(storage.queue('q-ended').pendingCount, 0);
    });
  });

  describe(`${name}: sessions`, () => {
    let open: OpenStore;
    before(async () => (open = await OpenStore.open(factory)));
    after(() => open.destroy());

    const record: SessionRecord = {
      clientId: 'sess-1',
      expiryInterval: 120,
      subscriptions: [
        { filter: 'a/+', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionId: 9 },
        { filter: '$share/g/b/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
      disconnectedAt: 1_700_000_000_000,
      user: 'alice',
      authMethod: 'jwt',
      tokenAcl: [{ allow: ['subscribe'], topics: ['a/#'] }],
    };

    test('a saved session is loaded with every field; saving again replaces it; deleting removes it', async () => {
      await open.storage.saveSession(record);
      await open.storage.saveSession({ clientId: 'sess-2', expiryInterval: 0xffffffff, subscriptions: [] });
      assert.deepEqual(withoutOwner((await open.storage.loadSessions()).find((s) => s.clientId === 'sess-1'), open.storage), record);
      await open.storage.saveSession({ ...record, expiryInterval: 60 });
      assert.equal((await open.storage.loadSessions()).find((s) => s.clientId === 'sess-1')?.expiryInterval, 60);
      await open.storage.deleteSession('sess-2');
      assert.deepEqual((await open.storage.loadSessions()).map((s) => s.clientId), ['sess-1']);
    });

    if (!factory.durable) return;

    test('sessions survive a restart with every field; a deleted one stays deleted', async () => {
      await open.storage.saveSession(record);
      await open.storage.saveSession({ clientId: 'sess-3', expiryInterval: 5, subscriptions: [] });
      await open.storage.deleteSession('sess-3');
      const storage = await open.restart();
      const loaded = await storage.loadSessions();
      // Saved by the process before the restart: a shared engine names that node, not this one.
      assert.deepEqual(withoutOwner(loaded.find((s) => s.clientId === 'sess-1'), storage, 'earlier'), record);
      assert.ok(!loaded.some((s) => s.clientId === 'sess-3'));
    });
  });

  describe(`${name}: consumer groups`, () => {
    let open: OpenStore;
    before(async () => (open = await OpenStore.open(factory)));
    after(() => open.destroy());

    test("a group's queue is one per name, with an id no session queue has", async () => {
      const a = open.storage.groupQueue('$share/g/a');
      assert.equal(open.storage.groupQueue('$share/g/a'), a);
      const session = open.storage.queue('$share/g/a');
      assert.notEqual(session.id, a.id, 'a client id that looks like a group name gets its own queue');
      await open.storage.saveGroup('$share/g/a');
      assert.ok((await open.storage.loadGroups()).includes('$share/g/a'));
      assert.ok(!(await open.storage.loadSessions()).some((s) => s.clientId.includes('$share/g/a')), 'a group is not a session');
    });

    test("a saved group's deliveries come back in order; a deleted group is not listed", async () => {
      await open.storage.saveGroup('$share/g/jobs');
      const queue = open.storage.groupQueue('$share/g/jobs');
      await Promise.all(range(1500).map((p) => appendTo(open.storage, queue, message('jobs/x', p))));
      await open.storage.saveGroup('$share/g/gone');
      await open.storage.deleteGroup('$share/g/gone');
      assert.ok(!(await open.storage.loadGroups()).includes('$share/g/gone'));
      assert.deepEqual(payloads(await shiftAll(queue, 3)), ['0', '1', '2']);
      queue.unshift((await shiftAll(queue, 1))[0]!);
      assert.deepEqual(payloads(await shiftAll(queue)), range(1497, 3));
    });

    if (!factory.durable) return;

    test('a saved group and what waits in its queue survive a restart; a deleted group does not', async () => {
      await open.storage.saveGroup('$share/g/durable');
      const queue = open.storage.groupQueue('$share/g/durable');
      await Promise.all(range(1200).map((p) => appendTo(open.storage, queue, message('jobs/d', p))));
      await open.storage.saveGroup('$share/g/dropped');
      await open.storage.deleteGroup('$share/g/dropped');
      const storage = await open.restart();
      const groups = await storage.loadGroups();
      assert.ok(groups.includes('$share/g/durable'));
      assert.ok(!groups.includes('$share/g/dropped'));
      assert.deepEqual(payloads(await shiftAll(storage.groupQueue('$share/g/durable'))), range(1200));
    });
  });
}

/**
 * A loaded session record as it was saved: an engine shared by several nodes adds its node as
 * `owner` (core/fabric.ts), and only such an engine; the rest must be exactly what was saved.
 */
function withoutOwner(record: SessionRecord | undefined, storage: Storage, saver: 'this' | 'earlier' = 'this'): SessionRecord | undefined {
  if (!record) return record;
  const { owner, ...rest } = record;
  if (storage.fabric && saver === 'this') assert.equal(owner, storage.fabric.nodeId, 'a shared engine records the saving node as the owner');
  else if (storage.fabric) assert.ok(typeof owner === 'string' && owner !== storage.fabric.nodeId, `the saving process's node is the owner, got ${owner}`);
  else assert.equal(owner, undefined, 'a local engine adds no owner');
  return rest;
}
