import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import mqtt from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { tempDirs } from '../helpers/temp-dir.js';
import {
  connectPacket,
  diskBytes,
  healthyRoundTrip,
  healthz,
  healthzMs,
  mqttString,
  openSockets,
  publishHeader,
  report,
  startProbeBroker,
  varint,
  within,
  type ProbeBroker,
} from '../helpers/hostile.js';
import { sleep } from '../helpers/mqtt.js';
import { prng } from '../helpers/prng.js';

/**
 * Hostile clients against a broker child process: each probe attacks, then checks that the process
 * is alive, that a healthy publisher/subscriber pair still round-trips, and that peak RSS stays under
 * a stated bound. The figures of each probe are printed as `# probe …` lines.
 */

const tempDir = tempDirs('eddy-hostile-');
const brokers: ProbeBroker[] = [];
const sockets: net.Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(brokers.map((b) => b.stop()));
});

async function broker(args: string[], options: { ulimitFiles?: number } = {}): Promise<ProbeBroker> {
  const b = await startProbeBroker(args, options);
  brokers.push(b);
  return b;
}

function track(list: net.Socket[]): net.Socket[] {
  sockets.push(...list);
  return list;
}

/** Figures every probe reports, then the assertions every probe makes. */
async function settle(name: string, b: ProbeBroker, rssBoundMb: number, extra: Record<string, number | string | boolean> = {}): Promise<void> {
  let roundTripMs: number | string = 'failed';
  if (b.alive()) roundTripMs = await healthyRoundTrip(b.mqttPort).catch((err: Error) => err.message);
  const alive = b.alive();
  report(name, { alive, peakRssMb: alive ? b.peakRssMb() : NaN, roundTripMs, ...extra });
  assert.equal(alive, true, `the broker died (exit ${b.child.exitCode}, signal ${b.child.signalCode}): ${b.stderr().slice(-2000)}`);
  assert.equal(typeof roundTripMs, 'number', `healthy pair: ${String(roundTripMs)}`);
  assert.ok(b.peakRssMb() < rssBoundMb, `peak RSS ${b.peakRssMb()} MiB is over the bound of ${rssBoundMb} MiB`);
}

describe('hostile input', { concurrency: false }, () => {
  test('a will whose topic has 5,000 levels, with a matching subscription, does not end the process', async () => {
    const b = await broker(['--memory']);
    const deep = '/'.repeat(4999);
    const subscriber = track([net.connect(b.mqttPort, '127.0.0.1')])[0]!;
    subscriber.on('error', () => {});
    subscriber.write(connectPacket('deep-sub'));
    const subscribe = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: deep, qos: 0 }, { topic: '#', qos: 0 }] } as Packet);
    subscriber.write(subscribe);
    const deepPlus = Array.from({ length: 3000 }, () => '+').join('/');
    subscriber.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: deepPlus, qos: 0 }] } as Packet));
    await sleep(200);
    const victim = track([net.connect(b.mqttPort, '127.0.0.1')])[0]!;
    victim.on('error', () => {});
    victim.write(connectPacket('deep-will', { topic: deep, payload: Buffer.from('bye') }));
    await sleep(200);
    // A publish of the same depth, on a live connection.
    victim.write(Buffer.concat([publishHeader(deep, 2), Buffer.from('hi')]));
    await sleep(200);
    victim.destroy(); // the will is published from the socket-close path
    await sleep(500);
    await settle('deep-topic-will', b, 200);
  });

  test('file descriptors running out at a log segment roll refuse the publishes that need them, and publishing recovers', async () => {
    const dir = tempDir();
    const b = await broker(['--data-dir', dir], { ulimitFiles: 256 });
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5, reconnectPeriod: 0 });
    pub.on('error', () => {});
    // Every descriptor the broker has left goes to idle sockets.
    const idle = track(await openSockets(b.mqttPort, 300));
    const payload = Buffer.alloc(1_000_000, 7);
    let confirmed = 0;
    let refused = 0;
    for (let i = 0; i < 70 && b.alive(); i++) {
      await within(pub.publishAsync('roll/big', payload, { qos: 1 }), 10_000, 'publish').then(
        () => confirmed++,
        () => refused++,
      );
    }
    const aliveUnderPressure = b.alive();
    for (const s of idle) s.destroy();
    await sleep(500);
    let after = 0;
    for (let i = 0; i < 10 && b.alive(); i++) {
      await within(pub.publishAsync('roll/big', payload, { qos: 1 }), 10_000, 'publish').then(() => after++, () => {});
    }
    pub.end(true);
    await settle('emfile-at-roll', b, 250, { confirmed, refused, confirmedAfterRecovery: after, aliveUnderPressure });
    assert.ok(refused > 0, 'some publishes were refused while no descriptor was free');
    assert.equal(after, 10, 'publishing works again once descriptors are free');
  });

  test('2,000 sockets with an unfinished ~1 MiB packet, before and after CONNECT, hold bounded memory and time out', async () => {
    const b = await broker(['--memory', '--packet-timeout', '3']);
    const chunk = Buffer.alloc(1024 * 1000, 1);
    const announce = 1024 * 1024 - 64;
    const afterConnect = track(await openSockets(b.mqttPort, 1000));
    for (const [i, s] of afterConnect.entries()) {
      s.write(connectPacket(`unfinished-${i}`));
      s.write(publishHeader('unfinished', announce));
      s.write(chunk);
    }
    const beforeConnect = track(await openSockets(b.mqttPort, 1000));
    for (const s of beforeConnect) {
      s.write(Buffer.concat([Buffer.from([0x10]), varint(announce)]));
      s.write(chunk);
    }
    await sleep(2000);
    const rssUnderAttack = b.rssMb();
    const roundTripUnderAttack = await healthyRoundTrip(b.mqttPort).catch((err: Error) => err.message);
    // A packet that announces more than the maximum packet size is refused at its header.
    const oversized = track([net.connect(b.mqttPort, '127.0.0.1')])[0]!;
    oversized.on('error', () => {});
    oversized.on('data', () => {}); // a socket that does not read never sees the broker's FIN
    oversized.write(connectPacket('oversized'));
    oversized.write(Buffer.concat([Buffer.from([0x30]), varint(200 * 1024 * 1024)]));
    const refusedAtHeader = await Promise.race([once(oversized, 'close').then(() => true), sleep(2000).then(() => false)]);
    // The unfinished packets time out.
    const all = [...afterConnect, ...beforeConnect];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && all.some((s) => !s.destroyed && s.readyState !== 'closed')) await sleep(250);
    const stillOpen = all.filter((s) => !s.destroyed && s.readyState !== 'closed').length;
    await settle('unfinished-packets', b, 400, { rssUnderAttackMb: rssUnderAttack, roundTripUnderAttack, refusedAtHeader, stillOpen });
    assert.equal(typeof roundTripUnderAttack, 'number', `healthy pair under attack: ${String(roundTripUnderAttack)}`);
    assert.equal(refusedAtHeader, true, 'a PUBLISH announcing 200 MiB is refused at its header');
    assert.equal(stillOpen, 0, 'every unfinished packet timed out');
  });

  for (const persistent of [false, true]) {
    test(`a ${persistent ? 'persistent' : 'clean'}-session QoS 1 subscriber that never reads keeps the broker's memory and disk bounded`, async () => {
      const dir = tempDir();
      const b = await broker(['--data-dir', dir]);
      const stalled = track([net.connect(b.mqttPort, '127.0.0.1')])[0]!;
      stalled.on('error', () => {});
      await once(stalled, 'connect');
      const connect = mqttPacket.generate(
        { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: `stalled-${persistent}`, clean: true, keepalive: 0, properties: persistent ? { sessionExpiryInterval: 3600 } : {} } as Packet,
        { protocolVersion: 5 },
      );
      stalled.write(connect);
      stalled.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'stall/#', qos: 1 }] } as Packet, { protocolVersion: 5 }));
      await sleep(300);
      stalled.pause(); // never reads again
      const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5, reconnectPeriod: 0 });
      pub.on('error', () => {});
      const payload = Buffer.alloc(1_000_000, 3);
      let accepted = 0;
      let refused = 0;
      const inFlight = new Set<Promise<unknown>>();
      for (let i = 0; i < 600 && b.alive(); i++) {
        const p = within(pub.publishAsync('stall/big', payload, { qos: 1 }), 20_000, 'publish').then(() => accepted++, () => refused++);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= 20) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      pub.end(true);
      const disk = diskBytes(dir) / 1024 / 1024;
      const health = await healthz(b.httpPort).catch(() => ({}) as Record<string, unknown>);
      const dropped = (health.dropped as Record<string, number> | undefined)?.['queue-full'] ?? 0;
      await settle(`stalled-subscriber-${persistent ? 'persistent' : 'clean'}`, b, 300, { accepted, refused, dropped, diskMb: disk });
      assert.ok(disk < 600, `disk use ${disk} MiB stays bounded`);
      if (persistent) assert.ok(refused > 0, 'past the session byte limit, publishes are refused (0x97)');
      else assert.ok(dropped > 0, 'past the session byte limit, messages for the clean session are dropped and counted');
    });
  }

  test('400 retained messages of 1 MB: confirmed, served, bounded memory, quick health checks, and the log can shrink', async () => {
    const dir = tempDir();
    let b = await broker(['--data-dir', dir]);
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5, reconnectPeriod: 0 });
    pub.on('error', () => {});
    const payload = Buffer.alloc(1_000_000, 5);
    let confirmed = 0;
    let slowestHealthz = 0;
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < 400; i++) {
      const p = within(pub.publishAsync(`kept/${i}`, payload, { qos: 1, retain: true }), 20_000, 'publish').then(() => confirmed++, () => {});
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= 20) await Promise.race(inFlight);
      if (i % 50 === 0) slowestHealthz = Math.max(slowestHealthz, await healthzMs(b.httpPort).catch(() => Infinity));
    }
    await Promise.all(inFlight);
    await sleep(1500); // a checkpoint or two
    slowestHealthz = Math.max(slowestHealthz, await healthzMs(b.httpPort).catch(() => Infinity));
    const peakBeforeRestart = b.peakRssMb();
    pub.end(true);
    await b.stop();
    b = await broker(['--data-dir', dir]);
    const healthzAfterRestart = await healthzMs(b.httpPort).catch(() => Infinity);
    // Every retained message reaches a new subscriber.
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5, reconnectPeriod: 0 });
    let served = 0;
    sub.on('message', (_t, p) => {
      if (p.length === payload.length) served++;
    });
    await sub.subscribeAsync('kept/#', { qos: 1 });
    const deadline = Date.now() + 30_000;
    while (served < 400 && Date.now() < deadline) await sleep(100);
    sub.end(true);
    // Clearing them lets the log shrink.
    const clearer = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5, reconnectPeriod: 0 });
    for (let i = 0; i < 400; i++) await within(clearer.publishAsync(`kept/${i}`, Buffer.alloc(0), { qos: 1, retain: true }), 20_000, 'clear');
    // Fill past a segment so that the old ones can go.
    for (let i = 0; i < 70; i++) await within(clearer.publishAsync('filler', Buffer.alloc(1_000_000), { qos: 1 }), 20_000, 'filler');
    clearer.end(true);
    await sleep(2500);
    const diskAfterClear = diskBytes(dir) / 1024 / 1024;
    await settle('retained-400x1MB', b, 350, { confirmed, served, slowestHealthzMs: slowestHealthz, healthzAfterRestartMs: healthzAfterRestart, peakBeforeRestartMb: peakBeforeRestart, diskAfterClearMb: diskAfterClear });
    assert.equal(confirmed, 400);
    assert.equal(served, 400);
    assert.ok(peakBeforeRestart < 350, `peak RSS while storing ${peakBeforeRestart} MiB`);
    assert.ok(slowestHealthz < 1000, `/healthz took ${slowestHealthz} ms`);
    assert.ok(healthzAfterRestart < 1000, `/healthz after restart took ${healthzAfterRestart} ms`);
    assert.ok(diskAfterClear < 200, `the log shrinks once retained messages are cleared (${diskAfterClear} MiB)`);
  });

  test('HTTP slowloris and a body that never ends are cut off; the broker keeps serving', async () => {
    const b = await broker(['--memory', '--http-headers-timeout', '2', '--http-request-timeout', '3'], { ulimitFiles: 2048 });
    // The body that never ends comes first, so it is inside maxHttpConnections and meets the request timeout (not the cap).
    const body = track([net.connect(b.httpPort, '127.0.0.1')])[0]!;
    body.on('error', () => {});
    let bodyAnswer = '';
    body.on('data', (d: Buffer) => (bodyAnswer += d.toString()));
    await once(body, 'connect');
    const bodySent = Date.now();
    body.write('POST /v1/publish/slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc');
    const bodyClosed = once(body, 'close').then(() => Date.now() - bodySent);
    const slow = track(await openSockets(b.httpPort, 1100));
    for (const s of slow) s.write('POST /v1/publish/slow HTTP/1.1\r\nHost: x\r\n');
    const dripper = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write('X-a: b\r\n');
    }, 500);
    const roundTripUnderAttack = await healthyRoundTrip(b.mqttPort).catch((err: Error) => err.message);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && slow.some((s) => !s.destroyed && s.readyState !== 'closed')) await sleep(250);
    const stillOpen = slow.filter((s) => !s.destroyed && s.readyState !== 'closed').length;
    const bodyCutAfterMs = await Promise.race([bodyClosed, sleep(5000).then(() => Infinity)]);
    const bodyCut = bodyCutAfterMs !== Infinity;
    // With the slow senders cut off (the dripper still going), a normal publish is served.
    const publish = await fetch(`http://127.0.0.1:${b.httpPort}/v1/publish/after/slowloris`, { method: 'POST', body: 'ok', signal: AbortSignal.timeout(5000) }).then(
      async (res) => `${res.status} ${await res.text()}`,
      (err: Error) => err.message,
    );
    clearInterval(dripper);
    const healthAfter = await healthzMs(b.httpPort).catch(() => Infinity);
    const counts = ((await healthz(b.httpPort).catch(() => ({}))) as { http?: Record<string, number> }).http ?? {};
    const metrics = await fetch(`http://127.0.0.1:${b.httpPort}/metrics`).then((res) => res.text(), () => '');
    const metric = (line: string): number => Number(new RegExp(`^${line.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    await settle('http-slowloris', b, 300, {
      stillOpen,
      bodyCut,
      bodyCutAfterMs,
      healthzAfterMs: healthAfter,
      roundTripUnderAttack,
      refused: counts.refusedConnections ?? NaN,
      headersTimeouts: counts.headersTimeouts ?? NaN,
      requestTimeouts: counts.requestTimeouts ?? NaN,
      publishAfter: publish.slice(0, 3),
    });
    assert.equal(typeof roundTripUnderAttack, 'number');
    assert.equal(stillOpen, 0, 'slow header senders are cut off');
    assert.equal(bodyCut, true, 'a body that never ends is cut off');
    assert.ok(bodyCutAfterMs >= 2900 && bodyCutAfterMs < 5000, `the body is cut at the 3 s request timeout, not at accept (${bodyCutAfterMs} ms)`);
    assert.match(bodyAnswer, /^HTTP\/1\.1 408 Request Timeout\r\n[^]*"error":"request_timeout"/, 'the cut body is answered 408');
    assert.ok(healthAfter < 1000);
    assert.match(publish, /^202 /, 'a normal HTTP publish is answered 202 once the slow senders are cut');
    // Past the cap (1,000 with the body's connection), each slow sender is refused at accept or cut at the headers timeout.
    assert.ok(counts.refusedConnections! >= 100, `refused at the cap: ${counts.refusedConnections}`);
    assert.equal(counts.refusedConnections! + counts.headersTimeouts!, 1100, 'every slow sender was refused or cut');
    assert.equal(counts.requestTimeouts, 1);
    assert.equal(metric('eddy_http_connections_refused_total'), counts.refusedConnections);
    assert.equal(metric('eddy_http_timeouts_total{kind="headers"}'), counts.headersTimeouts);
    assert.equal(metric('eddy_http_timeouts_total{kind="request"}'), 1);
    // Logged the first time and every 1000th: one line each here, however many connections.
    const logged = (msg: string): number => b.stderr().split('\n').filter((line) => line.includes(`"msg":"${msg}"`)).length;
    assert.equal(logged('HTTP connection refused: maxHttpConnections connections are open'), 1);
    assert.equal(logged('HTTP connection cut: request headers too slow'), 1);
    assert.equal(logged('HTTP connection cut: request body too slow'), 1);
    assert.match(b.stderr(), /the file descriptor limit \(2048\) is below maxConnections \(10000\) \+ maxHttpConnections \(1000\)/, 'the start-up warning names the limits');
  });

  test('5,000 mutated packets (seeded) do not end the process', async () => {
    const seed = Number(process.env.EDDY_FUZZ_SEED ?? 20261201);
    const b = await broker(['--memory']);
    const cases = mutatedCases(seed, 5000);
    let index = 0;
    const worker = async (): Promise<void> => {
      while (index < cases.length && b.alive()) {
        const c = cases[index++]!;
        const s = net.connect(b.mqttPort, '127.0.0.1');
        s.on('error', () => {});
        s.on('data', () => {});
        await once(s, 'connect').catch(() => {});
        if (c.afterConnect) s.write(c.afterConnect);
        s.write(c.bytes);
        await Promise.race([once(s, 'close'), sleep(30)]);
        s.destroy();
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    await sleep(300);
    await settle('mutated-packets', b, 250, { seed, cases: cases.length });
  });
});


interface FuzzCase {
  /** A valid CONNECT sent first, when the mutated packet is not the CONNECT itself. */
  afterConnect?: Buffer;
  bytes: Buffer;
}

/** Valid packets of every kind, both protocol versions, mutated by flips, cuts, splices and bad lengths. */
function mutatedCases(seed: number, count: number): FuzzCase[] {
  const random = prng(seed);
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!;
  const corpus: Array<{ version: 4 | 5; packet: Buffer; isConnect: boolean }> = [];
  for (const version of [4, 5] as const) {
    const v5 = version === 5;
    const props = (p: Record<string, unknown>): Record<string, unknown> => (v5 ? { properties: p } : {});
    const packets: Packet[] = [
      {
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'fuzz', clean: true, keepalive: 30, username: 'u', password: Buffer.from('p'),
        will: { topic: 'fuzz/will', payload: Buffer.from('w'), qos: 1, retain: true, ...(v5 ? { properties: { willDelayInterval: 1, contentType: 'text/plain' } } : {}) },
        ...props({ sessionExpiryInterval: 10, receiveMaximum: 5, topicAliasMaximum: 3, userProperties: { a: 'b' } }),
      } as Packet,
      { cmd: 'publish', topic: 'fuzz/a/b', payload: Buffer.from('hello'), qos: 1, messageId: 7, retain: true, dup: false, ...props({ payloadFormatIndicator: true, messageExpiryInterval: 5, topicAlias: 1, contentType: 'x', userProperties: { k: 'v' }, correlationData: Buffer.from('c'), responseTopic: 'r' }) } as Packet,
      { cmd: 'publish', topic: 'fuzz/q2', payload: Buffer.alloc(40, 1), qos: 2, messageId: 8, retain: false, dup: false } as Packet,
      { cmd: 'publish', topic: 'fuzz/q0', payload: Buffer.from('x'), qos: 0, retain: false, dup: false } as Packet,
      { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'fuzz/#', qos: 2, nl: true, rap: true, rh: 1 }, { topic: '$share/g/fuzz/+', qos: 1 }], ...props({ subscriptionIdentifier: 4 }) } as Packet,
      { cmd: 'unsubscribe', messageId: 10, unsubscriptions: ['fuzz/#', 'x/+'] } as Packet,
      { cmd: 'puback', messageId: 1, ...(v5 ? { reasonCode: 0x80, properties: { reasonString: 'no' } } : {}) } as Packet,
      { cmd: 'pubrec', messageId: 2 } as Packet,
      { cmd: 'pubrel', messageId: 3 } as Packet,
      { cmd: 'pubcomp', messageId: 4 } as Packet,
      { cmd: 'pingreq' } as Packet,
      { cmd: 'disconnect', ...(v5 ? { reasonCode: 4, properties: { sessionExpiryInterval: 0 } } : {}) } as Packet,
      ...(v5 ? [{ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm' } } as Packet] : []),
    ];
    for (const packet of packets) corpus.push({ version, packet: mqttPacket.generate(packet, { protocolVersion: version }), isConnect: packet.cmd === 'connect' });
  }
  const cleanConnect = (version: 4 | 5): Buffer => {
    const p = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: '', clean: true, keepalive: 30 } as Packet, { protocolVersion: version });
    return p;
  };
  const cases: FuzzCase[] = [];
  while (cases.length < count) {
    const base = pick(corpus);
    const bytes = Buffer.from(base.packet);
    const mutation = Math.floor(random() * 6);
    let out: Buffer = bytes;
    if (mutation === 0 || mutation === 5) {
      // Flip 1-4 bits anywhere.
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) {
        const i = Math.floor(random() * bytes.length);
        bytes[i] = bytes[i]! ^ (1 << Math.floor(random() * 8));
      }
    } else if (mutation === 1) {
      out = bytes.subarray(0, Math.floor(random() * bytes.length)); // cut short
    } else if (mutation === 2) {
      // A random byte replaced inside the body (lengths, flags, property ids).
      const i = 1 + Math.floor(random() * (bytes.length - 1));
      bytes[i] = Math.floor(random() * 256);
    } else if (mutation === 3) {
      // Splice a copy of a slice into itself (repeated properties, doubled fields), fixing the length.
      const body = bytes.subarray(bytes.length - (bytes.length - headerLength(bytes)));
      const from = Math.floor(random() * body.length);
      const slice = body.subarray(from, Math.min(body.length, from + 1 + Math.floor(random() * 8)));
      const newBody = Buffer.concat([body, slice]);
      out = Buffer.concat([bytes.subarray(0, 1), varint(newBody.length), newBody]);
    } else {
      // Deep and long topics, and an absurd remaining length.
      const deep = '/'.repeat(Math.floor(random() * 8000));
      out = random() < 0.5 ? Buffer.concat([publishHeader(deep, 1), Buffer.from('x')]) : Buffer.concat([Buffer.from([0x30]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), mqttString('t')]);
    }
    cases.push(base.isConnect && mutation !== 4 ? { bytes: out } : { afterConnect: cleanConnect(base.version), bytes: out });
  }
  return cases;
}

/** Bytes of the fixed header (type byte and remaining length) of an encoded packet. */
function headerLength(packet: Buffer): number {
  let i = 1;
  while (i < packet.length && (packet[i]! & 0x80) !== 0) i++;
  return i + 1;
}
