import type { Duplex } from 'node:stream';
import mqttPacket, { type IConnectPacket, type IDisconnectPacket, type Packet, type Parser } from 'mqtt-packet';
import type { Broker } from '../../core/broker.js';
import type { Session, SessionLink } from '../../core/session.js';
import { firstUserProperty } from '../../core/message.js';
import type { QueuedDelivery } from '../../core/storage.js';
import type { Logger } from '../../util/logger.js';
import { ProtocolError } from '../../util/errors.js';
import { RC, fixedHeaderSize, v3ConnackCode } from './codes.js';
import { checkConnect, credentialsOf, openConnected, type CheckedConnect } from './connect.js';
import type { ConnectRefusal, Identity } from '../../core/admission/index.js';
import { isLoopback } from '../../util/host.js';
import { countBy } from './properties.js';
import { PublishEncoder, type PublishBytes } from './publish-encoder.js';
import { decodeFast, isFastPathType } from './fast-path/decode.js';
import type { PacketContext } from './handlers/context.js';
import { PublishHandler } from './handlers/publish.js';
import { SubscribeHandler } from './handlers/subscribe.js';
import { AckHandler } from './handlers/acks.js';
import { InboundReader } from './inbound-reader.js';
import type { MqttIntake } from './intake.js';
import type { PeerInfo } from '../../core/admission/peer.js';
import { checkRepeatedProperties } from './property-check.js';
import { LinkStats } from '../../core/admin/link-stats.js';
import type { Farewell } from '../../transport/farewell.js';

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
/** How long a closing connection may take to flush its last packet before it is destroyed. */
const CLOSE_GRACE_MS = 1_000;

/** Size of the fixed header (type byte and remaining length) of a whole packet. */
function fixedHeaderBytes(packet: Buffer): number {
  let i = 1;
  while (i < 5 && (packet[i]! & 0x80) !== 0) i++;
  return i + 1;
}

/** A CONNECT's first byte: packet type 1, no flags (others are refused by mqtt-packet). */
const CONNECT_FIRST_BYTE = 0x10;

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
  /** `host:port` of the client, for logs. */
  readonly remote: string;
  receiveMaximum = 65535;
  private readonly parser: Parser;
  private readonly reader: InboundReader;
  private session: Session | undefined;
  private clientId = '';
  closed = false;
  private connackSent = false;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Who the client is, once authenticated. */
  identity: Identity | undefined;
  /** Packets received while the CONNECT is being authenticated, handled after it. */
  private early: Packet[] | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  /** The CONNECT was decoded: the protocol version is known, and PUBLISH and the acks take the fast path. */
  private connectSeen = false;
  /** Publishers waiting for this connection to drain (see throttleFor). */
  private drainWaiters: Array<() => void> = [];
  slow = false;
  private clientMaxPacketSize = Infinity;
  private problemInfo = true;
  /** What the packet handlers see of this connection. */
  private readonly context: PacketContext = this.contextForHandlers();
  private readonly publishes = new PublishHandler(this.context);
  private readonly subscriptions = new SubscribeHandler(this.context);
  private readonly acks = new AckHandler(this.context);
  private corked = false;
  private publishWillOnClose = true;
  /** Counted where packets are read and written, for the admin API. */
  readonly stats: LinkStats;
  private readonly encoder = new PublishEncoder((cmd, err) => this.log.error({ clientId: this.clientId, cmd, err: err.message }, 'cannot encode packet'));

  constructor(
    private readonly stream: Duplex,
    private readonly broker: Broker,
    private readonly log: Logger,
    /** Who is at the other end: address, transport, and the TLS client certificate if any. */
    readonly peer: PeerInfo,
    private readonly intake: MqttIntake,
    /** Accepted past `maxConnections`, only to answer CONNECT with 0x89 Server busy. */
    private readonly overLimit = false,
  ) {
    this.remote = peer.remote;
    this.stats = new LinkStats('mqtt', broker.stats);
    this.reader = new InboundReader(stream, intake, broker.limits, broker.stats, this);
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
    stream.on(
      'data',
      this.guard('data', (chunk: Buffer) => {
        this.stats.received(chunk.length);
        this.reader.read(chunk);
      }),
    );
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
        this.log.debug({ remote: peer.remote, err: err.message }, 'connection error');
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
  guard<A extends unknown[]>(where: string, fn: (...args: A) => void): (...args: A) => void {
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

  throttleFor(behind: SessionLink): void {
    this.reader.throttleFor(behind);
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

  private contextForHandlers(): PacketContext {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const connection = this;
    return {
      get broker() {
        return connection.broker;
      },
      get log() {
        return connection.log;
      },
      get clientId() {
        return connection.clientId;
      },
      get protocolVersion() {
        return connection.protocolVersion;
      },
      get session() {
        return connection.session!;
      },
      get includeSeq() {
        return connection.encoder.includeSeq;
      },
      set includeSeq(value: boolean) {
        connection.encoder.includeSeq = value;
      },
      send: (packet) => this.send(packet),
      reasonProps: (reason) => this.reasonProps(reason),
      close: (reasonCode, reason) => this.close(reasonCode, reason),
      fail: (err) => this.fail(err as ProtocolError),
    };
  }

  /**
   * One whole packet, framed. PUBLISH and the acks are decoded by the fast path (which also refuses
   * repeated MQTT 5 properties); every other packet has repeated properties refused, then
   * mqtt-packet decodes it. A ProtocolError thrown here closes the connection (InboundReader.read).
   */
  frame(bytes: Buffer): void {
    if (this.closed) return;
    if (this.connectSeen && isFastPathType(bytes[0]!)) return this.onPacket(decodeFast(bytes, this.protocolVersion));
    if (!this.connectSeen && bytes[0] === CONNECT_FIRST_BYTE) {
      // The CONNECT's protocol level decides how a refusal of it is encoded (a v5 CONNACK carries the
      // reason). Only a CONNECT's: a SUBSCRIBE sent right behind it, framed while the CONNECT is
      // still being authenticated, has other bytes there (its topic length read as level 5 once
      // made a 3.1.1 subscriber get MQTT 5 PUBLISH packets).
      const level = connectLevel(bytes);
      if (level === 5) this.protocolVersion = this.encoder.protocolVersion = 5;
    }
    if (this.protocolVersion === 5) checkRepeatedProperties(bytes, fixedHeaderBytes(bytes));
    this.parser.parse(bytes);
  }

  private onPacket(packet: Packet): void {
    if (this.closed) return;
    const size = (packet.length ?? 0) + fixedHeaderSize(packet.length ?? 0);
    if (size > this.broker.limits.maxPacketSize) {
      return this.fail(new ProtocolError(RC.PacketTooLarge, `packet of ${size} bytes exceeds the maximum packet size ${this.broker.limits.maxPacketSize}`));
    }
    this.keepAliveTimer?.refresh();
    if (this.early) {
      // Held until the CONNECT is authenticated; the stream is paused, so this holds one chunk at most.
      this.early.push(packet);
      return;
    }
    try {
      if (!this.session) {
        if (packet.cmd !== 'connect') throw new ProtocolError(RC.ProtocolError, `first packet must be CONNECT, got ${packet.cmd.toUpperCase()}`);
        return this.onConnect(packet);
      }
      switch (packet.cmd) {
        case 'publish':
          this.stats.messagesIn++;
          return this.publishes.publish(packet);
        case 'puback':
        case 'pubrec':
          return this.acks.ack(packet);
        case 'pubrel':
          return this.publishes.pubrel(packet.messageId!);
        case 'pubcomp':
          return this.acks.pubcomp(packet);
        case 'subscribe':
          return this.subscriptions.subscribe(packet);
        case 'unsubscribe':
          return this.subscriptions.unsubscribe(packet);
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

  private onConnect(packet: IConnectPacket): void {
    clearTimeout(this.connectTimer);
    this.connectSeen = true;
    this.protocolVersion = packet.protocolVersion ?? 4;
    this.encoder.protocolVersion = this.protocolVersion;
    if (this.overLimit) return this.refuseConnect(packet, RC.ServerBusy, `connection limit ${this.broker.limits.maxConnections} reached`);
    const checked = checkConnect(packet, this.broker);
    if ('kind' in checked) return this.refuseConnect(packet, checked.code, checked.reason);
    if (!this.broker.admission.authenticationConfigured && !isLoopback(this.peer.address)) {
      this.log.warn({ remote: this.remote, clientId: checked.clientId }, 'a client connected from beyond loopback to a broker with no authentication: it has every right');
    }
    // Packets a client sends right after CONNECT wait until it is authenticated (a slow hash, a token check).
    this.early = [];
    this.reader.hold();
    this.broker.admission.authenticate(credentialsOf(checked, this.peer)).then(
      this.guard('authentication', (identity: Identity | ConnectRefusal) => this.authenticated(checked, identity)),
      (err: unknown) => this.internalError('authentication', err),
    );
  }

  private authenticated(checked: CheckedConnect, outcome: Identity | ConnectRefusal): void {
    const { packet } = checked;
    if ('kind' in outcome) {
      const code = outcome.kind === 'anonymous' ? RC.NotAuthorized : outcome.kind === 'quota' ? RC.QuotaExceeded : RC.BadUserNameOrPassword;
      return this.refuseConnect(packet, code, outcome.kind === 'quota' ? outcome.reason : outcome.kind === 'anonymous' ? 'not authorized: credentials are required' : 'bad user name or password');
    }
    this.identity = outcome;
    if (this.closed) return this.releaseIdentity();
    const connected = openConnected(checked, outcome, this.broker, this);
    if (connected.kind === 'refused') return this.refuseConnect(packet, connected.code, connected.reason);
    this.receiveMaximum = connected.receiveMaximum;
    this.clientMaxPacketSize = connected.clientMaxPacketSize;
    this.encoder.topicAliasMax = connected.clientTopicAliasMax;
    this.problemInfo = connected.requestProblemInformation;
    this.encoder.includeSeq = ['true', '1', 'on'].includes(firstUserProperty(packet.properties?.userProperties, 'eddy-seq') ?? '');
    this.clientId = connected.session.clientId;
    this.session = connected.session;
    this.sendConnack(RC.Success, connected.sessionPresent, connected.connackProperties);
    this.connackSent = true;
    this.stats.keepAlive = connected.keepAliveSeconds;
    if (connected.keepAliveSeconds > 0) {
      this.keepAliveTimer = setTimeout(this.guard('keep-alive timer', () => this.onKeepAliveExpired()), connected.keepAliveSeconds * 1500);
      this.keepAliveTimer.unref();
    }
    if (outcome.expiresAt !== undefined) this.endAtExpiry(outcome.expiresAt);
    this.log.debug({ clientId: this.clientId, remote: this.remote, version: this.protocolVersion, user: outcome.user, method: outcome.method }, 'client connected');
    connected.session.resume(this);
    const early = this.early ?? [];
    this.early = undefined;
    for (const p of early) this.onPacket(p);
    this.reader.release();
  }

  /** A JWT's `exp`: the connection ends then, with 0xA0 (maximum connect time) on MQTT 5. */
  private endAtExpiry(expiresAt: number): void {
    const close = (): void => {
      const left = expiresAt - Date.now();
      if (left > 0) {
        // setTimeout holds at most ~24.8 days.
        this.expiryTimer = setTimeout(this.guard('token expiry', close), Math.min(left, 0x7fffffff));
        this.expiryTimer.unref();
        return;
      }
      this.log.info({ clientId: this.clientId, user: this.identity?.user }, 'token expired: closing the connection');
      this.close(RC.MaximumConnectTime, 'the token has expired');
    };
    close();
  }

  private refuseConnect(packet: IConnectPacket, code: number, reason: string | undefined): void {
    this.log.info({ remote: this.remote, clientId: packet.clientId, user: packet.username, reasonCode: code, reason }, 'connection refused');
    this.sendConnack(code, false, reason ? { reasonString: reason } : undefined);
    this.close();
  }

  /** The connection of an authenticated client is gone: it no longer counts against connectionsPerUser. */
  private releaseIdentity(): void {
    const identity = this.identity;
    this.identity = undefined;
    if (identity) this.broker.admission.disconnected(identity);
  }

  private onKeepAliveExpired(): void {
    this.fail(new ProtocolError(RC.KeepAliveTimeout, 'keep-alive timeout'));
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
    const size = Buffer.isBuffer(bytes) ? bytes.length : bytes[0].length + bytes[1].length;
    if (size > this.clientMaxPacketSize) return false;
    this.write(bytes);
    this.broker.stats.messagesOut++;
    this.stats.messagesOut++;
    this.broker.observer?.delivered(message);
    return true;
  }

  sendPubrel(packetId: number): void {
    this.send({ cmd: 'pubrel', messageId: packetId });
  }

  /** Broker-initiated close, e.g. session takeover or shutdown; `serverReference` for 0x9C/0x9D (MQTT 5 §4.11). */
  close(reasonCode?: number, reason?: string, serverReference?: string): void {
    if (this.closed) return;
    if (reasonCode !== undefined && this.protocolVersion === 5 && this.connackSent) this.sendDisconnect(reasonCode, reason, serverReference);
    this.closed = true;
    this.stopTimers();
    this.releaseInbound();
    this.flush();
    this.stream.end();
    setTimeout(() => this.stream.destroy(), CLOSE_GRACE_MS).unref();
    this.detachSession(undefined);
  }

  /** The close of a stopping broker (transport/farewell.ts); true when a DISCONNECT went out (an MQTT 5 client past CONNACK). */
  farewell(farewell: Farewell): boolean {
    const told = !this.closed && this.protocolVersion === 5 && this.connackSent;
    this.close(farewell.reasonCode, farewell.reason, farewell.serverReference);
    return told;
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

  /**
   * A DISCONNECT within the client's Maximum Packet Size: the Reason String is left out when it would
   * exceed it (MQTT 5 §3.14.2.2.3), then the Server Reference; the reason code always goes.
   */
  private sendDisconnect(reasonCode: number, reason: string | undefined, serverReference: string | undefined): void {
    const tries = [
      { ...(reason ? { reasonString: reason } : {}), ...(serverReference ? { serverReference } : {}) },
      serverReference ? { serverReference } : {},
      {},
    ];
    for (const properties of tries) {
      const bytes = this.encoder.encode({ cmd: 'disconnect', reasonCode, properties: Object.keys(properties).length > 0 ? properties : undefined });
      if (bytes && bytes.length <= this.clientMaxPacketSize) return this.write(bytes);
    }
  }

  private send(packet: Packet): void {
    if (this.closed) return;
    const bytes = this.encoder.encode(packet);
    if (bytes) this.write(bytes);
  }

  /** Writes made in one tick go out in one syscall: cork now, uncork on the next tick. */
  private write(bytes: PublishBytes): void {
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      scheduleFlush(this);
    }
    if (Buffer.isBuffer(bytes)) {
      this.stats.sent(bytes.length);
      this.stream.write(bytes);
      return;
    }
    // A head and the shared payload: two chunks of the same corked writev.
    this.stats.sent(bytes[0].length + bytes[1].length);
    this.stream.write(bytes[0]);
    this.stream.write(bytes[1]);
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
  fail(err: ProtocolError): void {
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
    clearTimeout(this.expiryTimer);
  }

  /** Gives back what this connection held of the shared inbound budget; publishers it held back go on. */
  private releaseInbound(): void {
    this.reader.stop();
    this.releaseDrainWaiters();
    this.releaseIdentity();
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
