import type { Duplex } from 'node:stream';
import type { BrokerStats } from '../../core/broker.js';
import type { BrokerLimits } from '../../core/limits.js';
import type { SessionLink } from '../../core/session.js';
import { ProtocolError } from '../../util/errors.js';
import { RC } from './codes.js';
import { PacketFramer } from './framer.js';
import type { MqttIntake } from './intake.js';

/** Longest a publisher is held back for a congested subscriber before that subscriber counts as slow. */
const MAX_THROTTLE_MS = 1000;

/** What the reader needs of its connection. */
export interface InboundOwner {
  /** One whole packet, as framed. */
  frame(bytes: Buffer): void;
  /** The client broke a limit (oversized or malformed header, packet timeout): close with this reason. */
  fail(err: ProtocolError): void;
  /** Wraps a timer callback so that what it throws closes the connection, not the process. */
  guard<A extends unknown[]>(where: string, fn: (...args: A) => void): (...args: A) => void;
  readonly closed: boolean;
}

/**
 * The reading side of one MQTT connection: frames the byte stream into packets, and decides when
 * the connection is read at all. Reading pauses for two reasons, each with its own way back: the
 * shared budget for unfinished packets has no room for the next one (the intake wakes it once room
 * returns), or a subscriber this client's messages go to is behind (it resumes when that subscriber
 * drains, or after MAX_THROTTLE_MS, when that subscriber counts as a slow consumer). Every packet
 * must complete within `packetTimeout` of its first byte, waiting for room included.
 */
export class InboundReader {
  private readonly framer: PacketFramer;
  private waitingForRoom = false;
  /** Held by the connection (while its CONNECT is being authenticated). */
  private held = false;
  /** Congested subscribers of this client's messages that reading waits for. */
  private readonly throttledBy = new Set<SessionLink>();
  private throttleTimer: NodeJS.Timeout | undefined;
  private packetTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: Duplex,
    private readonly intake: MqttIntake,
    private readonly limits: BrokerLimits,
    private readonly stats: BrokerStats,
    private readonly owner: InboundOwner,
  ) {
    this.framer = new PacketFramer(() => limits.maxPacketSize, intake);
  }

  /** A chunk from the stream. */
  read(chunk: Buffer): void {
    if (this.owner.closed) return;
    let rest: Buffer | undefined;
    try {
      rest = this.framer.push(chunk, this.emit);
    } catch (err) {
      if (err instanceof ProtocolError) return this.owner.fail(err);
      throw err;
    }
    if (this.owner.closed) return;
    this.armPacketTimer();
    if (!rest) return;
    // What was not taken goes back to the stream, whose buffer is then full: Node stops reading
    // the socket, so a paused connection holds one chunk, and the kernel holds the rest.
    this.stream.pause();
    this.stream.unshift(rest);
    this.waitingForRoom = true;
    this.intake.waitForRoom(this.retryReading);
  }

  /** Stops reading until `release` (the connection authenticates its CONNECT meanwhile). */
  hold(): void {
    this.held = true;
    this.stream.pause();
  }

  release(): void {
    this.held = false;
    this.resume();
  }

  /** Stops reading for `behind`, a congested subscriber of this client's messages (SessionLink.throttleFor). */
  throttleFor(behind: SessionLink): void {
    if (this.owner.closed || behind.slow || !behind.whenDrained || this.throttledBy.has(behind)) return;
    this.throttledBy.add(behind);
    if (this.throttledBy.size === 1) {
      this.stats.throttledPublishers++;
      this.stream.pause();
      this.throttleTimer = setTimeout(this.owner.guard('throttle timer', () => this.throttleTimedOut()), MAX_THROTTLE_MS);
      this.throttleTimer.unref();
    }
    behind.whenDrained(() => this.unthrottle(behind));
  }

  /** The connection is closing: gives back what it holds of the shared budget, stops its timers. */
  stop(): void {
    this.framer.discard();
    if (this.waitingForRoom) this.intake.forget(this.retryReading);
    this.waitingForRoom = false;
    this.throttledBy.clear();
    clearTimeout(this.throttleTimer);
    clearTimeout(this.packetTimer);
  }

  private readonly emit = (bytes: Buffer): void => this.owner.frame(bytes);

  /** Called by the intake when the budget may have room again; true once this connection waits no more. */
  private readonly retryReading = (): boolean => {
    if (this.owner.closed || !this.waitingForRoom) return true;
    if (!this.framer.claim()) return false;
    this.waitingForRoom = false;
    this.resume();
    return true;
  };

  /** Reading goes on once nothing holds it back: neither the inbound budget nor a congested subscriber. */
  private resume(): void {
    if (!this.owner.closed && !this.held && !this.waitingForRoom && this.throttledBy.size === 0) this.stream.resume();
  }

  private unthrottle(behind: SessionLink): void {
    if (!this.throttledBy.delete(behind) || this.throttledBy.size > 0) return;
    clearTimeout(this.throttleTimer);
    this.resume();
  }

  /** Subscribers that did not drain within MAX_THROTTLE_MS are slow consumers: they slow no one down until they drain. */
  private throttleTimedOut(): void {
    for (const behind of this.throttledBy) {
      if (!behind.slow) this.stats.slowConsumers++;
      behind.slow = true;
    }
    this.throttledBy.clear();
    this.resume();
  }

  /** A packet must be complete within `packetTimeout` seconds of its first byte. */
  private armPacketTimer(): void {
    if (this.packetTimer || this.framer.partialSince === 0) return;
    const timeoutMs = this.limits.packetTimeout * 1000;
    const check = (): void => {
      this.packetTimer = undefined;
      const since = this.framer.partialSince;
      if (this.owner.closed || since === 0) return;
      const left = since + timeoutMs - Date.now();
      if (left > 0) {
        this.packetTimer = setTimeout(this.owner.guard('packet timer', check), left);
        this.packetTimer.unref();
        return;
      }
      this.stats.packetTimeouts++;
      this.owner.fail(new ProtocolError(RC.ProtocolError, `packet not completed within ${this.limits.packetTimeout} s (${this.framer.held} bytes held)`));
    };
    this.packetTimer = setTimeout(this.owner.guard('packet timer', check), Math.max(timeoutMs - (Date.now() - this.framer.partialSince), 0));
    this.packetTimer.unref();
  }
}
