import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { WebSocketServer, createWebSocketStream } from 'ws';

export interface RawBrokerOptions {
  /** TLS (mqtts://, or wss:// with `websocket`). */
  tls?: tls.TlsOptions;
  /** MQTT over WebSocket at any path (ws://, wss://). */
  websocket?: boolean;
}

/**
 * A minimal MQTT server that records what clients send, for tests of what a client puts on the
 * wire (the user name and password of a CONNECT) without a broker's authentication in the way.
 * It accepts every CONNECT, acknowledges publishes and subscriptions, answers pings, and can cut
 * a connection to make a client reconnect. Plain TCP, TLS, WebSocket or WebSocket over TLS.
 */
export class RawBroker {
  readonly connects: IConnectPacket[] = [];
  readonly packets: Packet[] = [];
  private readonly sockets = new Set<Duplex>();
  private readonly server: net.Server;
  private listeners: Array<() => void> = [];

  private constructor(options: RawBrokerOptions) {
    const onSocket = (socket: Duplex): void => this.serve(socket);
    if (options.websocket) {
      const web = options.tls ? https.createServer(options.tls) : http.createServer();
      const wss = new WebSocketServer({ server: web });
      wss.on('connection', (ws) => onSocket(createWebSocketStream(ws)));
      this.server = web;
    } else {
      this.server = options.tls ? tls.createServer(options.tls, onSocket) : net.createServer(onSocket);
    }
  }

  static async start(options: RawBrokerOptions = {}): Promise<RawBroker> {
    const broker = new RawBroker(options);
    await new Promise<void>((resolve) => broker.server.listen(0, '127.0.0.1', resolve));
    return broker;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Resolves once `n` CONNECT packets have arrived; rejects after `ms`. */
  waitForConnects(n: number, ms = 10_000): Promise<IConnectPacket[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.connects.length < n) return false;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve(this.connects.slice(0, n));
        return true;
      };
      const listener = (): void => void check();
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`expected ${n} CONNECTs within ${ms} ms, got ${this.connects.length}`));
      }, ms);
      if (!check()) this.listeners.push(listener);
    });
  }

  /** Cuts every open connection (no DISCONNECT), as a broker restart would. */
  dropAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.dropAll();
    (this.server as Partial<http.Server>).closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Duplex): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let protocolVersion = 4;
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    const send = (packet: Packet): void => void socket.write(mqttPacket.generate(packet, { protocolVersion }));
    parser.on('packet', (packet: Packet) => {
      this.packets.push(packet);
      switch (packet.cmd) {
        case 'connect':
          protocolVersion = packet.protocolVersion ?? 4;
          this.connects.push(packet);
          send({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false } as Packet);
          for (const listener of [...this.listeners]) listener();
          break;
        case 'publish':
          if (packet.qos === 1) send({ cmd: 'puback', messageId: packet.messageId, reasonCode: 0 } as Packet);
          if (packet.qos === 2) send({ cmd: 'pubrec', messageId: packet.messageId, reasonCode: 0 } as Packet);
          break;
        case 'pubrel':
          send({ cmd: 'pubcomp', messageId: packet.messageId, reasonCode: 0 } as Packet);
          break;
        case 'subscribe':
          send({ cmd: 'suback', messageId: packet.messageId, granted: packet.subscriptions.map((s) => s.qos), reasonCode: 0 } as Packet);
          break;
        case 'pingreq':
          send({ cmd: 'pingresp' } as Packet);
          break;
        case 'disconnect':
          socket.end();
          break;
        default:
          break;
      }
    });
    parser.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  }
}
