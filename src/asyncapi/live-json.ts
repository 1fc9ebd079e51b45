type Json = Record<string, unknown>;

/** `a/b` → `a~1b`: a key as one JSON Pointer token (RFC 6901). */
export function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * The parser's resolved JSON as plain JSON for the live document, placed at `pointer` in it: without
 * the parser's `x-parser-*` bookkeeping, and with recursion (the parser resolves a self-referencing
 * schema into a cyclic object, which JSON cannot hold) turned back into a `$ref` to where the cycle
 * starts in the live document.
 */
export function toLiveJson(value: unknown, pointer: string): unknown {
  const onPath = new Map<object, string>();
  const copy = (v: unknown, at: string): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    const ancestor = onPath.get(v);
    if (ancestor !== undefined) return { $ref: ancestor };
    onPath.set(v, at);
    let out: unknown;
    if (Array.isArray(v)) {
      out = v.map((item, i) => copy(item, `${at}/${i}`));
    } else {
      const object: Json = {};
      for (const [k, item] of Object.entries(v)) if (!k.startsWith('x-parser-')) object[k] = copy(item, `${at}/${pointerToken(k)}`);
      out = object;
    }
    onPath.delete(v);
    return out;
  };
  return copy(value, pointer);
}

/** Ids unique within one map of the live document (channels, operations), kept readable. */
export class IdAllocator {
  private readonly used = new Set<string>();

  take(id: string): string {
    const base = id.replace(/[^A-Za-z0-9_.-]/g, '_') || 'id';
    let candidate = base;
    for (let n = 2; this.used.has(candidate); n++) candidate = `${base}_${n}`;
    this.used.add(candidate);
    return candidate;
  }
}
