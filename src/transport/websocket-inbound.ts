import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { BrokerLimits } from '../core/limits.js';
import type { MqttIntake } from '../protocol/mqtt/intake.js';
import { guarded, type ErrorReporter } from '../util/guard.js';

/** The parts of ws's receiver that say how much of an unfinished WebSocket message it holds. */
interface ReceiverBuffers {
  _bufferedBytes: number;
  _totalPayloadLength: number;
}

/**
 * The `ws` library assembles each WebSocket message before MQTT sees a byte of it, so the MQTT
 * framer's limits cannot apply to it. This holds a WebSocket connection to the same ones: what ws
 * buffers of an unfinished message is reserved from the shared inbound budget (`maxInboundBytes`;
 * the socket stops being read while there is no room) and must complete within `packetTimeout`, or
 * the connection is cut. ws itself refuses a message over `maxPayload` at its header. It reads two
 * of ws's internal counters; when a ws version no longer has them, only ws's own limit applies.
 */
export function holdToInboundLimits(ws: WebSocket, socket: Duplex, intake: MqttIntake, limits: BrokerLimits, report: ErrorReporter, onTimeout: () => void): void {
  const receiver = (ws as unknown as { _receiver?: Partial<ReceiverBuffers> })._receiver;
  if (typeof receiver?._bufferedBytes !== 'number' || typeof receiver._totalPayloadLength !== 'number') return;
  const buffers = receiver as ReceiverBuffers;
  let reserved = 0;
  let since = 0;
  let paused = false;
  let timer: NodeJS.Timeout | undefined;

  const held = (): number => buffers._bufferedBytes + buffers._totalPayloadLength;
  const checkTimeout = guarded(report, 'WebSocket packet timer', () => {
    timer = undefined;
    if (since === 0) return;
    const left = since + limits.packetTimeout * 1000 - Date.now();
    if (left > 0) {
      timer = setTimeout(checkTimeout, left);
      timer.unref();
      return;
    }
    onTimeout();
  });
  /** Brings the reservation to what ws holds now; false when the budget had no room for it. */
  const settle = (): boolean => {
    const now = held();
    if (now === 0) {
      since = 0;
      if (reserved > 0) intake.release(reserved);
      reserved = 0;
      return true;
    }
    if (since === 0) since = Date.now();
    timer ??= setTimeout(checkTimeout, limits.packetTimeout * 1000);
    timer.unref();
    if (now < reserved) {
      intake.release(reserved - now);
      reserved = now;
      return true;
    }
    if (now === reserved) return true;
    if (!intake.reserve(now - reserved)) return false;
    reserved = now;
    return true;
  };
  const retry = (): boolean => {
    if (!paused) return true;
    if (!settle()) return false;
    paused = false;
    socket.resume();
    return true;
  };
  // After ws's own listener: by then ws has taken in the chunk and emitted what it completed.
  socket.on(
    'data',
    guarded(report, 'WebSocket inbound', () => {
      if (settle() || paused) return;
      paused = true;
      socket.pause();
      intake.waitForRoom(retry);
    }),
  );
  socket.once('close', () => {
    clearTimeout(timer);
    if (paused) intake.forget(retry);
    if (reserved > 0) intake.release(reserved);
    reserved = 0;
  });
}
