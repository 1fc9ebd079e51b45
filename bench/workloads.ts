// The workloads, as data: the runner knows nothing about their names.
export type WorkloadKey = 'qos0' | 'qos1' | 'fanout' | 'fanin';
export const WORKLOAD_KEYS: readonly WorkloadKey[] = ['qos0', 'qos1', 'fanout', 'fanin'];

export interface Workload {
  key: WorkloadKey;
  /** Stable id used in progress lines, the table and the JSON. */
  id: string;
  description: string;
  qos: 0 | 1;
  publishers: number;
  subscribers: number;
  /**
   * Per publisher. QoS 1: most PUBLISHes without a PUBACK yet (the window).
   * QoS 0: most messages not yet seen by the subscribers, so that a fast publisher measures the
   * broker rather than how deep the socket buffers are (latency would otherwise be pure queueing).
   * qos0Window bounds what is in flight towards each subscriber, so fan-in splits it across publishers.
   * Fan-out has its own, smaller window: 50 subscribers already keep 50x as many deliveries in flight,
   * and beyond ~100 per subscriber more only adds queueing latency, not throughput.
   */
  window: number;
}

export interface WorkloadParams {
  qos1Window: number;
  qos0Window: number;
  fanoutWindow: number;
  fanoutSubscribers: number;
  faninPublishers: number;
}

export function defineWorkloads(p: WorkloadParams): Record<WorkloadKey, Workload> {
  return {
    qos0: {
      key: 'qos0', id: 'qos0-1to1', qos: 0, publishers: 1, subscribers: 1, window: p.qos0Window,
      description: 'QoS 0, 1 publisher -> 1 subscriber',
    },
    qos1: {
      key: 'qos1', id: `qos1-window${p.qos1Window}`, qos: 1, publishers: 1, subscribers: 1, window: p.qos1Window,
      description: `QoS 1, 1 publisher -> 1 subscriber, at most ${p.qos1Window} unacked publishes`,
    },
    fanout: {
      key: 'fanout', id: `fanout-1x${p.fanoutSubscribers}-qos0`, qos: 0, publishers: 1,
      subscribers: p.fanoutSubscribers, window: p.fanoutWindow,
      description: `QoS 0, 1 publisher -> ${p.fanoutSubscribers} subscribers on one topic`,
    },
    // QoS 0 so that fan-in isolates routing many inbound connections; the QoS 1 ack path has its own workload.
    fanin: {
      key: 'fanin', id: `fanin-${p.faninPublishers}x1-qos0`, qos: 0, publishers: p.faninPublishers,
      subscribers: 1, window: Math.max(1, Math.ceil(p.qos0Window / p.faninPublishers)),
      description: `QoS 0, ${p.faninPublishers} publishers -> 1 subscriber on one topic`,
    },
  };
}

/**
 * `messages` counts deliveries (what msg/s is computed from), so every workload costs about the
 * same; fan-out therefore publishes messages/subscribers. Returns the publish count per publisher.
 */
export function publishCounts(w: Workload, messages: number): number[] {
  const total = Math.max(w.publishers, Math.ceil(messages / w.subscribers));
  const base = Math.floor(total / w.publishers);
  return Array.from({ length: w.publishers }, (_, i) => base + (i < total % w.publishers ? 1 : 0));
}
