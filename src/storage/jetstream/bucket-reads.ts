import type { ClusterConnection } from './connection.js';

/**
 * Reads of a KV bucket from its stream's leader (a message get), not through the KV's direct gets:
 * right after a NATS restart, or right after this node's own write, a direct get or a key listing
 * can be answered by a replica still catching up, which does not have every key yet (the cluster
 * crash harness saw every session missing at one Eddy start that way, and a group with no members
 * left was then dropped with its queue; a contract test missed a retained message just written).
 */

/** The newest value of `key` at the bucket stream's leader; undefined when none, deleted or empty. */
export async function leaderValue(conn: ClusterConnection, bucket: string, key: string): Promise<{ value: Uint8Array; revision: number } | undefined> {
  return valueOf(await conn.jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${key}` }));
}

/** Every live entry of the bucket, from its leader: the subjects the stream holds, then the last message of each. */
export async function leaderEntries(conn: ClusterConnection, bucket: string): Promise<Array<{ key: string; value: Uint8Array }>> {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  const info = await conn.jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
  const entries: Array<{ key: string; value: Uint8Array }> = [];
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const entry = valueOf(await conn.jsm.streams.getMessage(stream, { last_by_subj: subject }));
    if (entry) entries.push({ key: subject.slice(prefix.length), value: entry.value });
  }
  return entries;
}

type StoredMsg = Awaited<ReturnType<ClusterConnection['jsm']['streams']['getMessage']>>;

function valueOf(m: StoredMsg): { value: Uint8Array; revision: number } | undefined {
  if (!m || m.data.length === 0) return undefined;
  const op = m.header?.get('KV-Operation');
  if (op === 'DEL' || op === 'PURGE') return undefined;
  return { value: m.data, revision: m.seq };
}
