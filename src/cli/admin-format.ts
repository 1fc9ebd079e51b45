/** How `eddy admin` prints the items of one resource as a table: a header per column and how to read it. */
type Item = Record<string, unknown>;
export type Columns = Array<[header: string, cell: (item: Item) => unknown]>;

const num = (v: unknown): string => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v === null || v === undefined ? '-' : String(v));
const text = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v));
/** An ISO time as `2024-05-01 12:00:03` (UTC), the table's width kept small. */
const time = (v: unknown): string => (typeof v === 'string' ? v.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
const bytes = (v: unknown): string => {
  if (typeof v !== 'number') return '-';
  if (v < 1024) return `${v} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let n = v / 1024;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n.toFixed(1)} ${units[u]}`;
};
const seconds = (v: unknown): string => (typeof v === 'number' ? `${v < 10 ? v.toFixed(1) : Math.round(v)}s` : '-');
const list = (v: unknown, more?: unknown): string => (Array.isArray(v) && v.length > 0 ? v.join(',') + (more ? ',…' : '') : '-');
/** A payload as one short line: control characters shown as escapes. */
const payload = (v: unknown, encoding: unknown): string => {
  if (typeof v !== 'string') return '-';
  const shown = v.length > 40 ? `${v.slice(0, 40)}…` : v;
  return (encoding === 'base64' ? '(base64) ' : '') + JSON.stringify(shown).slice(1, -1);
};

export const COLUMNS: Record<string, Columns> = {
  clients: [
    ['CLIENT', (i) => text(i.clientId)],
    ['USER', (i) => text(i.user)],
    ['ADDRESS', (i) => text(i.address)],
    ['PROTOCOL', (i) => `${i.protocol}${i.protocolVersion ? ` ${i.protocolVersion}` : ''}/${i.transport}`],
    ['SINCE', (i) => time(i.connectedAt)],
    ['KEEPALIVE', (i) => num(i.keepAlive)],
    ['INFLIGHT', (i) => num(i.inflight)],
    ['QUEUED', (i) => num(i.queued)],
    ['MSG IN', (i) => num(i.messagesIn)],
    ['MSG OUT', (i) => num(i.messagesOut)],
    ['BYTES IN', (i) => bytes(i.bytesIn)],
    ['BYTES OUT', (i) => bytes(i.bytesOut)],
  ],
  sessions: [
    ['CLIENT', (i) => text(i.clientId)],
    ['USER', (i) => text(i.user)],
    ['STATE', (i) => (i.connected ? 'connected' : 'offline')],
    ['EXPIRY', (i) => (i.expiryInterval === null ? 'never' : seconds(i.expiryInterval))],
    ['EXPIRES IN', (i) => (i.connected ? '-' : i.expiresIn === null ? 'never' : seconds(i.expiresIn))],
    ['SUBS', (i) => num(i.subscriptions)],
    ['WAITING', (i) => num((i.queue as Item | undefined)?.waiting)],
    ['BYTES', (i) => bytes((i.queue as Item | undefined)?.waitingBytes)],
    ['INFLIGHT', (i) => num((i.queue as Item | undefined)?.inflight)],
  ],
  subscriptions: [
    ['CLIENT', (i) => text(i.clientId)],
    ['FILTER', (i) => text(i.filter)],
    ['QOS', (i) => num(i.qos)],
    ['GROUP', (i) => text(i.group)],
    ['STATE', (i) => (i.connected ? 'connected' : 'offline')],
  ],
  groups: [
    ['NAME', (i) => text(i.name)],
    ['MEMBERS', (i) => `${num(i.connectedMembers)}/${num(i.members)}`],
    ['WAITING', (i) => num(i.waiting)],
    ['INFLIGHT', (i) => num(i.inflight)],
    ['RETRYING', (i) => num(i.retrying)],
    ['LAG', (i) => seconds(i.lag)],
    ['RATE/S', (i) => num(i.deliveryRate)],
    ['DELIVERED', (i) => num(i.delivered)],
  ],
  channels: [
    ['CHANNEL', (i) => text(i.channel)],
    ['DECLARED', (i) => text(i.declared)],
    ['MSG IN', (i) => num(i.messagesIn)],
    ['IN/S', (i) => num(i.rateIn)],
    ['MSG OUT', (i) => num(i.messagesOut)],
    ['OUT/S', (i) => num(i.rateOut)],
    ['BYTES IN', (i) => bytes(i.bytesIn)],
    ['LAST MESSAGE', (i) => time(i.lastMessageAt)],
    ['PUBLISHERS', (i) => list(i.publishers, i.morePublishers)],
    ['RECEIVERS', (i) => num((i.receivers as Item | undefined)?.count)],
  ],
  retained: [
    ['TOPIC', (i) => text(i.topic)],
    ['BYTES', (i) => num(i.bytes)],
    ['QOS', (i) => num(i.qos)],
    ['SEQ', (i) => num(i.seq)],
    ['PUBLISHED', (i) => time(i.publishedAt)],
    ['PAYLOAD', (i) => payload(i.payload, i.encoding) + (i.truncated ? '…' : '')],
  ],
  dlq: [
    ['SEQ', (i) => num(i.seq)],
    ['ORIGINAL TOPIC', (i) => text(i.originalTopic)],
    ['DELIVERIES', (i) => num(i.deliveryCount)],
    ['FROM', (i) => (i.group ? `group ${i.group}` : `client ${text(i.clientId)}`)],
    ['DEAD-LETTERED', (i) => time(i.deadLetteredAt)],
    ['REASON', (i) => text(i.reason)],
    ['PAYLOAD', (i) => payload(i.payload, i.encoding)],
  ],
};

/** A table: headers, then one line per item, columns padded to their widest cell. */
export function table(columns: Columns, items: Item[]): string {
  const rows = [columns.map(([h]) => h), ...items.map((item) => columns.map(([, cell]) => String(cell(item))))];
  const widths = columns.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** One object as `key: value` lines (nested objects flattened with dots), for `show` and `stats`. */
export function keyValues(item: Item, prefix = ''): string {
  let out = '';
  for (const [key, value] of Object.entries(item)) {
    const name = prefix + key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0 && name.split('.').length < 3) {
      out += keyValues(value as Item, `${name}.`);
    } else {
      out += `${name}: ${typeof value === 'string' ? value : JSON.stringify(value)}\n`;
    }
  }
  return out;
}
