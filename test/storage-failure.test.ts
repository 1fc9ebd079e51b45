import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from '../src/storage/memory.js';
import type { SessionRecord } from '../src/core/storage.js';
import { startBroker } from './helpers/broker.js';
import { connectClient } from './helpers/mqtt.js';

/** Storage that cannot record sessions, as a full or failing disk would. */
class FailingSessionStorage extends MemoryStorage {
  failures = 0;
  override saveSession(_record: SessionRecord): Promise<void> {
    this.failures++;
    return Promise.reject(new Error('disk on fire'));
  }
}

test('a session change that cannot be stored is logged, not fatal: the broker keeps serving', async () => {
  const storage = new FailingSessionStorage();
  const server = await startBroker({ storage });
  try {
    const c = await connectClient(server.mqttUrl, { protocolVersion: 5, clientId: 'persisted', clean: true, properties: { sessionExpiryInterval: 60 } });
    await c.endAsync(); // connect and disconnect each store the session record
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(storage.failures >= 2, `failures: ${storage.failures}`);
    const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { status: string };
    assert.equal(health.status, 'ok');
    const again = await connectClient(server.mqttUrl, { protocolVersion: 5 });
    await again.endAsync();
  } finally {
    await server.stop();
  }
});
