import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Storage } from '../../src/core/storage.js';
import { DiskStorage } from '../../src/storage/disk/disk-storage.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../../src/util/logger.js';
import type { StorageFactory, StoreUnderTest } from './factory.js';

/** The memory engine: one instance is the whole store, gone with it. */
export const memoryFactory: StorageFactory = {
  durable: false,
  async create(): Promise<StoreUnderTest> {
    const storage = new MemoryStorage();
    return { engine: () => storage, destroy: async () => {} };
  },
};

/** The disk engine over a temporary data directory, fsync always, small segments so that tests cross them. */
export const diskFactory: StorageFactory = {
  durable: true,
  async create(): Promise<StoreUnderTest> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-contract-'));
    return {
      engine: () => openEngine(dir),
      child: { module: fileURLToPath(import.meta.url), argument: dir },
      destroy: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  },
};

/** What the crash test's child process calls (see StoreUnderTest.child). */
export function openEngine(dir: string): Storage {
  return new DiskStorage({ dir, fsync: { kind: 'always' }, logger: silentLogger, segmentBytes: 256 * 1024 });
}
