// The crash test's writer: opens an engine over a store (see StoreUnderTest.child), appends
// messages routed to a persistent session's queue and a group's queue, as fast as the engine
// confirms them, and prints each confirmed one ("<n> <seq>") until it is killed. Meanwhile it
// consumes the session's queue as a subscriber would (in flight, then acknowledged: "ack <n>"),
// so that queue positions move and are logged; the group's queue is left to fill.
import { pathToFileURL } from 'node:url';
import type { Storage } from '../../src/core/storage.js';
import { contractContext, message } from './helpers.js';
import { CRASH_GROUP, CRASH_SESSION, crashSessionRecord } from './crash.js';

const [module, argument, from] = process.argv.slice(2);
const { openEngine } = (await import(pathToFileURL(module!).href)) as { openEngine: (argument: string) => Storage };
const storage = openEngine(argument!);
await storage.open(contractContext());
await storage.saveSession(crashSessionRecord);
await storage.saveGroup(CRASH_GROUP);
const queue = storage.queue(CRASH_SESSION);
const group = storage.groupQueue(CRASH_GROUP);
process.stdout.write('ready\n');

let packetId = 0;
setInterval(() => {
  for (let i = 0; i < 40; i++) {
    const d = queue.shift();
    if (!d) break;
    const id = (packetId = (packetId % 65535) + 1);
    queue.setInflight({ ...d, packetId: id, released: false });
    // Acknowledged at once: what is printed is no longer owed.
    queue.deleteInflight(id);
    process.stdout.write(`ack ${d.message.payload.toString()}\n`);
  }
}, 5);

let next = Number(from);
const inflight = new Set<Promise<void>>();
for (;;) {
  while (inflight.size < 64) {
    const n = next++;
    const m = message('crash/t', String(n), { retain: n % 10 === 0 });
    const stored = Promise.resolve(storage.append(m, [{ queueId: queue.id, qos: 1, retain: false }, { queueId: group.id, qos: 1, retain: false }])).then(() => {
      queue.push({ message: m, qos: 1, retain: false }, true);
      group.push({ message: m, qos: 1, retain: false }, true);
      process.stdout.write(`${n} ${m.seq}\n`);
      inflight.delete(stored);
    });
    inflight.add(stored);
  }
  await Promise.race(inflight);
}
