// How numbers, times and payloads are shown.

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

export function rate(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toFixed(2);
}

/** Seconds as `3 s`, `4 min`, `2 h 5 min`, `3 d`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/** Seconds of latency as ms. */
export function millis(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '–';
  return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString('en-GB', { hour12: false });
}

export interface ShownPayload {
  kind: 'json' | 'text' | 'hex';
  text: string;
}

/** JSON pretty-printed, other UTF-8 as it is, binary as a hex dump. */
export function showPayload(data: string, base64: boolean): ShownPayload {
  if (base64) {
    const raw = atob(data);
    const bytesOf = Array.from(raw, (c) => c.charCodeAt(0));
    return { kind: 'hex', text: hexDump(bytesOf) };
  }
  const trimmed = data.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { kind: 'json', text: JSON.stringify(JSON.parse(trimmed), null, 2) };
    } catch {
      // Not JSON after all.
    }
  }
  return { kind: 'text', text: data };
}

export function hexDump(data: number[]): string {
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.slice(i, i + 16);
    const hex = row.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = row.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(6, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}
