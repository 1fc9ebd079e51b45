// Dead letters: reason, delivery count, original topic; redrive one, redrive or purge all that
// match a filter on the original topic.

import { useState } from 'preact/hooks';
import { request } from '../api.js';
import type { DeadLetterView, PurgeResult, RedriveResult } from '../../../src/core/admin/views.js';
import { ActionButton, ListPage } from '../components/list-page.js';
import type { Column } from '../components/virtual-table.js';
import { time } from '../format.js';

const key = (d: DeadLetterView): string => String(d.seq);

function redriveSummary(r: RedriveResult): string {
  return `${r.redriven} redriven${r.refused ? `, ${r.refused} refused (the original publisher may not publish there)` : ''}${r.failed ? `, ${r.failed} failed: ${r.error ?? ''}` : ''}`;
}

export function DeadLettersPage() {
  const [filter, setFilter] = useState('');
  const [applied, setApplied] = useState('');
  const [notice, setNotice] = useState<string>();
  const [version, setVersion] = useState(0);
  const query = applied ? `?topic=${encodeURIComponent(applied)}` : '';
  const columns: Column<DeadLetterView>[] = [
    { title: 'seq', width: '5rem', align: 'right', render: (d) => d.seq },
    { title: 'original topic', width: 'minmax(10rem, 2fr)', render: (d) => <span class="mono">{d.originalTopic}</span> },
    { title: 'reason', width: 'minmax(8rem, 1fr)', render: (d) => d.reason ?? '–' },
    { title: 'deliveries', width: '6rem', align: 'right', render: (d) => d.deliveryCount ?? '–' },
    { title: 'group / client', width: 'minmax(8rem, 1fr)', render: (d) => <span class="mono small">{d.group ?? d.clientId ?? '–'}</span> },
    { title: 'dead since', width: '11rem', render: (d) => time(d.deadLetteredAt) },
    { title: 'payload', width: 'minmax(8rem, 2fr)', render: (d) => <span class="mono small ellipsis">{d.encoding === 'base64' ? `(binary) ${d.payload}` : d.payload}</span> },
    {
      title: '',
      width: '6rem',
      render: (d) => (
        <ActionButton
          label="redrive"
          testId={`redrive-${d.seq}`}
          run={() => request<RedriveResult>('POST', `/v1/admin/dlq/redrive?seq=${d.seq}`)}
          onDone={(r) => (setNotice(`seq ${d.seq}: ${redriveSummary(r as RedriveResult)}`), setVersion((v) => v + 1))}
          onError={setNotice}
        />
      ),
    },
  ];
  const scope = applied ? `matching ${applied}` : '';
  return (
    <div>
      <form
        class="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filter.trim());
        }}
      >
        <input placeholder="original topic filter, e.g. orders/#" value={filter} data-testid="dlq-filter" onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} />
        <button type="submit">filter</button>
        <ActionButton
          label={`redrive all ${scope}`}
          testId="redrive-all"
          confirm={`Redrive every dead letter ${scope || '(all of them)'}?`}
          run={() => request<RedriveResult>('POST', `/v1/admin/dlq/redrive${query}`)}
          onDone={(r) => (setNotice(redriveSummary(r as RedriveResult)), setVersion((v) => v + 1))}
          onError={setNotice}
        />
        <ActionButton
          label={`purge ${scope || 'all'}`}
          danger
          testId="purge"
          confirm={`Remove every dead letter ${scope || ''} for good?`}
          run={() => request<PurgeResult>('POST', `/v1/admin/dlq/purge${query}`)}
          onDone={(r) => (setNotice(`${(r as PurgeResult).purged} purged`), setVersion((v) => v + 1))}
          onError={setNotice}
        />
      </form>
      {notice ? <p class="notice" data-testid="notice">{notice}</p> : null}
      <ListPage<DeadLetterView> key={`${applied}#${version}`} path={`/v1/admin/dlq${query}`} itemKey={key} numericKeys columns={columns} noun="dead letters" testId="dlq" />
    </div>
  );
}
