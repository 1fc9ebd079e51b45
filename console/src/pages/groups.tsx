// Consumer groups: members, waiting, in flight, lag; one opened shows its details live; delete.

import { useCallback, useEffect, useState } from 'preact/hooks';
import { get, itemPath, request } from '../api.js';
import type { GroupView } from '../../../src/core/admin/views.js';
import { ActionButton, ListPage } from '../components/list-page.js';
import type { Column } from '../components/virtual-table.js';
import { bytes, count, duration, rate, time } from '../format.js';
import { useStatsTick } from '../stats-store.js';

const key = (g: GroupView): string => g.name;

function GroupDetail(props: { name: string; onGone: () => void }) {
  const [group, setGroup] = useState<GroupView>();
  const [error, setError] = useState<string>();
  const load = useCallback(() => {
    get<GroupView>(itemPath('groups', props.name)).then(
      (g) => (setGroup(g), setError(undefined)),
      (err: Error) => setError(err.message),
    );
  }, [props.name]);
  useEffect(load, [load]);
  useStatsTick(1, load);
  if (error) return <section class="card detail"><p class="error">{error}</p></section>;
  if (!group) return <section class="card detail"><p class="muted">Loading…</p></section>;
  const rows: Array<[string, string]> = [
    ['filter', group.filter],
    ['durable', group.durable ? 'yes' : 'no'],
    ['members', `${group.connectedMembers} connected of ${group.members}`],
    ['waiting', `${count(group.waiting)} (${bytes(group.waitingBytes)})`],
    ['in flight', count(group.inflight)],
    ['retrying', count(group.retrying)],
    ['lag', duration(group.lag)],
    ['oldest waiting', time(group.oldestWaitingAt)],
    ['delivery rate', `${rate(group.deliveryRate)}/s`],
    ['delivered', count(group.delivered)],
  ];
  return (
    <section class="card detail" data-testid="group-detail">
      <h3 class="mono">{group.name}</h3>
      <dl>
        {rows.map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd data-field={k}>{v}</dd>
          </>
        ))}
      </dl>
      <h4>Members</h4>
      <p class="mono small">{group.memberIds.join(', ') || 'none'}</p>
      {group.brokerOwned ? (
        <p class="muted">The broker's own dead-letter group cannot be deleted.</p>
      ) : (
        <ActionButton
          label="delete group"
          danger
          testId="delete-group"
          confirm={`Delete ${group.name}? Its queue is dropped and its members' subscriptions to it are removed.`}
          run={() => request('DELETE', itemPath('groups', group.name))}
          onDone={props.onGone}
          onError={setError}
        />
      )}
    </section>
  );
}

export function GroupsPage(props: { selected: string | undefined; select: (name: string | undefined) => void }) {
  const columns: Column<GroupView>[] = [
    { title: 'group', width: 'minmax(12rem, 2fr)', render: (g) => <span class="mono">{g.name}</span> },
    { title: 'members', width: '6rem', align: 'right', render: (g) => `${g.connectedMembers}/${g.members}` },
    { title: 'waiting', width: '6rem', align: 'right', render: (g) => count(g.waiting) },
    { title: 'in flight', width: '5rem', align: 'right', render: (g) => count(g.inflight) },
    { title: 'lag', width: '6rem', align: 'right', render: (g) => duration(g.lag) },
    { title: 'rate', width: '5rem', align: 'right', render: (g) => `${rate(g.deliveryRate)}/s` },
  ];
  return (
    <div class="split">
      <ListPage<GroupView>
        path="/v1/admin/groups"
        itemKey={key}
        columns={columns}
        searchLabel="$share/name/… starts with"
        noun="groups"
        testId="groups"
        onSelect={(g) => props.select(g.name)}
        selected={props.selected}
      />
      {props.selected ? <GroupDetail key={props.selected} name={props.selected} onGone={() => props.select(undefined)} /> : <p class="muted detail">Select a group to see it live.</p>}
    </div>
  );
}
