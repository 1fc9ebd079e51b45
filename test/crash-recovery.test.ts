/**
 * kill -9 safety of `eddy broker --data-dir`: a QoS 1 publish is PUBACKed only once durable, so
 * after SIGKILL at any instant and a restart on the same directory every confirmed message must
 * reach every durable subscriber (duplicates allowed, counted). Short form of the harness in
 * test/crash/harness.ts; the long form runs by hand:
 *
 *   node dist/test/crash/harness.js --rounds 200 --clients 4
 *
 * A failing run prints its seed; EDDY_CRASH_SEED=<seed> replays its kill moments.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import {
  destroyClient,
  durableSessionOptions,
  endClient,
  killAllBrokers,
  launchBroker,
  openClient,
  runCrashRounds,
  sleep,
  summarize,
  type CrashBroker,
  type CrashReport,
} from './crash/harness.js';

const seed = process.env.EDDY_CRASH_SEED ? Number(process.env.EDDY_CRASH_SEED) : undefined;

/** Every way the report breaks the durability contract, one line each. */
function violations(report: CrashReport): string[] {
  const out: string[] = [];
  for (const s of report.subscribers) {
    const who = `${s.clientId} (${s.kind}, MQTT ${s.protocolVersion === 5 ? '5' : '3.1.1'})`;
    if (s.missing > 0) out.push(`${who} is missing ${s.missing} of ${report.confirmed} confirmed messages, e.g. publisher:n@round ${s.missingSamples.join(', ')}`);
    if (s.sessionLost > 0) out.push(`${who} found no session on ${s.sessionLost} reconnect(s) with clean start false`);
    if (s.unexpected > 0) out.push(`${who} received ${s.unexpected} messages that were never published`);
  }
  for (const g of report.groups) {
    if (g.missing > 0) out.push(`consumer group ${g.group} is missing ${g.missing} of ${report.confirmed} confirmed messages, e.g. ${g.missingSamples.join(', ')}`);
  }
  for (const e of report.errors) out.push(`harness: ${e}`);
  return out;
}

describe('crash recovery: SIGKILL and restart on the same --data-dir', () => {
  const dirs: string[] = [];
  const dataDir = async (): Promise<string> => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'eddy-crash-test-'));
    dirs.push(dir);
    return path.join(dir, 'data');
  };
  after(async () => {
    await killAllBrokers();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  test('every confirmed QoS 1 message reaches every durable subscriber and consumer group across 6 random kills', { timeout: 90_000 }, async (t) => {
    const report = await runCrashRounds({ rounds: 6, publishers: 3, subscribers: 4, groupMembers: 2, dataDir: await dataDir(), seed });
    for (const line of summarize(report).split('\n')) t.diagnostic(line);
    assert.ok(report.confirmed > 0, `no publish was confirmed at all (seed ${report.seed}): ${report.errors.join('; ')}`);
    const problems = violations(report);
    if (problems.length > 0) {
      assert.fail(`${problems.length} durability violation(s) (seed ${report.seed}${report.durableStorage ? '' : ', broker warned that durable storage is not available'}):\n${problems.join('\n')}`);
    }
  });

  test('the harness reports the losses of a broker that keeps nothing (--memory, negative control)', { timeout: 60_000 }, async (t) => {
    const report = await runCrashRounds({ rounds: 1, publishers: 2, subscribers: 2, storageArgs: ['--memory'], quietMs: 500, earlyKillChance: 0, killDelayMs: [100, 150], seed });
    t.diagnostic(summarize(report).split('\n')[0]!);
    assert.ok(report.confirmed > 0, `nothing confirmed: ${report.errors.join('; ')}`);
    assert.equal(report.ok, false, 'a memory broker killed with SIGKILL cannot have kept its messages');
    const offline = report.subscribers.find((s) => s.kind === 'offline')!;
    assert.equal(offline.missing, report.confirmed, 'the offline subscriber of a memory broker gets nothing after the kill');
  });

  test('persistent sessions survive kill -9 right after their SUBACK', { timeout: 60_000 }, async (t) => {
    // A client that got SUBACK on a persistent session counts on that subscription; the crash
    // rounds depend on it too (their subscribers subscribe just before the first kill).
    const SESSIONS = 20;
    const ATTEMPTS = 2;
    const failures: string[] = [];
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const args = ['--data-dir', await dataDir(), '--log-level', 'warn'];
      const clients: MqttClient[] = [];
      let broker: CrashBroker | undefined;
      try {
        broker = await launchBroker(args);
        const version = (i: number): 4 | 5 => (i % 2 === 0 ? 5 : 4);
        for (let i = 0; i < SESSIONS; i++) {
          const s = await openClient(broker.url, durableSessionOptions(`suback-${i}`, version(i), true));
          clients.push(s.client);
          assert.ok(s.connack, `session ${i} could not connect: ${s.error?.message}`);
          const granted = await s.client.subscribeAsync('suback/#', { qos: 1 });
          assert.equal(granted[0]?.qos, 1);
        }
        const exit = await broker.kill(); // right after the last SUBACK
        assert.equal(exit.signal, 'SIGKILL');
        clients.splice(0).forEach(destroyClient);

        broker = await launchBroker(args);
        const present: boolean[] = [];
        const got = new Set<number>();
        for (let i = 0; i < SESSIONS; i++) {
          const s = await openClient(broker.url, durableSessionOptions(`suback-${i}`, version(i), false), 5000, (c) =>
            c.on('packetreceive', (p: Packet) => {
              if (p.cmd === 'publish') got.add(i);
            }),
          );
          clients.push(s.client);
          assert.ok(s.connack, `session ${i} could not reconnect: ${s.error?.message}`);
          present.push(s.connack.sessionPresent);
        }
        const pub = await openClient(broker.url, { clientId: 'suback-pub', clean: true, protocolVersion: 5 });
        clients.push(pub.client);
        await pub.client.publishAsync('suback/t', 'after the restart', { qos: 1 });
        const deadline = Date.now() + 3000;
        while (got.size < SESSIONS && Date.now() < deadline) await sleep(20);
        const lost = present.flatMap((p, i) => (p && got.has(i) ? [] : [`${i}${p ? ' (present, no message)' : ''}`]));
        if (lost.length > 0) failures.push(`attempt ${attempt}: ${lost.length} of ${SESSIONS} sessions lost: ${lost.join(', ')}`);
      } finally {
        clients.forEach(destroyClient);
        await broker?.kill();
      }
    }
    t.diagnostic(failures.length === 0 ? `${ATTEMPTS} x ${SESSIONS} sessions all survived` : failures.join('; '));
    if (failures.length > 0) {
      assert.fail(`SUBACKed persistent sessions lost by kill -9 (even ids MQTT 5, odd MQTT 3.1.1; "present, no message" = session kept, subscription lost):\n${failures.join('\n')}`);
    }
  });

  for (const version of [5, 4] as const) {
    const label = version === 5 ? 'MQTT 5 (session expiry 3600)' : 'MQTT 3.1.1 (clean session false)';
    test(`1000 confirmed QoS 1 messages to an offline ${label} subscriber survive kill -9`, { timeout: 60_000 }, async (t) => {
      const N = 1000;
      const clientId = `focus-sub-v${version}`;
      const clients: MqttClient[] = [];
      let broker: CrashBroker | undefined;
      const args = ['--data-dir', await dataDir(), '--log-level', 'warn'];
      try {
        broker = await launchBroker(args);
        const sub = await openClient(broker.url, durableSessionOptions(clientId, version, true));
        clients.push(sub.client);
        assert.ok(sub.connack, `subscriber could not connect: ${sub.error?.message}`);
        const granted = await sub.client.subscribeAsync('focus/#', { qos: 1 });
        assert.equal(granted[0]?.qos, 1);
        await endClient(sub.client);

        const pub = await openClient(broker.url, { clientId: 'focus-pub', clean: true, protocolVersion: version });
        clients.push(pub.client);
        assert.ok(pub.connack, `publisher could not connect: ${pub.error?.message}`);
        // Up to 50 in flight; every one of them must be PUBACKed.
        const sent: Array<Promise<unknown>> = [];
        for (let n = 0; n < N; n++) {
          sent.push(pub.client.publishAsync('focus/t', `m ${n}`, { qos: 1 }));
          if (sent.length % 50 === 0) await Promise.all(sent.slice(-50));
        }
        await Promise.all(sent);

        const exit = await broker.kill();
        assert.equal(exit.signal, 'SIGKILL', `broker exited with ${JSON.stringify(exit)} before the kill`);
        destroyClient(pub.client);

        broker = await launchBroker(args);
        t.diagnostic(`restart ready in ${broker.readyMs} ms`);
        const counts = new Map<number, number>();
        let strays = 0;
        let last = Date.now();
        /** Strays when the marker came: everything the restarted broker sent the session comes before it. */
        let straysAtMarker: number | undefined;
        const again = await openClient(broker.url, durableSessionOptions(clientId, version, false), 5000, (c) =>
          c.on('packetreceive', (packet: Packet) => {
            if (packet.cmd !== 'publish') return;
            last = Date.now();
            if ((packet as IPublishPacket).payload.toString() === 'marker') {
              straysAtMarker ??= strays;
              return;
            }
            const m = /^m (\d+)$/.exec((packet as IPublishPacket).payload.toString());
            if (m) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
            else strays++;
          }),
        );
        clients.push(again.client);
        assert.ok(again.connack, `subscriber could not reconnect: ${again.error?.message}`);
        const deadline = Date.now() + 20_000;
        while (counts.size < N && Date.now() - last < 2000 && Date.now() < deadline) await sleep(20);
        // Late duplicates or strays would come before a marker published to the session now: it
        // queues behind everything the session still holds.
        const marker = await openClient(broker.url, { clientId: 'focus-marker', clean: true, protocolVersion: 5 });
        clients.push(marker.client);
        assert.ok(marker.connack, `marker publisher could not connect: ${marker.error?.message}`);
        await marker.client.publishAsync('focus/marker', 'marker', { qos: 1 });
        const markerDeadline = Date.now() + 10_000;
        while (straysAtMarker === undefined && Date.now() < markerDeadline) await sleep(20);
        const missing = Array.from({ length: N }, (_, n) => n).filter((n) => !counts.has(n));
        const duplicates = [...counts.values()].reduce((a, c) => a + c - 1, 0);
        t.diagnostic(`received ${counts.size}/${N} distinct, ${duplicates} duplicates, session present ${again.connack.sessionPresent}`);
        assert.equal(
          missing.length,
          0,
          `${missing.length} of ${N} confirmed messages lost across kill -9 (session present: ${again.connack.sessionPresent}), e.g. ${missing.slice(0, 10).join(', ')}`,
        );
        assert.equal(again.connack.sessionPresent, true, 'the durable session must survive kill -9');
        assert.notEqual(straysAtMarker, undefined, 'the marker published after the restart reached the subscriber');
        assert.equal(straysAtMarker, 0, 'received messages that were never published');
      } finally {
        for (const c of clients) destroyClient(c);
        await broker?.kill();
      }
    });
  }
});
