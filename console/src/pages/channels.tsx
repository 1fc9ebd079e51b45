// Channels: a topic tree with rates, built from pages of /v1/admin/channels as it scrolls; the
// selected channel's details, its schema, and a live tail of its messages (/v1/subscribe).

import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, itemPath, stream } from '../api.js';
import { usePagedList } from '../paged-list.js';
import { useStatsTick } from '../stats-store.js';
import { VirtualTable, type Column } from '../components/virtual-table.js';
import { count, rate, showPayload, time, type ShownPayload } from '../format.js';
import type { ChannelView } from '../../../src/core/admin/views.js';
import { buildTree, filterOf, flatten, type TreeNode } from './channel-tree.js';

const key = (c: ChannelView): string => c.channel;
/** Channels read on their own as the tree scrolls; past this many, a button reads the next page. */
const AUTO_LOAD = 5000;
/** Messages the tail keeps on screen. */
const TAIL = 200;

interface TailMessage {
  seq: string | undefined;
  topic: string;
  at: string;
  shown: ShownPayload;
}

function LiveTail(props: { filter: string }) {
  const [messages, setMessages] = useState<TailMessage[]>([]);
  const [state, setState] = useState('connecting');
  useEffect(() => {
    const abort = new AbortController();
    setMessages([]);
    setState('connecting');
    const run = async (): Promise<void> => {
      while (!abort.signal.aborted) {
        try {
          setState('live');
          await stream(`/v1/subscribe?filter=${encodeURIComponent(props.filter)}`, (event) => {
            const shown = showPayload(event.data, event.comments.includes('base64'));
            const message: TailMessage = { seq: event.id, topic: event.event, at: new Date().toISOString(), shown };
            setMessages((m) => [message, ...m].slice(0, TAIL));
          }, abort.signal);
        } catch (err) {
          if (abort.signal.aborted) return;
          setState(`stopped: ${err instanceof Error ? err.message : String(err)}`);
        }
        await new Promise((r) => setTimeout(r, 3000));
      }
    };
    void run();
    return () => abort.abort();
  }, [props.filter]);
  return (
    <section class="card" data-testid="live-tail">
      <h4>
        Live tail <span class="mono small">{props.filter}</span> <span class="muted small" data-testid="tail-state">{state}</span>
      </h4>
      {messages.length === 0 ? <p class="muted">No message since the tail opened.</p> : null}
      <ol class="tail">
        {messages.map((m) => (
          <li data-testid="tail-message">
            <div class="muted small">
              seq {m.seq ?? '–'} · <span class="mono">{m.topic}</span> · {time(m.at)} · {m.shown.kind}
            </div>
            <pre class={`payload ${m.shown.kind}`}>{m.shown.text}</pre>
          </li>
        ))}
      </ol>
    </section>
  );
}

function ChannelDetail(props: { name: string }) {
  const [channel, setChannel] = useState<ChannelView>();
  const [error, setError] = useState<string>();
  const load = useCallback(() => {
    get<ChannelView>(itemPath('channels', props.name)).then(
      (c) => (setChannel(c), setError(undefined)),
      (err: Error) => setError(err.message),
    );
  }, [props.name]);
  useEffect(load, [load]);
  useStatsTick(2, load);
  return (
    <div class="detail" data-testid="channel-detail">
      <section class="card">
        <h3 class="mono">{props.name}</h3>
        {error ? <p class="error">{error}</p> : null}
        {channel ? (
          <dl>
            <dt>declared</dt>
            <dd>{channel.declared ?? 'no (observed only)'}</dd>
            <dt>messages in / out</dt>
            <dd>{`${count(channel.messagesIn)} / ${count(channel.messagesOut)}`}</dd>
            <dt>rate in / out</dt>
            <dd>{`${rate(channel.rateIn)}/s / ${rate(channel.rateOut)}/s`}</dd>
            <dt>last message</dt>
            <dd>{time(channel.lastMessageAt)}</dd>
            <dt>publishers</dt>
            <dd class="mono small">{channel.publishers.join(', ') || '–'}{channel.morePublishers ? ' …' : ''}</dd>
            <dt>receivers ({channel.receivers.count})</dt>
            <dd class="mono small">{[...channel.receivers.clients, ...channel.receivers.groups].join(', ') || '–'}</dd>
          </dl>
        ) : null}
        <p>
          <a href={`#/publish?channel=${encodeURIComponent(props.name)}`}>Publish to this channel</a>
        </p>
        <h4>Schema</h4>
        <pre class="payload json" data-testid="channel-schema">{channel ? JSON.stringify(channel.schema, null, 2) : '…'}</pre>
      </section>
      <LiveTail filter={filterOf(props.name)} />
    </div>
  );
}

export function ChannelsPage(props: { selected: string | undefined; select: (name: string) => void }) {
  const [prefix, setPrefix] = useState('');
  const list = usePagedList<ChannelView>({ path: '/v1/admin/channels', key, prefix, pageSize: 1000 });
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const tree = useMemo(() => buildTree(list.items), [list.items]);
  // A search shows its matches opened up.
  const open = useMemo(() => (prefix ? new Set(allPaths(tree)) : expanded), [prefix, tree, expanded]);
  const rows = useMemo(() => flatten(tree, open), [tree, open]);
  const indexOf = useMemo(() => new Map(list.items.map((c, i) => [c.channel, i])), [list.items]);
  const windowRef = useRef<TreeNode[]>([]);
  const onWindow = useCallback((start: number, n: number) => (windowRef.current = rows.slice(start, start + n)), [rows]);
  const refresh = list.refresh;
  useStatsTick(
    3,
    useCallback(() => {
      // The channels behind the rows on screen lie between the first and the last of them in topic order.
      const at = windowRef.current.flatMap((n) => (n.channel ? [indexOf.get(n.channel.channel) ?? -1] : [])).filter((i) => i >= 0);
      if (at.length === 0) return;
      const start = Math.min(...at);
      refresh(start, Math.min(1000, Math.max(...at) - start + 1));
    }, [indexOf, refresh]),
  );
  const toggle = (n: TreeNode): void => {
    const next = new Set(expanded);
    if (next.has(n.path)) next.delete(n.path);
    else next.add(n.path);
    setExpanded(next);
  };
  const columns: Column<TreeNode>[] = [
    {
      title: 'topic',
      width: 'minmax(14rem, 3fr)',
      render: (n) => (
        <span class="tree-cell" style={{ paddingLeft: `${n.depth * 1.1}rem` }}>
          {n.children.size > 0 ? (
            <button class="twisty" data-testid={`toggle-${n.path}`} onClick={(e) => (e.stopPropagation(), toggle(n))}>
              {open.has(n.path) ? '▾' : '▸'}
            </button>
          ) : (
            <span class="twisty" />
          )}
          <span class={n.channel ? 'mono' : 'mono muted'}>{n.name || '(empty)'}</span>
          {n.children.size > 0 ? <span class="muted small"> {count(n.channels)}</span> : null}
        </span>
      ),
    },
    { title: 'in/s', width: '5rem', align: 'right', render: (n) => rate(n.rateIn) },
    { title: 'out/s', width: '5rem', align: 'right', render: (n) => rate(n.rateOut) },
    { title: 'messages', width: '6rem', align: 'right', render: (n) => (n.channel ? count(n.channel.messagesIn) : '') },
    { title: 'kind', width: '6rem', render: (n) => (n.channel ? (n.channel.declared ? 'declared' : 'observed') : '') },
  ];
  return (
    <div class="split">
      <div class="list-page">
        <div class="toolbar">
          <input type="search" placeholder="topic starts with…" value={prefix} data-testid="channels-search" onInput={(e) => setPrefix((e.currentTarget as HTMLInputElement).value)} />
          <span class="muted" data-testid="channels-count">
            {count(list.items.length)} of {count(list.total)} channels loaded
          </span>
          {list.more && list.items.length >= AUTO_LOAD ? (
            <button data-testid="channels-more" onClick={list.loadMore}>
              load 1000 more
            </button>
          ) : null}
          {list.error ? <span class="error">{list.error}</span> : null}
        </div>
        <VirtualTable
          rows={rows}
          columns={columns}
          rowKey={(n) => n.path}
          onNearEnd={list.more && list.items.length < AUTO_LOAD ? list.loadMore : undefined}
          loaded={list.items.length}
          onWindow={onWindow}
          onSelect={(n) => (n.channel ? props.select(n.channel.channel) : toggle(n))}
          selected={props.selected}
          testId="channels"
          empty={list.loading ? 'Loading…' : 'No channels.'}
        />
      </div>
      {props.selected ? <ChannelDetail key={props.selected} name={props.selected} /> : <p class="muted detail">Select a channel for its details, schema and live tail.</p>}
    </div>
  );
}

function allPaths(root: TreeNode): string[] {
  const paths: string[] = [];
  const walk = (n: TreeNode): void => {
    for (const child of n.children.values()) {
      paths.push(child.path);
      walk(child);
    }
  };
  walk(root);
  return paths;
}
