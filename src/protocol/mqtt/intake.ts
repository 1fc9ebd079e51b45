import type { BrokerLimits } from '../../core/limits.js';
import type { BrokerStats } from '../../core/broker.js';
import type { Logger } from '../../util/logger.js';
import type { InboundReservations } from './framer.js';

/**
 * What every MQTT front end (TCP, WebSocket) shares before a packet reaches the broker core: the
 * count of open sockets, taken at accept so that sockets which never send CONNECT count against
 * `maxConnections` too, and the budget of bytes that unfinished packets may hold across all
 * connections (`maxInboundBytes`). A connection whose next packet does not fit the budget stops
 * reading until another packet completes or a connection closes, so memory stays bounded without
 * cutting off a client that is merely slow.
 */
export class MqttIntake implements InboundReservations {
  private sockets = 0;
  private reserved = 0;
  /** Connections waiting for room, first come first served. Each returns true once it got it. */
  private waiting: Array<() => boolean> = [];
  private wakeScheduled = false;
  private refusalsLogged = 0;

  constructor(
    private readonly limits: BrokerLimits,
    private readonly stats: BrokerStats,
    private readonly log: Logger,
  ) {}

  get openSockets(): number {
    return this.sockets;
  }

  /** Bytes reserved by unfinished packets right now. */
  get reservedBytes(): number {
    return this.reserved;
  }

  /**
   * Counts a new socket. `open` while fewer than `maxConnections` are open; `busy` for a few sockets
   * past it, which are only told so (CONNACK 0x89 Server busy) and closed; `refuse` beyond those:
   * the caller closes the socket at once.
   */
  admit(remote: string): 'open' | 'busy' | 'refuse' {
    const max = this.limits.maxConnections;
    if (this.sockets < max) {
      this.sockets++;
      return 'open';
    }
    this.stats.refusedConnections++;
    // The first refusal and then every 1000th: a connection flood must not become a log flood.
    if (this.refusalsLogged++ % 1000 === 0) {
      this.log.warn({ remote, open: this.sockets, limit: max, refused: this.stats.refusedConnections }, 'connection refused: maxConnections sockets are open');
    }
    if (this.sockets < max + Math.max(16, Math.ceil(max / 100))) {
      this.sockets++;
      return 'busy';
    }
    return 'refuse';
  }

  closed(): void {
    this.sockets--;
  }

  reserve(bytes: number): boolean {
    // A packet larger than the whole budget still gets through when nothing else holds any.
    if (this.reserved > 0 && this.reserved + bytes > this.limits.maxInboundBytes) return false;
    this.reserved += bytes;
    this.stats.inboundBytes = this.reserved;
    return true;
  }

  release(bytes: number): void {
    this.reserved -= bytes;
    this.stats.inboundBytes = this.reserved;
    if (this.waiting.length > 0 && !this.wakeScheduled) {
      // Woken on a later turn, not inside the packet handling of the connection that released.
      this.wakeScheduled = true;
      setImmediate(() => this.wake());
    }
  }

  /** Queues a paused connection; `retry` feeds what it held back and returns true once it got room. */
  waitForRoom(retry: () => boolean): void {
    this.stats.inboundPauses++;
    this.waiting.push(retry);
  }

  /** A paused connection closed: it waits no more. */
  forget(retry: () => boolean): void {
    const i = this.waiting.indexOf(retry);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  private wake(): void {
    this.wakeScheduled = false;
    while (this.waiting.length > 0) {
      const retry = this.waiting[0]!;
      if (!retry()) return; // still no room: it stays first in line
      this.waiting.shift();
    }
  }
}
