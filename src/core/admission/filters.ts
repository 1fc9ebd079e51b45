/**
 * Relations between two MQTT topic filters, for deciding a subscription against an ACL without
 * listing topics: whether some topic matches both (`filtersOverlap`) and whether every topic one
 * matches the other matches too (`filterCovers`). Both keep MQTT's `$` rule: a topic starting with
 * `$` is matched only by a filter whose first level is that literal (4.7.2).
 */

function dollar(level: string | undefined): boolean {
  return level !== undefined && level.startsWith('$');
}

/** True when some topic name matches both filters. */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  // A `$` topic is matched only by filters whose first level is that literal, never by a root wildcard.
  const wild = (level: string | undefined): boolean => level === '+' || level === '#';
  if ((dollar(x[0]) && wild(y[0])) || (dollar(y[0]) && wild(x[0]))) return false;
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true; // `#` takes whatever the other side has left, none included
    if (p === undefined && q === undefined) return true;
    if (p === undefined || q === undefined) return false; // one is longer, and not by a trailing `#` (checked above)
    if (p === '+' || q === '+') continue;
    if (p !== q) return false;
  }
}

/** True when every topic name `inner` matches is matched by `outer` too. */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const n = inner.split('/');
  for (let i = 0; ; i++) {
    const p = o[i];
    const q = n[i];
    if (p === '#') return !(i === 0 && dollar(q)); // a root `#` leaves `$` topics out
    if (p === undefined && q === undefined) return true;
    if (p === undefined || q === undefined) return false;
    if (q === '#') return false; // inner goes deeper than outer, which has no `#` here
    if (p === '+') {
      if (i === 0 && dollar(q)) return false; // a root `+` leaves `$` topics out
      continue;
    }
    if (q === '+' || p !== q) return false;
  }
}
