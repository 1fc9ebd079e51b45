// Clients: every connected client (MQTT over TCP/WebSocket, SSE streams), searchable by client id
// prefix, with a kick (DELETE: MQTT 5 DISCONNECT 0x98).

import { useState } from 'preact/hooks';
import { itemPath, request } from '../api.js';
import type { ClientView } from '../../../src/core/admin/views.js';
import { ActionButton, ListPage } from '../components/list-page.js';
import type { Column } from '../components/virtual-table.js';
import { bytes, count, time } from '../format.js';

const key = (c: ClientView): string => c.clientId;

export function ClientsPage() {
  const [notice, setNotice] = useState<string>();
  const columns: Column<ClientView>[] = [
    { title: 'client id', width: 'minmax(10rem, 2fr)', render: (c) => <span class="mono">{c.clientId}</span> },
    { title: 'user', width: '7rem', render: (c) => c.user ?? <span class="muted">–</span> },
    { title: 'protocol', width: '7rem', render: (c) => `${c.protocol}${c.protocolVersion ? ` ${c.protocolVersion}` : ''}` },
    { title: 'transport', width: '5rem', render: (c) => c.transport },
    { title: 'address', width: '10rem', render: (c) => <span class="mono">{c.address}</span> },
    { title: 'connected', width: '11rem', render: (c) => time(c.connectedAt) },
    { title: 'in / out', width: '8rem', align: 'right', render: (c) => `${count(c.messagesIn)} / ${count(c.messagesOut)}` },
    { title: 'bytes', width: '9rem', align: 'right', render: (c) => `${bytes(c.bytesIn)} / ${bytes(c.bytesOut)}` },
    { title: 'in flight', width: '5rem', align: 'right', render: (c) => count(c.inflight) },
    { title: 'queued', width: '5rem', align: 'right', render: (c) => count(c.queued) },
    {
      title: '',
      width: '5rem',
      render: (c) => (
        <ActionButton
          label="kick"
          danger
          testId={`kick-${c.clientId}`}
          confirm={`Disconnect ${c.clientId} (DISCONNECT 0x98)?`}
          run={() => request('DELETE', itemPath('clients', c.clientId))}
          onDone={() => setNotice(`${c.clientId} disconnected (0x98 administrative action)`)}
          onError={setNotice}
        />
      ),
    },
  ];
  return (
    <div>
      {notice ? <p class="notice" data-testid="notice">{notice}</p> : null}
      <ListPage<ClientView> path="/v1/admin/clients" itemKey={key} columns={columns} searchLabel="client id starts with…" noun="clients" testId="clients" />
    </div>
  );
}
