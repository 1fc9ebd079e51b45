// Payload layout: [f64 send time (performance.now, ms)][u16 publisher][u32 sequence][filler].
// The timestamp is only meaningful because publishers and subscribers share this process's clock.
import { performance } from 'node:perf_hooks';

export const HEADER_BYTES = 14;
const FILLER = 0x2e;

export function encodePayload(size: number, publisher: number, seq: number): Buffer {
  // A fresh buffer per message: the socket may still hold the previous one when writes are queued.
  const buf = Buffer.allocUnsafe(size);
  buf.fill(FILLER, HEADER_BYTES);
  buf.writeUInt16BE(publisher, 8);
  buf.writeUInt32BE(seq, 10);
  // Stamped last so buffer preparation is not counted as latency.
  buf.writeDoubleBE(performance.now(), 0);
  return buf;
}

export interface DecodedPayload {
  sentAt: number;
  publisher: number;
  seq: number;
}

export function decodePayload(buf: Buffer): DecodedPayload | undefined {
  if (buf.length < HEADER_BYTES) return undefined;
  return { sentAt: buf.readDoubleBE(0), publisher: buf.readUInt16BE(8), seq: buf.readUInt32BE(10) };
}
