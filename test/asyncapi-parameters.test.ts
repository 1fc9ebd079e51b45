import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import type { EddyServer } from '../src/server.js';
import { startBroker } from './helpers/broker.js';
import { collect, connectClient, publishWithAck } from './helpers/mqtt.js';

// signup.yaml declares fridge/{fridgeId}/level with fridgeId in [kitchen, garage]: a topic of that
// shape with another fridgeId is an invalid message of that channel, not an undeclared channel.

const root = fileURLToPath(new URL('../../', import.meta.url));
const SIGNUP = `${root}test/fixtures/asyncapi/signup.yaml`;
const REASON = 'fridge/attic/level: parameter fridgeId must be one of kitchen, garage';
const LEVEL = JSON.stringify({ level: 0.5 });

const clients: MqttClient[] = [];
let server: EddyServer | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await server?.stop();
  server = undefined;
});

async function client(protocolVersion: 4 | 5): Promise<MqttClient> {
  const c = await connectClient(server!.mqttUrl, { protocolVersion });
  clients.push(c);
  return c;
}

/** A subscriber to the fridges and one to the invalid-message letters. */
async function watchers(): Promise<{ fridges: ReturnType<typeof collect>; invalid: ReturnType<typeof collect> }> {
  const a = await client(5);
  const fridges = collect(a);
  await a.subscribeAsync('fridge/#', { qos: 1 });
  const b = await client(5);
  const invalid = collect(b);
  await b.subscribeAsync('$DLQ/invalid/#', { qos: 1 });
  return { fridges, invalid };
}

describe('channel parameters are enforced', () => {
  it('MQTT 5: a parameter outside its enum gets PUBACK 0x99 naming the parameter and its values; QoS 0 goes to $DLQ/invalid; neither is delivered nor listed as observed', async () => {
    server = await startBroker({ asyncapi: [SIGNUP] });
    const { fridges, invalid } = await watchers();
    const pub = await client(5);
    assert.equal((await publishWithAck(pub, 'fridge/kitchen/level', LEVEL)).reasonCode, 0);
    assert.deepEqual(await publishWithAck(pub, 'fridge/attic/level', '{"level":0.1}'), { reasonCode: 0x99, reasonString: REASON });
    await pub.publishAsync('fridge/attic/level', '{"level":0.2}', { qos: 0 });
    assert.equal((await publishWithAck(pub, 'fridge/garage/level', LEVEL)).reasonCode, 0, 'the sentinel');
    assert.deepEqual((await fridges.take(2)).map((m) => m.topic), ['fridge/kitchen/level', 'fridge/garage/level']);
    const [letter] = await invalid.take(1);
    assert.equal(letter!.topic, '$DLQ/invalid/fridge/attic/level');
    assert.equal(letter!.payload.toString(), '{"level":0.2}', 'the QoS 0 publish, which cannot be refused; the refused QoS 1 one, published before it, is not kept: its publisher was told');
    assert.equal(letter!.properties?.userProperties?.['eddy-dlq-reason'], REASON);
    assert.equal(fridges.messages.length, 2, 'nothing on fridge/attic/level was delivered');
    await pub.publishAsync('sensors/temp', '{"celsius":20}', { qos: 1 });
    const live = (await (await fetch(`${server.httpUrl}/asyncapi.json`)).json()) as { channels: Record<string, { address: string }> };
    const addresses = Object.values(live.channels).map((c) => c.address);
    assert.ok(addresses.includes('sensors/temp'), 'undeclared traffic is observed');
    assert.ok(!addresses.includes('fridge/attic/level'), 'a refused topic is not an observed channel');
  });

  it('MQTT 3.1.1: a parameter outside its enum is acknowledged, not delivered, and kept on $DLQ/invalid/<topic> with the reason', async () => {
    server = await startBroker({ asyncapi: [SIGNUP] });
    const { fridges, invalid } = await watchers();
    const pub = await client(4);
    await pub.publishAsync('fridge/attic/level', LEVEL, { qos: 1 });
    await pub.publishAsync('fridge/kitchen/level', LEVEL, { qos: 1 });
    const [letter] = await invalid.take(1);
    assert.equal(letter!.topic, '$DLQ/invalid/fridge/attic/level');
    assert.equal(letter!.properties?.userProperties?.['eddy-dlq-reason'], REASON);
    assert.equal(letter!.properties?.userProperties?.['eddy-original-topic'], 'fridge/attic/level');
    assert.deepEqual((await fridges.take(1)).map((m) => m.topic), ['fridge/kitchen/level']);
    assert.equal(fridges.messages.length, 1, 'the invalid one was not delivered');
  });

  it('HTTP: 422 invalid_parameter with the reason; --strict refuses undeclared topics as before and the parameter as invalid', async () => {
    for (const strict of [false, true]) {
      server = await startBroker({ asyncapi: [SIGNUP], strict });
      const post = (topic: string): Promise<Response> => fetch(`${server!.httpUrl}/v1/publish/${topic}`, { method: 'POST', body: LEVEL, headers: { 'content-type': 'application/json' } });
      const attic = await post('fridge/attic/level');
      assert.equal(attic.status, 422);
      assert.deepEqual(await attic.json(), { error: 'invalid_parameter', message: REASON, errors: [REASON] });
      assert.equal((await post('fridge/garage/level')).status, 202);
      const undeclared = await post('fridge/attic/temperature');
      if (strict) {
        assert.equal(undeclared.status, 422);
        assert.equal(((await undeclared.json()) as { error: string }).error, 'undeclared_channel');
        const pub = await client(5);
        assert.equal((await publishWithAck(pub, 'fridge/attic/temperature', LEVEL)).reasonCode, 0x90, 'undeclared under --strict: topic name invalid');
        assert.equal((await publishWithAck(pub, 'fridge/attic/level', LEVEL)).reasonCode, 0x99, 'the parameter under --strict: invalid, as without');
      } else {
        assert.equal(undeclared.status, 202, 'without --strict an undeclared topic passes');
      }
      await server.stop();
      server = undefined;
    }
  });
});
