import type { ClusterDisabledView, ClusterView } from '../core/admin/views.js';
import { table, type Columns } from './admin-format.js';

/** `eddy admin cluster` without --json: the nodes, then the streams' replicas, as two tables. */

type Item = Record<string, unknown>;
const text = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v));
const time = (v: unknown): string => (typeof v === 'string' ? v.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

const NODE_COLUMNS: Columns = [
  ['NODE', (n) => `${text(n.id)}${n.self ? ' *' : ''}`],
  ['STATE', (n) => (n.alive ? 'alive' : 'expired')],
  ['HOST', (n) => text(n.hostname)],
  ['MQTT', (n) => text(n.mqtt)],
  ['HTTP', (n) => text(n.http)],
  ['CLIENTS', (n) => text(n.clients)],
  ['VERSION', (n) => text(n.version)],
  ['STARTED', (n) => time(n.startedAt)],
  ['LAST SEEN', (n) => time(n.lastSeen)],
];

const STREAM_COLUMNS: Columns = [
  ['STREAM', (s) => text(s.name)],
  ['REPLICAS', (s) => (s.error ? '-' : `${text(s.currentReplicas)}/${text(s.replicas)} current`)],
  ['LEADER', (s) => text(s.leader)],
  // Each follower with its lag (operations behind the leader) and whether it is current.
  ['PEERS', (s) => (s.error ? `error: ${text(s.error)}` : peers(s.peers))],
  ['MESSAGES', (s) => text(s.messages)],
];

function peers(list: unknown): string {
  if (!Array.isArray(list) || list.length === 0) return '-';
  return (list as Item[]).map((p) => `${text(p.name)}(${p.offline ? 'offline' : p.current ? 'current' : 'behind'}, lag ${text(p.lag)})`).join(' ');
}

export function clusterText(view: ClusterView | ClusterDisabledView): string {
  if (!view.enabled) return `not clustered: this node runs on the ${view.storage} engine (eddy broker --cluster nats://… runs a cluster node)\n`;
  const server = view.server ? `${view.server.name ?? view.server.url} (nats-server ${view.server.version}${view.rttMs !== null ? `, rtt ${view.rttMs} ms` : ''})` : '-';
  let out = `node ${view.node} (*), NATS ${view.state} via ${server}; read ${time(view.checkedAt)}${view.error ? `; last read failed: ${view.error}` : ''}\n\n`;
  out += table(NODE_COLUMNS, view.nodes as unknown as Item[]);
  out += `${view.nodes.filter((n) => n.alive).length} of ${view.nodes.length} node(s) alive\n\n`;
  out += table(STREAM_COLUMNS, view.streams as unknown as Item[]);
  return out;
}
