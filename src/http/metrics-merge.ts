/**
 * Merges the Prometheus text of several processes of one broker (`eddy broker --workers N`) into
 * one exposition: each family's HELP and TYPE once, then every process's samples with a `worker`
 * label. Summing is left to PromQL (`sum without (worker)`), as with Node's cluster and prom-client's
 * aggregator registry, because a gauge such as a peak or a ratio does not add up; and a family must
 * appear once in a scrape, which two concatenated texts would break.
 */

export interface WorkerMetrics {
  /** The worker's label value ("1", "2", …). */
  worker: string;
  /** Its registry's text exposition. */
  text: string;
}

interface Family {
  header: string[];
  samples: string[];
}

/** `name{a="b"} 1` → `name{worker="2",a="b"} 1`; `name 1` → `name{worker="2"} 1`. */
export function withWorkerLabel(sample: string, worker: string): string {
  const label = `worker="${worker}"`;
  // The metric name ends at the first brace or space; label values (which may hold either) come after.
  for (let i = 0; i < sample.length; i++) {
    const c = sample[i];
    if (c === '{') return `${sample.slice(0, i + 1)}${label}${sample[i + 1] === '}' ? '' : ','}${sample.slice(i + 1)}`;
    if (c === ' ') return `${sample.slice(0, i)}{${label}}${sample.slice(i)}`;
  }
  return sample;
}

/** The family a `# HELP name …` or `# TYPE name …` line names, or undefined for another comment. */
function familyOf(comment: string): string | undefined {
  const m = /^# (?:HELP|TYPE) (\S+)/.exec(comment);
  return m?.[1];
}

export function mergeWorkerMetrics(parts: WorkerMetrics[]): string {
  const families = new Map<string, Family>();
  for (const { worker, text } of parts) {
    let current: Family | undefined;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        const name = familyOf(line);
        if (name === undefined) continue;
        let family = families.get(name);
        if (!family) {
          family = { header: [], samples: [] };
          families.set(name, family);
        }
        // Every worker sends the same HELP and TYPE lines: each is kept once.
        if (!family.header.includes(line)) family.header.push(line);
        current = family;
        continue;
      }
      if (!current) {
        // A sample before any HELP/TYPE: a family of its own, untyped.
        const name = line.split(/[{ ]/, 1)[0]!;
        current = families.get(name) ?? { header: [], samples: [] };
        families.set(name, current);
      }
      current.samples.push(withWorkerLabel(line, worker));
    }
  }
  let out = '';
  for (const family of families.values()) {
    for (const line of family.header) out += `${line}\n`;
    for (const line of family.samples) out += `${line}\n`;
  }
  return out;
}
