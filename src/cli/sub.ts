import type { IClientSubscribeOptions, IPublishPacket } from 'mqtt';
import { ConfigError, EddyError } from '../util/errors.js';
import { parseFlags, parseInteger, parseQos } from './args.js';
import { DEFAULT_URL, connectCli, describeReason } from './client.js';
import { parseReplayStart } from '../core/replay.js';

export const SUB_HELP = `Usage: eddy sub FILTER [options]

Subscribes to FILTER (MQTT wildcards + and # allowed) and prints each message's payload.

Options:
  --url URL              broker (default $EDDY_URL or mqtt://127.0.0.1:1883)
  --qos 0|1|2            maximum quality of service (default 1)
  --group NAME           join consumer group NAME ($share/NAME/FILTER): one member gets each message
  --from START           replay stored history first: earliest | seq:N | time:RFC3339 (channels
                         with retention; see README), then live messages; each carries eddy-seq
  --count N              exit after N messages
  --json                 print one JSON object per message: channel, payload, qos, retain, headers, ...
  --verbose, -v          print "channel payload" instead of the payload alone
  --client-id ID         client identifier (default: assigned by the broker)
  --session-expiry SEC   keep the session (subscriptions, queued messages) SEC seconds after disconnect
`;

const FLAGS = {
  url: { type: 'string' },
  qos: { type: 'string' },
  group: { type: 'string' },
  from: { type: 'string' },
  count: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  'client-id': { type: 'string' },
  'session-expiry': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The JSON form of a delivered message, one line per message with `--json`. */
export function messageToJson(packet: IPublishPacket): Record<string, unknown> {
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
  const out: Record<string, unknown> = { channel: packet.topic, qos: packet.qos, retain: packet.retain };
  try {
    out.payload = utf8.decode(payload);
  } catch {
    out.payloadBase64 = payload.toString('base64');
  }
  const p = packet.properties;
  if (p?.userProperties) out.headers = p.userProperties;
  const seq = p?.userProperties?.['eddy-seq'];
  if (seq !== undefined) out.seq = Number(Array.isArray(seq) ? seq[0] : seq);
  if (p?.contentType) out.contentType = p.contentType;
  if (p?.responseTopic) out.responseTopic = p.responseTopic;
  if (p?.correlationData) out.correlationData = Buffer.from(p.correlationData).toString('base64');
  if (p?.messageExpiryInterval !== undefined) out.expiresIn = p.messageExpiryInterval;
  return out;
}

export async function runSub(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy sub');
  if (values.help) {
    process.stdout.write(SUB_HELP);
    return 0;
  }
  const [filter, extra] = positionals;
  if (!filter) throw new ConfigError('missing FILTER (see eddy sub --help)', { command: 'eddy sub' });
  if (extra !== undefined) throw new ConfigError(`unexpected argument "${extra}"`, { command: 'eddy sub' });
  const qos = parseQos(values.qos) ?? 1;
  const count = parseInteger(values.count, '--count', 1, Number.MAX_SAFE_INTEGER);
  const sessionExpiry = parseInteger(values['session-expiry'], '--session-expiry', 0, 0xffffffff) ?? 0;
  const target = values.group ? `$share/${values.group}/${filter}` : filter;
  if (values.from !== undefined && !parseReplayStart(values.from)) {
    throw new ConfigError(`--from must be earliest, seq:<n> or time:<RFC 3339>, got ${JSON.stringify(values.from)}`);
  }

  const client = await connectCli(values.url ?? DEFAULT_URL, {
    clientId: values['client-id'] ?? '',
    clean: sessionExpiry === 0,
    properties: { sessionExpiryInterval: sessionExpiry },
  });
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    client.on('message', (_topic, _payload, packet) => {
      if (count !== undefined && received >= count) return;
      received++;
      if (values.json) process.stdout.write(JSON.stringify(messageToJson(packet)) + '\n');
      else {
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
        process.stdout.write(values.verbose ? Buffer.concat([Buffer.from(`${packet.topic} `), payload, Buffer.from('\n')]) : Buffer.concat([payload, Buffer.from('\n')]));
      }
      if (count !== undefined && received >= count) resolve();
    });
    client.on('close', () => reject(new EddyError('EDDY_DISCONNECTED', 'connection to the broker closed')));
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // Ending the client after a refused SUBACK closes it: that rejection is expected, not unhandled.
  done.catch(() => {});
  const subscribeOptions: IClientSubscribeOptions = { qos };
  if (values.from !== undefined) subscribeOptions.properties = { userProperties: { 'eddy-from': values.from } };
  const granted = await client.subscribeAsync(target, subscribeOptions).catch(async (err: unknown) => {
    // mqtt.js v5 rejects a SUBACK failure; close the client (or the process never exits) and
    // take the reason code from the SUBACK, since the rejection does not carry it.
    await client.endAsync(true);
    const code = (err as { packet?: { granted?: number[] } }).packet?.granted?.find((c) => c >= 0x80);
    const reason = code === undefined ? describeReason(err) : `0x${code.toString(16)} ${(err as Error).message}`;
    throw new EddyError('EDDY_SUBSCRIBE_REFUSED', `subscribe to ${target} failed: ${reason}`);
  });
  const code = granted[0]?.qos ?? 0x80;
  if (code >= 0x80) {
    await client.endAsync(true);
    throw new EddyError('EDDY_SUBSCRIBE_REFUSED', `subscribe to ${target} refused with reason 0x${code.toString(16)}`);
  }
  try {
    await done;
  } finally {
    await client.endAsync();
  }
  return 0;
}
