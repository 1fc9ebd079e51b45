import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Broker } from '../core/broker.js';
import { MqttConnection } from '../protocol/mqtt/connection.js';
import type { MqttIntake } from '../protocol/mqtt/intake.js';
import { peerOfUpgrade } from '../http/peer.js';
import type { Logger } from '../util/logger.js';
import { holdToInboundLimits } from './websocket-inbound.js';
import { SHUTTING_DOWN, type Farewell, type FarewellCount } from './farewell.js';

/** MQTT over WebSocket at `/mqtt`, subprotocol `mqtt` (MQTT 5 §6), on the HTTP and the HTTPS listeners. */
export class WebSocketListener {
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<MqttConnection>();

  constructor(broker: Broker, log: Logger, intake: MqttIntake) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: broker.limits.maxPacketSize + 5,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    });
    this.wss.on('connection', (ws, request) => {
      // Transport `ws`, or `wss` (with the client certificate, when asked for) on an HTTPS listener.
      const peer = peerOfUpgrade(request);
      const remote = peer.remote;
      const admitted = intake.admit(remote);
      if (admitted === 'refuse') {
        ws.terminate();
        return;
      }
      const stream = createWebSocketStream(ws);
      const connection = new MqttConnection(stream, broker, log, peer, intake, admitted === 'busy');
      holdToInboundLimits(ws, request.socket, intake, broker.limits, broker.reportInternalError, () => {
        broker.stats.packetTimeouts++;
        log.warn({ remote, limit: broker.limits.packetTimeout }, 'WebSocket message not completed within packetTimeout: closing the connection');
        ws.terminate();
      });
      this.connections.add(connection);
      stream.once('close', () => {
        intake.closed();
        this.connections.delete(connection);
      });
    });
  }

  /** Takes an HTTP upgrade request for `/mqtt`. */
  handleUpgrade(request: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(request, socket, head, (ws) => this.wss.emit('connection', ws, request));
  }

  /** Closes every client with the farewell (default 0x8B); upgrades after this are refused by `ws` (503). */
  close(farewell: Farewell = SHUTTING_DOWN): FarewellCount {
    const count = { closed: this.connections.size, told: 0 };
    for (const connection of this.connections) if (connection.farewell(farewell)) count.told++;
    this.wss.close();
    return count;
  }
}
