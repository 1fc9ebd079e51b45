import fs from 'node:fs';

/** What the readers need of a log segment. */
export interface ReadableSegment {
  file: string;
  /** A read-only descriptor, kept while recently read; asynchronous reads use it for the tail too. */
  readFd?: number;
  /** Asynchronous reads under way through `readFd`: it is neither closed nor the segment deleted meanwhile. */
  readers?: number;
}

/** Older segments kept open for reading: queues and replays read the same few segments again and again. */
const READ_FDS = 8;

/**
 * The log's reading side: read-only descriptors of the segments read last (never the tail's own,
 * which a roll closes, maybe mid-read), and reads through the thread pool that pin their segment,
 * so that neither a checkpoint's deletion nor the descriptor cache pulls it away during the read.
 */
export class SegmentReaders {
  /** Segments with a read descriptor open, least recently read first. */
  private readonly open: ReadableSegment[] = [];
  private inFlight = 0;

  /** True while a read of `segment` is under way: it must not be deleted yet. */
  isPinned(segment: ReadableSegment): boolean {
    return (segment.readers ?? 0) > 0;
  }

  /** Reads `length` bytes at `offset` of the segment into `buf`; resolves with the bytes read. */
  async read(segment: ReadableSegment, buf: Buffer, length: number, offset: number): Promise<number> {
    const fd = this.descriptor(segment);
    segment.readers = (segment.readers ?? 0) + 1;
    this.inFlight++;
    try {
      return await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, length, offset, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));
    } finally {
      segment.readers = segment.readers! - 1;
      this.inFlight--;
    }
  }

  /** The segment is being deleted: its descriptor goes. */
  forget(segment: ReadableSegment): void {
    const cached = this.open.indexOf(segment);
    if (cached >= 0) this.open.splice(cached, 1);
    closeReadFd(segment);
  }

  /** Resolves once no read is under way (the log is closing), then closes every descriptor. */
  async closeAll(segments: Iterable<ReadableSegment>): Promise<void> {
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 1));
    for (const segment of segments) closeReadFd(segment);
    this.open.length = 0;
  }

  /**
   * A read-only descriptor of the segment, cached for the last few read. Opening can fail (EMFILE
   * when descriptors run out); the caller's read then fails and is retried later.
   */
  private descriptor(segment: ReadableSegment): number {
    const cached = this.open.indexOf(segment);
    if (cached >= 0) {
      this.open.splice(cached, 1);
      this.open.push(segment);
      return segment.readFd!;
    }
    segment.readFd = fs.openSync(segment.file, 'r');
    this.open.push(segment);
    while (this.open.length > READ_FDS) {
      // Least recently read first, but never one a read is using.
      const idle = this.open.findIndex((x) => !x.readers);
      if (idle === -1 || this.open[idle] === segment) break;
      closeReadFd(this.open.splice(idle, 1)[0]!);
    }
    return segment.readFd;
  }
}

function closeReadFd(segment: ReadableSegment): void {
  if (segment.readFd === undefined) return;
  try {
    fs.closeSync(segment.readFd);
  } catch {
    /* closing a descriptor of a segment on its way out cannot be helped */
  }
  segment.readFd = undefined;
}
