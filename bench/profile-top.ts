/** Top self-time functions of a .cpuprofile: `node dist/bench/profile-top.js FILE [N]`. */
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
const file = process.argv[2];
const n = Number(process.argv[3] ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<string, number>();
const counts = new Map<number, number>();
for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
let total = 0;
let idle = 0;
for (const node of prof.nodes) {
  const c = counts.get(node.id) ?? 0;
  total += c;
  const f = node.callFrame;
  if (f.functionName === '(idle)') { idle += c; continue; }
  const url = f.url.replace(/^.*\/(node_modules\/|src\/|dist\/)/, '$1');
  const key = `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + c);
}
const busy = total - idle;
console.log(`${file}: ${total} samples, ${busy} busy (${((busy / total) * 100).toFixed(1)}%)`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}`);
