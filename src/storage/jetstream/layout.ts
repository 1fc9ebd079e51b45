import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { ClusterConnection } from './connection.js';
import { StreamConfigConflictError } from './errors.js';
import { DEFAULT_SUBJECT_ROOT, streamSubjects } from './subjects.js';

/**
 * The JetStream assets an Eddy cluster shares: one message stream for every topic, and KV buckets for
 * state keyed by topic or client (retained messages, sessions). Every node creates them if missing
 * and brings their replica count to the configured one; a stream that exists with settings Eddy
 * cannot change in place (storage, retention) is a StreamConfigConflictError, never silently reused.
 */

export interface StoreLayoutOptions {
  /** Copies of every message and KV entry; 3 survives one NATS node loss with a quorum of 2. */
  replicas?: number;
  /** Message stream name (default EDDY_MESSAGES). */
  streamName?: string;
  /** Root token of the message subjects (default `eddy`, so subjects `eddy.m.>` and `eddy.s.>`). */
  subjectRoot?: string;
  /** How long the stream remembers a msgID to drop a re-sent copy (default 2 minutes). */
  duplicateWindowMs?: number;
  /** Message retention by age, 0 for none (default: none; Eddy's own retention decides later). */
  maxAgeMs?: number;
  /** Retained-message bucket (default eddy-retained) and session bucket (default eddy-sessions). */
  retainedBucket?: string;
  sessionsBucket?: string;
}

export interface StoreLayout {
  stream: StreamInfo;
  retained: KV;
  sessions: KV;
  replicas: number;
}

export const DEFAULT_STREAM_NAME = 'EDDY_MESSAGES';
export const DEFAULT_RETAINED_BUCKET = 'eddy-retained';
export const DEFAULT_SESSIONS_BUCKET = 'eddy-sessions';
/** JetStream API error code: a stream's subjects overlap another stream's. */
const API_SUBJECTS_OVERLAP = 10065;
const API_STREAM_NOT_FOUND = 10059;

const nanos = (ms: number): number => ms * 1_000_000;

export function messageStreamConfig(options: StoreLayoutOptions = {}): StreamConfig {
  return {
    name: options.streamName ?? DEFAULT_STREAM_NAME,
    subjects: streamSubjects(options.subjectRoot ?? DEFAULT_SUBJECT_ROOT),
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas ?? 3,
    duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
    max_age: nanos(options.maxAgeMs ?? 0),
    discard: DiscardPolicy.Old,
    // Direct get lets any replica answer a read by sequence or last-by-subject (2.9+).
    allow_direct: true,
  } as StreamConfig;
}

async function streamInfoOrUndefined(conn: ClusterConnection, name: string): Promise<StreamInfo | undefined> {
  try {
    return await conn.jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === API_STREAM_NOT_FOUND) return undefined;
    throw err;
  }
}

function apiConflict(name: string, err: unknown): never {
  if (err instanceof JetStreamApiError) {
    const why = err.code === API_SUBJECTS_OVERLAP ? 'its subjects overlap another stream' : err.message;
    throw new StreamConfigConflictError(name, `${why} (JetStream API error ${err.code})`, { cause: err });
  }
  throw err;
}

/** Creates the message stream, or updates it to the wanted subjects, replicas, windows. */
export async function ensureMessageStream(conn: ClusterConnection, options: StoreLayoutOptions = {}): Promise<StreamInfo> {
  const want = messageStreamConfig(options);
  const have = await streamInfoOrUndefined(conn, want.name);
  if (!have) return conn.jsm.streams.add(want).catch((err: unknown) => apiConflict(want.name, err));
  const c = have.config;
  if (c.retention !== want.retention) throw new StreamConfigConflictError(want.name, `exists with retention ${c.retention}, Eddy needs ${want.retention}`);
  if (c.storage !== want.storage) throw new StreamConfigConflictError(want.name, `exists with storage ${c.storage}, Eddy needs ${want.storage}`);
  const same =
    c.num_replicas === want.num_replicas &&
    c.duplicate_window === want.duplicate_window &&
    c.max_age === want.max_age &&
    c.allow_direct === want.allow_direct &&
    JSON.stringify([...(c.subjects ?? [])].sort()) === JSON.stringify([...want.subjects].sort());
  if (same) return have;
  // Everything else is the stream's own (limits set by an operator stay), Eddy's fields win.
  const { name: _name, ...update } = { ...c, ...want };
  return conn.jsm.streams.update(want.name, update).catch((err: unknown) => apiConflict(want.name, err));
}

/**
 * Opens (creating if missing) a KV bucket with one value per key, then brings its replica count to
 * `replicas` (and its TTL to `ttlMs`, when given): nats.js opens an existing bucket as it is, so a
 * bucket created with another replica count or TTL would otherwise stay so.
 */
export async function ensureBucket(conn: ClusterConnection, bucket: string, replicas: number, options: { ttlMs?: number } = {}): Promise<KV> {
  const kvm = new Kvm(conn.js);
  const ttl = options.ttlMs !== undefined ? { ttl: options.ttlMs } : {};
  const kv = await kvm.create(bucket, { replicas, history: 1, storage: StorageType.File, ...ttl }).catch((err: unknown) => apiConflict(`KV_${bucket}`, err));
  const streamName = `KV_${bucket}`;
  const info = await conn.jsm.streams.info(streamName);
  const maxAge = options.ttlMs !== undefined ? nanos(options.ttlMs) : info.config.max_age;
  if (info.config.num_replicas !== replicas || info.config.max_age !== maxAge) {
    const { name: _name, ...update } = { ...info.config, num_replicas: replicas, max_age: maxAge };
    await conn.jsm.streams.update(streamName, update).catch((err: unknown) => apiConflict(streamName, err));
  }
  return kv;
}

export async function ensureStoreLayout(conn: ClusterConnection, options: StoreLayoutOptions = {}): Promise<StoreLayout> {
  const replicas = options.replicas ?? 3;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new RangeError(`replicas must be 1 to 5, got ${replicas}`);
  const stream = await ensureMessageStream(conn, { ...options, replicas });
  const retained = await ensureBucket(conn, options.retainedBucket ?? DEFAULT_RETAINED_BUCKET, replicas);
  const sessions = await ensureBucket(conn, options.sessionsBucket ?? DEFAULT_SESSIONS_BUCKET, replicas);
  return { stream, retained, sessions, replicas };
}
