// Sessions: connected and offline (persistent) sessions, their expiry, subscriptions and queue;
// ending one drops its subscriptions and its queue.

import { useState } from 'preact/hooks';
import { itemPath, request } from '../api.js';
import type { SessionView } from '../../../src/core/admin/views.js';
import { ActionButton, ListPage } from '../components/list-page.js';
import type { Column } from '../components/virtual-table.js';
import { bytes, count, duration, time } from '../format.js';

const key = (s: SessionView): string => s.clientId;

function expiry(s: SessionView): string {
  if (!s.persistent) return 'ends with its connection';
  if (s.expiryInterval === null) return 'never expires';
  if (s.connected) return `${duration(s.expiryInterval)} after disconnect`;
  return `in ${duration(s.expiresIn)} (${time(s.expiresAt)})`;
}

export function SessionsPage() {
  const [notice, setNotice] = useState<string>();
  const columns: Column<SessionView>[] = [
    { title: 'client id', width: 'minmax(10rem, 2fr)', render: (s) => <span class="mono">{s.clientId}</span> },
    { title: 'state', width: '6rem', render: (s) => <span class={s.connected ? 'badge ok' : 'badge'}>{s.connected ? 'connected' : 'offline'}</span> },
    { title: 'user', width: '7rem', render: (s) => s.user ?? <span class="muted">–</span> },
    { title: 'expiry', width: 'minmax(10rem, 2fr)', render: expiry },
    { title: 'subs', width: '4rem', align: 'right', render: (s) => count(s.subscriptions) },
    { title: 'groups', width: 'minmax(8rem, 1fr)', render: (s) => <span class="mono small">{s.groups.join(', ') || '–'}</span> },
    { title: 'waiting', width: '8rem', align: 'right', render: (s) => `${count(s.queue.waiting)} (${bytes(s.queue.waitingBytes)})` },
    { title: 'in flight', width: '5rem', align: 'right', render: (s) => count(s.queue.inflight) },
    { title: 'retrying', width: '5rem', align: 'right', render: (s) => count(s.queue.retrying) },
    {
      title: '',
      width: '5rem',
      render: (s) => (
        <ActionButton
          label="end"
          danger
          testId={`end-${s.clientId}`}
          confirm={`End the session ${s.clientId}? Its subscriptions and queued messages are dropped.`}
          run={() => request('DELETE', itemPath('sessions', s.clientId))}
          onDone={() => setNotice(`session ${s.clientId} ended`)}
          onError={setNotice}
        />
      ),
    },
  ];
  return (
    <div>
      {notice ? <p class="notice" data-testid="notice">{notice}</p> : null}
      <ListPage<SessionView> path="/v1/admin/sessions" itemKey={key} columns={columns} searchLabel="client id starts with…" noun="sessions" testId="sessions" />
    </div>
  );
}
