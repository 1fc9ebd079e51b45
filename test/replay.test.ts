import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import type { ChannelPolicy } from '../src/core/channels.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDirs } from './helpers/temp-dir.js';
import { EDDY_BIN, run, startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';
import { beforeMarker, isPublish } from './helpers/sentinel.js';

const clients: MqttClient[] = [];
let server: EddyServer | undefined;

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await server?.stop();
  server = undefined;
});

const HOUR: ChannelPolicy = { pattern: 'sensors/#', maxDeliveries: 5, retention: { maxAgeMs: 3_600_000 } };

async function start(engine: 'memory' | 'disk', channels: ChannelPolicy[] = [HOUR], dir?: string, extra: { segmentBytes?: number; checkpointIntervalMs?: number } = {}): Promise<EddyServer> {
  const storage = engine === 'disk' ? new DiskStorage({ dir: dir ?? tempDir(), fsync: { kind: 'always' }, logger: silentLogger, ...extra }) : undefined;
  server = await startBroker({ channels, ...(storage ? { storage } : {}) });
  return server;
}

const tempDir = tempDirs('eddy-replay-');

async function client(options: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectClient(server!.mqttUrl, { protocolVersion: 5, ...options });
  clients.push(c);
  return c;
}

async function replaying(filter: string, from: string, qos: 0 | 1 = 1): Promise<{ got: ReturnType<typeof collect>; granted: number; until: string | undefined }> {
  const c = await client();
  const got = collect(c);
  const suback = await new Promise<{ granted: number; until: string | undefined }>((resolve, reject) => {
    c.subscribe(filter, { qos, properties: { userProperties: { 'eddy-from': from } } }, (err, _granted, packet) => {
      // On a refusal mqtt.js hands back what was asked for; the SUBACK itself has the code.
      const suback = packet as { granted?: number[]; properties?: { reasonString?: string; userProperties?: Record<string, string> } } | undefined;
      if (!suback?.granted) return reject(err ?? new Error('no SUBACK'));
      if (suback.granted[0]! >= 0x80) assert.ok(suback.properties?.reasonString, 'a refusal says why');
      resolve({ granted: suback.granted[0]!, until: suback.properties?.userProperties?.['eddy-replay-until'] });
    });
  });
  return { got, ...suback };
}

const text = (ps: IPublishPacket[]): string[] => ps.map((p) => p.payload.toString());

/**
 * What a replaying subscriber got before a live marker published now on `topic`. Live messages
 * wait behind the history (the broker holds them until the replay is done), so the marker comes
 * after all of it, and after every earlier live message the publisher had acknowledged.
 */
async function beforeLiveMarker(pub: MqttClient, got: ReturnType<typeof collect>, topic: string, timeoutMs = 5000): Promise<IPublishPacket[]> {
  await pub.publishAsync(topic, 'marker', { qos: 1 });
  return beforeMarker(got.messages, isPublish(topic, 'marker'), timeoutMs);
}
const seqOf = (p: IPublishPacket): number => Number(p.properties?.userProperties?.['eddy-seq']);
const range = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

for (const engine of ['memory', 'disk'] as const) {
  describe(`replay (${engine})`, () => {
    it('eddy-from earliest sends history first, then live messages, each with eddy-seq', async () => {
      await start(engine);
      const pub = await client();
      for (const m of range('h', 0, 10)) await pub.publishAsync('sensors/fridge/level', m, { qos: m === 'h3' ? 0 : 1 });
      await pub.publishAsync('other/topic', 'not-history', { qos: 1 });
      const { got, until } = await replaying('sensors/#', 'earliest');
      assert.ok(until !== undefined && Number(until) >= 11, `SUBACK names the seam (${until})`);
      await got.take(10);
      for (const m of range('l', 0, 5)) await pub.publishAsync('sensors/fridge/level', m, { qos: 1 });
      const all = await got.take(15);
      assert.deepEqual(text(all), [...range('h', 0, 10), ...range('l', 0, 5)], 'QoS 0 history included, history then live, in order');
      const seqs = all.map(seqOf);
      assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `seqs increase: ${seqs}`);
      assert.equal((await beforeLiveMarker(pub, got, 'sensors/fridge/level')).length, 15, 'nothing twice');
    });

    for (const qos of [1, 0] as const) {
      it(`no gap and no duplicate at the seam while publishers keep publishing (subscriber QoS ${qos})`, async () => {
        await start(engine);
        const pub = await client();
        const total = 4000;
        let published = 0;
        const sending = (async () => {
          const inflight: Array<Promise<unknown>> = [];
          for (let i = 0; i < total; i++) {
            inflight.push(pub.publishAsync('sensors/stream', `s${i}`, { qos: 1 }).then(() => published++));
            if (inflight.length >= 50) await Promise.all(inflight.splice(0));
          }
          await Promise.all(inflight);
        })();
        // Subscribe once history is longer than one replay batch, with the stream still running.
        while (published < 1500) await sleep(5);
        const { got } = await replaying('sensors/stream', 'earliest', qos);
        await sending;
        const all = await got.take(total, 20_000);
        assert.deepEqual(text(all), range('s', 0, total));
        assert.equal((await beforeLiveMarker(pub, got, 'sensors/stream')).length, total);
      });
    }

    it('seq:N starts at that seq; time:T at that time', async () => {
      await start(engine);
      const pub = await client({ properties: { userProperties: { 'eddy-seq': 'true' } } });
      const seqs: number[] = [];
      const watcher = await client({ properties: { userProperties: { 'eddy-seq': 'on' } } });
      const watched = collect(watcher);
      await watcher.subscribeAsync('sensors/#', { qos: 1 });
      for (const m of range('q', 0, 6)) await pub.publishAsync('sensors/a', m, { qos: 1 });
      for (const p of await watched.take(6)) seqs.push(seqOf(p));
      assert.ok(seqs.every((s) => Number.isInteger(s)), 'eddy-seq on request at CONNECT');
      const fromSeq = await replaying('sensors/#', `seq:${seqs[3]}`);
      assert.deepEqual(text(await fromSeq.got.take(3)), ['q3', 'q4', 'q5']);
      await sleep(20);
      const cut = new Date().toISOString();
      await sleep(20);
      for (const m of range('t', 0, 3)) await pub.publishAsync('sensors/a', m, { qos: 1 });
      const fromTime = await replaying('sensors/#', `time:${cut}`);
      assert.deepEqual(text(await fromTime.got.take(3)), ['t0', 't1', 't2']);
      assert.equal((await beforeLiveMarker(pub, fromTime.got, 'sensors/a')).length, 3);
    });

    it('history honours retention age and message expiry; channels without retention replay nothing', async () => {
      await start(engine, [{ pattern: 'short/#', maxDeliveries: 5, retention: { maxAgeMs: 300 } }]);
      const pub = await client();
      await pub.publishAsync('short/t', 'old', { qos: 1 });
      await pub.publishAsync('short/t', 'expiring', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.publishAsync('plain/t', 'no-history', { qos: 1 });
      await sleep(1100);
      await pub.publishAsync('short/t', 'fresh', { qos: 1 });
      const { got } = await replaying('short/#', 'earliest');
      assert.deepEqual(text(await got.take(1)), ['fresh']);
      const plain = await replaying('plain/#', 'earliest');
      assert.equal(plain.granted, 1, 'allowed: it just has no history');
      assert.deepEqual(text(await beforeLiveMarker(pub, got, 'short/t')), ['fresh']);
      assert.deepEqual(text(await beforeLiveMarker(pub, plain.got, 'plain/t')), []);
    });

    it('a bad eddy-from, or one on a shared subscription, is refused with 0x83 and a reason', async () => {
      await start(engine);
      assert.equal((await replaying('sensors/#', 'yesterday')).granted, 0x83);
      assert.equal((await replaying('sensors/#', 'time:2026-13-45')).granted, 0x83);
      assert.equal((await replaying('$share/g/sensors/#', 'earliest')).granted, 0x83);
    });
  });
}

describe('retention on disk', () => {
  it('history survives a restart, and seq:N still finds its place', async () => {
    const dir = tempDir();
    await start('disk', [HOUR], dir);
    const pub = await client({ properties: { userProperties: { 'eddy-seq': 'true' } } });
    for (const m of range('r', 0, 20)) await pub.publishAsync('sensors/x', m, { qos: 1 });
    const first = await replaying('sensors/x', 'earliest');
    const seqs = (await first.got.take(20)).map(seqOf);
    await server!.stop();
    server = undefined;
    clients.splice(0);
    await start('disk', [HOUR], dir);
    const again = await replaying('sensors/x', `seq:${seqs[15]}`);
    assert.deepEqual(text(await again.got.take(5)), range('r', 15, 20));
  });

  it('maxBytes keeps the newest history and lets old segments go', async () => {
    const dir = tempDir();
    await start('disk', [{ pattern: 'logs/#', maxDeliveries: 5, retention: { maxBytes: 1024 * 1024 } }], dir, { segmentBytes: 256 * 1024, checkpointIntervalMs: 100 });
    const pub = await client();
    const payload = (i: number): string => `${i}:`.padEnd(2000, 'x');
    const total = 2000; // about 4 MB of history against a 1 MiB limit
    for (let i = 0; i < total; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => pub.publishAsync('logs/app', payload(i + j), { qos: 1 })));
    await sleep(400); // a checkpoint or two
    const logDir = path.join(dir, 'log');
    const remaining = fs.readdirSync(logDir).reduce((n, f) => n + fs.statSync(path.join(logDir, f)).size, 0);
    assert.ok(remaining < 3 * 1024 * 1024, `old segments deleted: ${remaining} bytes left of ~4 MB`);
    const { got } = await replaying('logs/#', 'earliest');
    const kept = (await beforeLiveMarker(pub, got, 'logs/app', 10_000)).map((p) => Number(p.payload.toString().split(':')[0]));
    assert.ok(kept.length > 300 && kept.length < 1200, `about 1 MiB of history kept (${kept.length} messages)`);
    assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => total - kept.length + i), 'the newest ones, contiguous');
  });

  it('eddy sub --from earliest prints history with its seq', async () => {
    await start('disk');
    const pub = await client();
    for (const m of ['a', 'b', 'c']) await pub.publishAsync('sensors/cli', m, { qos: 1 });
    const out = await run(process.execPath, [EDDY_BIN, 'sub', 'sensors/cli', '--url', server!.mqttUrl, '--from', 'earliest', '--count', '3', '--json']);
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as { payload: string; seq: number });
    assert.deepEqual(lines.map((l) => l.payload), ['a', 'b', 'c']);
    assert.ok(lines.every((l) => Number.isInteger(l.seq)));
    const bad = await run(process.execPath, [EDDY_BIN, 'sub', 'sensors/cli', '--url', server!.mqttUrl, '--from', 'soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--from must be earliest/);
  });
});
