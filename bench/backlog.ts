// Backlog measurement of the disk engine (not a test): one offline durable subscriber, N QoS 1
// messages published to it, restarts after SIGTERM and SIGKILL, then the whole backlog drained.
// Progress on stderr, a Markdown summary on stdout, all figures in bench/results/backlog.json.
//   node dist/bench/backlog.js [--messages 1000000] [--payload 100] [--publishers 2] [--window 500]
//                              [--max-queued N] [--stall 60] [--json PATH] [--keep]
// --max-queued is passed to the broker; without it the broker's default limit (100000 queued per
// session) applies, which a larger backlog exceeds. --stall: seconds without a message that end the drain.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readProcessCpuMs } from './cpu.js';
import { dirSize, healthz, readIoBytes, RssSampler, startEddy, stderrCounts, type EddyProcess } from './eddy-process.js';
import { repoRoot, resultsDir } from './paths.js';
import { fmtInt, note } from './progress.js';

const SUB_ID = 'eddy-backlog-sub';
const TOPIC_FILTER = 'backlog/#';
/** Long enough for the broker's checkpoint (every 5 s) to run and delete drained segments. */
const IDLE_MS = 6_000;

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    payload: { type: 'string', default: '100' },
    publishers: { type: 'string', default: '2' },
    window: { type: 'string', default: '500' },
    'max-queued': { type: 'string' },
    stall: { type: 'string', default: '60' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(args.messages!.replace(/_/g, ''));
const PAYLOAD = Math.max(Number(args.payload), 6);
const PUBLISHERS = Number(args.publishers);
const WINDOW = Number(args.window);
const STALL_MS = Number(args.stall) * 1000;
const extraArgs = args['max-queued'] ? ['--max-queued', args['max-queued']] : [];
for (const [name, v] of Object.entries({ messages: N, payload: PAYLOAD, publishers: PUBLISHERS, window: WINDOW, stall: STALL_MS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
}
const counts = Array.from({ length: PUBLISHERS }, (_, p) => Math.floor(N / PUBLISHERS) + (p < N % PUBLISHERS ? 1 : 0));

const MB = (b: number | null | undefined): string => (b == null ? 'n/a' : `${(b / 2 ** 20).toFixed(1)} MB`);
const mb = (b: number | null | undefined): number | null => (b == null ? null : Math.round((b / 2 ** 20) * 10) / 10);
const sec = (ms: number): number => Math.round(ms) / 1000;
const subOptions = (clean: boolean): IClientOptions => ({
  clientId: SUB_ID, clean, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0, connectTimeout: 30_000,
});

async function connect(url: string, opts: IClientOptions, beforeConnack?: (c: MqttClient) => void): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, ...opts });
  beforeConnack?.(client);
  return new Promise((resolve, reject) => {
    client.once('connect', (ack) => resolve({ client, sessionPresent: ack.sessionPresent }));
    client.once('error', reject);
    client.once('close', () => reject(new Error(`${opts.clientId ?? 'client'}: closed before CONNACK`)));
  });
}

function payload(publisher: number, seq: number): Buffer {
  const buf = Buffer.alloc(PAYLOAD, 0x2e);
  buf.writeUInt16BE(publisher, 0);
  buf.writeUInt32BE(seq, 2);
  return buf;
}

/**
 * Closed-loop QoS 1 publishers: each keeps WINDOW publishes without PUBACK in flight. A publish the
 * broker refuses (PUBACK reason >= 0x80, e.g. 0x97 quota exceeded) is counted, not retried.
 */
async function publishAll(eddy: EddyProcess) {
  const clients = await Promise.all(counts.map((_, p) => connect(eddy.mqttUrl, { clientId: `eddy-backlog-pub${p}`, clean: true, protocolVersion: 5 })));
  const rss = new RssSampler(eddy.pid);
  const cpu0 = readProcessCpuMs(eddy.pid);
  const clientCpu0 = process.cpuUsage();
  const confirmed = counts.map((c) => new Uint8Array(c));
  let acked = 0;
  let refused = 0;
  let firstRefusal: string | undefined;
  let last = { acked: 0, at: performance.now() };
  const started = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    const rate = ((acked - last.acked) * 1000) / (now - last.at);
    last = { acked, at: now };
    note(`publish ... ${fmtInt(acked)}/${fmtInt(N)} confirmed, ${fmtInt(refused)} refused, ${fmtInt(rate)} msg/s, broker RSS ${MB(rss.last)}`);
  }, 2000);
  try {
    await Promise.all(clients.map(({ client }, p) => new Promise<void>((resolve, reject) => {
      let sent = 0;
      let inflight = 0;
      const next = (): void => {
        while (inflight < WINDOW && sent < counts[p]!) {
          inflight++;
          const seq = sent++;
          client.publish(`backlog/${p}`, payload(p, seq), { qos: 1 }, (err) => {
            inflight--;
            if (err) {
              refused++;
              firstRefusal ??= err.message;
            } else {
              confirmed[p]![seq] = 1;
              acked++;
            }
            if (sent < counts[p]!) next();
            else if (inflight === 0) resolve();
          });
        }
      };
      client.once('close', () => reject(new Error(`publisher ${p} disconnected`)));
      next();
    })));
  } finally {
    clearInterval(ticker);
  }
  const ms = performance.now() - started;
  const cpu1 = readProcessCpuMs(eddy.pid);
  const rssDuring = rss.stop();
  await Promise.all(clients.map(({ client }) => client.endAsync()));
  return {
    confirmedBitmaps: confirmed,
    confirmed: acked, refused, firstRefusal, seconds: sec(ms), msgPerSec: Math.round(acked / (ms / 1000)),
    answeredPerSec: Math.round((acked + refused) / (ms / 1000)),
    brokerCpuPercent: cpu0 !== null && cpu1 !== null ? Math.round((100 * (cpu1 - cpu0)) / ms) : null,
    clientCpuPercent: cpuPercent(clientCpu0, ms),
    rssPeakMB: mb(rssDuring.peakBytes), rssAtEndMB: mb(rssDuring.lastBytes),
  };
}

/**
 * Reconnects the durable subscriber and takes the whole backlog, checking that every confirmed
 * message arrives, in order per publisher, and counting duplicates.
 */
async function drain(eddy: EddyProcess, confirmed: Uint8Array[]) {
  const expected = confirmed.reduce((sum, c) => sum + c.reduce((a, b) => a + b, 0), 0);
  const seen = counts.map((c) => new Uint8Array(c));
  const lastSeq = counts.map(() => -1);
  let unique = 0;
  let unconfirmed = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let foreign = 0;
  const examples: string[] = [];
  let firstAt = 0;
  let lastAt = 0;
  const rss = new RssSampler(eddy.pid);
  const cpu0 = readProcessCpuMs(eddy.pid);
  const clientCpu0 = process.cpuUsage();
  const started = performance.now();
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => { done = r; });
  const onMessage = (_topic: string, buf: Buffer): void => {
    lastAt = performance.now();
    firstAt ||= lastAt;
    const p = buf.length >= 6 ? buf.readUInt16BE(0) : -1;
    const seq = buf.length >= 6 ? buf.readUInt32BE(2) : -1;
    if (!(p >= 0 && p < PUBLISHERS && seq < counts[p]!)) { foreign++; return; }
    if (seen[p]![seq]) { duplicates++; return; }
    seen[p]![seq] = 1;
    unique++;
    if (!confirmed[p]![seq]) unconfirmed++;
    if (seq < lastSeq[p]!) {
      outOfOrder++;
      if (examples.length < 10) examples.push(`publisher ${p}: seq ${seq} after ${lastSeq[p]}`);
    } else lastSeq[p] = seq;
    if (unique - unconfirmed === expected) done();
  };
  let disconnect: { reasonCode?: number; reason?: string } | undefined;
  // The listener goes on before CONNACK: the broker may send queued messages right behind it.
  const { client, sessionPresent } = await connect(eddy.mqttUrl, subOptions(false), (c) => {
    c.on('message', onMessage);
    c.on('disconnect', (packet) => { disconnect = { reasonCode: packet.reasonCode, reason: packet.properties?.reasonString }; });
  });
  let last = { unique: 0, at: performance.now() };
  let stalled = false;
  const ticker = setInterval(() => {
    const now = performance.now();
    note(`drain ... ${fmtInt(unique)}/${fmtInt(N)} received, ${fmtInt(((unique - last.unique) * 1000) / (now - last.at))} msg/s, broker RSS ${MB(rss.last)}`);
    last = { unique, at: now };
  }, 2000);
  const watchdog = setInterval(() => {
    if (performance.now() - (lastAt || started) > STALL_MS) { stalled = true; done(); }
  }, 500);
  client.once('close', () => done());
  if (expected > 0) await finished;
  clearInterval(ticker);
  clearInterval(watchdog);
  const cpu1 = readProcessCpuMs(eddy.pid);
  const rssDuring = rss.stop();
  const ms = (lastAt || performance.now()) - started;
  return {
    client,
    disconnect: () => disconnect,
    result: {
      sessionPresent, confirmed: expected, received: unique, missingConfirmed: expected - (unique - unconfirmed), receivedUnconfirmed: unconfirmed, duplicates, outOfOrder, outOfOrderExamples: examples, foreign,
      stalled, connectedWhileDraining: client.connected,
      firstMessageAfterMs: firstAt ? Math.round(firstAt - started) : null,
      seconds: sec(ms), msgPerSec: ms > 0 ? Math.round(unique / (ms / 1000)) : 0,
      brokerCpuPercent: cpu0 !== null && cpu1 !== null ? Math.round((100 * (cpu1 - cpu0)) / ms) : null,
      clientCpuPercent: cpuPercent(clientCpu0, ms),
      rssPeakMB: mb(rssDuring.peakBytes), rssAtEndMB: mb(rssDuring.lastBytes),
    },
  };
}

/** Stops the broker with `signal` and starts it again on the same data dir. */
async function restart(eddy: EddyProcess, dataDir: string, signal: NodeJS.Signals) {
  const stopMs = await eddy.stop(signal);
  const { code, signal: exitSignal } = await eddy.exited;
  const diskAfterStop = dirSize(dataDir);
  note(`restart after ${signal} ... stopped in ${Math.round(stopMs)} ms (code ${code}, signal ${exitSignal})`);
  const next = await startEddy(dataDir, extraArgs);
  const rssAtReady = new RssSampler(next.pid).stop().lastBytes;
  await new Promise((r) => setTimeout(r, 2000));
  const health = await healthz(next);
  const result = {
    stopMs: Math.round(stopMs), exit: { code, signal: exitSignal }, diskAfterStopMB: mb(diskAfterStop.diskBytes),
    restartMs: Math.round(next.readyMs), readMBAtReady: mb(next.readBytesAtReady),
    rssAtReadyMB: mb(rssAtReady), rssAfter2sMB: mb(new RssSampler(next.pid).stop().lastBytes),
    sessions: health?.['sessions'] ?? null,
  };
  note(`restart after ${signal} ... ready in ${result.restartMs} ms, read ${result.readMBAtReady} MB, RSS ${result.rssAfter2sMB} MB`);
  return { eddy: next, result };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'eddy-backlog-'));
  const loadAtStart = os.loadavg();
  let eddy = await startEddy(dataDir, extraArgs);
  note(`eddy pid ${eddy.pid} at ${eddy.mqttUrl}, data dir ${dataDir}, ready in ${Math.round(eddy.readyMs)} ms`);
  const report: Record<string, unknown> = {
    generatedAt: new Date().toISOString(),
    environment: { commit: gitCommit(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadAverageAtStart: loadAtStart.map((l) => Math.round(l * 100) / 100) },
    options: { messages: N, payloadBytes: PAYLOAD, publishers: PUBLISHERS, window: WINDOW, brokerArgs: ['--data-dir', '<temp>', '--fsync', 'always (default)', '--log-level', 'warn', ...extraArgs] },
    firstStart: { readyMs: Math.round(eddy.readyMs), rssMB: mb(new RssSampler(eddy.pid).stop().lastBytes), readMBAtReady: mb(eddy.readBytesAtReady) },
  };
  try {
    const { client: setup } = await connect(eddy.mqttUrl, subOptions(true));
    const granted = await setup.subscribeAsync(TOPIC_FILTER, { qos: 1 });
    if (granted[0]?.qos !== 1) throw new Error(`subscription not granted at QoS 1: ${JSON.stringify(granted)}`);
    await setup.endAsync();

    const publish = await publishAll(eddy);
    note(`published ${fmtInt(publish.confirmed)} in ${publish.seconds} s: ${fmtInt(publish.msgPerSec)} msg/s`
      + (publish.refused ? `; ${fmtInt(publish.refused)} refused (${publish.firstRefusal})` : ''));
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const afterPublish = { rssIdleMB: mb(new RssSampler(eddy.pid).stop().lastBytes), disk: sizeMB(dataDir), healthz: await healthz(eddy) };
    const { confirmedBitmaps: _, ...publishFigures } = publish;
    report['publish'] = { ...publishFigures, afterIdle: afterPublish };

    const term = await restart(eddy, dataDir, 'SIGTERM');
    eddy = term.eddy;
    const kill = await restart(eddy, dataDir, 'SIGKILL');
    eddy = kill.eddy;
    report['restartAfterSigterm'] = term.result;
    report['restartAfterSigkill'] = kill.result;

    const readBefore = readIoBytes(eddy.pid);
    const { client, disconnect, result } = await drain(eddy, publish.confirmedBitmaps);
    const readAfter = readIoBytes(eddy.pid);
    note(`drained ${fmtInt(result.received)}/${fmtInt(N)} in ${result.seconds} s: ${fmtInt(result.msgPerSec)} msg/s`);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    report['drain'] = {
      ...result,
      brokerReadMB: readBefore !== null && readAfter !== null ? mb(readAfter - readBefore) : null,
      afterIdle: {
        subscriberConnected: client.connected, brokerDisconnect: disconnect() ?? null,
        rssMB: mb(new RssSampler(eddy.pid).stop().lastBytes), disk: sizeMB(dataDir), healthz: await healthz(eddy),
      },
    };
    await client.endAsync(!client.connected);
    report['reconnectAfterDrain'] = await redelivered(eddy);
  } finally {
    await eddy.stop('SIGTERM');
    report['brokerStderr'] = Object.fromEntries(stderrCounts);
    report['environment'] = { ...(report['environment'] as object), loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) };
    if (args.keep) note(`data dir kept: ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
    const jsonPath = path.resolve(args.json ?? path.join(resultsDir, 'backlog.json'));
    mkdirSync(path.dirname(jsonPath), { recursive: true });
    writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
    note(`results written to ${jsonPath}`);
  }
  process.stdout.write(markdown(report));
}

/** After a complete drain the queue is empty: anything a new connection gets is a redelivery. */
async function redelivered(eddy: EddyProcess) {
  let messages = 0;
  const { client, sessionPresent } = await connect(eddy.mqttUrl, subOptions(false), (c) => c.on('message', () => messages++));
  await new Promise((r) => setTimeout(r, 3000));
  const connected = client.connected;
  await client.endAsync(!connected);
  return { sessionPresent, messagesWithin3s: messages, stillConnected: connected };
}

/** This (client) process's CPU since `since`, in percent of one core over `ms`. */
function cpuPercent(since: NodeJS.CpuUsage, ms: number): number {
  const used = process.cpuUsage(since);
  return Math.round((used.user + used.system) / 10 / ms);
}

/** The commit measured, with `+dirty` when src/ has uncommitted changes. */
function gitCommit(): string {
  const git = (...a: string[]): string => spawnSync('git', a, { cwd: repoRoot, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  return git('status', '--porcelain', '--', 'src') ? `${head}+dirty` : head;
}

function sizeMB(dir: string): { diskMB: number | null; apparentMB: number | null; files: number } {
  const s = dirSize(dir);
  return { diskMB: mb(s.diskBytes), apparentMB: mb(s.apparentBytes), files: s.files };
}

function markdown(r: Record<string, any>): string {
  const p = r.publish;
  const d = r.drain;
  const t = r.restartAfterSigterm;
  const k = r.restartAfterSigkill;
  const dropped = (h: any): string => (h ? JSON.stringify(h.dropped) : 'n/a');
  const rows: Array<[string, string]> = [
    ['publish rate (confirmed QoS 1)', `${fmtInt(p.msgPerSec)} msg/s (${fmtInt(p.confirmed)} in ${p.seconds} s, CPU: broker ${p.brokerCpuPercent}%, client ${p.clientCpuPercent}%)`],
    ['broker RSS during publish (peak / end / idle after)', `${p.rssPeakMB} / ${p.rssAtEndMB} / ${p.afterIdle.rssIdleMB} MB`],
    ['data dir after publish (on disk / apparent)', `${p.afterIdle.disk.diskMB} / ${p.afterIdle.disk.apparentMB} MB in ${p.afterIdle.disk.files} files`],
    ['refused publishes', p.refused ? `${fmtInt(p.refused)} (first: ${p.firstRefusal}); confirmed + refused: ${fmtInt(p.answeredPerSec)} msg/s` : '0'],
    ['broker drop counters after publish', dropped(p.afterIdle.healthz)],
    ['first start (spawn -> ready)', `${r.firstStart.readyMs} ms, RSS ${r.firstStart.rssMB} MB`],
    ['SIGTERM: stop / restart (spawn -> ready)', `${t.stopMs} ms / ${t.restartMs} ms (read ${t.readMBAtReady} MB at start)`],
    ['RSS after restart (SIGTERM): at ready / +2 s', `${t.rssAtReadyMB} / ${t.rssAfter2sMB} MB`],
    ['SIGKILL: restart (spawn -> ready)', `${k.restartMs} ms (read ${k.readMBAtReady} MB at start)`],
    ['RSS after restart (SIGKILL): at ready / +2 s', `${k.rssAtReadyMB} / ${k.rssAfter2sMB} MB`],
    ['drain rate', d ? `${fmtInt(d.msgPerSec)} msg/s (${fmtInt(d.received)} in ${d.seconds} s, first after ${d.firstMessageAfterMs} ms, CPU: broker ${d.brokerCpuPercent}%, client ${d.clientCpuPercent}%; broker read ${d.brokerReadMB} MB)` : 'n/a'],
    ['broker RSS during drain (peak / end / idle after)', d ? `${d.rssPeakMB} / ${d.rssAtEndMB} / ${d.afterIdle.rssMB} MB` : 'n/a'],
    ['received / confirmed missing / duplicates / out of order', d ? `${fmtInt(d.received)} / ${fmtInt(d.missingConfirmed)} / ${fmtInt(d.duplicates)} / ${fmtInt(d.outOfOrder)}`
      + `${d.receivedUnconfirmed ? ` (${fmtInt(d.receivedUnconfirmed)} received were not confirmed)` : ''}${d.stalled ? ' (stalled)' : ''}` : 'n/a'],
    ['subscriber after drain (+6 s idle)', d ? (d.afterIdle.subscriberConnected ? 'connected' : `disconnected by broker: ${JSON.stringify(d.afterIdle.brokerDisconnect)}`) : 'n/a'],
    ['reconnect after drain: messages redelivered', r.reconnectAfterDrain ? fmtInt(r.reconnectAfterDrain.messagesWithin3s) : 'n/a'],
    ['data dir after drain (on disk)', d ? `${d.afterIdle.disk.diskMB} MB in ${d.afterIdle.disk.files} files` : 'n/a'],
  ];
  const o = r.options;
  return [
    '## Eddy disk engine: backlog', '',
    `${fmtInt(o.messages)} QoS 1 messages of ${o.payloadBytes} bytes to one offline durable subscriber (${o.publishers} publishers x ${o.window} in flight), `
      + `broker ${o.brokerArgs.join(' ')}, commit ${r.environment.commit}. ${r.environment.cpus} x ${r.environment.cpuModel}, Node ${r.environment.node}, `
      + `load average ${r.environment.loadAverageAtStart.join(' ')} at start, ${r.environment.loadAverageAtEnd.join(' ')} at end.`,
    '',
    '| measure | value |', '| --- | --- |',
    ...rows.map(([a, b]) => `| ${a} | ${b} |`),
    '',
  ].join('\n');
}

main().catch((err) => {
  process.stderr.write(`backlog failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
