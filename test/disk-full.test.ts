import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, sleep } from './helpers/mqtt.js';

/** A small tmpfs gives a real ENOSPC; mounting one needs root, so the suite skips without it. */
function mountSmallDisk(): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

const mountPoint = mountSmallDisk();

describe('disk full', { skip: mountPoint ? false : 'needs root to mount a small tmpfs' }, () => {
  let server: EddyServer;
  let pub: MqttClient;
  let sub: MqttClient;
  const filler = path.join(mountPoint ?? '', 'filler');

  before(async () => {
    server = await startBroker({ storage: new DiskStorage({ dir: path.join(mountPoint!, 'data'), fsync: { kind: 'always' }, logger: silentLogger }) });
    sub = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'full-sub', clean: true, properties: { sessionExpiryInterval: 3600 } });
    await sub.subscribeAsync('full/#', { qos: 1 });
    pub = await connectClient(server.mqttUrl, { protocolVersion: 5 });
  });

  after(async () => {
    pub?.end(true);
    sub?.end(true);
    await server?.stop();
    execFileSync('umount', [mountPoint!]);
    fs.rmSync(mountPoint!, { recursive: true, force: true });
  });

  test('a publish that cannot be stored gets 0x97 with a reason; the broker stays up, keeps what it confirmed, and resumes when space returns', async () => {
    const inbox = collect(sub);
    await pub.publishAsync('full/a', 'before', { qos: 1 });
    // Fill the disk to the last byte.
    try {
      fs.writeFileSync(filler, Buffer.alloc(1024 * 1024));
    } catch {
      /* ENOSPC once the disk is full: what we want */
    }
    const refused = await pub.publishAsync('full/a', Buffer.alloc(4096, 1), { qos: 1 }).then(
      () => undefined,
      (err: Error & { code?: number }) => err,
    );
    assert.ok(refused, 'the publish is refused');
    assert.equal(refused.code, 0x97);
    const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { status: string; refusedPublishes: Record<string, number> };
    assert.equal(health.status, 'ok');
    assert.equal(health.refusedPublishes['0x97'], 1);

    // MQTT 3.1.1 cannot be told "no": the broker closes the connection rather than confirm.
    const v4 = await connectClient(server.mqttUrl, { protocolVersion: 4, clientId: 'full-v4', clean: true });
    const closed = new Promise<void>((resolve) => v4.once('close', () => resolve()));
    let acked = false;
    v4.publish('full/a', Buffer.alloc(4096, 2), { qos: 1 }, (err) => (acked = !err));
    await closed;
    assert.equal(acked, false, 'no PUBACK for a message that was not stored');
    v4.end(true);

    // HTTP: 507 with a JSON body that says the disk is full.
    const http = await fetch(`${server.httpUrl}/v1/publish/full/a`, { method: 'POST', body: Buffer.alloc(4096, 3) });
    assert.equal(http.status, 507);
    const body = (await http.json()) as { error: string; message: string };
    assert.equal(body.error, 'storage_full');
    assert.match(body.message, /disk is full/);

    fs.rmSync(filler);
    await pub.publishAsync('full/a', 'after', { qos: 1 });
    const got = await inbox.take(2);
    assert.deepEqual(got.map((m) => m.payload.toString()), ['before', 'after'], 'the refused message is not delivered');
  });
});

const smallDisk = mountSmallDisk();

describe('a disk smaller than one log segment', { skip: smallDisk ? false : 'needs root to mount a small tmpfs' }, () => {
  let server: EddyServer;

  after(async () => {
    await server?.stop();
    execFileSync('umount', [smallDisk!]);
    fs.rmSync(smallDisk!, { recursive: true, force: true });
  });

  test('once what filled it has been delivered, space comes back and publishes are accepted again', async () => {
    // A 64 MiB segment on a 512 KiB disk: the one segment fills the disk, and it is the segment being written.
    const storage = new DiskStorage({ dir: path.join(smallDisk!, 'data'), fsync: { kind: 'always' }, logger: silentLogger, segmentBytes: 64 * 1024 * 1024, checkpointIntervalMs: 100 });
    server = await startBroker({ storage });
    const subOptions = { protocolVersion: 5 as const, clientId: 'small-sub', clean: false, properties: { sessionExpiryInterval: 3600 } };
    const sub = await connectClient(server.mqttUrl, subOptions);
    await sub.subscribeAsync('small/#', { qos: 1 });
    sub.end(true);
    const pub = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    let accepted = 0;
    let refused: (Error & { code?: number }) | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      await pub.publishAsync('small/a', Buffer.alloc(4096, i % 256), { qos: 1 }).then(
        () => accepted++,
        (err: Error & { code?: number }) => (refused = err),
      );
    }
    assert.equal(refused?.code, 0x97, 'the disk filled up');
    assert.ok(accepted > 10);
    // The subscriber takes everything that was accepted.
    const back = mqtt.connect(server.mqttUrl, { ...subOptions, reconnectPeriod: 0 });
    const inbox = collect(back);
    await inbox.take(accepted, 20_000);
    back.end(true);
    // Space comes back: the full segment is deleted once nothing needs it.
    let again = false;
    const deadline = Date.now() + 10_000;
    while (!again && Date.now() < deadline) {
      again = await pub.publishAsync('small/b', 'after', { qos: 1 }).then(() => true, () => false);
      if (!again) await sleep(200);
    }
    assert.equal(again, true, 'publishes are accepted again');
    pub.end(true);
  });
});
