import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import mqtt from 'mqtt';
import { EDDY_BIN } from './broker.js';

/**
 * What the hostile-input probes share: a broker child whose memory can be read from /proc, a
 * healthy publisher/subscriber pair that must keep round-tripping, and raw sockets to misbehave on.
 * `EDDY_PROBE_BIN` points the probes at another build (an older checkout) to measure it the same way.
 */
export const PROBE_BIN = process.env.EDDY_PROBE_BIN ?? EDDY_BIN;

export interface ProbeBroker {
  child: ChildProcess;
  mqttPort: number;
  httpPort: number;
  stderr(): string;
  /** True while the process runs. */
  alive(): boolean;
  /** Peak resident memory so far (VmHWM), in MiB. */
  peakRssMb(): number;
  /** Current resident memory (VmRSS), in MiB. */
  rssMb(): number;
  stop(): Promise<void>;
}

/** Starts `eddy broker` in a child; `ulimitFiles` caps its file descriptors (via the shell's ulimit). */
export async function startProbeBroker(args: string[], options: { ulimitFiles?: number; timeoutMs?: number } = {}): Promise<ProbeBroker> {
  // An older build does not know the flags its limits came with: leave them out to measure it.
  if (process.env.EDDY_PROBE_LEGACY) args = args.filter((a, i) => !/^--(packet-timeout|http-.*-timeout)$/.test(a) && !/^--(packet-timeout|http-.*-timeout)$/.test(args[i - 1] ?? ''));
  const argv = [PROBE_BIN, 'broker', '--port', '0', '--http-port', '0', '--log-level', 'warn', ...args];
  const child =
    options.ulimitFiles === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -n ${options.ulimitFiles} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  // Keep the tail only: a broker under attack may log a lot.
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-200_000)));
  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker not ready; stderr: ${err}`)), options.timeoutMs ?? 20_000);
    child.stdout!.on('data', () => {
      const m = out.match(/eddy ready mqtt=\S+:(\d+) http=\S+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before ready; stderr: ${err}`));
    });
  });
  const status = (key: string): number => {
    const text = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return {
    child,
    mqttPort: Number(ready[1]),
    httpPort: Number(ready[2]),
    stderr: () => err,
    alive: () => child.exitCode === null && child.signalCode === null,
    peakRssMb: () => status('VmHWM'),
    rssMb: () => status('VmRSS'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await once(child, 'exit');
      clearTimeout(timer);
    },
  };
}

let pairs = 0;

/**
 * A healthy subscriber and publisher on fresh connections: one QoS 1 message must make the round
 * trip. Resolves with its duration in ms; rejects when it does not arrive within `timeoutMs`.
 */
export async function healthyRoundTrip(port: number, timeoutMs = 10_000): Promise<number> {
  const topic = `healthy/${process.pid}/${++pairs}`;
  const url = `mqtt://127.0.0.1:${port}`;
  const options = { reconnectPeriod: 0, connectTimeout: timeoutMs, protocolVersion: 5 as const };
  const sub = mqtt.connect(url, options);
  const pub = mqtt.connect(url, options);
  sub.on('error', () => {});
  pub.on('error', () => {});
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      (async () => {
        await Promise.all([connected(sub), connected(pub)]);
        await sub.subscribeAsync(topic, { qos: 1 });
        const arrived = new Promise<[string, Buffer]>((resolve) => sub.once('message', (t, p) => resolve([t, p])));
        await pub.publishAsync(topic, 'ping', { qos: 1 });
        const [gotTopic, payload] = await arrived;
        if (gotTopic !== topic || payload.toString() !== 'ping') throw new Error(`wrong message ${gotTopic} ${payload.toString()}`);
        return performance.now() - started;
      })(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`healthy pair did not round-trip within ${timeoutMs} ms`)), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
    sub.end(true);
    pub.end(true);
  }
}

function connected(client: mqtt.MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
}

/** Opens `count` plain sockets (in batches, so the listener's backlog is not the limit). */
export async function openSockets(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      // Read what the broker sends, so that its end of the connection is seen (a paused socket never sees FIN).
      socket.on('data', () => {});
      sockets.push(socket);
      return new Promise<void>((resolve) => {
        socket.once('connect', () => resolve());
        socket.once('close', () => resolve());
      });
    });
    await Promise.all(batch);
  }
  return sockets;
}

/** Rejects when `promise` does not settle within `ms` (a publish to a broker that died never does). */
export function within<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** Bytes under `dir`, recursively. */
export function diskBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? diskBytes(full) : fs.statSync(full).size;
  }
  return total;
}

/** Milliseconds for GET /healthz, or a rejection after `timeoutMs`. */
export async function healthzMs(httpPort: number, timeoutMs = 10_000): Promise<number> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
  return performance.now() - started;
}

/** The broker's /healthz body. */
export async function healthz(httpPort: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as Record<string, unknown>;
}

/** One line of figures per probe, for the closing note and docs (printed to stderr by the tests). */
export function report(probe: string, figures: Record<string, number | string | boolean>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 10) / 10 : v}`);
  process.stderr.write(`# probe ${probe}: ${parts.join(' ')}\n`);
}

/** An MQTT "remaining length" varint. */
export function varint(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** An MQTT UTF-8 string: two length bytes, then the bytes. */
export function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** A 3.1.1 CONNECT with an optional will, built by hand so any topic can be sent. */
export function connectPacket(clientId: string, will?: { topic: string; payload: Buffer; qos?: number }): Buffer {
  const flags = 0x02 | (will ? 0x04 | ((will.qos ?? 0) << 3) : 0);
  const variable = Buffer.concat([mqttString('MQTT'), Buffer.from([4, flags, 0, 60])]);
  const payload = Buffer.concat([mqttString(clientId), ...(will ? [mqttString(will.topic), mqttString(will.payload)] : [])]);
  const body = Buffer.concat([variable, payload]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

/** The header (and topic) of a 3.1.1 QoS 0 PUBLISH announcing `payloadBytes` of payload, without the payload. */
export function publishHeader(topic: string, payloadBytes: number): Buffer {
  const t = mqttString(topic);
  return Buffer.concat([Buffer.from([0x30]), varint(t.length + payloadBytes), t]);
}
