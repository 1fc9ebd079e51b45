import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import type { Message } from '../../core/message.js';
import type { ChannelPolicyLookup, HistoryQuery, HistoryReader } from '../../core/storage.js';
import { READ_BATCH_BYTES } from '../read-batch.js';
import { decodeMessage } from './envelope.js';
import { filterSubjects } from './subjects.js';

/** Messages one fetch of the ordered consumer asks for. */
const FETCH_BATCH = 128;
const FETCH_EXPIRES_MS = 1000;

export interface HistorySource {
  js: JetStreamClient;
  stream: string;
  subjectRoot: string;
  channels: ChannelPolicyLookup;
  reportFailure(err: unknown, what: string): void;
}

/**
 * The NATS filter of a replay: one subject when the filters map to exactly one (nats-server 2.9 allows
 * one filter per consumer), else none, and the core's `includes` chooses Eddy-side. A `$share/g/`
 * prefix is not a topic: it is stripped first.
 */
function natsFilter(filters: string[], root: string): string | undefined {
  const subjects = new Set<string>();
  for (const f of filters) {
    const filter = f.startsWith('$share/') ? f.split('/').slice(2).join('/') : f;
    try {
      for (const s of filterSubjects(filter, root)) subjects.add(s);
    } catch {
      return undefined; // a filter the mapping refuses: read everything, `includes` decides
    }
  }
  return subjects.size === 1 ? [...subjects][0] : undefined;
}

/**
 * Reads a replay's history from the message stream with an ordered consumer (ephemeral, flow
 * controlled, recreated by nats.js on a gap), started at the replay's seq or time: the stream seq is
 * the engine's seq, so a seek by seq is exact and a seek by time is JetStream's own. Age, start,
 * expiry and filter are the core's `includes`; channel byte limits (maxBytes) are applied here.
 *
 * Byte limits: when a channel pattern has maxBytes, the reader reads the whole range first and keeps,
 * per pattern, the newest messages within the limit (counted over the messages the replay's filters
 * match, so a narrower filter may replay slightly more than the channel keeps). A stream-wide
 * max_bytes cannot express a per-channel limit; per-subject limits (max_msgs_per_subject) count
 * messages, not bytes.
 */
export function historyReader(source: HistorySource, query: HistoryQuery): HistoryReader {
  const filter = natsFilter(query.filters, source.subjectRoot);
  const start = query.start;
  const opts: Record<string, unknown> = { filter_subjects: filter ?? '>' };
  if (start.kind === 'seq') Object.assign(opts, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, start.seq) });
  else if (start.kind === 'time') Object.assign(opts, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(start.ms).toISOString() });
  else Object.assign(opts, { deliver_policy: DeliverPolicy.All });
  const byteLimited = source.channels.retained.some((p) => p.retention?.maxBytes !== undefined);

  let done = query.untilSeq <= 0 || (start.kind === 'seq' && start.seq > query.untilSeq);
  const ready: Message[] = [];
  let consumer: Awaited<ReturnType<JetStreamClient['consumers']['get']>> | undefined;

  /** Reads the next fetch's worth into `ready`; sets `done` at untilSeq or the stream's end. */
  const readMore = async (): Promise<void> => {
    consumer ??= await source.js.consumers.get(source.stream, opts);
    const batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
    let received = 0;
    const now = Date.now();
    for await (const msg of batch) {
      received++;
      if (msg.seq > query.untilSeq) {
        done = true;
        break;
      }
      let message: Message;
      try {
        message = decodeMessage(msg.data, msg.seq);
      } catch (err) {
        source.reportFailure(err, `history: message ${msg.seq}`);
        continue;
      }
      if (query.includes(message, now)) ready.push(message);
      if (msg.seq === query.untilSeq || msg.info.pending === 0) done = true;
    }
    if (received === 0) done = true; // nothing at or after the start within the fetch's wait
    if (done) await batch.close().catch(() => undefined);
  };

  const trimByBytes = (messages: Message[]): Message[] => {
    const used = new Map<string, number>();
    const keep: boolean[] = new Array<boolean>(messages.length);
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i]!;
      const policy = source.channels.for(m.topic);
      const limit = policy.retention?.maxBytes;
      if (limit === undefined) {
        keep[i] = true;
        continue;
      }
      const total = (used.get(policy.pattern) ?? 0) + m.payload.length;
      used.set(policy.pattern, total);
      keep[i] = total <= limit || total === m.payload.length; // the newest of a pattern is always kept
    }
    return messages.filter((_, i) => keep[i]);
  };

  let trimmed = false;
  return {
    next: async (max) => {
      if (byteLimited && !trimmed) {
        while (!done) await readMore();
        const kept = trimByBytes(ready);
        ready.length = 0;
        ready.push(...kept);
        trimmed = true;
      }
      while (ready.length < max && !done) await readMore();
      const batch: Message[] = [];
      let bytes = 0;
      while (ready.length > 0 && batch.length < max && (batch.length === 0 || bytes + ready[0]!.payload.length <= READ_BATCH_BYTES)) {
        bytes += ready[0]!.payload.length;
        batch.push(ready.shift()!);
      }
      return batch;
    },
  };
}
