// Runs one workload against one broker URL with mqtt.js clients in this process.
// Publishers and subscribers share this process on purpose: the latency timestamp in each
// payload is only comparable on one clock. Every wait is bounded by the workload deadline.
import mqtt, { type MqttClient } from 'mqtt';
import hdr, { type Histogram } from 'hdr-histogram-js';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { decodePayload, encodePayload, HEADER_BYTES } from './payload.js';
import { expectedDeliveries, publishCounts, type Workload } from './workloads.js';
import { cpuSpent, peakRssSum, resetPeakRssAll, sampleCpu, type BrokerProcesses } from './cpu.js';
import { Waiters } from './waiters.js';

export interface RunConfig {
  /** Deliveries expected at the subscribers (see publishCounts). */
  messages: number;
  payloadBytes: number;
  timeoutMs: number;
  /** After the last publish, how long without any delivery before the rest counts as dropped. */
  settleMs: number;
  protocolVersion: 4 | 5;
  /** Unique per run and broker, keeps topics and client ids of different runs apart. */
  tag: string;
  /** With --tls: the CA the clients verify the broker's certificate with. */
  ca?: Buffer;
  /** Awaited once every client is connected and subscribed, right before the first publish (a client process waits for the others here). */
  beforePublish?: () => Promise<void>;
  /** Awaited after the last delivery (or the deadline), before the clients disconnect, so that another process can take the broker's figures first. */
  afterMeasure?: () => Promise<void>;
  /** Adds the latency histograms (hdr, compressed base64) to the result, so results of several processes can be merged. */
  exportHistogram?: boolean;
  /** Subscribers connect here instead of `url` (eddy-jetstream-2: publishers on node 1, subscribers on node 2). */
  subscribeUrl?: string;
}

export interface Progress {
  published: number;
  delivered: number;
  expected: number;
  elapsedMs: number;
}

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface WorkloadResult {
  published: number;
  publishTarget: number;
  /** QoS 1 only: PUBACKs received. */
  acked: number | null;
  /** Deliveries the full run would produce; a timed-out run falls short of it. */
  expected: number;
  /** Unique deliveries; duplicates are counted separately and excluded. */
  delivered: number;
  duplicates: number;
  /** delivered / (published x subscribers): delivered vs sent, also meaningful for partial runs. */
  deliveryRatio: number;
  /** First publish to last delivery. */
  durationMs: number;
  msgPerSec: number;
  publishMsgPerSec: number;
  latencyMs: LatencyMs | null;
  /** QoS 1: PUBLISH -> PUBACK at the publisher (the confirmed-publish latency), ms. */
  pubackLatencyMs: LatencyMs | null;
  /** Percent of one core over durationMs; client = this bench process (with several client processes: the busiest). */
  cpuPercent: { client: number; broker: number | null };
  /**
   * Broker CPU time (utime + stime from /proc) between first publish and last delivery, per unique
   * delivery, in µs. For the cluster rows: every Eddy node plus the nats-server processes.
   */
  brokerCpuUsPerMsg: number | null;
  /** Cluster rows: the nats-server processes' share of brokerCpuUsPerMsg (the rest is Eddy's); null for the others. */
  storeCpuUsPerMsg: number | null;
  /** The broker's peak resident memory (VmHWM) during the workload (since broker start where it cannot be reset). */
  brokerPeakRssBytes: number | null;
  /** `workload`: VmHWM was reset (clear_refs) when publishing began; otherwise it is the peak since the broker started. */
  peakRssScope: 'workload' | 'broker-lifetime';
  /** Wall-clock (epoch ms, sub-ms precision) of the first publish and the last delivery, to merge client processes. */
  firstPublishAtEpochMs: number;
  lastDeliveryAtEpochMs: number;
  histogram?: string;
  pubackHistogram?: string;
  timedOut: boolean;
  error?: string;
}

// Publish in small bursts and yield in between so deliveries to subscribers in this
// same process get processed while publishing, instead of after a huge synchronous burst.
const BURST = 64;
// A QoS 0 publisher whose window is full and sees no delivery at all for this long treats
// its outstanding messages as dropped by the broker, instead of waiting forever.
const STALL_MS = 500;
const TEARDOWN_MS = 3_000;

class Abort extends Error {}

export async function runWorkload(url: string, w: Workload, cfg: RunConfig, procs: BrokerProcesses | null,
  onProgress: (p: Progress) => void): Promise<WorkloadResult> {
  if (cfg.payloadBytes < HEADER_BYTES) throw new Error(`payload must be at least ${HEADER_BYTES} bytes`);
  const counts = publishCounts(w, cfg.messages);
  const offsets = counts.map((_, i) => counts.slice(0, i).reduce((a, b) => a + b, 0));
  const publishTarget = counts.reduce((a, b) => a + b, 0);
  const expected = expectedDeliveries(w, counts);
  const topic = `eddy-bench/${cfg.tag}/${w.id}`;
  /** Pairs: publisher and subscriber i share a topic of their own. */
  const topicOf = (i: number): string => (w.pairs ? `${topic}/${i}` : topic);
  /** Subscribers each message of one publisher goes to. */
  const fanout = w.pairs ? 1 : w.subscribers;

  const hist = newHistogram();
  const ackHist = newHistogram();
  const seen = Array.from({ length: w.subscribers }, (_, s) => new Uint8Array(w.pairs ? counts[s]! : publishTarget));
  const sent = new Array<number>(w.publishers).fill(0);
  const recvByPub = new Array<number>(w.publishers).fill(0);
  const presumedLost = new Array<number>(w.publishers).fill(0);
  const lastDeliveryByPub = new Array<number>(w.publishers).fill(0);
  let delivered = 0;
  let duplicates = 0;
  let acked = 0;
  let firstPublishAt = 0;
  let lastDeliveryAt = 0;
  let publishDoneAt = 0;

  const waiters = new Waiters();
  let aborted = false;
  let timedOut = false;
  let error: string | undefined;
  let closing = false;
  let rejectAbort: (e: Error) => void = () => {};
  const abortPromise = new Promise<never>((_, reject) => { rejectAbort = reject; });
  abortPromise.catch(() => {});
  const abort = (why?: string): void => {
    if (aborted) return;
    aborted = true;
    if (why && !error) error = why;
    waiters.releaseAll();
    rejectAbort(new Abort(why ?? 'aborted'));
  };
  /** Lets any await be cut short by the deadline or a broken connection. */
  const bounded = <T>(p: Promise<T>): Promise<T> => Promise.race([p, abortPromise]);

  const deadline = setTimeout(() => { timedOut = true; abort(); }, cfg.timeoutMs);
  const clients: MqttClient[] = [];

  const connect = async (role: string): Promise<MqttClient> => {
    const client = mqtt.connect(role.startsWith('sub') ? cfg.subscribeUrl ?? url : url, {
      clientId: `${cfg.tag}-${w.key}-${role}`,
      protocolVersion: cfg.protocolVersion,
      clean: true,
      keepalive: 60,
      connectTimeout: 10_000,
      // A broker that drops a client must show up as an error, not be papered over.
      reconnectPeriod: 0,
      ...(cfg.ca ? { ca: cfg.ca } : {}),
    });
    // Tracked before CONNACK so teardown also closes clients whose connect never completed.
    clients.push(client);
    // Our side must not add Nagle delays; the brokers keep their own socket defaults.
    (client.stream as unknown as Socket | undefined)?.setNoDelay?.(true);
    client.on('error', (err) => abort(`${role}: ${err.message}`));
    client.on('close', () => { if (!closing) abort(`${role} disconnected`); });
    await bounded(new Promise((resolve) => client.once('connect', resolve)));
    return client;
  };

  const onDelivery = (sub: number, payload: Buffer): void => {
    const d = decodePayload(payload);
    const pubIdx = d ? d.publisher : -1;
    if (!d || pubIdx >= w.publishers || d.seq >= counts[pubIdx]! || (w.pairs && pubIdx !== sub)) return;
    const idx = w.pairs ? d.seq : offsets[pubIdx]! + d.seq;
    const marks = seen[sub]!;
    if (marks[idx]) {
      duplicates++;
      return;
    }
    marks[idx] = 1;
    const now = performance.now();
    recordMs(hist, now - d.sentAt);
    delivered++;
    recvByPub[pubIdx]!++;
    lastDeliveryAt = now;
    lastDeliveryByPub[pubIdx] = now;
    waiters.poke();
  };

  const publishQos0 = async (client: MqttClient, p: number): Promise<void> => {
    const count = counts[p]!;
    const outstanding = (): number => sent[p]! - (recvByPub[p]! + presumedLost[p]!) / fanout;
    // Refill only once half the window drained, so a full window costs one wait, not one per delivery.
    const lowWater = Math.floor(w.window / 2);
    const stream = client.stream as unknown as Writable;
    while (sent[p]! < count && !aborted) {
      if (outstanding() >= w.window) {
        const ok = await waiters.wait(() => outstanding() <= lowWater, STALL_MS);
        if (!ok && !aborted && performance.now() - lastDeliveryByPub[p]! >= STALL_MS) {
          presumedLost[p] = sent[p]! * fanout - recvByPub[p]!;
        }
        continue;
      }
      const n = Math.min(count - sent[p]!, BURST, Math.ceil(w.window - outstanding()));
      for (let i = 0; i < n; i++) {
        client.publish(topicOf(p), encodePayload(cfg.payloadBytes, p, sent[p]!), { qos: 0 });
        sent[p]!++;
      }
      if (stream.writableNeedDrain) await bounded(new Promise((r) => stream.once('drain', r)));
      else await yieldToIo();
    }
  };

  // Closed loop driven by PUBACKs: each ack releases exactly one more publish.
  const publishQos1 = (client: MqttClient, p: number): Promise<void> => {
    const count = counts[p]!;
    return bounded(new Promise<void>((resolve) => {
      if (count === 0) return resolve();
      let inflight = 0;
      const next = (): void => {
        while (!aborted && inflight < w.window && sent[p]! < count) {
          const seq = sent[p]!++;
          inflight++;
          const at = performance.now();
          client.publish(topicOf(p), encodePayload(cfg.payloadBytes, p, seq), { qos: 1 }, (err) => {
            if (err) return abort(`publisher ${p}: ${err.message}`);
            recordMs(ackHist, performance.now() - at);
            inflight--;
            acked++;
            if (sent[p]! < count) next();
            else if (inflight === 0) resolve();
          });
        }
      };
      next();
    }));
  };

  // Every publisher on a timer: publisher p's k-th message is due at start + (p/n + k) periods, so
  // the publishers' sends are spread over each period instead of all landing on one tick.
  const publishAtRate = (pubs: MqttClient[]): Promise<void> => bounded(new Promise<void>((resolve) => {
    const periodMs = 1000 / w.ratePerPublisher!;
    const start = performance.now();
    let inflight = 0;
    let allSent = false;
    const tick = (): void => {
      if (aborted) return clearInterval(timer);
      const elapsed = performance.now() - start;
      allSent = true;
      for (let p = 0; p < pubs.length; p++) {
        const due = Math.min(counts[p]!, Math.floor((elapsed - (p / pubs.length) * periodMs) / periodMs) + 1);
        while (sent[p]! < due) {
          const seq = sent[p]!++;
          if (w.qos === 0) {
            pubs[p]!.publish(topicOf(p), encodePayload(cfg.payloadBytes, p, seq), { qos: 0 });
            continue;
          }
          inflight++;
          const at = performance.now();
          pubs[p]!.publish(topicOf(p), encodePayload(cfg.payloadBytes, p, seq), { qos: 1 }, (err) => {
            if (err) return abort(`publisher ${p}: ${err.message}`);
            recordMs(ackHist, performance.now() - at);
            inflight--;
            acked++;
            if (allSent && inflight === 0) resolve();
          });
        }
        if (sent[p]! < counts[p]!) allSent = false;
      }
      if (!allSent) return;
      clearInterval(timer);
      if (inflight === 0) resolve();
    };
    const timer = setInterval(tick, 5);
  }));

  // Taken when publishing starts, so connecting 50 clients does not count as broker load.
  let cpuAtStart = { client: process.cpuUsage(), broker: sampleCpu(null) };
  let peakRssResettable = false;
  const ticker = setInterval(() => onProgress({
    published: sent.reduce((a, b) => a + b, 0), delivered, expected,
    elapsedMs: firstPublishAt ? performance.now() - firstPublishAt : 0,
  }), 1000);

  try {
    const subs: MqttClient[] = [];
    for (let s = 0; s < w.subscribers; s++) subs.push(await connect(`sub${s}`));
    await bounded(Promise.all(subs.map(async (c, s) => {
      const granted = await c.subscribeAsync(topicOf(s), { qos: w.qos });
      if (granted.some((g) => g.qos !== w.qos)) throw new Error(`sub${s}: broker granted ${JSON.stringify(granted)}`);
      c.on('message', (_t, payload) => onDelivery(s, payload));
    })));
    const pubs: MqttClient[] = [];
    for (let p = 0; p < w.publishers; p++) pubs.push(await connect(`pub${p}`));

    if (cfg.beforePublish) await bounded(cfg.beforePublish());
    peakRssResettable = resetPeakRssAll(procs);
    cpuAtStart = { client: process.cpuUsage(), broker: sampleCpu(procs) };
    firstPublishAt = performance.now();
    if (w.ratePerPublisher) await publishAtRate(pubs);
    else await Promise.all(pubs.map((c, p) => (w.qos === 1 ? publishQos1(c, p) : publishQos0(c, p))));
    publishDoneAt = performance.now();

    while (!aborted && delivered < expected) {
      await waiters.wait(() => delivered >= expected, cfg.settleMs);
      if (performance.now() - Math.max(lastDeliveryAt, publishDoneAt) >= cfg.settleMs) break;
    }
  } catch (err) {
    if (!(err instanceof Abort)) abort(err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(deadline);
    clearInterval(ticker);
    closing = true;
  }

  const durationMs = lastDeliveryAt > firstPublishAt && firstPublishAt > 0 ? lastDeliveryAt - firstPublishAt : 0;
  const clientCpu = process.cpuUsage(cpuAtStart.client);
  const spent = cpuSpent(cpuAtStart.broker, sampleCpu(procs));
  const brokerPeakRss = peakRssSum(procs);
  const brokerCpuMs = spent.total;
  const hasStore = (procs?.store.length ?? 0) > 0;
  if (cfg.afterMeasure) await Promise.race([cfg.afterMeasure(), new Promise((r) => setTimeout(r, cfg.timeoutMs).unref())]);
  await teardown(clients);

  const published = sent.reduce((a, b) => a + b, 0);
  const publishSpan = (publishDoneAt || performance.now()) - firstPublishAt;
  const pct = (cpuMs: number): number => (durationMs > 0 ? round(100 * cpuMs / durationMs, 1) : 0);
  const result: WorkloadResult = {
    published,
    publishTarget,
    acked: w.qos === 1 ? acked : null,
    expected,
    delivered,
    duplicates,
    deliveryRatio: published ? delivered / (published * fanout) : 0,
    durationMs: round(durationMs, 1),
    msgPerSec: durationMs > 0 ? Math.round(delivered / (durationMs / 1000)) : 0,
    publishMsgPerSec: firstPublishAt && publishSpan > 0 ? Math.round(published / (publishSpan / 1000)) : 0,
    latencyMs: latencyOf(hist),
    pubackLatencyMs: w.qos === 1 ? latencyOf(ackHist) : null,
    cpuPercent: {
      client: pct((clientCpu.user + clientCpu.system) / 1000),
      broker: brokerCpuMs !== null ? pct(brokerCpuMs) : null,
    },
    brokerCpuUsPerMsg: brokerCpuMs !== null && delivered > 0 ? round((brokerCpuMs * 1000) / delivered, 2) : null,
    storeCpuUsPerMsg: hasStore && spent.store !== null && delivered > 0 ? round((spent.store * 1000) / delivered, 2) : null,
    brokerPeakRssBytes: brokerPeakRss,
    peakRssScope: peakRssResettable ? 'workload' : 'broker-lifetime',
    firstPublishAtEpochMs: firstPublishAt ? performance.timeOrigin + firstPublishAt : 0,
    lastDeliveryAtEpochMs: lastDeliveryAt ? performance.timeOrigin + lastDeliveryAt : 0,
    timedOut,
  };
  if (cfg.exportHistogram && delivered > 0) result.histogram = hdr.encodeIntoCompressedBase64(hist);
  if (cfg.exportHistogram && ackHist.totalCount > 0) result.pubackHistogram = hdr.encodeIntoCompressedBase64(ackHist);
  if (timedOut) result.error = `timed out after ${cfg.timeoutMs} ms (partial result)`;
  else if (error) result.error = error;
  // A QoS 1 message that was PUBACKed and never delivered is a failed row, not a slow one (e.g.
  // eddy-jetstream-2 before live fan-out between Eddy nodes: node 2's subscribers get nothing).
  else if (w.qos === 1 && published > 0 && delivered < published * fanout) result.error = `delivered ${delivered} of ${published * fanout} QoS 1 messages`;
  hist.destroy();
  ackHist.destroy();
  return result;
}

/** Microsecond resolution, up to an hour. */
export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

export function latencyOf(h: Histogram): LatencyMs | null {
  if (h.totalCount === 0) return null;
  return {
    p50: h.getValueAtPercentile(50) / 1000,
    p90: h.getValueAtPercentile(90) / 1000,
    p99: h.getValueAtPercentile(99) / 1000,
    max: h.maxValue / 1000,
    mean: round(h.mean / 1000, 3),
  };
}

async function teardown(clients: MqttClient[]): Promise<void> {
  await Promise.race([
    Promise.allSettled(clients.map((c) => c.endAsync(true))),
    new Promise((r) => setTimeout(r, TEARDOWN_MS).unref()),
  ]);
  // A broker that never answers must not keep sockets (and this process) alive.
  for (const c of clients) c.stream?.destroy();
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
