/**
 * Flood: 100,000 QoS 1 messages from `mosquitto_pub -l` (one line per message) to a persistent
 * mqtt.js subscriber that reads slowly. Every message must arrive exactly once, in the order the
 * single publisher sent it.
 *
 * The subscriber is slowed inside mqtt.js's handleMessage hook, which it calls before sending the
 * PUBACK and before reading the next packet: a 20 ms stall every 1000 messages and one 1.5 s stall
 * at message 20,000, so the broker's in-flight window fills and its session queue builds up.
 *
 * mosquitto_pub 2.0.11 in -l mode has a bug with more than 65,535 lines queued: at end of input it
 * remembers the last message id (which wraps at 65,535) and disconnects at the first PUBACK with
 * that id, so with 100,000 lines written at once it quits after ~34,500 of them, exit status 0
 * (the same happens against mosquitto itself). So stdin is fed in step with the subscriber: at
 * most 30,000 lines ahead of what it received, which keeps every message id unambiguous and still
 * leaves the broker up to 30,000 messages to hold for the slow reader.
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { onPath } from './helpers/path.js';
import { destroyClient, killAllBrokers, launchBroker, openClient, probeDurableStorage, sleep, type CrashBroker } from './crash/harness.js';

const TOTAL = 100_000;
/** Lines written to mosquitto_pub ahead of what the subscriber received (see above). */
const AHEAD = 30_000;
const TOPIC = 'flood/t';


const skip = onPath('mosquitto_pub') ? false : 'mosquitto_pub not installed (Debian package mosquitto-clients)';
const durableSkip = skip || ((await probeDurableStorage()) ? false : 'eddy broker --data-dir warns that durable storage is not available');

interface Finished {
  /** Lines written to its stdin. */
  fed: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

describe('flood: 100,000 QoS 1 messages from mosquitto_pub -l to a slow persistent subscriber', { skip }, () => {
  const children = new Set<ChildProcess>();
  const clients = new Set<MqttClient>();
  const servers: EddyServer[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const client of clients) destroyClient(client);
    await Promise.all(servers.map((s) => s.stop().catch(() => {})));
    await killAllBrokers();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /**
   * Runs mosquitto_pub -l with `TOTAL` lines "seq N" on stdin, at most AHEAD lines ahead of
   * `received()`. Gives up feeding (ends stdin early) when `gone()` or nothing arrives for 10 s.
   */
  function publish(host: string, port: number, version: '5' | '311', received: () => number, gone: () => boolean): Promise<Finished> {
    const child = spawn('mosquitto_pub', ['-V', version, '-h', host, '-p', String(port), '-i', `flood-pub-v${version}`, '-q', '1', '-t', TOPIC, '-l'], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    children.add(child);
    let stderr = '';
    let fed = 0;
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const finished = new Promise<Finished>((resolve) =>
      child.once('close', (code, signal) => {
        children.delete(child);
        resolve({ fed, code, signal, stderr });
      }),
    );
    child.stdin.on('error', () => {}); // reported through the exit status
    let exited = false;
    void finished.then(() => (exited = true));
    void (async () => {
      const CHUNK = 1000;
      let lastReceived = -1;
      let lastProgress = Date.now();
      for (let n = 0; n < TOTAL && !exited; ) {
        const got = received();
        if (got !== lastReceived) {
          lastReceived = got;
          lastProgress = Date.now();
        }
        if (n + CHUNK - got > AHEAD) {
          if (gone() || Date.now() - lastProgress > 10_000) break; // the assertions will tell
          await sleep(5);
          continue;
        }
        let chunk = '';
        for (const end = Math.min(n + CHUNK, TOTAL); n < end; n++) chunk += `seq ${n}\n`;
        fed = n;
        if (!child.stdin.write(chunk)) await new Promise((r) => child.stdin.once('drain', r));
      }
      child.stdin.end();
    })();
    return finished;
  }

  /** `brokerLog` adds the broker's own account to a failure (CLI broker: its stderr). */
  async function flood(t: TestContext, host: string, port: number, version: '5' | '311', brokerLog: () => string = () => ''): Promise<void> {
    const started = Date.now();
    const seqs: number[] = [];
    let strays = 0;
    let stalls = 0;
    /** What had arrived when the marker did: everything the broker sent for the flood comes before it. */
    let atMarker: { seqs: number; strays: number } | undefined;
    let lost: string | undefined;
    const sub = await openClient(`mqtt://${host}:${port}`, {
      clientId: `flood-sub-v${version}`,
      protocolVersion: 5,
      clean: true,
      properties: { sessionExpiryInterval: 3600 },
    }, 5000, (client) => {
      clients.add(client);
      client.on('disconnect', (packet) => (lost ??= `broker sent DISCONNECT (reason 0x${(packet.reasonCode ?? 0).toString(16)}${packet.properties?.reasonString ? ` "${packet.properties.reasonString}"` : ''})`));
      client.on('close', () => (lost ??= 'connection closed'));
      // Called for each QoS 1 message before its PUBACK; mqtt.js reads the next packet only after the callback.
      client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void): void => {
        if (packet.payload.toString() === 'marker') {
          atMarker ??= { seqs: seqs.length, strays };
          return callback();
        }
        const m = /^seq (\d+)$/.exec(packet.payload.toString());
        if (m) seqs.push(Number(m[1]));
        else strays++;
        const count = seqs.length + strays;
        if (count === 20_000) {
          stalls++;
          setTimeout(callback, 1500);
        } else if (count % 1000 === 0) {
          stalls++;
          setTimeout(callback, 20);
        } else callback();
      };
    });
    assert.ok(sub.connack, `subscriber could not connect: ${sub.error?.message}`);
    const granted = await sub.client.subscribeAsync(TOPIC, { qos: 1 });
    assert.equal(granted[0]?.qos, 1);

    const pub = await publish(host, port, version, () => seqs.length + strays, () => lost !== undefined);
    const published = Date.now();
    assert.equal(pub.code, 0, `mosquitto_pub exited with ${pub.code ?? pub.signal}: ${pub.stderr}`);

    // Wait for the rest, failing on a stall of 10 s rather than hanging.
    let lastCount = -1;
    let lastProgress = Date.now();
    while (seqs.length + strays < TOTAL && lost === undefined) {
      if (seqs.length !== lastCount) {
        lastCount = seqs.length;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > 10_000) break;
      await sleep(50);
    }
    // Extra deliveries (duplicates) would come before a marker published now: mosquitto_pub got a
    // PUBACK for every line before it exited, and the session queue is first in, first out.
    if (lost === undefined) {
      const marker = await openClient(`mqtt://${host}:${port}`, { clientId: `flood-marker-v${version}`, protocolVersion: 5, clean: true });
      clients.add(marker.client);
      assert.ok(marker.connack, `marker publisher could not connect: ${marker.error?.message}`);
      await marker.client.publishAsync(TOPIC, 'marker', { qos: 1 });
      const deadline = Date.now() + 15_000;
      while (atMarker === undefined && lost === undefined && Date.now() < deadline) await sleep(20);
      destroyClient(marker.client);
      clients.delete(marker.client);
    }
    t.diagnostic(
      `MQTT ${version === '5' ? '5' : '3.1.1'} publisher: ${pub.fed} lines fed, mosquitto_pub done after ${published - started} ms; ` +
        `${seqs.length} received in ${Date.now() - started} ms with ${stalls} subscriber stalls`,
    );

    if (lost !== undefined) {
      assert.fail(`the subscriber lost its connection after ${seqs.length} messages: ${lost}${brokerLog() ? `\nbroker log:\n${brokerLog()}` : ''}`);
    }
    assert.ok(atMarker, `the marker published after the flood never arrived (${seqs.length} received)`);
    assert.equal(atMarker.strays, 0, 'received payloads that were never published');
    seqs.length = atMarker.seqs; // what came after the marker (nothing should) is not the flood's
    const firstOff = seqs.findIndex((n, i) => n !== i);
    if (firstOff !== -1) {
      assert.fail(`delivery #${firstOff} is seq ${seqs[firstOff]}, expected ${firstOff}; around it: ${seqs.slice(Math.max(0, firstOff - 3), firstOff + 5).join(', ')}`);
    }
    assert.equal(seqs.length, TOTAL, `${seqs.length} of ${TOTAL} messages delivered (in order so far); the last was seq ${seqs.at(-1)}`);
    await sub.client.endAsync();
    clients.delete(sub.client);
  }

  test('in-process broker (memory), MQTT 5 publisher', { timeout: 60_000 }, async (t) => {
    const server = await startBroker();
    servers.push(server);
    try {
      await flood(t, server.mqtt.host, server.mqtt.port, '5');
    } finally {
      servers.splice(servers.indexOf(server), 1);
      await server.stop();
    }
  });

  test('eddy broker --data-dir (fsync always), MQTT 3.1.1 publisher', { timeout: 60_000, skip: durableSkip }, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'eddy-flood-'));
    dirs.push(dir);
    const broker: CrashBroker = await launchBroker(['--data-dir', path.join(dir, 'data'), '--log-level', 'warn']);
    try {
      // Warnings and errors the broker logged, for the failure message.
      const brokerLog = (): string => broker.stderr().split('\n').filter((l) => /"level":[4-6]0/.test(l)).slice(-5).join('\n');
      await flood(t, broker.host, broker.mqttPort, '311', brokerLog);
    } finally {
      const exit = await broker.stop();
      if (exit.forced) t.diagnostic('broker ignored SIGTERM for 5 s and was killed');
    }
  });
});
