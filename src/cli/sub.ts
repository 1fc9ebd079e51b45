import type { ErrorWithSubackPacket, IClientSubscribeOptions, IPublishPacket } from 'mqtt';
import { ConfigError, EddyError } from '../util/errors.js';
import { parseFlags, parseInteger, parseQos } from './args.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectionTarget } from './connection-flags.js';
import { DEFAULT_URL, connectCli, describeReason, type CliConnection } from './client.js';
import { parseReplayStart } from '../core/replay.js';
import { isValidTopicFilter } from '../core/topics.js';

export const SUB_HELP = `Usage: eddy sub FILTER [options]

Subscribes to FILTER (MQTT wildcards + and # allowed) and prints each message's payload; a
message is acknowledged once it is printed. Exits 1 with the broker's reason if it refuses.

Options:
  --url URL              broker (default $EDDY_URL or mqtt://127.0.0.1:1883; mqtts://, ws://, wss:// too)
${CONNECTION_HELP}
  --qos 0|1|2            maximum quality of service (default 1)
  --group NAME           join consumer group NAME ($share/NAME/FILTER): one member gets each message
  --from START           replay stored history first: earliest | seq:N | time:RFC3339 (channels
                         with retention; see README), then live messages; each carries eddy-seq
  --count N              exit after N messages (a persistent session keeps the rest for later)
  --json                 print one JSON object per message: channel, payload, qos, retain, headers, ...
  --verbose, -v          print "channel payload" instead of the payload alone
  --client-id ID         client identifier (default: assigned by the broker)
  --session-expiry SEC   keep the session (subscriptions, queued messages) SEC seconds after disconnect
`;

const FLAGS = {
  url: { type: 'string' },
  ...CONNECTION_FLAGS,
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
  // mqtt.js refuses a malformed filter itself, before the broker could say why: say it here.
  if (!isValidTopicFilter(filter)) throw new ConfigError(`${JSON.stringify(filter)} is not a valid topic filter (# only at the end, + and # each a whole level)`, { command: 'eddy sub' });
  const brokerTarget = connectionTarget(values.url ?? DEFAULT_URL, values, 'eddy sub');
  const target = values.group ? `$share/${values.group}/${filter}` : filter;
  if (values.from !== undefined && !parseReplayStart(values.from)) {
    throw new ConfigError(`--from must be earliest, seq:<n> or time:<RFC 3339>, got ${JSON.stringify(values.from)}`);
  }

  let received = 0;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let outputClosed = false;
  const onOutputError = (): void => {
    outputClosed = true;
    stop();
  };
  // Kept to the end: every write after the reader left fails too, and an unheard 'error' would throw.
  process.stdout.on('error', onOutputError);
  const render = (packet: IPublishPacket): Buffer => {
    if (values.json) return Buffer.from(JSON.stringify(messageToJson(packet)) + '\n');
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    return Buffer.concat([values.verbose ? Buffer.from(`${packet.topic} `) : Buffer.alloc(0), payload, Buffer.from('\n')]);
  };
  const connection = await connectCli(
    brokerTarget,
    { clientId: values['client-id'] ?? '', clean: sessionExpiry === 0, properties: { sessionExpiryInterval: sessionExpiry } },
    (client) => {
      // mqtt.js sends the PUBACK/PUBCOMP when this calls back: only once the message is printed. A
      // message past --count is left unacknowledged (an error skips the ack), so a persistent
      // session keeps it for the next run instead of losing it.
      client.handleMessage = (packet, done) => {
        if (outputClosed || (count !== undefined && received >= count)) return done(new Error('not taken: past --count or output closed'));
        received++;
        process.stdout.write(render(packet), (err) => {
          // Not printed (the reader went away, as `eddy sub … | head -1` does): not acknowledged.
          if (err) return done(err);
          done();
          if (count !== undefined && received >= count) stop();
        });
      };
    },
  );
  const onSignal = (): void => stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const subscribeOptions: IClientSubscribeOptions = { qos };
    if (values.from !== undefined) subscribeOptions.properties = { userProperties: { 'eddy-from': values.from } };
    const subscribed = subscribe(connection, target, subscribeOptions);
    // A persistent session's queued messages may reach --count before the SUBACK comes.
    subscribed.catch(() => {});
    await Promise.race([subscribed, stopped, connection.lost]);
    await Promise.race([stopped, connection.lost]);
  } catch (err) {
    await connection.end(true);
    if (err instanceof EddyError && err.code === 'EDDY_DISCONNECTED') throw new EddyError('EDDY_DISCONNECTED', `connection to the broker lost: ${err.message}`, { cause: err });
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  await connection.end();
  return 0;
}

/** Subscribes; a refusal rejects with the SUBACK's reason code and the broker's reason string. */
async function subscribe(connection: CliConnection, target: string, options: IClientSubscribeOptions): Promise<void> {
  let granted: number[];
  try {
    granted = (await connection.client.subscribeAsync(target, options)).map((g) => g.qos);
  } catch (err) {
    // mqtt.js rejects a SUBACK failure with the SUBACK itself, its reason string included.
    const suback = (err as Partial<ErrorWithSubackPacket>).packet;
    if (!suback) throw connection.closedError();
    const code = (suback.granted as number[]).find((c) => c >= 0x80) ?? 0x80;
    throw refused(target, code, suback.properties?.reasonString);
  }
  // MQTT 3.1.1 brokers refuse with granted QoS 0x80 and no error.
  const code = granted[0] ?? 0x80;
  if (code >= 0x80) throw refused(target, code, undefined);
}

function refused(target: string, code: number, reasonString: string | undefined): EddyError {
  return new EddyError('EDDY_SUBSCRIBE_REFUSED', `subscribe to ${target} refused: ${describeReason(code, reasonString)}`);
}
