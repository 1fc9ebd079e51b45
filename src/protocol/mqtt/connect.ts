import { randomUUID } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { Broker } from '../../core/broker.js';
import type { Session, SessionLink, WillMessage } from '../../core/session.js';
import type { Message } from '../../core/message.js';
import { isValidTopicName, quoteTopic, showTopic } from '../../core/topics.js';
import { RC, isValidUtf8 } from './codes.js';

const NEVER_EXPIRES = 0xffffffff;

export type ConnectOutcome =
  | { kind: 'refused'; code: number; reason?: string }
  | {
      kind: 'accepted';
      session: Session;
      sessionPresent: boolean;
      keepAliveSeconds: number;
      receiveMaximum: number;
      clientMaxPacketSize: number;
      clientTopicAliasMax: number;
      requestProblemInformation: boolean;
      connackProperties: Record<string, unknown> | undefined;
    };

/**
 * Validates a CONNECT and opens (or resumes, or takes over) the session for it.
 * Returns what the connection needs to answer with CONNACK and run the session.
 */
export function connectToSession(packet: IConnectPacket, broker: Broker, link: SessionLink): ConnectOutcome {
  const version = packet.protocolVersion ?? 4;
  const v5 = version === 5;
  const props = packet.properties ?? {};
  const limits = broker.limits;

  if (broker.stats.connections >= limits.maxConnections) {
    return { kind: 'refused', code: RC.ServerBusy, reason: `connection limit ${limits.maxConnections} reached` };
  }
  if (v5 && props.authenticationMethod !== undefined) {
    return { kind: 'refused', code: RC.BadAuthenticationMethod, reason: `authentication method ${props.authenticationMethod} is not supported` };
  }
  if (v5 && (props.receiveMaximum === 0 || props.maximumPacketSize === 0)) {
    return { kind: 'refused', code: RC.ProtocolError, reason: 'receive maximum and maximum packet size must not be 0' };
  }

  let clientId = packet.clientId ?? '';
  let assigned = false;
  if (clientId.length === 0) {
    // 3.1.1 §3.1.3.1: an empty id is only allowed with a clean session; 3.1 never allows it.
    if (version === 3 || (version === 4 && !packet.clean)) {
      return { kind: 'refused', code: RC.ClientIdentifierNotValid, reason: 'an empty client identifier needs clean start' };
    }
    clientId = `eddy-${randomUUID()}`;
    assigned = true;
  }

  let will: WillMessage | undefined;
  if (packet.will) {
    const w = packet.will;
    if (!isValidTopicName(w.topic)) return { kind: 'refused', code: RC.TopicNameInvalid, reason: `invalid will topic ${quoteTopic(w.topic)}` };
    const overLimits = broker.topicOverLimits(w.topic);
    if (overLimits) return { kind: 'refused', code: RC.TopicNameInvalid, reason: `will topic ${showTopic(w.topic)}: ${overLimits}` };
    const payload = typeof w.payload === 'string' ? Buffer.from(w.payload) : (w.payload ?? Buffer.alloc(0));
    const wp = w.properties ?? {};
    if (v5 && wp.payloadFormatIndicator && !isValidUtf8(payload)) {
      return { kind: 'refused', code: RC.PayloadFormatInvalid, reason: 'will payload is not valid UTF-8' };
    }
    const denied = broker.publishDenied(w.topic);
    if (denied) return { kind: 'refused', code: RC.NotAuthorized, reason: `will: ${denied}` };
    const now = Date.now();
    const message: Message = {
      topic: w.topic,
      payload,
      qos: w.qos ?? 0,
      retain: !!w.retain,
      properties: {},
      publishedAt: now,
      origin: clientId,
    };
    if (v5) {
      if (wp.payloadFormatIndicator !== undefined) message.properties.payloadFormatIndicator = wp.payloadFormatIndicator;
      if (wp.contentType !== undefined) message.properties.contentType = wp.contentType;
      if (wp.responseTopic !== undefined) message.properties.responseTopic = wp.responseTopic;
      if (wp.correlationData !== undefined) message.properties.correlationData = wp.correlationData;
      if (wp.userProperties !== undefined) message.properties.userProperties = wp.userProperties;
    }
    will = { message, delaySeconds: v5 ? (wp.willDelayInterval ?? 0) : 0, expirySeconds: v5 ? wp.messageExpiryInterval : undefined };
  }

  const requestedExpiry = v5 ? (props.sessionExpiryInterval ?? 0) : packet.clean ? 0 : NEVER_EXPIRES;
  const { session, sessionPresent } = broker.openSession(
    { clientId, cleanStart: !!packet.clean, expiryInterval: requestedExpiry, will },
    link,
  );

  let keepAliveSeconds = packet.keepalive ?? 0;
  let serverKeepAlive: number | undefined;
  if (limits.maxKeepAlive > 0 && (keepAliveSeconds === 0 || keepAliveSeconds > limits.maxKeepAlive)) {
    keepAliveSeconds = limits.maxKeepAlive;
    serverKeepAlive = limits.maxKeepAlive;
  }

  let connackProperties: Record<string, unknown> | undefined;
  if (v5) {
    connackProperties = {
      receiveMaximum: Math.min(limits.maxInflight, 65535),
      maximumPacketSize: limits.maxPacketSize,
      topicAliasMaximum: limits.topicAliasMaximum,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
    };
    if (assigned) connackProperties.assignedClientIdentifier = clientId;
    if (serverKeepAlive !== undefined) connackProperties.serverKeepAlive = serverKeepAlive;
    if (session.expiryInterval !== requestedExpiry) connackProperties.sessionExpiryInterval = session.expiryInterval;
  }

  return {
    kind: 'accepted',
    session,
    sessionPresent,
    keepAliveSeconds,
    receiveMaximum: v5 ? (props.receiveMaximum ?? 65535) : 65535,
    clientMaxPacketSize: v5 ? (props.maximumPacketSize ?? Infinity) : Infinity,
    clientTopicAliasMax: v5 ? (props.topicAliasMaximum ?? 0) : 0,
    requestProblemInformation: v5 ? props.requestProblemInformation !== false : true,
    connackProperties,
  };
}
