import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../util/logger.js';

/** Space set aside in the data directory, given back when the disk fills up: a sixteenth of the disk, 16 KiB to 1 MiB. */
const MAX_RESERVE_BYTES = 1024 * 1024;
const MIN_RESERVE_BYTES = 16 * 1024;
/** Segments are at most this large, and at least the smaller size, whatever the disk. */
const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 64 * 1024;

/**
 * How the disk engine copes with a disk that fills up. Freeing log segments needs a checkpoint
 * first (so that recovery never starts in a deleted segment), and a checkpoint needs a little space:
 * a full disk could never free itself. So the engine keeps a reserve file, deletes it when a write
 * finds the disk full, writes the checkpoint in the room it leaves, deletes the segments nothing
 * needs, and sets the reserve aside again once there is room.
 */
export class DiskSpace {
  private readonly reserveFile: string;
  private reserved = false;
  private reserveBytes = MAX_RESERVE_BYTES;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    this.reserveFile = path.join(dir, 'RESERVE');
  }

  /**
   * Segment size for this disk: a sixteenth of the file system, between 64 KiB and 64 MiB, so that a
   * small disk still holds several segments and the oldest can be deleted while the newest fills.
   */
  segmentBytesFor(): number {
    try {
      const stats = fs.statfsSync(this.dir);
      const total = stats.blocks * stats.bsize;
      this.reserveBytes = Math.max(MIN_RESERVE_BYTES, Math.min(MAX_RESERVE_BYTES, Math.floor(total / 16)));
      return Math.max(MIN_SEGMENT_BYTES, Math.min(MAX_SEGMENT_BYTES, Math.floor(total / 16)));
    } catch {
      return MAX_SEGMENT_BYTES;
    }
  }

  /** Sets the reserve aside when there is room for it and some more; a failure is no error. */
  ensureReserve(): void {
    if (this.reserved) return;
    try {
      if (fs.existsSync(this.reserveFile) && fs.statSync(this.reserveFile).size === this.reserveBytes) {
        this.reserved = true;
        return;
      }
      const stats = fs.statfsSync(this.dir);
      if (stats.bavail * stats.bsize < this.reserveBytes * 8) return;
      fs.writeFileSync(this.reserveFile, Buffer.alloc(this.reserveBytes));
      this.reserved = true;
    } catch {
      fs.rmSync(this.reserveFile, { force: true });
    }
  }

  /** After the disk was full: true once there is room to write again (twice the reserve free). */
  hasRoom(): boolean {
    try {
      const stats = fs.statfsSync(this.dir);
      return stats.bavail * stats.bsize >= this.reserveBytes * 2;
    } catch {
      return true;
    }
  }

  /** The disk is full: gives the reserve back, so that a checkpoint can be written. True if it had one. */
  release(): boolean {
    if (!this.reserved) return false;
    fs.rmSync(this.reserveFile, { force: true });
    this.reserved = false;
    this.log.warn({ dir: this.dir, bytes: this.reserveBytes }, 'disk full: reserve released so that a checkpoint can free log segments');
    return true;
  }
}
