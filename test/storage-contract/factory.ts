import type { Storage } from '../../src/core/storage.js';

/**
 * How the contract suite gets at an engine. Engine-neutral on purpose: a memory engine, the disk
 * engine and a networked one (NATS JetStream, later) each answer the same three questions.
 */
export interface StorageFactory {
  /** True when what is stored survives `reopen` (a restart); the memory engine's does not. */
  readonly durable: boolean;
  /**
   * The largest message (payload and the engine's own framing) the engine's backend accepts, when it
   * has such a limit (NATS: the servers' max_payload, 1 MiB by default). Tests of larger messages are
   * skipped with that reason rather than left to fail.
   */
  readonly maxMessageBytes?: number;
  /** A fresh, empty store (its own directory, stream or bucket). */
  create(): Promise<StoreUnderTest>;
}

export interface StoreUnderTest {
  /** A new engine over this store, not yet opened. The suite opens and closes it. */
  engine(): Storage;
  /**
   * How a child process opens an engine over this store, for the kill -9 test: the module (a file
   * path) exports `openEngine(argument: string): Storage`. Absent for engines without a process
   * of their own whose death could lose anything (memory).
   */
  readonly child?: { module: string; argument: string };
  /** Removes the store and everything in it. */
  destroy(): Promise<void>;
}
