import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelPolicies } from '../src/core/channels.js';
import { historyQuery } from '../src/core/replay.js';
import type { SessionRecord } from '../src/core/storage.js';
import type { JetStreamStorage } from '../src/storage/jetstream/jetstream-storage.js';
import { storageContract } from './storage-contract/contract.js';
import { appendTo, CONTRACT_CHANNELS, message, OpenStore, readAll, shiftAll } from './storage-contract/helpers.js';
import { jetstreamFactory, sharedCluster, stopSharedCluster } from './storage-contract/jetstream-engine.js';
import { lossyNatsServer } from './helpers/nats-cluster.js';

/** A todo before nats-server 2.10: this test lost one batch of 32 confirmed appends in 2 CI runs on 2.9.10. */
const lossyServer = lossyNatsServer();

after(stopSharedCluster);
storageContract('jetstream engine', jetstreamFactory);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Crash recovery of this engine beyond the contract's kill -9 of the Eddy side: the NATS node that
 * leads the message stream is SIGKILLed while appends run. Whatever `append` confirmed (PubAck from a
 * quorum) is in the history and in the queue afterwards, read by a new engine over the same streams.
 */
describe('jetstream engine: the message stream leader SIGKILLed during appends', () => {
  test('every confirmed append, before, during and after the kill, is in the history and in the queue after an engine restart', { todo: lossyServer }, async () => {
    const nats = await sharedCluster();
    const open = await OpenStore.open(jetstreamFactory);
    try {
      const record: SessionRecord = { clientId: 'kill-sub', expiryInterval: 3600, subscriptions: [{ filter: 'hist/kill/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] };
      await open.storage.saveSession(record);
      const queue = open.storage.queue('kill-sub');
      const status = await (open.storage as JetStreamStorage).clusterStatus();
      const leader = status!.streams.find((s) => s.name.endsWith('_MESSAGES') && 'leader' in s) as { leader?: string } | undefined;
      const victim = Number((leader?.leader ?? 'n0').slice(1));

      const confirmed: number[] = [];
      let refused = 0;
      let next = 0;
      let stop = false;
      const writer = (async () => {
        while (!stop) {
          const batch = Array.from({ length: 32 }, () => next++);
          const results = await Promise.allSettled(batch.map((n) => appendTo(open.storage, queue, message(`hist/kill/${n % 4}`, String(n)))));
          results.forEach((r, i) => (r.status === 'fulfilled' ? confirmed.push(batch[i]!) : refused++));
          if (results.some((r) => r.status === 'rejected')) await sleep(50); // no leader yet: do not spin
        }
      })();
      const waitConfirmed = async (count: number, ms: number): Promise<void> => {
        const deadline = Date.now() + ms;
        while (confirmed.length < count) {
          if (Date.now() > deadline) throw new Error(`only ${confirmed.length} of ${count} appends confirmed (${refused} refused)`);
          await sleep(20);
        }
      };
      await waitConfirmed(200, 20_000);
      await nats.kill(victim, 'SIGKILL');
      const atKill = confirmed.length;
      // The survivors elect a new stream leader; appends confirm again.
      await waitConfirmed(atKill + 300, 30_000);
      stop = true;
      await writer;
      await nats.restart(victim);

      const storage = await open.restart();
      const policies = new ChannelPolicies(CONTRACT_CHANNELS);
      const history = (await readAll(storage.history(historyQuery(['hist/kill/#'], { kind: 'earliest' }, storage.lastSeq, policies)))).messages.map((m) => Number(m.payload.toString()));
      const inHistory = new Set(history);
      const missing = confirmed.filter((n) => !inHistory.has(n));
      assert.equal(missing.length, 0, `${missing.length} of ${confirmed.length} confirmed appends missing from the history (first ${missing[0]})`);
      const queued = (await shiftAll(storage.queue('kill-sub'), Infinity, 20_000)).map((d) => Number(d.message.payload.toString()));
      const inQueue = new Set(queued);
      const lost = confirmed.filter((n) => !inQueue.has(n));
      assert.equal(lost.length, 0, `${lost.length} of ${confirmed.length} confirmed appends missing from the queue (first ${lost[0]})`);
      assert.ok(confirmed.length >= atKill + 300, 'appends went on after the kill');
    } finally {
      await open.destroy();
    }
  });
});
