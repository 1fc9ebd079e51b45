// AsyncAPI: the live document rendered (servers, channels with their messages and schemas,
// operations), and the event-flow map: who sends and who receives on each channel, from the
// declared operations and from observed traffic (the admin channels' publishers and receivers).

import { useEffect, useMemo, useState } from 'preact/hooks';
import type { ChannelView, Page } from '../../../src/core/admin/views.js';
import { get } from '../api.js';
import { liveDocument, messagesOf, operationChannel, resolveRef, type AsyncApiDocument, type Json } from '../asyncapi-doc.js';
import { cursorBefore } from '../paged-list.js';

/** Channels rendered at once; a filter narrows a larger document. */
const SHOWN = 100;

function Schema(props: { value: unknown }) {
  return <pre class="payload json small">{JSON.stringify(props.value, null, 2)}</pre>;
}

function ChannelEntry(props: { doc: AsyncApiDocument; id: string; channel: Json }) {
  const [open, setOpen] = useState(false);
  const { doc, id, channel } = props;
  const observed = channel['x-eddy-observed'] as Json | undefined;
  return (
    <details class="channel-entry" onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)} data-testid={`doc-channel-${String(channel.address)}`}>
      <summary>
        <span class="mono">{String(channel.address ?? id)}</span> <span class="muted small">{observed ? 'observed' : 'declared'} · {id}</span>
      </summary>
      {open ? (
        <div class="channel-body">
          {channel.description ? <p>{String(channel.description)}</p> : null}
          {channel.parameters ? (
            <>
              <h5>Parameters</h5>
              <Schema value={channel.parameters} />
            </>
          ) : null}
          {messagesOf(doc, channel).map(([name, message]) => (
            <div class="message">
              <h5>
                Message <span class="mono">{String(message.name ?? name)}</span> <span class="muted small">{String(message.contentType ?? doc['defaultContentType' as keyof AsyncApiDocument] ?? '')}</span>
              </h5>
              {message.summary ? <p>{String(message.summary)}</p> : null}
              {message.headers ? (
                <>
                  <h6>Headers</h6>
                  <Schema value={resolveRef(doc, message.headers)} />
                </>
              ) : null}
              <h6>Payload</h6>
              <Schema value={resolveRef(doc, message.payload) ?? message.payload ?? null} />
            </div>
          ))}
        </div>
      ) : null}
    </details>
  );
}

interface Flow {
  channel: string;
  senders: string[];
  receivers: string[];
}

/** Declared operations (by document title) and observed traffic (client ids, groups), per channel address or topic. */
function flowsOf(doc: AsyncApiDocument, observed: ChannelView[]): Flow[] {
  const flows = new Map<string, { senders: Set<string>; receivers: Set<string> }>();
  const at = (channel: string) => {
    let flow = flows.get(channel);
    if (!flow) flows.set(channel, (flow = { senders: new Set(), receivers: new Set() }));
    return flow;
  };
  for (const [id, operation] of Object.entries(doc.operations ?? {})) {
    const channelId = operationChannel(operation);
    const channel = channelId ? doc.channels?.[channelId] : undefined;
    if (!channel) continue;
    const who = `${String(operation['x-eddy-document'] ?? id)} (declared)`;
    const flow = at(String(channel.address));
    (operation.action === 'send' ? flow.senders : flow.receivers).add(who);
  }
  for (const c of observed) {
    const flow = at(c.channel);
    for (const p of c.publishers) flow.senders.add(p);
    if (c.morePublishers) flow.senders.add('…');
    for (const r of [...c.receivers.clients, ...c.receivers.groups]) flow.receivers.add(r);
  }
  return [...flows.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([channel, f]) => ({ channel, senders: [...f.senders], receivers: [...f.receivers] }));
}

const ROW = 26;
const BOX = { w: 210, h: 20 };

function FlowMap(props: { flows: Flow[] }) {
  let y = 10;
  const shapes = props.flows.map((flow) => {
    const rows = Math.max(1, flow.senders.length, flow.receivers.length);
    const top = y;
    y += rows * ROW + 14;
    const mid = top + (rows * ROW) / 2 - BOX.h / 2;
    const box = (x: number, yy: number, label: string, kind: string) => (
      <g>
        <rect x={x} y={yy} width={BOX.w} height={BOX.h} rx={4} class={`flow-${kind}`} />
        <text x={x + 6} y={yy + 14} class="flow-label">
          {label.length > 30 ? `${label.slice(0, 29)}…` : label}
        </text>
      </g>
    );
    return (
      <g data-testid={`flow-${flow.channel}`}>
        {flow.senders.map((s, i) => (
          <>
            {box(10, top + i * ROW, s, 'sender')}
            <line x1={10 + BOX.w} y1={top + i * ROW + BOX.h / 2} x2={260} y2={mid + BOX.h / 2} class="flow-edge" marker-end="url(#arrow)" />
          </>
        ))}
        {box(260, mid, flow.channel, 'channel')}
        {flow.receivers.map((r, i) => (
          <>
            <line x1={260 + BOX.w} y1={mid + BOX.h / 2} x2={520} y2={top + i * ROW + BOX.h / 2} class="flow-edge" marker-end="url(#arrow)" />
            {box(520, top + i * ROW, r, 'receiver')}
          </>
        ))}
      </g>
    );
  });
  return (
    <svg class="flow-map" width={750} height={y} viewBox={`0 0 750 ${y}`} data-testid="flow-map">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="flow-arrow" />
        </marker>
      </defs>
      {shapes}
    </svg>
  );
}

export function AsyncApiPage() {
  const [doc, setDoc] = useState<AsyncApiDocument>();
  const [observed, setObserved] = useState<ChannelView[]>([]);
  const [observedTotal, setObservedTotal] = useState(0);
  const [error, setError] = useState<string>();
  const [filter, setFilter] = useState('');
  useEffect(() => {
    liveDocument(0).then(setDoc, (err: Error) => setError(err.message));
  }, []);
  useEffect(() => {
    // The flow map's observed side: the channels page of this prefix (one request, up to 200).
    const timer = setTimeout(() => {
      const cursor = cursorBefore(filter);
      const after = cursor === undefined ? '' : `&after=${encodeURIComponent(cursor)}`;
      get<Page<ChannelView>>(`/v1/admin/channels?limit=200${after}`).then(
        (page) => (setObserved(page.items.filter((c) => c.channel.startsWith(filter))), setObservedTotal(page.total)),
        (err: Error) => setError(err.message),
      );
    }, 250);
    return () => clearTimeout(timer);
  }, [filter]);
  const channels = useMemo(() => Object.entries(doc?.channels ?? {}).filter(([, c]) => String(c.address ?? '').startsWith(filter)), [doc, filter]);
  const flows = useMemo(() => (doc ? flowsOf(doc, observed).filter((f) => f.channel.startsWith(filter) && (f.senders.length > 0 || f.receivers.length > 0)).slice(0, SHOWN) : []), [doc, observed, filter]);
  if (error) return <p class="error">{error}</p>;
  if (!doc) return <p class="muted">Loading /asyncapi.json…</p>;
  return (
    <div class="asyncapi" data-testid="asyncapi">
      <section class="card">
        <h2>
          {doc.info.title} <span class="muted small">{doc.info.version} · AsyncAPI {doc.asyncapi}</span>
        </h2>
        {doc.info.description ? <p>{doc.info.description}</p> : null}
        <p class="small">
          <a href="/asyncapi.json" target="_blank">asyncapi.json</a> · <a href="/asyncapi.yaml" target="_blank">asyncapi.yaml</a> · <a href="/docs" target="_blank">HTML docs</a>
        </p>
        <h4>Servers</h4>
        <table class="plain">
          <tbody>
            {Object.entries(doc.servers ?? {}).map(([name, s]) => (
              <tr>
                <td class="mono">{name}</td>
                <td class="mono">{`${String(s.protocol)}://${String(s.host)}${String(s.pathname ?? '')}`}</td>
                <td class="muted small">{String(s.description ?? '')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <div class="toolbar">
        <input type="search" placeholder="channel address starts with…" value={filter} data-testid="asyncapi-filter" onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} />
        <span class="muted">
          {channels.length} channels in the document{channels.length > SHOWN ? `, first ${SHOWN} shown` : ''}; {observedTotal} in the admin list
        </span>
      </div>
      <section class="card">
        <h3>Event flow</h3>
        <p class="muted small">Senders on the left, receivers on the right: declared operations (by document) and clients seen in traffic.</p>
        {flows.length > 0 ? <FlowMap flows={flows} /> : <p class="muted">No sender or receiver known yet.</p>}
      </section>
      <section class="card">
        <h3>Channels</h3>
        {channels.slice(0, SHOWN).map(([id, c]) => (
          <ChannelEntry doc={doc} id={id} channel={c} />
        ))}
      </section>
      <section class="card">
        <h3>Operations</h3>
        <table class="plain">
          <tbody>
            {Object.entries(doc.operations ?? {}).map(([id, op]) => {
              const channelId = operationChannel(op);
              return (
                <tr>
                  <td class="mono">{id}</td>
                  <td>{String(op.action)}</td>
                  <td class="mono">{String(channelId ? (doc.channels?.[channelId]?.address ?? channelId) : '')}</td>
                  <td class="muted small">{String(op.summary ?? op['x-eddy-document'] ?? '')}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
    </div>
  );
}
