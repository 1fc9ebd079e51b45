// What the list pages share: a prefix search box, the table over a paged list, refreshed on the
// stats clock (the rows on screen only), and a line for the last action's outcome.

import type { ComponentChildren } from 'preact';
import { useCallback, useRef, useState } from 'preact/hooks';
import { usePagedList, type PagedList, type PagedListOptions } from '../paged-list.js';
import { useStatsTick } from '../stats-store.js';
import { VirtualTable, type Column } from './virtual-table.js';
import { count } from '../format.js';

export interface ListPageProps<T> extends Omit<PagedListOptions<T>, 'prefix' | 'key'> {
  /** The item's cursor (`key` is Preact's own prop). */
  itemKey: (item: T) => string;
  columns: Column<T>[];
  /** The search box's placeholder: it searches keys by prefix; none without it. */
  searchLabel?: string;
  noun: string;
  /** Seconds between refreshes of the rows on screen. */
  refreshEvery?: number;
  onSelect?: (row: T) => void;
  selected?: string | undefined;
  toolbar?: (list: PagedList<T>) => ComponentChildren;
  testId: string;
}

export function ListPage<T>(props: ListPageProps<T>) {
  const [prefix, setPrefix] = useState('');
  const list = usePagedList<T>({ path: props.path, key: props.itemKey, prefix, ...(props.pageSize ? { pageSize: props.pageSize } : {}), ...(props.numericKeys ? { numericKeys: true } : {}) });
  const windowRef = useRef({ start: 0, count: 40 });
  const onWindow = useCallback((start: number, n: number) => (windowRef.current = { start, count: n }), []);
  const refresh = list.refresh;
  useStatsTick(props.refreshEvery ?? 2, useCallback(() => refresh(windowRef.current.start, windowRef.current.count), [refresh]));
  return (
    <div class="list-page">
      <div class="toolbar">
        {props.searchLabel ? (
          <input
            type="search"
            placeholder={props.searchLabel}
            value={prefix}
            data-testid={`${props.testId}-search`}
            onInput={(e) => setPrefix((e.currentTarget as HTMLInputElement).value)}
          />
        ) : null}
        <span class="muted" data-testid={`${props.testId}-count`}>
          {prefix ? `${count(list.items.length)}${list.more ? '+' : ''} matching, ` : ''}
          {count(list.total)} {props.noun}
        </span>
        {list.loading ? <span class="muted">loading…</span> : null}
        {props.toolbar?.(list)}
      </div>
      {list.error ? <p class="error">{list.error}</p> : null}
      <VirtualTable
        rows={list.items}
        columns={props.columns}
        rowKey={props.itemKey}
        onNearEnd={list.more ? list.loadMore : undefined}
        onWindow={onWindow}
        {...(props.onSelect ? { onSelect: props.onSelect } : {})}
        selected={props.selected}
        testId={props.testId}
        empty={list.loading ? 'Loading…' : `No ${props.noun}.`}
      />
    </div>
  );
}

/** A button that runs an action, asks first when `confirm` is given, and reports failure. */
export function ActionButton(props: { label: string; confirm?: string; run: () => Promise<unknown>; onDone?: (result: unknown) => void; onError?: (message: string) => void; danger?: boolean; testId?: string }) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      class={props.danger ? 'danger' : ''}
      disabled={busy}
      data-testid={props.testId}
      onClick={(e) => {
        e.stopPropagation();
        if (props.confirm && !window.confirm(props.confirm)) return;
        setBusy(true);
        props
          .run()
          .then((r) => props.onDone?.(r))
          .catch((err: Error) => (props.onError ? props.onError(err.message) : window.alert(err.message)))
          .finally(() => setBusy(false));
      }}
    >
      {props.label}
    </button>
  );
}
