import type { Duplex } from 'node:stream';
import mqttPacket, {
  type IConnectPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type ISubackPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
  type Parser,
} from 'mqtt-packet';
import type { Broker } from '../../core/broker.js';
import type { Session, SessionLink } from '../../core/session.js';
import { firstUserProperty, type Message, type QoS } from '../../core/message.js';
import { isValidTopicName, parseSharedFilter, quoteTopic } from '../../core/topics.js';
import type { QueuedDelivery } from '../../storage/types.js';
import type { Logger } from '../../util/logger.js';
import { ProtocolError } from '../../util/errors.js';
import { RC, fixedHeaderSize, isValidUtf8, v3ConnackCode } from './codes.js';
import { connectToSession, type ConnectOutcome } from './connect.js';
import { answerFor } from '../../core/refusals.js';
import { countBy, messagePropertiesOf } from './properties.js';
import { PublishEncoder } from './publish-encoder.js';
import { PacketFramer } from './framer.js';
import type { MqttIntake } from './intake.js';
import { checkRepeatedProperties } from './property-check.js';
import { parseReplayStart } from '../../core/replay.js';



/**
 * Output is flushed once per event-loop turn, after every socket that was readable in that
 * turn has been handled: deliveries caused by many publishers then leave in one write.
 */
const pendingFlush = new Set<MqttConnection>();
function scheduleFlush(connection: MqttConnection): void {
  if (pendingFlush.size === 0) setImmediate(flushAll);
  pendingFlush.add(connection);
}
function flushAll(): void {
  for (const connection of pendingFlush) connection.flushGuarded();
  pendingFlush.clear();
}

const CONNECT_TIMEOUT_MS = 10_000;
/** Longest a publisher is held back for a congested subscriber before that subscriber counts as slow. */
const MAX_THROTTLE_MS = 1000;
/** How long a closing connection may take to flush its last packet before it is destroyed. */
const CLOSE_GRACE_MS = 1_000;

/** Size of the fixed header (type byte and remaining length) of a whole packet. */
function fixedHeaderBytes(packet: Buffer): number {
  let i = 1;
  while (i < 5 && (packet[i]! & 0x80) !== 0) i++;
  return i + 1;
}

/** The protocol level of a whole CONNECT packet (after "MQTT" or "MQIsdp"), or undefined when it is too short. */
function connectLevel(packet: Buffer): number | undefined {
  const h = fixedHeaderBytes(packet);
  if (packet.length < h + 2) return undefined;
  return packet[h + 2 + packet.readUInt16BE(h)];
}

/**
 * One MQTT client connection, over TCP or WebSocket: frames packets by their fixed header (sizes
 * and the shared inbound budget are enforced there), decodes them with `mqtt-packet`, enforces the
 * protocol rules and turns packets into broker core calls. It owns no broker state. Every callback
 * it registers is guarded: an exception closes this connection, is logged and counted, and goes no
 * further.
 */
export class MqttConnection implements SessionLink {
  protocolVersion = 4;
  receiveMaximum = 65535;
  private readonly parser: Parser;
  private readonly framer: PacketFramer;
  private session: Session | undefined;
  private clientId = '';
  private closed = false;
  private connackSent = false;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private packetTimer: NodeJS.Timeout | undefined;
  /** Reading is paused because the inbound budget had no room for this connection's next packet. */
  private waitingForRoom = false;
  /** Reading is paused until these congested subscribers (of this client's messages) drain. */
  private readonly throttledBy = new Set<SessionLink>();
  private throttleTimer: NodeJS.Timeout | undefined;
  /** Publishers waiting for this connection to drain (see throttleFor). */
  private drainWaiters: Array<() => void> = [];
  slow = false;
  private clientMaxPacketSize = Infinity;
  private problemInfo = true;
  private readonly inboundAliases = new Map<number, string>();
  /** Inbound QoS>0 publishes not yet acknowledged, checked against our Receive Maximum. */
  private inboundUnacked = 0;
  private corked = false;
  private publishWillOnClose = true;
  private readonly encoder = new PublishEncoder((cmd, err) => this.log.error({ clientId: this.clientId, cmd, err: err.message }, 'cannot encode packet'));

  constructor(
    private readonly stream: Duplex,
    private readonly broker: Broker,
    private readonly log: Logger,
    readonly remote: string,
    private readonly intake: MqttIntake,
    /** Accepted past `maxConnections`, only to answer CONNECT with 0x89 Server busy. */
    private readonly overLimit = false,
  ) {
    this.framer = new PacketFramer(() => this.broker.limits.maxPacketSize, intake);
    this.parser = mqttPacket.parser();
    this.parser.on('packet', (packet: Packet) => this.onPacket(packet));
    this.parser.on('error', (err: Error) => {
      if (!this.session && !this.closed && err.message === 'Invalid protocol version') {
        // 3.1.1 [MQTT-3.1.2-2]: answer an unsupported protocol level with CONNACK 0x01, then close.
        this.sendConnack(RC.UnsupportedProtocolVersion, false); // protocolVersion is still 4: 3.1.1 encoding
        return this.fail(new ProtocolError(RC.UnsupportedProtocolVersion, `unsupported protocol version: ${err.message}`));
      }
      this.fail(new ProtocolError(RC.MalformedPacket, `malformed packet: ${err.message}`));
    });
    stream.on('data', this.guard('data', (chunk: Buffer) => this.onData(chunk)));
    stream.on(
      'drain',
      this.guard('drain', () => {
        this.slow = false;
        this.releaseDrainWaiters();
        this.session?.drain();
      }),
    );
    stream.on(
      'error',
      this.guard('error', (err: Error) => {
        this.log.debug({ remote, err: err.message }, 'connection error');
        this.teardown();
      }),
    );
    stream.on('close', this.guard('close', () => this.teardown()));
    this.connectTimer = setTimeout(this.guard('connect timer', () => this.fail(new ProtocolError(RC.ProtocolError, 'no CONNECT within 10 s'))), CONNECT_TIMEOUT_MS);
    this.connectTimer.unref();
  }

  /** True while the client has more than `maxOutboundBytes` unread: QoS 0 is shed, QoS>0 waits in its queue. */
  get congested(): boolean {
    return this.stream.writableLength > this.broker.limits.maxOutboundBytes;
  }

  /**
   * Wraps a callback so that nothing it throws leaves it: the error is logged and counted, and this
   * one connection is closed. A bug, or a client input nobody foresaw, costs a connection, never the process.
   */
  private guard<A extends unknown[]>(where: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args: A): void => {
      try {
        fn(...args);
      } catch (err) {
        this.internalError(where, err);
      }
    };
  }

  private internalError(where: string, err: unknown): void {
    this.broker.stats.internalErrors++;
    this.log.error({ err, clientId: this.clientId || undefined, remote: this.remote, where }, 'internal error: closing this connection');
    try {
      this.fail(new ProtocolError(RC.UnspecifiedError, 'internal error'));
    } catch {
      /* already failing: destroying below is all that is left */
    }
    try {
      this.teardown();
    } catch {
      /* the session could not be detached cleanly; it is logged above */
    }
    this.stream.destroy();
  }

  // ---- inbound ---------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let rest: Buffer | undefined;
    try {
      rest = this.framer.push(chunk, this.onFrame);
    } catch (err) {
      if (err instanceof ProtocolError) return this.fail(err);
      throw err;
    }
    if (this.closed) return;
    this.armPacketTimer();
    if (!rest) return;
    // What was not taken goes back to the stream, whose buffer is then full: Node stops reading
    // the socket, so a paused connection holds one chunk, and the kernel holds the rest.
    this.stream.pause();
    this.stream.unshift(rest);
    this.waitingForRoom = true;
    this.intake.waitForRoom(this.retryReading);
    this.log.debug({ clientId: this.clientId || undefined, remote: this.remote }, 'inbound budget full: reading paused');
  }

  /** Called by the intake when the budget may have room again; true once this connection waits no more. */
  private readonly retryReading = (): boolean => {
    if (this.closed || !this.waitingForRoom) return true;
    if (!this.framer.claim()) return false;
    this.waitingForRoom = false;
    this.resumeReading();
    return true;
  };

  /** Reading goes on once nothing holds it back: neither the inbound budget nor a congested subscriber. */
  private resumeReading(): void {
    if (!this.closed && !this.waitingForRoom && this.throttledBy.size === 0) this.stream.resume();
  }

  throttleFor(behind: SessionLink): void {
    if (this.closed || behind.slow || !behind.whenDrained || this.throttledBy.has(behind)) return;
    this.throttledBy.add(behind);
    if (this.throttledBy.size === 1) {
      this.broker.stats.throttledPublishers++;
      this.stream.pause();
      this.throttleTimer = setTimeout(this.guard('throttle timer', () => this.throttleTimedOut()), MAX_THROTTLE_MS);
      this.throttleTimer.unref();
    }
    behind.whenDrained(() => this.unthrottle(behind));
  }

  private unthrottle(behind: SessionLink): void {
    if (!this.throttledBy.delete(behind) || this.throttledBy.size > 0) return;
    clearTimeout(this.throttleTimer);
    this.resumeReading();
  }

  /** Subscribers that did not drain within MAX_THROTTLE_MS are slow consumers: they slow no one down until they drain. */
  private throttleTimedOut(): void {
    for (const behind of this.throttledBy) {
      if (!behind.slow) this.broker.stats.slowConsumers++;
      behind.slow = true;
    }
    this.log.debug({ clientId: this.clientId, slow: this.throttledBy.size }, 'subscribers did not drain: publisher resumed, their messages are queued and then dropped');
    this.throttledBy.clear();
    this.resumeReading();
  }

  whenDrained(callback: () => void): void {
    if (this.closed || !this.congested) return callback();
    this.drainWaiters.push(callback);
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (const callback of waiters) callback();
  }

  /** One whole packet, framed: repeated MQTT 5 properties are refused, then mqtt-packet decodes it. */
  private readonly onFrame = (bytes: Buffer): void => {
    if (this.closed) return;
    if (!this.session) {
      // The CONNECT's protocol level decides how a refusal of it is encoded (a v5 CONNACK carries the reason).
      const level = connectLevel(bytes);
      if (level === 5) this.protocolVersion = this.encoder.protocolVersion = 5;
    }
    if (this.protocolVersion === 5) checkRepeatedProperties(bytes, fixedHeaderBytes(bytes));
    this.parser.parse(bytes);
  };

  /** A packet must be complete within `packetTimeout` seconds of its first byte. */
  private armPacketTimer(): void {
    if (this.packetTimer || this.framer.partialSince === 0) return;
    const timeoutMs = this.broker.limits.packetTimeout * 1000;
    const check = (): void => {
      this.packetTimer = undefined;
      const since = this.framer.partialSince;
      if (this.closed || since === 0) return;
      const left = since + timeoutMs - Date.now();
      if (left > 0) {
        this.packetTimer = setTimeout(this.guard('packet timer', check), left);
        this.packetTimer.unref();
        return;
      }
      this.broker.stats.packetTimeouts++;
      this.fail(new ProtocolError(RC.ProtocolError, `packet not completed within ${this.broker.limits.packetTimeout} s (${this.framer.held} bytes held)`));
    };
    this.packetTimer = setTimeout(this.guard('packet timer', check), Math.max(timeoutMs - (Date.now() - this.framer.partialSince), 0));
    this.packetTimer.unref();
  }

  private onPacket(packet: Packet): void {
    if (this.closed) return;
    const size = (packet.length ?? 0) + fixedHeaderSize(packet.length ?? 0);
    if (size > this.broker.limits.maxPacketSize) {
      return this.fail(new ProtocolError(RC.PacketTooLarge, `packet of ${size} bytes exceeds the maximum packet size ${this.broker.limits.maxPacketSize}`));
    }
    this.keepAliveTimer?.refresh();
    try {
      if (!this.session) {
        if (packet.cmd !== 'connect') throw new ProtocolError(RC.ProtocolError, `first packet must be CONNECT, got ${packet.cmd.toUpperCase()}`);
        return this.onConnect(packet);
      }
      switch (packet.cmd) {
        case 'publish':
          return this.onPublish(packet);
        case 'puback':
        case 'pubrec':
          if ((packet.reasonCode ?? 0) >= 0x80) {
            this.session.rejected(packet.messageId!, this.describeRefusal(packet.reasonCode!, packet.properties?.reasonString));
          } else if (packet.cmd === 'puback') this.session.completed(packet.messageId!);
          else this.session.received(packet.messageId!);
          return;
        case 'pubrel':
          return this.onPubrel(packet.messageId!);
        case 'pubcomp':
          this.session.completed(packet.messageId!);
          return;
        case 'subscribe':
          return this.onSubscribe(packet);
        case 'unsubscribe':
          return this.onUnsubscribe(packet);
        case 'pingreq':
          return this.send({ cmd: 'pingresp' });
        case 'disconnect':
          return this.onDisconnect(packet);
        case 'connect':
          throw new ProtocolError(RC.ProtocolError, 'second CONNECT on one connection');
        case 'auth':
          throw new ProtocolError(RC.ProtocolError, 'AUTH without an authentication method');
        default:
          throw new ProtocolError(RC.ProtocolError, `unexpected ${packet.cmd.toUpperCase()} from a client`);
      }
    } catch (err) {
      if (err instanceof ProtocolError) return this.fail(err);
      this.broker.stats.internalErrors++;
      this.log.error({ err, clientId: this.clientId }, 'internal error while handling a packet');
      this.fail(new ProtocolError(RC.UnspecifiedError, 'internal error'));
    }
  }

  /** How a consumer's refusal reads in logs and in a dead letter's `eddy-dlq-reason`. */
  private describeRefusal(reasonCode: number, reasonString: string | undefined): string {
    const code = `0x${reasonCode.toString(16).padStart(2, '0')}`;
    return `refused by ${this.clientId} with ${code}${reasonString ? `: ${reasonString}` : ''}`;
  }

  private onConnect(packet: IConnectPacket): void {
    clearTimeout(this.connectTimer);
    const outcome: ConnectOutcome = this.overLimit
      ? { kind: 'refused', code: RC.ServerBusy, reason: `connection limit ${this.broker.limits.maxConnections} reached` }
      : connectToSession(packet, this.broker, this);
    this.protocolVersion = packet.protocolVersion ?? 4;
    this.encoder.protocolVersion = this.protocolVersion;
    if (outcome.kind === 'refused') {
      this.log.info({ remote: this.remote, clientId: packet.clientId, reason: outcome.reason }, 'connection refused');
      this.sendConnack(outcome.code, false, outcome.reason ? { reasonString: outcome.reason } : undefined);
      return this.close();
    }
    this.receiveMaximum = outcome.receiveMaximum;
    this.clientMaxPacketSize = outcome.clientMaxPacketSize;
    this.encoder.topicAliasMax = outcome.clientTopicAliasMax;
    this.problemInfo = outcome.requestProblemInformation;
    this.encoder.includeSeq = ['true', '1', 'on'].includes(firstUserProperty(packet.properties?.userProperties, 'eddy-seq') ?? '');
    this.clientId = outcome.session.clientId;
    this.session = outcome.session;
    this.sendConnack(RC.Success, outcome.sessionPresent, outcome.connackProperties);
    this.connackSent = true;
    if (outcome.keepAliveSeconds > 0) {
      this.keepAliveTimer = setTimeout(this.guard('keep-alive timer', () => this.onKeepAliveExpired()), outcome.keepAliveSeconds * 1500);
      this.keepAliveTimer.unref();
    }
    this.log.debug({ clientId: this.clientId, remote: this.remote, version: this.protocolVersion }, 'client connected');
    outcome.session.resume(this);
  }

  private onKeepAliveExpired(): void {
    this.fail(new ProtocolError(RC.KeepAliveTimeout, 'keep-alive timeout'));
  }

  private onPublish(packet: IPublishPacket): void {
    const v5 = this.protocolVersion === 5;
    const props = packet.properties;
    let topic = packet.topic;
    if (v5 && props?.topicAlias !== undefined) {
      const alias = props.topicAlias;
      if (alias === 0 || alias > this.broker.limits.topicAliasMaximum) {
        throw new ProtocolError(RC.TopicAliasInvalid, `topic alias ${alias} outside 1..${this.broker.limits.topicAliasMaximum}`);
      }
      if (topic.length > 0) this.inboundAliases.set(alias, topic);
      else {
        const known = this.inboundAliases.get(alias);
        if (known === undefined) throw new ProtocolError(RC.ProtocolError, `topic alias ${alias} was never set`);
        topic = known;
      }
    }
    if (!isValidTopicName(topic)) throw new ProtocolError(RC.TopicNameInvalid, `invalid topic name ${quoteTopic(topic)}`);
    if (props?.subscriptionIdentifier !== undefined) throw new ProtocolError(RC.ProtocolError, 'PUBLISH from a client must not carry a subscription identifier');

    const qos = packet.qos;
    const id = packet.messageId!;
    if (qos === 2 && this.session!.inboundQos2.has(id)) {
      // A resend of a QoS 2 publish we already took: acknowledge again, do not route twice.
      return this.send({ cmd: 'pubrec', messageId: id });
    }
    if (qos > 0 && ++this.inboundUnacked > this.broker.limits.maxInflight) {
      throw new ProtocolError(RC.ReceiveMaximumExceeded, `more than ${this.broker.limits.maxInflight} unacknowledged QoS>0 publishes`);
    }
    const overLimits = this.broker.topicOverLimits(topic);
    if (overLimits) return this.refusePublish(qos, id, RC.TopicNameInvalid, `${quoteTopic(topic)}: ${overLimits}`);
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (v5 && props?.payloadFormatIndicator && !isValidUtf8(payload)) {
      return this.refusePublish(qos, id, RC.PayloadFormatInvalid, `${topic}: payload format indicator says UTF-8 but the payload is not valid UTF-8`);
    }
    const denied = this.broker.publishDenied(topic);
    if (denied) return this.refusePublish(qos, id, RC.NotAuthorized, denied);
    const now = Date.now();
    const message: Message = {
      topic,
      payload,
      qos,
      retain: packet.retain,
      properties: v5 && props ? messagePropertiesOf(props) : {},
      publishedAt: now,
      origin: this.clientId,
    };
    if (v5 && props?.messageExpiryInterval !== undefined) message.expiresAt = now + props.messageExpiryInterval * 1000;
    const refusal = this.broker.checkPublish(message);
    if (refusal) {
      if (v5 && qos > 0) return this.refusePublish(qos, id, refusal.kind === 'undeclared' ? RC.TopicNameInvalid : RC.PayloadFormatInvalid, refusal.reason);
      // 3.1.1 (or QoS 0) cannot be told: the message is not delivered but kept on $DLQ/invalid/<topic>.
      this.broker.publishInvalid(message, refusal);
      if (qos === 0) return;
      return this.refusePublish(qos, id, RC.PayloadFormatInvalid, refusal.reason);
    }
    if (qos === 0) return this.broker.publish(message);
    if (qos === 2) this.session!.inboundQos2.add(id);
    this.broker.publish(message, (err) => (err ? this.failPublish(qos, id, topic, err) : this.acknowledgePublish(qos, id, message.seq)));
  }

  private acknowledgePublish(qos: QoS, id: number, seq: number | undefined): void {
    // A QoS 2 publish counts against our Receive Maximum until PUBCOMP, not PUBREC (MQTT 5 §4.9).
    if (qos === 1) this.inboundUnacked--;
    // A client that asked for seqs (the SDK) learns where its message landed.
    const properties = this.encoder.includeSeq && seq !== undefined ? { userProperties: { 'eddy-seq': String(seq) } } : undefined;
    this.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, ...(properties ? { properties } : {}) });
  }

  private failPublish(qos: QoS, id: number, topic: string, err: Error): void {
    const { reasonCode, reason, unexpected } = answerFor(err, topic);
    if (unexpected) this.log.error({ clientId: this.clientId, topic: quoteTopic(topic), err: err.message }, 'publish not stored');
    if (qos === 2) this.session?.inboundQos2.delete(id);
    if (this.protocolVersion !== 5) {
      // 3.1.1 cannot refuse, and acknowledging would confirm what was not stored: close instead,
      // so the client resends once it reconnects.
      countBy(this.broker.stats.refusedPublishes, reasonCode);
      this.log.warn({ clientId: this.clientId, reason }, 'publish not stored: closing the 3.1.1 connection so the client resends');
      return this.close();
    }
    this.refusePublish(qos, id, reasonCode, reason);
  }

  /** Answers a refused publish: a reason code on MQTT 5; on 3.1.1 a plain ack, since it cannot refuse. */
  private refusePublish(qos: QoS, id: number, reasonCode: number, reason: string): void {
    // Quota and storage refusals are logged where they arise (rate-limited there), not once per message here.
    this.log[reasonCode === RC.QuotaExceeded || reasonCode === RC.UnspecifiedError ? 'debug' : 'warn']({ clientId: this.clientId, reasonCode, reason }, 'publish refused');
    countBy(this.broker.stats.refusedPublishes, reasonCode);
    if (qos === 0) {
      if (reasonCode === RC.PayloadFormatInvalid) this.fail(new ProtocolError(reasonCode, reason));
      return;
    }
    this.inboundUnacked--;
    if (this.protocolVersion !== 5) return this.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id });
    if (qos === 2) this.session?.inboundQos2.delete(id);
    this.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, reasonCode, properties: this.reasonProps(reason) });
  }

  private onPubrel(id: number): void {
    const known = this.session!.inboundQos2.delete(id);
    if (known && this.inboundUnacked > 0) this.inboundUnacked--;
    if (!known && this.protocolVersion === 5) {
      return this.send({ cmd: 'pubcomp', messageId: id, reasonCode: RC.PacketIdentifierNotFound });
    }
    this.send({ cmd: 'pubcomp', messageId: id });
  }

  private onSubscribe(packet: ISubscribePacket): void {
    const v5 = this.protocolVersion === 5;
    const subscriptionId = v5 ? packet.properties?.subscriptionIdentifier : undefined;
    if (subscriptionId === 0) throw new ProtocolError(RC.ProtocolError, 'subscription identifier 0 is not allowed');
    const requests = packet.subscriptions.map((s) => {
      if (v5 && s.nl && parseSharedFilter(s.topic)) {
        throw new ProtocolError(RC.ProtocolError, `no-local on shared subscription ${s.topic}`);
      }
      return {
        filter: s.topic,
        qos: s.qos,
        noLocal: v5 ? !!s.nl : false,
        retainAsPublished: v5 ? !!s.rap : false,
        retainHandling: (v5 ? (s.rh ?? 0) : 0) as 0 | 1 | 2,
        subscriptionId,
      };
    });
    const from = v5 ? firstUserProperty(packet.properties?.userProperties, 'eddy-from') : undefined;
    const replay = from === undefined ? undefined : parseReplayStart(from);
    if (from !== undefined && !replay) {
      const reason = `eddy-from must be earliest, seq:<n> or time:<RFC 3339>, got ${JSON.stringify(from)}`;
      this.log.info({ clientId: this.clientId, reason }, 'subscription refused');
      return this.send({ cmd: 'suback', messageId: packet.messageId!, granted: requests.map(() => RC.ImplementationSpecificError), properties: this.reasonProps(reason) });
    }
    // A replaying subscriber needs each message's seq to resume from, so it gets `eddy-seq` from now on.
    if (replay) this.encoder.includeSeq = true;
    const outcome = this.broker.subscribe(this.session!, requests, replay);
    const { codes, stored } = outcome;
    const granted = v5 ? codes : codes.map((c) => (c >= 0x80 ? 0x80 : c));
    const refused = requests.filter((_, i) => codes[i]! >= 0x80).map((r) => (r.filter.length > 120 ? quoteTopic(r.filter) : r.filter));
    if (refused.length > 0) this.log.info({ clientId: this.clientId, refused, reason: outcome.reason }, 'subscription refused');
    let properties: ISubackPacket['properties'];
    if (v5 && refused.length > 0) properties = this.reasonProps(outcome.reason ?? `subscription refused for ${refused.join(', ')}`);
    if (v5 && outcome.replayUntil !== undefined) properties = { ...properties, userProperties: { 'eddy-replay-until': String(outcome.replayUntil) } };
    this.afterStored(stored, () => {
      this.send({ cmd: 'suback', messageId: packet.messageId!, granted, properties });
      outcome.afterSuback();
    });
  }

  private onUnsubscribe(packet: IUnsubscribePacket): void {
    const { codes, stored } = this.broker.unsubscribe(this.session!, packet.unsubscriptions);
    this.afterStored(stored, () => this.send({ cmd: 'unsuback', messageId: packet.messageId!, granted: this.protocolVersion === 5 ? codes : [] }));
  }

  /**
   * A persistent session's SUBACK/UNSUBACK goes out only once the change is durable, so a client
   * never holds a confirmation that a crash can take back. If storing fails, the connection is
   * closed unanswered: the client subscribes again when it reconnects.
   */
  private afterStored(stored: Promise<void> | void, answer: () => void): void {
    if (!stored) return answer();
    stored.then(answer, (err: Error) => {
      this.log.error({ clientId: this.clientId, err: err.message }, 'session change not stored: closing the connection');
      this.close(RC.UnspecifiedError, 'session change not stored');
    });
  }

  private onDisconnect(packet: IDisconnectPacket): void {
    const expiry = packet.properties?.sessionExpiryInterval;
    if (expiry !== undefined && expiry > 0 && this.session!.expiryInterval === 0) {
      throw new ProtocolError(RC.ProtocolError, 'DISCONNECT may not set a session expiry when CONNECT set 0');
    }
    this.publishWillOnClose = packet.reasonCode === RC.DisconnectWithWill;
    this.log.debug({ clientId: this.clientId, reasonCode: packet.reasonCode ?? 0 }, 'client disconnected');
    this.detachSession(expiry);
    this.close();
  }

  // ---- outbound (SessionLink) ------------------------------------------------------------

  sendPublish(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): boolean {
    if (this.closed) return true; // the session keeps it in flight; it is resent on reconnect
    const { message } = delivery;
    const bytes = this.encoder.publish(delivery, packetId, dup);
    if (!bytes) return true;
    if (bytes.length > this.clientMaxPacketSize) return false;
    this.write(bytes);
    this.broker.stats.messagesOut++;
    this.broker.observer?.delivered(message);
    return true;
  }





  sendPubrel(packetId: number): void {
    this.send({ cmd: 'pubrel', messageId: packetId });
  }

  /** Broker-initiated close, e.g. session takeover or shutdown. */
  close(reasonCode?: number, reason?: string): void {
    if (this.closed) return;
    if (reasonCode !== undefined && this.protocolVersion === 5 && this.connackSent) {
      this.send({ cmd: 'disconnect', reasonCode, properties: reason ? { reasonString: reason } : undefined });
    }
    this.closed = true;
    this.stopTimers();
    this.releaseInbound();
    this.flush();
    this.stream.end();
    setTimeout(() => this.stream.destroy(), CLOSE_GRACE_MS).unref();
    this.detachSession(undefined);
  }

  /** Ends the connection at once, without waiting for the client (the last step of a shutdown). */
  destroy(): void {
    this.close();
    this.stream.destroy();
  }

  // ---- helpers ---------------------------------------------------------------------------



  private sendConnack(reasonCode: number, sessionPresent: boolean, properties?: Record<string, unknown>): void {
    if (this.protocolVersion === 5) {
      this.send({ cmd: 'connack', reasonCode, sessionPresent, properties } as Packet);
    } else {
      this.send({ cmd: 'connack', returnCode: v3ConnackCode(reasonCode), sessionPresent: reasonCode === RC.Success && sessionPresent });
    }
  }

  private reasonProps(reason: string): { reasonString: string } | undefined {
    return this.problemInfo ? { reasonString: reason } : undefined;
  }

  private send(packet: Packet): void {
    if (this.closed) return;
    const bytes = this.encoder.encode(packet);
    if (bytes) this.write(bytes);
  }



  /** Writes made in one tick go out in one syscall: cork now, uncork on the next tick. */
  private write(bytes: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      scheduleFlush(this);
    }
    this.stream.write(bytes);
  }

  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.stream.uncork();
  }

  /** `flush` for the shared once-per-turn flush: one connection's failure does not stop the others'. */
  flushGuarded(): void {
    try {
      this.flush();
    } catch (err) {
      this.internalError('flush', err);
    }
  }

  /** Closes the connection for a protocol violation: DISCONNECT with the reason on MQTT 5, a plain close on 3.1.1. */
  private fail(err: ProtocolError): void {
    if (this.closed) return;
    countBy(this.broker.stats.protocolErrors, err.reasonCode);
    this.log.warn({ clientId: this.clientId || undefined, remote: this.remote, reasonCode: err.reasonCode, reason: err.message }, 'closing connection');
    // A v5 CONNECT refused before it was accepted gets a CONNACK that says why (MQTT 5 §3.2.2.2).
    if (!this.connackSent && this.protocolVersion === 5) this.sendConnack(err.reasonCode, false);
    this.close(err.reasonCode, err.message);
  }

  private detachSession(expiryInterval: number | undefined): void {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    this.broker.closeSession(session, this, { publishWill: this.publishWillOnClose, expiryInterval });
  }

  private stopTimers(): void {
    clearTimeout(this.keepAliveTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.packetTimer);
    clearTimeout(this.throttleTimer);
  }

  /** Gives back what this connection held of the shared inbound budget. */
  private releaseInbound(): void {
    this.framer.discard();
    if (this.waitingForRoom) this.intake.forget(this.retryReading);
    this.waitingForRoom = false;
    this.throttledBy.clear();
    // Publishers held back by this connection go on: it is gone.
    this.releaseDrainWaiters();
  }

  private teardown(): void {
    if (!this.closed) {
      this.closed = true;
      this.stopTimers();
    }
    this.releaseInbound();
    this.detachSession(undefined);
  }
}
