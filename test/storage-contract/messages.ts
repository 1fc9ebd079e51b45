import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { historyQuery } from '../../src/core/replay.js';
import { ChannelPolicies } from '../../src/core/channels.js';
import type { ReplayStart } from '../../src/core/replay.js';
import type { Storage } from '../../src/core/storage.js';
import type { StorageFactory } from './factory.js';
import { CONTRACT_CHANNELS, message, OpenStore, range, readAll, texts } from './helpers.js';

const policies = new ChannelPolicies(CONTRACT_CHANNELS);
const history = (storage: Storage, filters: string[], start: ReplayStart = { kind: 'earliest' }, untilSeq = storage.lastSeq) =>
  storage.history(historyQuery(filters, start, untilSeq, policies));

const retain = (topic: string, payload: string | Buffer, extra = {}) => message(topic, payload, { retain: true, ...extra });

/** Retained messages, history with its seeks, retention and expiry. */
export function messageContract(name: string, factory: StorageFactory): void {
  describe(`${name}: retained messages`, () => {
    let open: OpenStore;
    before(async () => (open = await OpenStore.open(factory)));
    after(() => open.destroy());

    test('one retained message per topic: a newer one replaces it, an empty payload clears it; count, bytes and size follow', async () => {
      const s = open.storage;
      await s.append(retain('r/a', 'first'), []);
      await s.append(retain('r/a', 'second!'), []);
      await s.append(retain('r/b', 'bee'), []);
      await s.append(message('r/c', 'not retained'), []);
      assert.equal(s.retainedCount, 2);
      assert.equal(s.retainedBytes, 7 + 3);
      assert.equal(s.retainedSize('r/a'), 7);
      assert.equal(s.retainedSize('r/c'), undefined);
      assert.deepEqual(texts((await readAll(s.retainedMatching('r/a'))).messages), ['second!']);
      await s.append(retain('r/b', ''), []);
      assert.equal(s.retainedCount, 1);
      assert.equal(s.retainedSize('r/b'), undefined);
      assert.deepEqual([...s.retainedTopics()], ['r/a']);
    });

    test('retainedMatching walks + and #; wildcards at the root do not match $ topics', async () => {
      const s = open.storage;
      for (const topic of ['w/x/1', 'w/y/1', 'w/x/2/deep', 'w', '$sys/w']) await s.append(retain(topic, topic), []);
      const match = async (filter: string) => texts((await readAll(s.retainedMatching(filter))).messages).sort();
      assert.deepEqual(await match('w/+/1'), ['w/x/1', 'w/y/1']);
      assert.deepEqual(await match('w/#'), ['w', 'w/x/1', 'w/x/2/deep', 'w/y/1']);
      assert.ok(!(await match('#')).includes('$sys/w'));
      assert.ok(!(await match('+/w')).includes('$sys/w'));
      assert.deepEqual(await match('$sys/#'), ['$sys/w']);
    });

    test('an expired retained message is not read', async () => {
      const s = open.storage;
      const expiresAt = Date.now() + 150;
      await s.append(retain('exp/r', 'soon gone', { expiresAt }), []);
      await s.append(retain('exp/keep', 'kept'), []);
      assert.deepEqual(texts((await readAll(s.retainedMatching('exp/#'))).messages).sort(), ['kept', 'soon gone']);
      while (Date.now() <= expiresAt) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(texts((await readAll(s.retainedMatching('exp/#'))).messages), ['kept']);
    });

    test('large retained messages are read in batches of at most 8 MiB, and all of them', async (t) => {
      if (factory.maxMessageBytes !== undefined && factory.maxMessageBytes <= 1024 * 1024) {
        return t.skip(`the engine's backend takes messages of at most ${factory.maxMessageBytes} bytes, framing included; this test writes 1 MiB payloads`);
      }
      const s = open.storage;
      const big = Buffer.alloc(1024 * 1024, 7);
      for (let i = 0; i < 20; i++) await s.append(retain(`big/${i}`, big), []);
      const { messages, largestBatch } = await readAll(s.retainedMatching('big/#'), 256);
      assert.equal(messages.length, 20);
      assert.ok(largestBatch <= 8, `a batch held ${largestBatch} MiB`);
      assert.ok(messages.every((m) => m.payload.equals(big)));
    });

    if (!factory.durable) return;

    test('retained messages, and clears, survive a restart', async () => {
      await open.storage.append(retain('keep/1', 'one'), []);
      await open.storage.append(retain('keep/2', 'two'), []);
      await open.storage.append(retain('keep/2', ''), []);
      const s = await open.restart();
      assert.deepEqual(texts((await readAll(s.retainedMatching('keep/#'))).messages), ['one']);
      assert.equal(s.retainedSize('keep/1'), 3);
      assert.equal(s.retainedSize('keep/2'), undefined);
    });
  });

  describe(`${name}: history, seek by seq and by time`, () => {
    let open: OpenStore;
    const seqs: number[] = [];
    let midTime = 0;
    before(async () => {
      open = await OpenStore.open(factory);
      const base = Date.now() - 60_000;
      for (let i = 0; i < 600; i++) {
        const m = message(i % 2 === 0 ? 'hist/even' : 'hist/odd', String(i), { publishedAt: base + i * 10 });
        await open.storage.append(m, []);
        seqs.push(m.seq!);
        if (i % 50 === 0) await open.storage.append(message('plain/x', `plain${i}`), []);
      }
      midTime = base + 300 * 10;
    });
    after(() => open.destroy());

    test('history holds only channels with retention, oldest first, read in batches of at most max', async () => {
      const { messages, largestBatch } = await readAll(history(open.storage, ['#']), 64);
      assert.deepEqual(texts(messages), range(600));
      assert.ok(largestBatch <= 64);
    });

    test('the filters choose the channels', async () => {
      const { messages } = await readAll(history(open.storage, ['hist/odd']));
      assert.deepEqual(texts(messages), range(600).filter((p) => Number(p) % 2 === 1));
    });

    test('seek by seq: the message with that seq and everything after, up to untilSeq', async () => {
      const { messages } = await readAll(history(open.storage, ['hist/#'], { kind: 'seq', seq: seqs[400]! }, seqs[449]!));
      assert.deepEqual(texts(messages), range(50, 400));
    });

    test('seek by time: messages published at or after it', async () => {
      const { messages } = await readAll(history(open.storage, ['hist/#'], { kind: 'time', ms: midTime }));
      assert.deepEqual(texts(messages), range(300, 300));
    });

    test('a message appended after untilSeq is not history', async () => {
      const until = open.storage.lastSeq;
      await open.storage.append(message('hist/even', 'late'), []);
      const { messages } = await readAll(history(open.storage, ['hist/#'], { kind: 'seq', seq: seqs[590]! }, until));
      assert.deepEqual(texts(messages), range(10, 590));
    });

    if (!factory.durable) return;

    test('history survives a restart: seek by seq and by time find the same messages', async () => {
      const s = await open.restart();
      assert.deepEqual(texts((await readAll(history(s, ['hist/#'], { kind: 'seq', seq: seqs[500]! }, seqs[599]!))).messages), range(100, 500));
      assert.deepEqual(texts((await readAll(history(s, ['hist/#'], { kind: 'time', ms: midTime }, seqs[599]!))).messages), range(300, 300));
    });
  });

  describe(`${name}: retention and expiry`, () => {
    let open: OpenStore;
    before(async () => (open = await OpenStore.open(factory)));
    after(() => open.destroy());

    test('maxAge: a message older than the channel keeps is not replayed', async () => {
      await open.storage.append(message('aged/a', 'old', { publishedAt: Date.now() - 2 * 3600 * 1000 }), []);
      await open.storage.append(message('aged/a', 'fresh'), []);
      assert.deepEqual(texts((await readAll(history(open.storage, ['aged/#']))).messages), ['fresh']);
    });

    test('maxBytes: of 4 MiB written, the oldest is gone, the newest kept, about the limit replayed', async () => {
      const chunk = Buffer.alloc(100 * 1024, 1);
      for (let i = 0; i < 40; i++) await open.storage.append(message('small/s', Buffer.concat([Buffer.from(`${String(i).padStart(2, '0')}:`), chunk])), []);
      const { messages } = await readAll(history(open.storage, ['small/#']));
      const names = messages.map((m) => m.payload.subarray(0, 2).toString());
      assert.ok(!names.includes('00'), 'the oldest is trimmed');
      assert.equal(names.at(-1), '39', 'the newest is kept');
      const bytes = messages.reduce((n, m) => n + m.payload.length, 0);
      assert.ok(bytes <= 2 * 1024 * 1024, `${bytes} bytes replayed for a limit of 1 MiB (engines may trim in blocks of up to 1 MiB)`);
    });

    test('an expired message is not replayed', async () => {
      await open.storage.append(message('hist/exp', 'expired', { expiresAt: Date.now() - 1 }), []);
      await open.storage.append(message('hist/exp', 'valid', { expiresAt: Date.now() + 60_000 }), []);
      assert.deepEqual(texts((await readAll(history(open.storage, ['hist/exp']))).messages), ['valid']);
    });
  });
}
