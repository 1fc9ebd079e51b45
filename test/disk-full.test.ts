import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { DiskStorage } from '../src/storage/disk/disk-storage.js';
import { silentLogger } from '../src/util/logger.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient } from './helpers/mqtt.js';

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
