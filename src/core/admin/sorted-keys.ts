/** What a sorted index is kept over: the keys as they are now, and whether one is there. */
export interface KeySource {
  keys(): Iterable<string>;
  has(key: string): boolean;
  readonly size: number;
}

/** Past this many changes between two reads the index is sorted afresh rather than patched. */
const MIN_PATCH_LIMIT = 1024;

/**
 * The keys of a collection in code-unit order (the stable order of the admin API's pages), kept
 * without slowing the collection down: a change only records the key as touched; a read patches
 * the sorted array with what was touched (one linear merge, no sort of the whole) and checks each
 * touched key against the source, so the order in which changes came does not matter. When more
 * changed than the index holds, or the sizes disagree (a change nobody reported), it is sorted
 * afresh. A collection that churns with nobody reading costs one Set entry per key, bounded.
 */
export class SortedKeys {
  private sorted: string[] = [];
  private readonly touched = new Set<string>();
  private stale = true;

  constructor(private readonly source: KeySource) {}

  /** A key was added or removed (or may have been): the next read looks at it. */
  touch(key: string): void {
    if (this.stale) return;
    this.touched.add(key);
    if (this.touched.size > Math.max(MIN_PATCH_LIMIT, this.sorted.length)) {
      this.stale = true;
      this.touched.clear();
    }
  }

  /** Everything must be read again (the source changed wholesale). */
  invalidate(): void {
    this.stale = true;
    this.touched.clear();
  }

  /** The keys, sorted. The array is the index's own: do not change it. */
  keys(): readonly string[] {
    if (!this.stale && this.touched.size > 0) this.patch();
    if (this.stale || this.sorted.length !== this.source.size) this.rebuild();
    return this.sorted;
  }

  /** Position of the first key strictly after `after` (0 without a cursor). */
  startAfter(after: string | undefined): number {
    const keys = this.keys();
    return after === undefined ? 0 : upperBound(keys, after);
  }

  private rebuild(): void {
    this.sorted = [...this.source.keys()].sort(compareKeys);
    this.touched.clear();
    this.stale = false;
  }

  private patch(): void {
    const removed = new Set<string>();
    const added: string[] = [];
    for (const key of this.touched) {
      const present = this.source.has(key);
      const indexed = contains(this.sorted, key);
      if (indexed && !present) removed.add(key);
      else if (present && !indexed) added.push(key);
    }
    this.touched.clear();
    if (removed.size === 0 && added.length === 0) return;
    added.sort(compareKeys);
    const merged: string[] = [];
    let a = 0;
    for (const key of this.sorted) {
      if (removed.has(key)) continue;
      while (a < added.length && added[a]! < key) merged.push(added[a++]!);
      merged.push(key);
    }
    while (a < added.length) merged.push(added[a++]!);
    this.sorted = merged;
  }
}

/** Code-unit order: fast, total and the same on every platform (localeCompare is none of these). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first element greater than `key`. */
export function upperBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function contains(sorted: readonly string[], key: string): boolean {
  const i = upperBound(sorted, key) - 1;
  return i >= 0 && sorted[i] === key;
}

/**
 * A Map by string key that keeps a SortedKeys index of itself: what the broker's sessions and
 * consumer groups are held in, so that the admin API pages through them in order without sorting
 * them per request. Adding or removing a key costs one Set insert; replacing a value, nothing.
 */
export class IndexedMap<V> extends Map<string, V> {
  readonly index: SortedKeys = new SortedKeys(this);

  override set(key: string, value: V): this {
    // `index` is not there yet while Map's constructor runs (it adds nothing here).
    if (this.index && !super.has(key)) this.index.touch(key);
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    const deleted = super.delete(key);
    if (deleted) this.index.touch(key);
    return deleted;
  }

  override clear(): void {
    super.clear();
    this.index.invalidate();
  }
}
