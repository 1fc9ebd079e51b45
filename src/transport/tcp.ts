import net from 'node:net';
import type { Broker } from '../core/broker.js';
import { MqttConnection } from '../protocol/mqtt/connection.js';
import type { Logger } from '../util/logger.js';
import { listen } from './listen.js';

/** MQTT over plain TCP. */
export class TcpListener {
  private readonly server: net.Server;
  private readonly connections = new Set<MqttConnection>();

  constructor(broker: Broker, log: Logger) {
    this.server = net.createServer((socket) => {
      socket.setNoDelay(true);
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      const connection = new MqttConnection(socket, broker, log, remote);
      this.connections.add(connection);
      socket.once('close', () => this.connections.delete(connection));
    });
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    return listen(this.server, host, port, 'MQTT');
  }

  /** Stops accepting, then closes every client with "server shutting down". */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.close(0x8b, 'server shutting down');
    await closed;
  }
}
