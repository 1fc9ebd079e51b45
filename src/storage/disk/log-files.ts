import fs from 'node:fs';

/** Segment file names: the global position of the first byte, 20 digits. */
export const SEGMENT_NAME = /^(\d{20})\.log$/;

export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.log`;
}

/** Writes every buffer at `position`, going on after a short write. */
export function writeAllSync(fd: number, buffers: Buffer[], position: number): void {
  let pos = position;
  let pendingBuffers = buffers;
  while (pendingBuffers.length > 0) {
    const written = fs.writevSync(fd, pendingBuffers, pos);
    pos += written;
    // A short write leaves the rest of the batch to write.
    let skip = written;
    const rest: Buffer[] = [];
    for (const b of pendingBuffers) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    pendingBuffers = rest;
  }
}

export function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The StorageError code for a failed file operation: a full disk, no descriptor left, or another write error. */
export function storageErrorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'EDDY_STORAGE_FULL';
  if (code === 'EMFILE' || code === 'ENFILE') return 'EDDY_STORAGE_UNAVAILABLE';
  return 'EDDY_STORAGE_WRITE';
}

