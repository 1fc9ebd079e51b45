import type { EddyServerOptions } from '../../src/server.js';
import { DiskStorage } from '../../src/storage/disk/disk-storage.js';
import { silentLogger } from '../../src/util/logger.js';
import { tempDirs } from './temp-dir.js';

/** The storage engines an MQTT suite runs on: the same tests, so both engines behave the same outwardly. */
export const ENGINES = ['memory', 'disk'] as const;
export type EngineName = (typeof ENGINES)[number];

const tempDir = tempDirs('eddy-engine-');

/** Broker options for an engine: the memory engine is the test broker's default; disk gets a fresh data directory, fsync always. */
export function engineOptions(engine: EngineName): Pick<EddyServerOptions, 'storage'> {
  if (engine === 'memory') return {};
  return { storage: new DiskStorage({ dir: tempDir(), fsync: { kind: 'always' }, logger: silentLogger }) };
}
