/**
 * Edit distance between two short strings: insertions, deletions, substitutions, and swaps of two
 * neighbouring characters (`--qso` is one typo away from `--qos`, not two).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate a mistyped word most likely meant: the only one it is a prefix of (`--data` →
 * `--data-dir`), else the closest within a third of its length (`--htp-port` → `--http-port`).
 * Undefined when nothing is close enough to be a helpful guess.
 */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const all = [...candidates];
  const extending = all.filter((c) => c.startsWith(word) && c !== word);
  if (extending.length === 1 && word.replace(/^-+/, '').length >= 2) return extending[0];
  const limit = Math.max(1, Math.floor(word.replace(/^-+/, '').length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of all) {
    const d = editDistance(word, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
