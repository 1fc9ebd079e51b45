import mqtt, { ReasonCodes, type IClientOptions, type IDisconnectPacket, type MqttClient, type Packet } from 'mqtt';
import { EddyError } from '../util/errors.js';
import { describeConnectError, redactUrl } from './connect-errors.js';
import type { ConnectTarget } from './connection-flags.js';

export const DEFAULT_URL = process.env.EDDY_URL ?? 'mqtt://127.0.0.1:1883';

/**
 * One line for an MQTT 5 reason as the broker gave it: `0x99 payload format invalid: user/signedup:
 * /email must match format "email"`, the code in hex, its name, then the broker's reason string.
 */
export function describeReason(code: number, reasonString?: string): string {
  const name = (ReasonCodes as Record<number, string | undefined>)[code]?.toLowerCase();
  return `0x${code.toString(16).padStart(2, '0')}${name ? ` ${name}` : ''}${reasonString ? `: ${reasonString}` : ''}`;
}

/** A connected CLI client, and what it knows about how the broker ended the connection. */
export interface CliConnection {
  client: MqttClient;
  /**
   * Rejects when the connection ends other than by `end()`, with the broker's DISCONNECT reason code
   * and string when it sent one. Never resolves; race it against what you wait for.
   */
  lost: Promise<never>;
  /** The error `lost` rejects with, for a request that failed because the connection closed. */
  closedError(): EddyError;
  /**
   * Resolves once the broker answered a PINGREQ sent now. A broker handles a connection's packets in
   * order, so by then it has handled every packet sent before: a QoS 0 publish it refuses (with a
   * DISCONNECT) rejects this instead.
   */
  roundTrip(): Promise<void>;
  /** Disconnects normally (DISCONNECT 0x00), or at once with `force` (no DISCONNECT). */
  end(force?: boolean): Promise<void>;
}

/**
 * Connects an MQTT 5 client for the CLI, failing fast with one clear line when the broker is not
 * there, or refuses the TLS handshake. `prepare` runs before the CONNECT is sent: a persistent
 * session's queued messages come right behind CONNACK, and a message handler attached after
 * connecting would miss them. `target` comes from `connectionTarget` (URL, credentials, TLS files).
 */
export function connectCli(target: ConnectTarget, options: IClientOptions, prepare?: (client: MqttClient) => void): Promise<CliConnection> {
  const url = target.url;
  const shown = redactUrl(url);
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000, ...target.options, ...options, manualConnect: true });
    prepare?.(client);
    let disconnect: IDisconnectPacket | undefined;
    let ending = false;
    let connected = false;
    client.on('disconnect', (packet: IDisconnectPacket) => (disconnect = packet));

    const closedError = (): EddyError =>
      disconnect
        ? new EddyError('EDDY_DISCONNECTED', `the broker disconnected with ${describeReason(disconnect.reasonCode ?? 0, disconnect.properties?.reasonString)}`)
        : new EddyError('EDDY_DISCONNECTED', 'the broker closed the connection');
    let loseConnection!: (err: EddyError) => void;
    const lost = new Promise<never>((_, rejectLost) => (loseConnection = rejectLost));
    // Nobody may be waiting on it when the connection ends; that is not an unhandled rejection.
    lost.catch(() => {});

    // mqtt.js passes only some socket errors on as 'error' (not a TLS alert after the handshake, as
    // a refused client certificate is in TLS 1.3): the stream's own last error explains a close.
    let streamError: (Error & { code?: string }) | undefined;
    const onError = (err: Error & { code?: string | number }): void => {
      if (connected) return;
      client.end(true);
      const why = typeof err.code === 'number' ? err.message : describeConnectError(err, new URL(url).hostname);
      reject(new EddyError('EDDY_CONNECT', `cannot connect to ${shown}: ${why}`));
    };
    client.once('error', onError);
    client.on('close', () => {
      if (!connected) return onError(disconnect ? closedError() : (streamError ?? new Error('connection closed')));
      if (!ending) loseConnection(closedError());
    });
    client.once('connect', () => {
      connected = true;
      client.off('error', onError);
      // A socket error after connecting (ECONNRESET) ends in 'close', which `lost` reports; an
      // 'error' event without a listener would throw instead.
      client.on('error', () => {});
      resolve({
        client,
        lost,
        closedError,
        roundTrip: () => {
          const answered = new Promise<void>((resolvePing) => {
            const onPacket = (packet: Packet): void => {
              if (packet.cmd !== 'pingresp') return;
              client.off('packetreceive', onPacket);
              resolvePing();
            };
            client.on('packetreceive', onPacket);
          });
          client.sendPing();
          return Promise.race([answered, lost]);
        },
        end: (force = false) => {
          ending = true;
          return client.endAsync(force);
        },
      });
    });
    client.connect();
    client.stream?.on('error', (err: Error & { code?: string }) => (streamError ??= err));
  });
}
