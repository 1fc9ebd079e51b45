// Summarises a V8 CPU profile (`--cpu-prof`, as `npm run bench -- --cpu-prof` writes for Eddy):
// self time by function and by area (Node runtime, mqtt-packet, Eddy's MQTT front end, core, GC).
// Usage: node dist/bench/prof-top.js FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node dist/bench/prof-top.js FILE.cpuprofile [N]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

function area(url: string, name: string): string {
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'gc';
  if (name === '(program)') return 'program (native, outside JS)';
  if (url.includes('/mqtt-packet/') || url.includes('/bl/') || url.includes('/debug/') || url.includes('/ms/')) return 'mqtt-packet (+bl, debug)';
  if (url.includes('/src/protocol/mqtt/fast-path/')) return 'eddy fast path codec';
  if (url.includes('/src/protocol/')) return 'eddy MQTT front end';
  if (url.includes('/src/storage/')) return 'eddy storage';
  if (url.includes('/src/core/')) return 'eddy core';
  if (url.includes('/src/')) return 'eddy other';
  if (url.startsWith('node:') || url === '') return 'node runtime (sockets, streams, buffers, timers)';
  return 'other dependencies';
}

const fn = new Map<string, number>();
const areas = new Map<string, number>();
let total = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const a = area(url, functionName);
  if (a === 'idle') {
    idle += us;
    continue;
  }
  total += us;
  areas.set(a, (areas.get(a) ?? 0) + us);
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}`;
  fn.set(key, (fn.get(key) ?? 0) + us);
}
const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
process.stdout.write(`busy ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms\n\nby area:\n`);
for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1])) process.stdout.write(`${pct(us)}  ${a}\n`);
process.stdout.write(`\ntop ${top} functions (self time):\n`);
for (const [k, us] of [...fn].sort((x, y) => y[1] - x[1]).slice(0, top)) process.stdout.write(`${pct(us)}  ${k}\n`);
