import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { SegmentedLog, parseFsyncPolicy, type FsyncPolicy } from '../src/storage/disk/segmented-log.js';
import { decodeRecord, encodeMessageRecord, encodeStateRecord, type LogRecord } from '../src/storage/disk/record.js';
import type { Message } from '../src/core/message.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-log-'));
  dirs.push(dir);
  return dir;
}

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

function message(i: number, extra: Partial<Message> = {}): Message {
  return { topic: `t/${i % 7}`, payload: Buffer.from(`payload-${i}`), qos: 1, retain: false, properties: {}, publishedAt: 1_700_000_000_000 + i, seq: i, ...extra };
}

async function openLog(dir: string, opts: { segmentBytes?: number; fsync?: FsyncPolicy } = {}, logger = pino({ level: 'silent' })) {
  const seen: Array<{ record: LogRecord; position: number }> = [];
  const log = await SegmentedLog.open(dir, { segmentBytes: opts.segmentBytes ?? 1 << 20, fsync: opts.fsync ?? { kind: 'always' }, logger, maxRecordBytes: 16 << 20 }, 0, (record, position) =>
    seen.push({ record, position }),
  );
  return { log, seen };
}

describe('log records', () => {
  test('a message record round-trips with properties, expiry, origin and durable deliveries', () => {
    const original = message(42, {
      qos: 2,
      retain: true,
      expiresAt: 1_800_000_000_000,
      origin: 'client-a',
      properties: { contentType: 'application/json', responseTopic: 'r/1', correlationData: Buffer.from([1, 2, 255]), userProperties: { a: ['1', '2'], b: 'x' }, payloadFormatIndicator: true },
    });
    const deliveries = [
      { queueId: 3, qos: 1 as const, retain: false },
      { queueId: 70000, qos: 2 as const, retain: true, subscriptionIds: [7, 268435455] },
    ];
    const buf = encodeMessageRecord(original, deliveries);
    const result = decodeRecord(buf, 0, 1 << 20);
    assert.equal(result.kind, 'record');
    if (result.kind !== 'record' || result.record.type !== 1) return;
    assert.equal(result.size, buf.length);
    assert.deepEqual(result.record.deliveries, deliveries);
    assert.deepEqual(result.record.message, original);
  });

  test('a flipped bit is detected by the checksum; a cut record is incomplete', () => {
    const buf = encodeMessageRecord(message(1), []);
    const flipped = Buffer.from(buf);
    flipped[flipped.length - 3] ^= 0x10;
    assert.deepEqual(decodeRecord(flipped, 0, 1 << 20), { kind: 'corrupt', reason: 'checksum mismatch' });
    assert.deepEqual(decodeRecord(buf.subarray(0, buf.length - 1), 0, 1 << 20), { kind: 'incomplete' });
    const state = encodeStateRecord({ op: 'session-end', clientId: 'c' });
    const decoded = decodeRecord(state, 0, 1 << 20);
    assert.ok(decoded.kind === 'record' && decoded.record.type === 2 && decoded.record.change.op === 'session-end');
  });
});

describe('segmented log', () => {
  test('appends are confirmed with their positions, survive reopening, and read back in order', async () => {
    const dir = tempDir();
    const { log } = await openLog(dir, { segmentBytes: 4096 });
    const positions = await Promise.all(Array.from({ length: 500 }, (_, i) => log.append(encodeMessageRecord(message(i), [{ queueId: 1, qos: 1, retain: false }]))));
    assert.deepEqual([...positions].sort((a, b) => a - b), positions, 'positions grow in append order');
    assert.ok(log.segmentCount > 1, 'small segments roll over');
    await log.close();

    const { log: reopened, seen } = await openLog(dir, { segmentBytes: 4096 });
    assert.equal(seen.length, 500);
    assert.deepEqual(seen.map((s) => s.position), positions);
    assert.deepEqual(seen.map((s) => (s.record.type === 1 ? s.record.message.seq : -1)), Array.from({ length: 500 }, (_, i) => i));
    const fromMiddle: number[] = [];
    await reopened.readAsync(positions[250]!, (record) => void fromMiddle.push(record.type === 1 ? record.message.seq! : -1));
    assert.deepEqual(fromMiddle, Array.from({ length: 250 }, (_, i) => i + 250));
    await reopened.close();
  });

  test('group commit: many concurrent appends share few fsyncs', async () => {
    const { log } = await openLog(tempDir());
    await Promise.all(Array.from({ length: 2000 }, (_, i) => log.append(encodeMessageRecord(message(i), []))));
    assert.equal(log.stats.appended, 2000);
    assert.ok(log.stats.fsyncs >= 1 && log.stats.fsyncs < 50, `fsyncs: ${log.stats.fsyncs}`);
    await log.close();
  });

  test('a torn tail is cut off at restart, with a log line, and appends continue after it', async () => {
    const dir = tempDir();
    const { log } = await openLog(dir);
    for (let i = 0; i < 10; i++) await log.append(encodeMessageRecord(message(i), []));
    const goodEnd = log.end;
    await log.close();
    const file = path.join(dir, fs.readdirSync(dir)[0]!);
    // Half of an eleventh record, as a crash in the middle of a write leaves it.
    const torn = encodeMessageRecord(message(10), []);
    fs.appendFileSync(file, torn.subarray(0, torn.length >> 1));

    const { logger, lines } = capturingLogger();
    const { log: reopened, seen } = await openLog(dir, {}, logger);
    assert.equal(seen.length, 10);
    assert.equal(reopened.end, goodEnd);
    assert.equal(fs.statSync(file).size, goodEnd);
    const line = lines.find((l) => String(l.msg).includes('torn or corrupt'));
    assert.ok(line, 'a log line reports the cut');
    assert.equal(line.bytesCut, torn.length >> 1);
    const next = await reopened.append(encodeMessageRecord(message(11), []));
    assert.equal(next, goodEnd);
    await reopened.close();
  });

  test('a corrupt record in the middle ends the log there', async () => {
    const dir = tempDir();
    const { log } = await openLog(dir);
    const positions: number[] = [];
    for (let i = 0; i < 10; i++) positions.push(await log.append(encodeMessageRecord(message(i), [])));
    await log.close();
    const file = path.join(dir, fs.readdirSync(dir)[0]!);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([0xff]), 0, 1, positions[6]! + 20);
    fs.closeSync(fd);
    const { log: reopened, seen } = await openLog(dir);
    assert.equal(seen.length, 6);
    assert.equal(reopened.end, positions[6]);
    await reopened.close();
  });

  test('whole segments before a position can be deleted; the tail segment stays', async () => {
    const dir = tempDir();
    const { log } = await openLog(dir, { segmentBytes: 1024 });
    const positions: number[] = [];
    for (let i = 0; i < 100; i++) positions.push(await log.append(encodeMessageRecord(message(i), [])));
    const segments = log.segmentCount;
    const removed = log.deleteBefore(positions[50]!);
    assert.ok(removed > 0 && log.segmentCount === segments - removed);
    assert.ok(log.start <= positions[50]!);
    const seqs: number[] = [];
    await log.readAsync(0, (r) => void seqs.push(r.type === 1 ? r.message.seq! : -1));
    assert.equal(seqs.at(-1), 99);
    assert.ok(seqs[0]! > 0 && seqs[0]! <= 50, `first kept seq ${seqs[0]}`);
    log.deleteBefore(Number.MAX_SAFE_INTEGER);
    assert.equal(log.segmentCount, 1);
    await log.close();
  });

  test('fsync policies parse', () => {
    assert.deepEqual(parseFsyncPolicy('always'), { kind: 'always' });
    assert.deepEqual(parseFsyncPolicy('off'), { kind: 'off' });
    assert.deepEqual(parseFsyncPolicy('interval:50'), { kind: 'interval', ms: 50 });
    assert.equal(parseFsyncPolicy('interval:0'), undefined);
    assert.equal(parseFsyncPolicy('sometimes'), undefined);
  });
});
