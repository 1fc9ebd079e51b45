import { DEFAULT_LIMITS, type BrokerLimits } from '../core/limits.js';

/** One broker limit as a command-line flag: its config key, its range and its line of help. */
interface LimitFlag {
  key: keyof BrokerLimits;
  flag: string;
  arg: string;
  min: number;
  max: number;
  help: string;
}

/** Every limit that has a flag; the rest are config keys only (`limits:` in the config file). */
export const LIMIT_FLAGS: LimitFlag[] = [
  { key: 'maxPacketSize', flag: 'max-packet-size', arg: 'BYTES', min: 16, max: 268435455, help: 'largest MQTT packet' },
  { key: 'maxConnections', flag: 'max-connections', arg: 'N', min: 1, max: 10_000_000, help: 'open MQTT sockets, counted from accept' },
  { key: 'maxInflight', flag: 'max-inflight', arg: 'N', min: 1, max: 65535, help: 'QoS>0 messages in flight per client and direction' },
  { key: 'maxQueued', flag: 'max-queued', arg: 'N', min: 0, max: 100_000_000, help: 'QoS>0 messages queued per session' },
  { key: 'maxQueuedBytes', flag: 'max-queued-bytes', arg: 'BYTES', min: 0, max: 2 ** 40, help: 'payload bytes queued per session or group' },
  { key: 'maxOutboundBytes', flag: 'max-outbound-bytes', arg: 'BYTES', min: 1024, max: 2 ** 32, help: 'bytes a client may leave unread before QoS 0 is shed' },
  { key: 'maxInboundBytes', flag: 'max-inbound-bytes', arg: 'BYTES', min: 1024, max: 2 ** 40, help: 'bytes all unfinished inbound packets may hold together' },
  { key: 'packetTimeout', flag: 'packet-timeout', arg: 'SECONDS', min: 1, max: 3600, help: 'time a packet may take from first to last byte' },
  { key: 'maxKeepAlive', flag: 'max-keepalive', arg: 'SECONDS', min: 0, max: 65535, help: "longest keep-alive granted, 0 = client's choice" },
  { key: 'topicAliasMaximum', flag: 'topic-alias-maximum', arg: 'N', min: 0, max: 65535, help: 'topic aliases a client may set' },
  { key: 'maxTopicLevels', flag: 'max-topic-levels', arg: 'N', min: 1, max: 65535, help: 'levels of a topic name or filter' },
  { key: 'maxRetained', flag: 'max-retained', arg: 'N', min: 0, max: 100_000_000, help: 'retained messages kept' },
  { key: 'maxRetainedBytes', flag: 'max-retained-bytes', arg: 'BYTES', min: 0, max: 2 ** 40, help: 'payload bytes of all retained messages' },
  { key: 'maxHttpConnections', flag: 'max-http-connections', arg: 'N', min: 1, max: 10_000_000, help: 'open HTTP connections (publish, SSE, admin)' },
  { key: 'httpHeadersTimeout', flag: 'http-headers-timeout', arg: 'SECONDS', min: 1, max: 3600, help: 'time an HTTP client has to send its headers' },
  { key: 'httpRequestTimeout', flag: 'http-request-timeout', arg: 'SECONDS', min: 1, max: 3600, help: 'time an HTTP client has to send its whole request' },
  { key: 'httpIdleTimeout', flag: 'http-idle-timeout', arg: 'SECONDS', min: 1, max: 3600, help: 'time an idle keep-alive HTTP connection stays open' },
];

/** The `--max-…` options for parseArgs. */
export const LIMIT_OPTIONS = Object.fromEntries(LIMIT_FLAGS.map((f) => [f.flag, { type: 'string' as const }])) as Record<string, { type: 'string' }>;

/** The help lines of the limit flags, with their defaults. */
export function limitFlagsHelp(): string {
  return LIMIT_FLAGS.map((f) => {
    const left = `  --${f.flag} ${f.arg}`;
    const help = `${f.help} (default ${DEFAULT_LIMITS[f.key]})`;
    return left.length < 27 ? `${left.padEnd(28)}${help}` : `${left}\n${' '.repeat(28)}${help}`;
  }).join('\n');
}
