import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Broker } from '../core/broker.js';
import type { AdminModel, QueueTotals } from '../core/admin/model.js';
import type { LatencyHistograms } from '../core/admin/percentiles.js';
import type { Message } from '../core/message.js';
import type { MessageObserver } from '../core/observer.js';
import type { HttpConnectionStats } from './connection-guard.js';
import type { OriginStats } from './origin-policy.js';
import { ChannelTraffic, FastHistogram, type ChannelCounts } from './metric-types.js';

/** The event-loop monitor's timer, in ms. */
const LOOP_RESOLUTION_MS = 10;
/** Records per fsync: one alone up to the thousands a flood packs in. */
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/** fdatasync durations, in seconds: from a fast NVMe (~50 µs) to a struggling disk. */
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Publish to delivery, in seconds: sub-millisecond live fan-out up to a minute in a queue. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The broker's Prometheus metrics (`GET /metrics`), in a registry of its own so that several
 * brokers in one process (tests) do not share counters. Per-message work is a few additions on
 * plain numbers (the broker and front ends call `published`/`delivered`); everything else is
 * read from the broker's own state and counters when Prometheus scrapes.
 */
export class BrokerMetrics implements MessageObserver {
  readonly registry = new Registry();
  private readonly traffic = new ChannelTraffic();
  private readonly deliveryLatency = new FastHistogram(
    'eddy_delivery_latency_seconds',
    'Time from a message being published to it being written to a subscriber (queueing for offline subscribers and replays included)',
    LATENCY_BUCKETS,
    this.registry,
  );
  private readonly fsyncDuration = new FastHistogram('eddy_fsync_duration_seconds', 'Duration of each fdatasync of the disk engine log', FSYNC_BUCKETS, this.registry);
  private readonly fsyncRecords = new FastHistogram(
    'eddy_fsync_batch_records',
    'Records confirmed by each fdatasync of the disk engine log under fsync always (group commit batch size)',
    BATCH_BUCKETS,
    this.registry,
  );
  /** For `Storage.observeFsync`: milliseconds in, seconds recorded; and the records the fsync confirmed. */
  readonly fsyncObserved = (durationMs: number, records?: number): void => {
    this.fsyncDuration.observe(durationMs / 1000);
    if (records !== undefined) this.fsyncRecords.observe(records);
  };

  constructor() {
    this.trafficCounter('eddy_messages_in_total', 'Messages received for routing, by channel family (first topic level)', (c) => c.messagesIn);
    this.trafficCounter('eddy_messages_out_total', 'Messages written to subscribers (MQTT PUBLISH or SSE event), by channel family', (c) => c.messagesOut);
    this.trafficCounter('eddy_bytes_in_total', 'Payload bytes of the messages received, by channel family', (c) => c.bytesIn);
    this.trafficCounter('eddy_bytes_out_total', 'Payload bytes of the messages written to subscribers, by channel family', (c) => c.bytesOut);
  }

  published(message: Message): void {
    const counts = this.traffic.countsFor(message.topic);
    counts.messagesIn++;
    counts.bytesIn += message.payload.length;
  }

  delivered(message: Message): void {
    const counts = this.traffic.countsFor(message.topic);
    counts.messagesOut++;
    counts.bytesOut += message.payload.length;
    this.deliveryLatency.observe((Date.now() - message.publishedAt) / 1000);
  }

  /** The latency histograms' counts now, for the admin API's live stats. */
  latencyHistograms(): LatencyHistograms {
    return { fsync: this.fsyncDuration.countsNow(), delivery: this.deliveryLatency.countsNow() };
  }

  /**
   * How late the event loop ran its timers (perf_hooks' monitor, 10 ms resolution): one thread runs
   * every connection, so a long turn (a burst of sockets, a GC pause, a slow synchronous call)
   * delays every client's packets at once. Read and reset at each scrape: p50, p99 and max since
   * the previous one. Stopped with the server.
   */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });

  /** Stops what samples in the background (the event-loop monitor). */
  stop(): void {
    this.loopDelay.disable();
  }

  /** Registers the metrics read from the broker's state (its counters, and the admin model's views) at scrape time. */
  collectFrom(broker: Broker, admin: AdminModel): void {
    this.gauge('eddy_connections', 'Open client connections: MQTT over TCP and WebSocket, and SSE streams', () => broker.stats.connections);
    const loop = this.loopDelay;
    loop.enable();
    new Gauge({
      name: 'eddy_event_loop_delay_seconds',
      help: 'How late the event loop ran a 10 ms timer since the previous scrape, by quantile (0.5, 0.99, max): the delay every connection shares',
      labelNames: ['quantile'],
      registers: [this.registry],
      collect() {
        // The monitor records each interval between its 10 ms timer's runs, in nanoseconds: the
        // delay is what exceeds the 10 ms. With no sample yet its figures are NaN or huge.
        const seconds = (ns: number): number => (Number.isFinite(ns) && loop.count > 0 ? Math.max(0, ns - LOOP_RESOLUTION_MS * 1e6) / 1e9 : 0);
        this.set({ quantile: '0.5' }, seconds(loop.percentile(50)));
        this.set({ quantile: '0.99' }, seconds(loop.percentile(99)));
        this.set({ quantile: 'max' }, seconds(loop.max));
        loop.reset();
      },
    });
    this.gauge('eddy_sessions', 'Sessions: connected, or persistent and waiting for their client', () => admin.sessionCount);
    this.gaugeByKind('eddy_queue_depth', 'Messages waiting to be sent, by queue kind (session or consumer group)', admin, (totals) => totals.waiting);
    this.gaugeByKind('eddy_messages_inflight', 'Messages sent and not yet acknowledged, by queue kind (session or consumer group)', admin, (totals) => totals.inflight);
    const redelivery = broker.redelivery.stats;
    this.counter('eddy_nacks_total', 'Deliveries refused by a consumer (MQTT 5 PUBACK/PUBREC reason >= 0x80)', () => redelivery.nacks);
    this.counter('eddy_redeliveries_total', 'Messages sent again after a nack or after their consumer left with them', () => redelivery.redeliveries);
    this.counter('eddy_dead_letters_total', 'Messages moved to $DLQ/<topic> after their last allowed delivery', () => redelivery.deadLettered);
    this.counterByReason('eddy_publishes_refused_total', 'Publishes refused, by MQTT reason code (0x97, 0x87, ...) or HTTP status (http-507, ...)', () => broker.stats.refusedPublishes);
    this.counterByReason('eddy_protocol_errors_total', 'Connections closed for a protocol violation, by MQTT 5 reason code', () => broker.stats.protocolErrors);
    this.counterByReason('eddy_messages_dropped_total', 'Messages not delivered to a subscriber, by cause (queue-full, expired, too-large, congested, offline-qos0)', () => broker.stats.dropped);
    // The limits of issue #9, one metric each (README "Limits"):
    const stats = broker.stats;
    this.gaugeByKind('eddy_queue_bytes', 'Payload bytes waiting to be sent, in memory or on disk, by queue kind (maxQueuedBytes)', admin, (totals) => totals.waitingBytes);
    this.counter('eddy_connections_refused_total', 'MQTT sockets closed at accept, or told 0x89, because maxConnections were open', () => stats.refusedConnections);
    this.counter('eddy_packet_timeouts_total', 'MQTT connections closed because a packet did not complete within packetTimeout', () => stats.packetTimeouts);
    this.counter('eddy_inbound_pauses_total', 'Times an MQTT connection stopped reading because unfinished packets held maxInboundBytes', () => stats.inboundPauses);
    this.gauge('eddy_inbound_bytes', 'Bytes reserved by unfinished inbound MQTT packets (maxInboundBytes)', () => stats.inboundBytes);
    this.counter('eddy_throttled_publishers_total', "Times a publisher's connection stopped reading because a subscriber of its messages was behind", () => stats.throttledPublishers);
    this.counter('eddy_slow_consumers_total', 'Times a subscriber that was behind did not catch up within a second (its QoS 0 messages then drop)', () => stats.slowConsumers);
    this.counter('eddy_retained_refused_total', 'Retained messages refused or not kept at maxRetained / maxRetainedBytes', () => stats.retainedRefused);
    this.gauge('eddy_retained_messages', 'Retained messages kept (maxRetained)', () => broker.storage.retainedCount);
    this.gauge('eddy_retained_bytes', 'Payload bytes of the retained messages (maxRetainedBytes)', () => broker.storage.retainedBytes);
    this.counter('eddy_storage_failures_total', 'Storage reads and writes that failed (disk full, no file descriptor left, I/O errors)', () => broker.storage.failures ?? 0);
    const auth = broker.admission.stats;
    this.counterByReason('eddy_auth_failures_total', 'Refused authentications, by kind (anonymous, bad-credentials, quota)', () => auth.authFailures);
    this.counter('eddy_acl_publish_denied_total', 'Publishes the ACL refused (0x87, HTTP 403)', () => auth.publishDenied);
    this.counter('eddy_acl_subscribe_denied_total', 'Subscriptions the ACL refused (0x87; 0x80 for --deny-subscribe)', () => auth.subscribeDenied);
    this.counter('eddy_acl_receive_denied_total', 'Deliveries the ACL kept from a subscriber whose filter matched a topic it may not receive', () => auth.receiveDenied);
    this.counter('eddy_rate_limited_total', 'Publishes refused by a rate quota (0x97, HTTP 429; a QoS 0 flood ends the connection with 0x96)', () => auth.rateLimited);
    this.counter('eddy_internal_errors_total', 'Exceptions caught in a callback: the connection or timer concerned was closed or skipped, the broker went on', () => stats.internalErrors);
  }

  /** Registers the counters of the server's stops (a draining cluster node's redirects). */
  collectDrainFrom(stats: { redirected: number }): void {
    this.counter('eddy_drain_redirected_total', 'MQTT 5 clients told at shutdown to use another server (DISCONNECT 0x9C with the Server Reference, cluster.serverReference)', () => stats.redirected);
  }

  /** Registers the HTTP listener's connection limits (open connections, refusals at the cap, timeouts by kind) and origin refusals. */
  collectHttpFrom(stats: HttpConnectionStats, origins: OriginStats): void {
    this.counter('eddy_http_origin_refused_total', 'WebSocket upgrades at /mqtt refused (403) because their Origin is not allowed (http.allowedOrigins)', () => origins.originRefused);
    this.counter('eddy_http_cross_site_refused_total', 'HTTP requests refused as cross-site (403 cross_site): a state-changing request a page of another site could have sent', () => origins.crossSiteRefused);
    this.gauge('eddy_http_connections', 'Open HTTP connections counted against maxHttpConnections (SSE streams included, upgraded WebSockets not)', () => stats.connections);
    this.counter('eddy_http_connections_refused_total', 'HTTP connections closed at accept because maxHttpConnections were open', () => stats.refusedConnections);
    this.counterByLabel('eddy_http_timeouts_total', 'HTTP connections cut by a timeout, by kind (headers, request, idle)', 'kind', () => ({
      headers: stats.headersTimeouts,
      request: stats.requestTimeouts,
      idle: stats.idleTimeouts,
    }));
  }

  /**
   * What `GET /metrics` answers: this broker's own metrics, or, in a worker of `eddy broker
   * --workers N`, every worker's, merged (set by the worker link, src/cli/worker-link.ts).
   */
  scrape: () => Promise<string> = () => this.scrapeOwn();

  /** The Prometheus text format of this process's metrics. */
  scrapeOwn(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private trafficCounter(name: string, help: string, pick: (counts: ChannelCounts) => number): void {
    const channels = this.traffic.channels;
    new Counter({
      name,
      help,
      labelNames: ['channel'],
      registers: [this.registry],
      collect() {
        // The counts live in plain numbers (cheap to bump per message): copy them over at each scrape.
        this.reset();
        for (const [channel, counts] of channels) this.inc({ channel }, pick(counts));
      },
    });
  }

  private gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A sum over every session queue and every consumer-group queue (the admin model's totals). */
  private gaugeByKind(name: string, help: string, admin: AdminModel, read: (totals: QueueTotals) => number): void {
    new Gauge({
      name,
      help,
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        const totals = admin.queueTotals();
        this.set({ kind: 'session' }, read(totals.session));
        this.set({ kind: 'group' }, read(totals.group));
      },
    });
  }

  /** A counter whose value is kept elsewhere (the broker's stats), copied at each scrape. */
  private counter(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  private counterByReason(name: string, help: string, read: () => Record<string, number>): void {
    this.counterByLabel(name, help, 'reason', read);
  }

  /** A counter per value of one label, kept elsewhere and copied at each scrape. */
  private counterByLabel(name: string, help: string, label: string, read: () => Record<string, number>): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [value, count] of Object.entries(read())) this.inc({ [label]: value }, count);
      },
    });
  }
}
