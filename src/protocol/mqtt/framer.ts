import { ProtocolError } from '../../util/errors.js';
import { RC } from './codes.js';

/** Where the bytes of unfinished packets are accounted for (the intake's shared budget). */
export interface InboundReservations {
  /** Reserves `bytes` for one unfinished packet; false when the budget has no room now. */
  reserve(bytes: number): boolean;
  release(bytes: number): void;
}

/**
 * Splits an MQTT byte stream into whole packets by their fixed header, before any decoding, so the
 * broker knows a packet's size from its first bytes: one that announces more than the maximum
 * packet size is refused at once, and an unfinished one holds exactly its announced size, taken
 * from a budget shared by every connection. Complete packets inside one chunk are passed on as
 * views of that chunk, without a copy.
 */
export class PacketFramer {
  /** The fixed header being read, when a chunk ended inside it (at most 5 bytes). */
  private readonly header = Buffer.alloc(5);
  private headerBytes = 0;
  /** The unfinished packet being filled, allocated at its announced size. */
  private packet: Buffer | undefined;
  private filled = 0;
  /** When the current unfinished packet (or header) began, for the packet timeout; 0 when none. */
  partialSince = 0;
  /** Set by `discard`: the connection is closing, and nothing more is framed or reserved. */
  private stopped = false;
  /** No packet has started yet: the first must be a CONNECT, which is known from its first byte. */
  private first = true;
  /** Bytes the next unfinished packet needs and could not reserve (reading is paused meanwhile). */
  private wanted = 0;
  /** Bytes reserved ahead, by `claim`, for the packet that could not reserve them. */
  private granted = 0;

  constructor(
    private readonly maxPacketSize: () => number,
    private readonly reservations: InboundReservations,
  ) {}

  /** Bytes held for the unfinished packet (its whole announced size once known). */
  get held(): number {
    return this.packet ? this.packet.length : this.headerBytes;
  }

  /**
   * Feeds a chunk; calls `emit` with each complete packet. Returns the part of the chunk not taken
   * when an unfinished packet could not reserve its bytes: the caller pauses reading, and feeds that
   * rest again once `claim` succeeds. Throws a ProtocolError for an oversized or malformed header.
   */
  push(chunk: Buffer, emit: (packet: Buffer) => void): Buffer | undefined {
    let offset = 0;
    while (offset < chunk.length && !this.stopped) {
      if (this.packet) {
        const n = Math.min(chunk.length - offset, this.packet.length - this.filled);
        chunk.copy(this.packet, this.filled, offset, offset + n);
        this.filled += n;
        offset += n;
        if (this.filled === this.packet.length) this.complete(emit);
        continue;
      }
      if (this.headerBytes === 0) {
        this.checkFirstByte(chunk[offset]!);
        const size = packetSize(chunk, offset);
        if (size !== undefined) {
          this.checkSize(size);
          if (offset + size <= chunk.length) {
            emit(chunk.subarray(offset, offset + size));
            offset += size;
            continue;
          }
          if (!this.begin(size)) return chunk.subarray(offset);
          continue; // the loop copies the rest of the chunk into the new packet
        }
      }
      // A chunk that ends inside a fixed header: collect it byte by byte (at most 5 bytes).
      this.header[this.headerBytes++] = chunk[offset++]!;
      if (this.partialSince === 0) this.partialSince = Date.now();
      const size = packetSize(this.header.subarray(0, this.headerBytes), 0);
      if (size === undefined) continue;
      this.checkSize(size);
      const headerBytes = this.headerBytes;
      if (!this.reserve(size)) {
        // Keep the header bytes; the rest of the chunk waits for room.
        return chunk.subarray(offset);
      }
      this.packet = Buffer.allocUnsafe(size);
      this.header.copy(this.packet, 0, 0, headerBytes);
      this.filled = headerBytes;
      this.headerBytes = 0;
      if (this.filled === size) this.complete(emit);
    }
    return undefined;
  }

  /**
   * After `push` returned a rest: reserves what the waiting packet needs, if the budget now has
   * room. True when it did; the caller then feeds the rest again.
   */
  claim(): boolean {
    if (this.stopped || this.wanted === 0) return true;
    if (!this.reservations.reserve(this.wanted)) return false;
    this.granted = this.wanted;
    this.wanted = 0;
    return true;
  }

  /** Gives back what an unfinished packet holds (the connection is closing). */
  discard(): void {
    this.stopped = true;
    if (this.packet) this.reservations.release(this.packet.length);
    if (this.granted > 0) this.reservations.release(this.granted);
    this.granted = 0;
    this.wanted = 0;
    this.packet = undefined;
    this.filled = 0;
    this.headerBytes = 0;
    this.partialSince = 0;
  }

  private reserve(size: number): boolean {
    if (this.granted === size) {
      this.granted = 0;
      return true;
    }
    if (this.reservations.reserve(size)) return true;
    this.wanted = size;
    return false;
  }

  private begin(size: number): boolean {
    // The packet's time starts at its header, also while it waits for room: a packet that waits
    // longer than the packet timeout is cut off like one that arrives too slowly.
    if (this.partialSince === 0) this.partialSince = Date.now();
    if (!this.reserve(size)) return false;
    this.packet = Buffer.allocUnsafe(size);
    this.filled = 0;
    return true;
  }

  private complete(emit: (packet: Buffer) => void): void {
    const packet = this.packet!;
    this.packet = undefined;
    this.filled = 0;
    this.partialSince = 0;
    this.reservations.release(packet.length);
    emit(packet);
  }

  /**
   * Refuses a packet by its first byte, before waiting for the rest: a type MQTT does not define,
   * reserved flag bits that are wrong (§2.1.3), QoS 3, or anything but CONNECT first. A peer that
   * is not speaking MQTT (an HTTP request, zeros) is cut off at once.
   */
  private checkFirstByte(byte: number): void {
    const type = byte >> 4;
    const flags = byte & 0x0f;
    if (type === 0) throw new ProtocolError(RC.MalformedPacket, 'packet type 0 is reserved');
    if (type === 3) {
      if ((flags & 0x06) === 0x06) throw new ProtocolError(RC.MalformedPacket, 'PUBLISH with QoS 3');
    } else {
      const expected = type === 6 || type === 8 || type === 10 ? 0x02 : 0x00;
      if (flags !== expected) throw new ProtocolError(RC.MalformedPacket, `reserved flags of packet type ${type} must be ${expected}, got ${flags}`);
    }
    if (this.first) {
      this.first = false;
      if (type !== 1) throw new ProtocolError(RC.ProtocolError, `first packet must be CONNECT, got packet type ${type}`);
    }
  }

  private checkSize(size: number): void {
    const max = this.maxPacketSize();
    if (size > max) throw new ProtocolError(RC.PacketTooLarge, `packet of ${size} bytes announced, more than the maximum packet size ${max}`);
  }
}

/**
 * The whole size of the packet starting at `offset` (fixed header included), from its remaining
 * length; undefined while the header is incomplete. A remaining length longer than four bytes is
 * malformed (MQTT 2.2.3).
 */
export function packetSize(buf: Buffer, offset: number): number | undefined {
  let multiplier = 1;
  let length = 0;
  for (let i = 1; i <= 4; i++) {
    if (offset + i >= buf.length) return undefined;
    const byte = buf[offset + i]!;
    length += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return 1 + i + length;
    multiplier *= 128;
  }
  throw new ProtocolError(RC.MalformedPacket, 'malformed remaining length: more than four bytes');
}
