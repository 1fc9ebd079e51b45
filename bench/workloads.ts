// The workloads, as data: the runner knows nothing about their names.
export type WorkloadKey = 'qos0' | 'qos1' | 'fanout' | 'fanin' | 'pairs-qos1' | 'pairs-qos0' | 'conns';
export const WORKLOAD_KEYS: readonly WorkloadKey[] = ['qos0', 'qos1', 'fanout', 'fanin', 'pairs-qos1', 'pairs-qos0', 'conns'];

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
  /** Publisher i sends only to subscriber i, on a topic of its own (instead of every subscriber getting every publisher's messages). */
  pairs?: boolean;
  /** Each publisher sends this many messages per second on a timer (instead of as fast as its window allows). */
  ratePerPublisher?: number;
  /** With ratePerPublisher: how long each publisher sends; fixes the message count instead of --messages. */
  durationSec?: number;
  /**
   * Client processes the workload is split across (pairs only): one mqtt.js process must not be the
   * limit. Each pair stays in one process, so its latency is still measured on one clock.
   */
  processes?: number;
}

export interface WorkloadParams {
  qos1Window: number;
  qos0Window: number;
  fanoutWindow: number;
  fanoutSubscribers: number;
  faninPublishers: number;
  /** Publisher/subscriber pairs of the parallel workloads, each pair in its own client process. */
  parallelPairs: number;
  /** The many-connections workload: this many publishers and as many subscribers. */
  connPairs: number;
  connRate: number;
  connProcesses: number;
  connSeconds: number;
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
    'pairs-qos1': {
      key: 'pairs-qos1', id: `${p.parallelPairs}pairs-qos1-window${p.qos1Window}`, qos: 1, publishers: p.parallelPairs, subscribers: p.parallelPairs,
      window: p.qos1Window, pairs: true, processes: p.parallelPairs,
      description: `QoS 1, ${p.parallelPairs} publisher -> subscriber pairs in parallel (one client process each), at most ${p.qos1Window} unacked publishes per publisher`,
    },
    'pairs-qos0': {
      key: 'pairs-qos0', id: `${p.parallelPairs}pairs-qos0`, qos: 0, publishers: p.parallelPairs, subscribers: p.parallelPairs,
      window: p.qos0Window, pairs: true, processes: p.parallelPairs,
      description: `QoS 0, ${p.parallelPairs} publisher -> subscriber pairs in parallel (one client process each)`,
    },
    // QoS 1, so that every one of the many connections also carries acknowledgements both ways.
    conns: {
      key: 'conns', id: `conns-${p.connPairs}x${p.connRate}mps-qos1`, qos: 1, publishers: p.connPairs, subscribers: p.connPairs,
      window: p.qos1Window, pairs: true, ratePerPublisher: p.connRate, durationSec: p.connSeconds, processes: p.connProcesses,
      description: `QoS 1, ${p.connPairs} publishers at ${p.connRate} msg/s each -> ${p.connPairs} subscribers (one topic per pair), over ${p.connProcesses} client processes`,
    },
  };
}

/**
 * `messages` counts deliveries (what msg/s is computed from), so every workload costs about the
 * same; fan-out therefore publishes messages/subscribers. Returns the publish count per publisher.
 */
export function publishCounts(w: Workload, messages: number): number[] {
  if (w.ratePerPublisher && w.durationSec) return new Array<number>(w.publishers).fill(Math.round(w.ratePerPublisher * w.durationSec));
  // Pairs: each subscriber gets only its own publisher's messages.
  const total = w.pairs ? Math.max(w.publishers, messages) : Math.max(w.publishers, Math.ceil(messages / w.subscribers));
  const base = Math.floor(total / w.publishers);
  return Array.from({ length: w.publishers }, (_, i) => base + (i < total % w.publishers ? 1 : 0));
}

/** Deliveries one subscriber expects: pairs get their own publisher's, the others every publisher's. */
export function expectedDeliveries(w: Workload, counts: number[]): number {
  const published = counts.reduce((a, b) => a + b, 0);
  return w.pairs ? published : published * w.subscribers;
}

/** The share of a pairs workload one client process runs: pairs [from, from + n). */
export function slice(w: Workload, n: number): Workload {
  return { ...w, publishers: n, subscribers: n, processes: 1 };
}
