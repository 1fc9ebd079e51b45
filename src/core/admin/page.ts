import { EddyError } from '../../util/errors.js';
import type { SortedKeys } from './sorted-keys.js';
import type { Page } from './views.js';

/** `?limit=&after=`: at most `limit` items, starting after the item whose cursor is `after`. */
export interface PageRequest {
  limit: number;
  after?: string;
}

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;

/** Why an admin operation was refused; the HTTP front end maps `kind` to a status. */
export class AdminError extends EddyError {
  constructor(
    readonly kind: 'not-found' | 'conflict' | 'bad-request',
    message: string,
  ) {
    super(`EDDY_ADMIN_${kind.toUpperCase().replace('-', '_')}`, message);
  }
}

/**
 * One page over a sorted index: the keys after the cursor that `view` turns into an item (it
 * returns undefined to skip a key, for a filtered list), up to `limit`. Looks one matching key past
 * the page, so that `next` is null exactly on the last page. Work is the page plus what the filter
 * skips, never a sort.
 */
export function pageOf<T>(index: SortedKeys, request: PageRequest, total: number, view: (key: string) => T | undefined): Page<T> {
  const keys = index.keys();
  const items: T[] = [];
  let last: string | undefined;
  for (let i = index.startAfter(request.after); i < keys.length; i++) {
    const item = view(keys[i]!);
    if (item === undefined) continue;
    if (items.length === request.limit) return { items, next: last!, total };
    items.push(item);
    last = keys[i]!;
  }
  return { items, next: null, total };
}

/** `pageOf` for items that take a read from storage to make (a retained message, a group's oldest delivery). */
export async function pageOfAsync<T>(index: SortedKeys, request: PageRequest, total: number, view: (key: string) => Promise<T | undefined>): Promise<Page<T>> {
  const keys = index.keys();
  const items: T[] = [];
  let last: string | undefined;
  for (let i = index.startAfter(request.after); i < keys.length; i++) {
    const item = await view(keys[i]!);
    if (item === undefined) continue;
    if (items.length === request.limit) return { items, next: last!, total };
    items.push(item);
    last = keys[i]!;
  }
  return { items, next: null, total };
}
