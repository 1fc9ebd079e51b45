// Entry point of `npm run bench`: every selected broker in turn, every selected workload
// against it, progress on stderr, Markdown on stdout, all figures in bench/results/latest.json.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestPki } from '../test/helpers/tls.js';
import { BROKER_NAMES, BrokerUnavailable, killAllBrokersSync, startBroker, type RunningBroker } from './brokers.js';
import { parseOptions, USAGE, type Options } from './options.js';
import { resultsDir } from './paths.js';
import { fmtInt, note, progressReporter, resultLine } from './progress.js';
import { environment, markdown, METHOD, ratios, ratiosJson, writeJson, type Report } from './report.js';
import { runParallel } from './parallel.js';
import { runWorkload } from './runner.js';
import { defineWorkloads } from './workloads.js';

// Lets a Node broker finish GC and socket cleanup of the last workload before the next starts.
const PAUSE_BETWEEN_WORKLOADS_MS = 500;

let current: RunningBroker | undefined;

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    const parsed = parseOptions(argv);
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const started = Date.now();
  const defs = defineWorkloads({
    qos1Window: opts.window, qos0Window: opts.qos0Window, fanoutWindow: opts.fanoutWindow,
    fanoutSubscribers: opts.fanoutSubscribers, faninPublishers: opts.faninPublishers,
    parallelPairs: opts.parallelPairs, connPairs: opts.connPairs, connRate: opts.connRate,
    connProcesses: opts.connProcesses, connSeconds: opts.connSeconds,
  });
  const workloads = opts.workloads.map((k) => defs[k]);
  const report: Report = {
    generatedAt: new Date().toISOString(),
    wallClockSec: 0,
    environment: environment(),
    options: opts,
    method: opts.tls
      ? [...METHOD, '--tls: every client connects over TLS (mqtts, TLS 1.3 negotiated) to a P-256 certificate from a throwaway CA; Eddy and Aedes in Node (OpenSSL via node:tls), Mosquitto with its own OpenSSL.']
      : METHOD,
    brokers: {},
    workloads: workloads.map((w) => ({ ...w, payloadBytes: opts.payloadBytes })),
    results: Object.fromEntries(workloads.map((w) => [w.id, {}])),
    ratios: {},
  };
  const profDir = path.join(resultsDir, 'prof');
  if (opts.cpuProf) mkdirSync(profDir, { recursive: true });
  const runTag = `b${started.toString(36)}`;
  let failed = false;
  // --tls: one throwaway CA and server certificate for every broker, made with openssl, removed at the end.
  const certDir = opts.tls ? mkdtempSync(path.join(os.tmpdir(), 'eddy-bench-tls-')) : undefined;
  process.on('exit', () => certDir && rmSync(certDir, { recursive: true, force: true }));
  const pki = certDir ? new TestPki(certDir) : undefined;
  const serverCert = pki?.server('server');
  // Mosquitto started as root drops to its own user, which must read them: throwaway files, readable by all.
  if (certDir) {
    chmodSync(certDir, 0o755);
    for (const file of readdirSync(certDir)) chmodSync(path.join(certDir, file), 0o644);
  }
  const ca = pki ? readFileSync(pki.ca.cert) : undefined;

  for (const name of opts.brokers) {
    note(`[${name}] starting`);
    try {
      current = await startBroker(name, {
        cpuProf: opts.cpuProf, profDir, aclRules: opts.aclRules, ...(serverCert ? { tls: serverCert } : {}),
        maxConnections: 2 * opts.connPairs + 100, workers: opts.workers, ...(opts.eddyCpu !== undefined ? { eddyCpu: opts.eddyCpu } : {}), ...(opts.eddyRoot ? { eddyRoot: path.resolve(opts.eddyRoot) } : {}),
      });
    } catch (err) {
      const skipped = err instanceof BrokerUnavailable;
      failed ||= !skipped;
      report.brokers[name] = { status: skipped ? 'skipped' : 'failed', reason: (err as Error).message };
      note(`[${name}] ${skipped ? 'skipped' : 'failed to start'}: ${(err as Error).message}`);
      continue;
    }
    const broker = current;
    report.brokers[name] = { status: 'ok', version: broker.version, url: broker.url, ...(broker.config ? { config: broker.config } : {}) };
    note(`[${name}] ${broker.version} listening at ${broker.url}${broker.subscribeUrl ? ` (subscribers at ${broker.subscribeUrl})` : ''} (pids ${[...broker.processes.broker, ...broker.processes.store].join(',')})`);
    try {
      for (const w of workloads) {
        note(`[${name}] ${w.id} ... ${w.description}`);
        const cfg = {
          messages: opts.messages, payloadBytes: opts.payloadBytes, timeoutMs: opts.timeoutMs,
          settleMs: opts.settleMs, protocolVersion: opts.protocolVersion, tag: `${runTag}-${name}`,
          ...(ca ? { ca } : {}), ...(broker.subscribeUrl ? { subscribeUrl: broker.subscribeUrl } : {}),
        };
        // Pairs run over several client processes; the timed workload has no warm-up (it is long and slow already).
        const run = w.processes && w.processes > 1 ? runParallel : runWorkload;
        if (opts.warmup > 0 && !w.ratePerPublisher) {
          const warm = await run(broker.url, w, { ...cfg, messages: opts.warmup, tag: `${cfg.tag}-warm` },
            null, progressReporter(name, `${w.id} warm-up`));
          note(`[${name}] ${w.id} warm-up ... ${fmtInt(warm.msgPerSec)} msg/s${warm.error ? ` (${warm.error})` : ''}`);
        }
        const result = await run(broker.url, w, cfg, broker.processes, progressReporter(name, w.id));
        report.results[w.id]![name] = result;
        // Partial results are still reported, but a stuck or erroring broker must fail the run.
        failed ||= result.error !== undefined;
        note(resultLine(name, w.id, result));
        await new Promise((r) => setTimeout(r, PAUSE_BETWEEN_WORKLOADS_MS));
      }
    } finally {
      note(`[${name}] stopping${opts.cpuProf && name.startsWith('eddy') ? ` (CPU profile -> ${path.relative(process.cwd(), profDir) || '.'})` : ''}`);
      await broker.stop();
      current = undefined;
    }
  }

  for (const w of workloads) {
    const r = report.results[w.id]!;
    report.ratios[w.id] = {
      eddyVsMosquitto: ratios(r.eddy, r.mosquitto), eddyVsAedes: ratios(r.eddy, r.aedes),
      eddyDiskVsMosquitto: ratios(r['eddy-disk'], r.mosquitto), eddyDiskVsAedes: ratios(r['eddy-disk'], r.aedes),
    };
  }
  report.wallClockSec = Math.round((Date.now() - started) / 100) / 10;
  const jsonPath = path.resolve(opts.json ?? path.join(resultsDir, opts.tls ? 'latest-tls.json' : 'latest.json'));
  writeJson(jsonPath, report);
  writeJson(jsonPath.replace(/\.json$/, '') + '-ratios.json', ratiosJson(report));
  note(`results written to ${path.relative(process.cwd(), jsonPath)} (${report.wallClockSec} s)`);
  // Columns in a fixed order (Eddy first) whatever order --brokers ran them in.
  process.stdout.write(markdown(report, BROKER_NAMES.filter((b) => opts.brokers.includes(b))));
  return failed ? 1 : 0;
}

// Children must never outlive the bench, whichever way it ends.
process.on('exit', killAllBrokersSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    note(`${signal}: stopping brokers`);
    const stopping = current ? current.stop() : Promise.resolve();
    const cap = new Promise((r) => setTimeout(r, 5_000).unref());
    void Promise.race([stopping, cap]).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    killAllBrokersSync();
    process.exitCode = 1;
  },
);
