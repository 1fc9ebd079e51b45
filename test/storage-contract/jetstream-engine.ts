import { fileURLToPath } from 'node:url';
import type { Storage } from '../../src/core/storage.js';
import { JetStreamStorage } from '../../src/storage/jetstream/jetstream-storage.js';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js';
import type { StorageFactory, StoreUnderTest } from './factory.js';

/**
 * The JetStream engine over a real 3-node nats-server cluster (test/helpers/nats-cluster.ts), one per
 * test file, started on first use and stopped after the file's tests. Each store is its own namespace
 * (streams, buckets, subjects), so stores never see each other's state; `destroy` deletes them.
 */
let cluster: Promise<NatsCluster> | undefined;
let stores = 0;

export function sharedCluster(): Promise<NatsCluster> {
  cluster ??= startNatsCluster();
  return cluster;
}

/** The test file calls this in its top-level `after` (not here: the crash test's child imports this module). */
export async function stopSharedCluster(): Promise<void> {
  const running = cluster;
  cluster = undefined;
  await (await running)?.stop();
}

export const jetstreamFactory: StorageFactory = {
  durable: true,
  // The launcher's servers keep nats-server's default max_payload (1 MiB), headers and Eddy's envelope included.
  maxMessageBytes: 1024 * 1024,
  async create(): Promise<StoreUnderTest> {
    const nats = await sharedCluster();
    const namespace = `t${process.pid}x${++stores}`;
    const argument = JSON.stringify({ servers: nats.urls, namespace });
    return {
      engine: () => openEngine(argument),
      child: { module: fileURLToPath(import.meta.url), argument },
      destroy: async () => {
        const engine = openEngine(argument) as JetStreamStorage;
        await engine.open();
        try {
          await engine.destroyStore();
        } finally {
          await engine.close();
        }
      },
    };
  },
};

/** What the crash test's child process calls (see StoreUnderTest.child). */
export function openEngine(argument: string): Storage {
  const { servers, namespace } = JSON.parse(argument) as { servers: string[]; namespace: string };
  return new JetStreamStorage({ servers, namespace, replicas: 3 });
}
