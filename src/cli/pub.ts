import { readFileSync } from 'node:fs';
import type { IClientPublishOptions } from 'mqtt';
import { ConfigError, EddyError } from '../util/errors.js';
import { parseFlags, parseHeaders, parseInteger, parseQos } from './args.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectionTarget } from './connection-flags.js';
import { DEFAULT_URL, connectCli, describeReason, type CliConnection } from './client.js';

export const PUB_HELP = `Usage: eddy pub CHANNEL [PAYLOAD] [options]

Publishes PAYLOAD (or standard input when PAYLOAD is omitted) to CHANNEL over MQTT 5.
Exits 0 once the broker confirmed every message (QoS 1/2) or handled it (QoS 0), 1 if it refused
one; the error names the broker's reason code and reason string.

Options:
  --url URL              broker (default $EDDY_URL or mqtt://127.0.0.1:1883; mqtts://, ws://, wss:// too)
${CONNECTION_HELP}
  --qos 0|1|2            quality of service (default 1)
  --header k=v           user property (repeatable)
  --content-type TYPE    MQTT 5 content type
  --retain               store as the channel's retained message
  --count N              publish the message N times (default 1)
  --client-id ID         client identifier (default: assigned by the broker)
  --json                 print one JSON line per confirmed message
`;

const FLAGS = {
  url: { type: 'string' },
  ...CONNECTION_FLAGS,
  qos: { type: 'string' },
  header: { type: 'string', multiple: true },
  'content-type': { type: 'string' },
  retain: { type: 'boolean' },
  count: { type: 'string' },
  'client-id': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runPub(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy pub');
  if (values.help) {
    process.stdout.write(PUB_HELP);
    return 0;
  }
  const [channel, payloadArg, extra] = positionals;
  if (!channel) throw new ConfigError('missing CHANNEL (see eddy pub --help)', { command: 'eddy pub' });
  if (extra !== undefined) throw new ConfigError(`unexpected argument "${extra}"`, { command: 'eddy pub' });
  const qos = parseQos(values.qos) ?? 1;
  const count = parseInteger(values.count, '--count', 1, 100_000_000) ?? 1;
  const headers = parseHeaders(values.header);
  // Before standard input is read: a wrong flag must not wait for input first.
  const target = connectionTarget(values.url ?? DEFAULT_URL, values, 'eddy pub');
  const payload = payloadArg !== undefined ? Buffer.from(payloadArg) : readFileSync(0);

  const connection = await connectCli(target, { clientId: values['client-id'] ?? '' });
  const options: IClientPublishOptions = { qos, retain: !!values.retain, properties: {} };
  if (headers) options.properties!.userProperties = headers;
  if (values['content-type']) options.properties!.contentType = values['content-type'];
  try {
    // Keep a window of publishes in flight so --count is fast without unbounded buffering.
    const window = 100;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const index = next++;
        await publishOne(connection, channel, payload, options);
        if (values.json) process.stdout.write(JSON.stringify({ channel, index, qos, bytes: payload.length }) + '\n');
      }
    };
    // Raced once, not per publish: a reaction per message on the pending `lost` would pile up.
    await Promise.race([Promise.all(Array.from({ length: Math.min(window, count) }, worker)), connection.lost]);
    // Nothing acknowledges a QoS 0 publish, but a broker refuses a bad one with DISCONNECT: wait
    // until it has handled them all, so a refusal exits 1 like a refused QoS 1 publish.
    if (qos === 0) await connection.roundTrip();
  } catch (err) {
    await connection.end(true);
    if (!(err instanceof EddyError)) throw err;
    throw new EddyError('EDDY_PUBLISH_REFUSED', `publish to ${channel} refused: ${err.message}`, { cause: err });
  }
  await connection.end();
  return 0;
}

/**
 * One publish, settled when the broker confirmed it (QoS 1/2) or it was written (QoS 0). A refusal
 * rejects with the reason code and the broker's reason string from the PUBACK/PUBREC, which mqtt.js
 * passes to the callback but leaves out of its error message.
 */
function publishOne(connection: CliConnection, channel: string, payload: Buffer, options: IClientPublishOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    connection.client.publish(channel, payload, options, (err, ack) => {
      if (!err) return resolve();
      const code = (err as Error & { code?: unknown }).code;
      if (typeof code !== 'number') return reject(connection.closedError());
      const reasonString = (ack as { properties?: { reasonString?: string } } | undefined)?.properties?.reasonString;
      reject(new EddyError('EDDY_PUBLISH_REFUSED', describeReason(code, reasonString)));
    });
  });
}
