import { formatHost } from '../util/host.js';
import type { LoadedDocument } from './load.js';
import type { TrafficRecorder } from './observed.js';

export interface Listener {
  host: string;
  port: number;
}

export interface LiveDocumentSources {
  version: string;
  /** The broker's listeners; absent when documenting files rather than a running broker. */
  mqtt?: Listener;
  http?: Listener;
  documents: LoadedDocument[];
  traffic: TrafficRecorder;
}

type Json = Record<string, unknown>;

/**
 * The running system as an AsyncAPI 3.0 document: the broker's real listeners as servers, every
 * channel, message and operation of the loaded documents, and the channels seen in traffic that no
 * document declares, each with a schema inferred from its payloads (`x-eddy-observed` says so).
 */
export function buildLiveDocument(sources: LiveDocumentSources): Json {
  const channels: Json = {};
  const operations: Json = {};
  const usedIds = new Set<string>();
  const uniqueId = (id: string): string => {
    let candidate = id.replace(/[^A-Za-z0-9_.-]/g, '_') || 'channel';
    for (let n = 2; usedIds.has(candidate); n++) candidate = `${id}_${n}`;
    usedIds.add(candidate);
    return candidate;
  };
  const server = (protocol: string, l: Listener, extra: Json = {}): Json => ({ host: `${formatHost(l.host)}:${l.port}`, protocol, ...extra });
  const servers: Json = {};
  if (sources.mqtt) servers.mqtt = server('mqtt', sources.mqtt, { protocolVersion: '5.0', description: 'MQTT 3.1.1 and 5.0 over TCP' });
  if (sources.http) {
    servers.ws = server('ws', sources.http, { pathname: '/mqtt', description: 'MQTT over WebSocket' });
    servers.http = server('http', sources.http, { description: 'HTTP gateway: POST /v1/publish/{topic}, Server-Sent Events at GET /v1/subscribe' });
  }

  for (const { document } of sources.documents) {
    const channelIds = new Map<string, string>();
    for (const channel of document.channels()) {
      const id = uniqueId(channel.id());
      channelIds.set(channel.id(), id);
      const json = clean(channel.json()) as Json;
      channels[id] = { ...json, servers: undefined };
      delete (channels[id] as Json).servers;
    }
    for (const operation of document.operations()) {
      const channel = operation.channels().all()[0];
      if (!channel) continue;
      const channelId = channelIds.get(channel.id())!;
      const op: Json = {
        action: operation.action(),
        channel: { $ref: `#/channels/${channelId}` },
        messages: operation.messages().all().map((m) => ({ $ref: `#/channels/${channelId}/messages/${m.id()}` })),
      };
      if (operation.summary()) op.summary = operation.summary();
      if (operation.description()) op.description = operation.description();
      const reply = operation.reply();
      if (reply) {
        const replyJson: Json = {};
        const replyChannel = reply.channel();
        if (replyChannel && channelIds.has(replyChannel.id())) replyJson.channel = { $ref: `#/channels/${channelIds.get(replyChannel.id())}` };
        const address = reply.address();
        if (address?.location()) replyJson.address = { location: address.location() };
        const replyMessages = reply.messages().all();
        if (replyChannel && channelIds.has(replyChannel.id()) && replyMessages.length > 0) {
          replyJson.messages = replyMessages.map((m) => ({ $ref: `#/channels/${channelIds.get(replyChannel.id())}/messages/${m.id()}` }));
        }
        op.reply = replyJson;
      }
      operations[uniqueId(operation.id() ?? `${operation.action()}_${channelId}`)] = op;
    }
  }

  for (const observed of [...sources.traffic.channels.values()].sort((a, b) => a.topic.localeCompare(b.topic))) {
    const id = uniqueId(`observed_${observed.topic}`);
    const message: Json = { name: 'observed', summary: `Inferred from ${observed.messages} published message${observed.messages === 1 ? '' : 's'}` };
    if (observed.contentType) message.contentType = observed.contentType;
    if (observed.schema) message.payload = observed.schema;
    channels[id] = {
      address: observed.topic,
      description: 'Observed in traffic; no AsyncAPI document declares this channel.',
      messages: { observed: message },
      'x-eddy-observed': { messages: observed.messages, firstSeen: new Date(observed.firstSeen).toISOString(), lastSeen: new Date(observed.lastSeen).toISOString() },
    };
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Eddy broker (live)',
      version: sources.version,
      description: `The running broker: ${sources.documents.length} loaded AsyncAPI document${sources.documents.length === 1 ? '' : 's'}, and ${sources.traffic.channels.size} channel${sources.traffic.channels.size === 1 ? '' : 's'} observed in traffic but not declared.`,
    },
    defaultContentType: 'application/json',
    servers,
    channels,
    operations,
  };
}

/** The parser's resolved JSON without its `x-parser-*` bookkeeping. */
function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clean);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) if (!k.startsWith('x-parser-')) out[k] = clean(v);
  return out;
}
