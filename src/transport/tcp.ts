import net from 'node:net';
import type { Broker } from '../core/broker.js';
import { MqttConnection } from '../protocol/mqtt/connection.js';
import type { MqttIntake } from '../protocol/mqtt/intake.js';
import type { PeerInfo } from '../core/admission/peer.js';
import type { Logger } from '../util/logger.js';
import { listen } from './listen.js';
import { SHUTTING_DOWN, type Farewell, type FarewellCount } from './farewell.js';

/** How long clients have, at shutdown, to read their DISCONNECT before their sockets are destroyed. */
const SHUTDOWN_GRACE_MS = 1000;

/** MQTT over plain TCP. */
export class TcpListener {
  private readonly server: net.Server;
  private readonly connections = new Set<MqttConnection>();
  private readonly log: Logger;

  constructor(broker: Broker, log: Logger, intake: MqttIntake) {
    this.server = net.createServer((socket) => {
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      // Counted from accept, so that sockets which never send CONNECT cannot exceed maxConnections.
      const admitted = intake.admit(remote);
      if (admitted === 'refuse') {
        socket.on('error', () => {});
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      const peer: PeerInfo = { remote, address: socket.remoteAddress ?? '', transport: 'tcp' };
      const connection = new MqttConnection(socket, broker, log, peer, intake, admitted === 'busy');
      this.connections.add(connection);
      socket.once('close', () => {
        intake.closed();
        this.connections.delete(connection);
      });
    });
    this.log = log;
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    const address = await listen(this.server, host, port, 'MQTT');
    // Once bound, an error (EMFILE at accept when descriptors run out) is the listener's, not a client's: log it, keep listening.
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'MQTT listener error'));
    return address;
  }

  /** Stops accepting, then closes every client with the farewell (by default 0x8B "server shutting down"). */
  async close(farewell: Farewell = SHUTTING_DOWN): Promise<FarewellCount> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const count = { closed: this.connections.size, told: 0 };
    for (const connection of this.connections) if (connection.farewell(farewell)) count.told++;
    // A client that does not read never sees the close: after a grace period it is cut off.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
    clearTimeout(timer);
    for (const connection of this.connections) connection.destroy();
    await closed;
    return count;
  }
}
