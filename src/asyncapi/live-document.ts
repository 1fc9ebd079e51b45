import { formatHost } from '../util/host.js';
import { LiveChannels } from './live-channels.js';
import { IdAllocator } from './live-json.js';
import type { LoadedDocument } from './load.js';
import type { TrafficRecorder } from './observed.js';
import { liveSecurity, type AppliedSecurity } from './security.js';

export interface Listener {
  host: string;
  port: number;
}

export interface LiveDocumentSources {
  version: string;
  /** The broker's listeners; absent when documenting files rather than a running broker. */
  mqtt?: Listener;
  http?: Listener;
  /** MQTT over TLS, when TLS is on. */
  mqtts?: Listener;
  /** A second, HTTPS listener (`tls.httpPort`) serving WSS and the HTTP gateway. */
  https?: Listener;
  /** The main HTTP port speaks HTTPS (`tls.http`): it is listed as wss and https. */
  httpIsHttps?: boolean;
  documents: LoadedDocument[];
  traffic: TrafficRecorder;
  /** The authentication the broker applies (Admission.appliedSecurity()): the servers' security schemes. */
  security?: AppliedSecurity;
}

type Json = Record<string, unknown>;

/**
 * The running system as an AsyncAPI 3.0 document: the broker's real listeners as servers, every
 * channel, message and operation of the loaded documents (channels with the same address listed
 * once, with the union of their messages: LiveChannels), and the channels seen in traffic that no
 * document declares, each with a schema inferred from its payloads (`x-eddy-observed` says so).
 */
export function buildLiveDocument(sources: LiveDocumentSources): Json {
  const channelIds = new IdAllocator();
  const operationIds = new IdAllocator();
  const live = new LiveChannels(channelIds);
  const operations: Json = {};
  const security = liveSecurity(sources.security);
  const server = (protocol: string, l: Listener, extra: Json = {}): Json => {
    const schemes = security.forServer(protocol);
    const anonymous = schemes.length > 0 && sources.security?.anonymous ? { 'x-eddy-allow-anonymous': true } : {};
    return { host: `${formatHost(l.host)}:${l.port}`, protocol, ...extra, ...(schemes.length > 0 ? { security: schemes } : {}), ...anonymous };
  };
  const servers: Json = {};
  if (sources.mqtt) servers.mqtt = server('mqtt', sources.mqtt, { protocolVersion: '5.0', description: 'MQTT 3.1.1 and 5.0 over TCP' });
  if (sources.mqtts) servers.mqtts = server('secure-mqtt', sources.mqtts, { protocolVersion: '5.0', description: 'MQTT 3.1.1 and 5.0 over TLS' });
  const web = (l: Listener, secure: boolean): void => {
    const [ws, http] = secure ? ['wss', 'https'] : ['ws', 'http'];
    servers[ws] = server(ws, l, { pathname: '/mqtt', description: `MQTT over WebSocket${secure ? ' over TLS' : ''}` });
    servers[http] = server(http, l, { description: 'HTTP gateway: POST /v1/publish/{topic}, Server-Sent Events at GET /v1/subscribe' });
  };
  if (sources.http) web(sources.http, sources.httpIsHttps ?? false);
  if (sources.https) web(sources.https, true);

  for (const { document } of sources.documents) live.add(document);
  live.finish();
  for (const { document } of sources.documents) {
    for (const operation of document.operations()) {
      const channel = operation.channels().all()[0];
      const channelId = channel && live.channelId(channel);
      if (!channel || !channelId) continue;
      const op: Json = {
        action: operation.action(),
        channel: { $ref: `#/channels/${channelId}` },
        messages: live.messageRefs(channel, operation.messages().all()),
      };
      if (operation.summary()) op.summary = operation.summary();
      if (operation.description()) op.description = operation.description();
      const reply = operation.reply();
      if (reply) {
        const replyJson: Json = {};
        const replyChannel = reply.channel();
        const replyChannelId = replyChannel && live.channelId(replyChannel);
        if (replyChannelId) {
          replyJson.channel = { $ref: `#/channels/${replyChannelId}` };
          // A reply without messages of its own takes its channel's: named here, since a merged channel holds other documents' messages too.
          const own = reply.messages().all();
          const messages = live.messageRefs(replyChannel, own.length > 0 ? own : replyChannel.messages().all());
          if (messages.length > 0) replyJson.messages = messages;
        }
        const address = reply.address();
        if (address?.location()) replyJson.address = { location: address.location() };
        op.reply = replyJson;
      }
      op['x-eddy-document'] = document.info().title();
      operations[operationIds.take(operation.id() ?? `${operation.action()}_${channelId}`)] = op;
    }
  }
  const channels = live.channels;

  for (const observed of [...sources.traffic.channels.values()].sort((a, b) => a.topic.localeCompare(b.topic))) {
    const id = channelIds.take(`observed_${observed.topic}`);
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
    ...(Object.keys(security.schemes).length > 0 ? { components: { securitySchemes: security.schemes } } : {}),
  };
}
