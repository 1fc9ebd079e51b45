type Json = Record<string, unknown>;

const esc = (text: unknown): string =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * A readable, dependency-free HTML page of an AsyncAPI 3 document (the live one at /docs): servers,
 * channels with their parameters and messages (payload and headers schemas), and operations. Channels
 * observed in traffic but not declared are marked.
 */
export function renderDocs(doc: Json): string {
  const info = (doc.info ?? {}) as Json;
  const servers = Object.entries((doc.servers ?? {}) as Record<string, Json>);
  const channels = Object.entries((doc.channels ?? {}) as Record<string, Json>);
  const operations = Object.entries((doc.operations ?? {}) as Record<string, Json>);
  const declared = channels.filter(([, c]) => !c['x-eddy-observed']);
  const observed = channels.filter(([, c]) => c['x-eddy-observed']);
  const opsFor = (id: string): string =>
    operations
      .filter(([, op]) => ((op.channel ?? {}) as Json).$ref === `#/channels/${id}`)
      .map(([opId, op]) => `<span class="op ${esc(op.action)}">${esc(op.action)}</span> <code>${esc(opId)}</code>${op.reply ? ' <span class="tag">request/reply</span>' : ''}`)
      .join('<br>');
  const channelHtml = ([id, channel]: [string, Json]): string => {
    const params = Object.entries((channel.parameters ?? {}) as Record<string, Json>);
    const messages = Object.entries((channel.messages ?? {}) as Record<string, Json>);
    const meta = channel['x-eddy-observed'] as Json | undefined;
    return `<section class="channel" id="${esc(id)}">
<h3><code>${esc(channel.address ?? id)}</code>${meta ? ' <span class="tag observed">observed</span>' : ''}</h3>
${channel.description ? `<p>${esc(channel.description)}</p>` : ''}
${meta ? `<p class="meta">${esc(meta.messages)} messages, first ${esc(meta.firstSeen)}, last ${esc(meta.lastSeen)}</p>` : ''}
${opsFor(id) ? `<p>${opsFor(id)}</p>` : ''}
${params.length ? `<h4>Parameters</h4><ul>${params.map(([n, p]) => `<li><code>${esc(n)}</code>${p.enum ? `: one of ${(p.enum as unknown[]).map((v) => `<code>${esc(v)}</code>`).join(', ')}` : ''}${p.description ? ` — ${esc(p.description)}` : ''}</li>`).join('')}</ul>` : ''}
${messages
  .map(
    ([mid, m]) => `<div class="message"><h4>Message <code>${esc(m.name ?? mid)}</code> <span class="tag">${esc(m.contentType ?? doc.defaultContentType ?? 'application/json')}</span></h4>
${m.summary ? `<p>${esc(m.summary)}</p>` : ''}${m.description ? `<p>${esc(m.description)}</p>` : ''}
${m.headers ? `<details open><summary>Headers</summary><pre>${esc(JSON.stringify(m.headers, null, 2))}</pre></details>` : ''}
${m.payload ? `<details open><summary>Payload</summary><pre>${esc(JSON.stringify(m.payload, null, 2))}</pre></details>` : ''}</div>`,
  )
  .join('\n')}
</section>`;
  };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(info.title ?? 'AsyncAPI')}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:1rem 2rem;color:#1d2330}
h1{margin-bottom:0}code{font:13px ui-monospace,monospace;background:#f2f4f8;padding:0 .25em;border-radius:3px}
pre{background:#f7f8fb;border:1px solid #e3e6ee;padding:.6rem;overflow:auto;font-size:12px}
.channel{border-top:1px solid #e3e6ee;padding:.5rem 0}.message{margin-left:1rem}
.tag{font-size:11px;background:#e8eefc;color:#2a4aa0;border-radius:9px;padding:1px 7px}.observed{background:#fdf0d5;color:#8a5a00}
.op{font-size:11px;font-weight:600;text-transform:uppercase}.send{color:#0a7a3f}.receive{color:#8a2a9a}.meta{color:#5a6272;font-size:13px}
table{border-collapse:collapse}td,th{border-bottom:1px solid #e3e6ee;padding:.2rem .8rem .2rem 0;text-align:left}
</style></head><body>
<h1>${esc(info.title ?? 'AsyncAPI')}</h1>
<p class="meta">AsyncAPI ${esc(doc.asyncapi)} · version ${esc(info.version)} · <a href="/asyncapi.yaml">YAML</a> · <a href="/asyncapi.json">JSON</a></p>
${info.description ? `<p>${esc(info.description)}</p>` : ''}
<h2>Servers</h2>
<table><tr><th>name</th><th>protocol</th><th>host</th><th></th></tr>${servers.map(([n, s]) => `<tr><td>${esc(n)}</td><td>${esc(s.protocol)}</td><td><code>${esc(s.host)}${esc(s.pathname ?? '')}</code></td><td>${esc(s.description ?? '')}</td></tr>`).join('')}</table>
<h2>Channels (${declared.length})</h2>
${declared.map(channelHtml).join('\n') || '<p>No AsyncAPI document is loaded (<code>eddy broker --asyncapi FILE</code>).</p>'}
<h2>Observed in traffic, not declared (${observed.length})</h2>
${observed.map(channelHtml).join('\n') || '<p>None so far.</p>'}
</body></html>
`;
}
