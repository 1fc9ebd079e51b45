// The SDK row: confirmed `publish()` throughput of @eddy/client with many publishes in flight,
// against each broker in its own process, next to raw mqtt.js `publishAsync` at QoS 1 over MQTT 5
// with the same window, bare and with the same MQTT 5 properties the SDK sends (a user property
// `eddy-id` and a content type): what the SDK costs on top of the client it runs on.
//   node dist/bench/sdk.js [--messages 50000] [--window 100,1000] [--brokers eddy,eddy-disk,mosquitto]
// Aedes 1.2 does not speak MQTT 5, which the SDK needs, so it is not in this row.
import mqtt from 'mqtt';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { connect } from '@eddy/client';
import { BrokerUnavailable, killAllBrokersSync, startBroker, type BrokerName } from './brokers.js';
import { fmtInt, note } from './progress.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '50000' },
    window: { type: 'string', default: '100,1000' },
    brokers: { type: 'string', default: 'eddy,eddy-disk,mosquitto' },
  },
});
const N = Number(args.messages);
const WINDOWS = args.window!.split(',').map(Number);
const BROKERS = args.brokers!.split(',') as BrokerName[];
const PAYLOAD = { sensor: 'kitchen', level: 0.42, note: 'x'.repeat(60) }; // ~100 bytes as JSON

/** Keeps `window` publishes in flight until `n` are confirmed; returns msg/s. */
async function pump(n: number, window: number, publish: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await publish(next++);
  };
  await Promise.all(Array.from({ length: window }, worker));
  return n / ((performance.now() - started) / 1000);
}

async function measure(url: string, window: number): Promise<{ sdk: number; raw: number; rawProps: number }> {
  const bus = await connect(url);
  await pump(Math.min(5000, N), window, () => bus.publish('bench/sdk', PAYLOAD)); // warm-up
  const sdk = await pump(N, window, () => bus.publish('bench/sdk', PAYLOAD));
  await bus.close();
  const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const body = Buffer.from(JSON.stringify(PAYLOAD));
  await pump(Math.min(5000, N), window, () => client.publishAsync('bench/raw', body, { qos: 1 }));
  const raw = await pump(N, window, () => client.publishAsync('bench/raw', body, { qos: 1 }));
  const withProps = (): Promise<unknown> =>
    client.publishAsync('bench/raw', Buffer.from(JSON.stringify(PAYLOAD)), { qos: 1, properties: { userProperties: { 'eddy-id': randomUUID() }, contentType: 'application/json' } });
  await pump(Math.min(5000, N), window, withProps);
  const rawProps = await pump(N, window, withProps);
  await client.endAsync();
  return { sdk, raw, rawProps };
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const name of BROKERS) {
    let broker;
    try {
      broker = await startBroker(name, { cpuProf: false, profDir: '' });
    } catch (err) {
      if (err instanceof BrokerUnavailable) {
        note(`[${name}] not available: ${err.message}`);
        continue;
      }
      throw err;
    }
    try {
      for (const window of WINDOWS) {
        const { sdk, raw, rawProps } = await measure(broker.url, window);
        note(`[${name}] window ${window}: SDK publish() ${fmtInt(sdk)} msg/s, mqtt.js ${fmtInt(raw)} bare, ${fmtInt(rawProps)} with the same properties`);
        rows.push(`| ${name} | ${window} | ${fmtInt(sdk)} | ${fmtInt(raw)} | ${fmtInt(rawProps)} | ${(sdk / rawProps).toFixed(2)}x |`);
      }
    } finally {
      await broker.stop();
    }
  }
  process.stdout.write(
    `## SDK publish() confirmed throughput\n\n${fmtInt(N)} publishes of a ~100-byte JSON object, QoS 1 over MQTT 5, one client.\n\n` +
      `| broker | in flight | SDK publish() msg/s | mqtt.js bare msg/s | mqtt.js + same properties msg/s | SDK / mqtt.js + properties |\n| --- | ---: | ---: | ---: | ---: | ---: |\n${rows.join('\n')}\n`,
  );
}

process.once('exit', killAllBrokersSync);
main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  killAllBrokersSync();
  process.exit(1);
});
