// A list of the admin API read page by page with its cursors: what the tables show. Pages are
// fetched as the table scrolls near the end of what is loaded; a refresh re-reads only the rows
// on screen (from the cursor of the row before them), so 10,000 clients cost a page, not a scan.

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { Page } from '../../src/core/admin/views.js';
import { get } from './api.js';

export interface PagedList<T> {
  items: T[];
  total: number;
  /** More pages after what is loaded. */
  more: boolean;
  loading: boolean;
  error: string | undefined;
  loadMore(): void;
  /** Re-reads the rows from `start` on (`count` of them) and patches them in. */
  refresh(start: number, count: number): void;
  /** Drops everything and reads the first page again. */
  reset(): void;
}

export interface PagedListOptions<T> {
  /** `/v1/admin/clients` or with a query, `/v1/admin/dlq?topic=a/%23`. */
  path: string;
  /** The item's cursor: what `next` and `after` are made of. */
  key: (item: T) => string;
  /** Only ids starting with this (the lists are in code-unit order by key: a range of them). */
  prefix?: string;
  pageSize?: number;
  /** Keys compare as numbers (dead letters' seqs) rather than as strings. */
  numericKeys?: boolean;
}

/** The greatest key before every key that starts with `prefix`, as an `after` cursor. */
export function cursorBefore(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  const last = prefix.charCodeAt(prefix.length - 1);
  const head = prefix.slice(0, -1);
  return last === 0 ? (head === '' ? undefined : head) : `${head}${String.fromCharCode(last - 1)}\uffff\uffff\uffff\uffff`;
}

function withQuery(path: string, params: Record<string, string | number | undefined>): string {
  const query = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
    .join('&');
  return query ? `${path}${path.includes('?') ? '&' : '?'}${query}` : path;
}

export function usePagedList<T>(options: PagedListOptions<T>): PagedList<T> {
  const { path, key, prefix = '', pageSize = 200, numericKeys = false } = options;
  const [state, setState] = useState<{ items: T[]; total: number; next: string | null | undefined; error?: string }>({ items: [], total: 0, next: undefined });
  const [loading, setLoading] = useState(false);
  const busy = useRef(false);
  const generation = useRef(0);
  const latest = useRef(state);
  latest.current = state;

  const inRange = useCallback((item: T) => prefix === '' || key(item).startsWith(prefix), [prefix, key]);
  const before = useCallback((a: string, b: string) => (numericKeys ? Number(a) <= Number(b) : a <= b), [numericKeys]);

  const loadMore = useCallback(() => {
    const { next } = latest.current;
    if (busy.current || next === null) return;
    busy.current = true;
    setLoading(true);
    const mine = generation.current;
    const after = next === undefined ? cursorBefore(prefix) : next;
    get<Page<T>>(withQuery(path, { limit: pageSize, after }))
      .then((page) => {
        if (mine !== generation.current) return;
        const fresh = page.items.filter(inRange);
        // Past the prefix's range: nothing further can match.
        const ended = page.next === null || fresh.length < page.items.length;
        setState((s) => ({ items: [...s.items, ...fresh], total: page.total, next: ended ? null : page.next }));
      })
      .catch((err: Error) => mine === generation.current && setState((s) => ({ ...s, error: err.message })))
      .finally(() => {
        if (mine !== generation.current) return;
        busy.current = false;
        setLoading(false);
      });
  }, [path, prefix, pageSize, inRange]);

  const refresh = useCallback(
    (start: number, count: number) => {
      const { items } = latest.current;
      if (busy.current) return;
      if (items.length === 0) return loadMore();
      const mine = generation.current;
      const after = start > 0 ? key(items[start - 1]!) : cursorBefore(prefix);
      const limit = Math.min(1000, Math.max(1, count));
      get<Page<T>>(withQuery(path, { limit, after }))
        .then((page) => {
          if (mine !== generation.current) return;
          const fresh = page.items.filter(inRange);
          const reachedEnd = page.next === null || fresh.length < page.items.length;
          setState((s) => {
            const last = fresh.length > 0 ? key(fresh[fresh.length - 1]!) : undefined;
            let end = start;
            // Rows of the old window up to the last key re-read are replaced; those after it stay.
            while (end < s.items.length && (reachedEnd || (last !== undefined && before(key(s.items[end]!), last)))) end++;
            const items = [...s.items.slice(0, start), ...fresh, ...s.items.slice(end)];
            return { items, total: page.total, next: reachedEnd && end >= s.items.length ? null : s.next, error: undefined };
          });
        })
        .catch((err: Error) => mine === generation.current && setState((s) => ({ ...s, error: err.message })));
    },
    [path, prefix, key, inRange, before, loadMore],
  );

  const reset = useCallback(() => {
    generation.current++;
    busy.current = false;
    setLoading(false);
    latest.current = { items: [], total: 0, next: undefined };
    setState(latest.current);
    loadMore();
  }, [loadMore]);

  useEffect(() => reset(), [path, prefix]); // eslint-disable-line react-hooks/exhaustive-deps

  return { items: state.items, total: state.total, more: state.next !== null, loading, error: state.error, loadMore, refresh, reset };
}
