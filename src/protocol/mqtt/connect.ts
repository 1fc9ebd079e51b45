import { randomUUID } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { Broker } from '../../core/broker.js';
import type { Session, SessionLink, WillMessage } from '../../core/session.js';
import type { Message } from '../../core/message.js';
import { isValidTopicName, quoteTopic, showTopic } from '../../core/topics.js';
import { RC, isValidUtf8 } from './codes.js';
import type { Credentials, Identity, PeerInfo } from '../../core/admission/index.js';

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

/** A CONNECT that passed the protocol's checks, waiting for its client to be authenticated. */
export interface CheckedConnect {
  packet: IConnectPacket;
  clientId: string;
  /** The broker made the client id up (an empty one was sent). */
  assigned: boolean;
  will: WillMessage | undefined;
}

/** The credentials a CONNECT carries, for Broker.admission. */
export function credentialsOf(checked: CheckedConnect, peer: PeerInfo): Credentials {
  const { packet } = checked;
  const credentials: Credentials = { clientId: checked.clientId, peer };
  if (packet.username !== undefined) credentials.username = packet.username;
  if (packet.password !== undefined) credentials.password = typeof packet.password === 'string' ? Buffer.from(packet.password) : packet.password;
  return credentials;
}

/**
 * The protocol's checks of a CONNECT, before anyone is authenticated: limits, properties, the
 * client id (assigned when empty), the will's topic and payload.
 */
export function checkConnect(packet: IConnectPacket, broker: Broker): CheckedConnect | { kind: 'refused'; code: number; reason?: string } {
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
  return { packet, clientId, assigned, will };
}

/**
 * Opens (or resumes, or takes over) the session of an authenticated client. The will is checked
 * as the client's publish (a will it may not publish is refused at CONNECT). Returns what the
 * connection needs to answer with CONNACK and run the session.
 */
export function openConnected(checked: CheckedConnect, identity: Identity, broker: Broker, link: SessionLink): ConnectOutcome {
  const { packet, clientId, assigned, will } = checked;
  const version = packet.protocolVersion ?? 4;
  const v5 = version === 5;
  const props = packet.properties ?? {};
  const limits = broker.limits;
  if (will) {
    will.message.originUser = identity.user;
    const refusal = broker.admitPublish(identity, will.message);
    if (refusal && (refusal.kind === 'not-authorized' || refusal.kind === 'topic')) {
      return { kind: 'refused', code: refusal.kind === 'topic' ? RC.TopicNameInvalid : RC.NotAuthorized, reason: `will: ${refusal.reason}` };
    }
  }

  const requestedExpiry = v5 ? (props.sessionExpiryInterval ?? 0) : packet.clean ? 0 : NEVER_EXPIRES;
  const { session, sessionPresent } = broker.openSession(
    { clientId, cleanStart: !!packet.clean, expiryInterval: requestedExpiry, will, identity },
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
