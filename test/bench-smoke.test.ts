import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.js';

const RUN = fileURLToPath(new URL('../bench/run.js', import.meta.url));

interface Row {
  key: string;
  available: boolean;
  note?: string;
  rate?: { requests: number; ok: number; errors: number; rps: number; latencyMs: { p50: number; p90: number; p99: number } };
  closed?: { requests: number; ok: number; rps: number };
  processes?: { rate: { name: string; cpuPercent: number; peakRssMb: number }[]; closed: { name: string; cpuPercent: number; peakRssMb: number }[] };
}

/** `npm run bench -- --smoke`: the whole harness (clusters, sidecars, load processes) with a few hundred requests per row. */
describe('bench smoke (npm run bench -- --smoke)', () => {
  it('starts the mesh as processes, measures every available row and writes the JSON', { timeout: 180_000 }, async () => {
    const { dir, cleanup } = tempDir('crossmesh-bench-smoke-');
    try {
      const out = join(dir, 'smoke.json');
      const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [RUN, '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
        let so = '';
        let se = '';
        child.stdout.on('data', (d) => (so += d));
        child.stderr.on('data', (d) => (se += d));
        child.on('error', reject);
        child.on('close', (c) => resolve({ code: c, stdout: so, stderr: se }));
      });
      assert.equal(code, 0, `bench --smoke failed:\n${stderr}\n${stdout}`);
      assert.match(stdout, /\| scenario \| proxy hops \| p50 ms/);
      const result = JSON.parse(readFileSync(out, 'utf8')) as { smoke: boolean; rows: Row[]; machine: { cores: number; node: string } };
      assert.equal(result.smoke, true);
      assert.equal(result.machine.node, process.version);
      const keys = result.rows.map((r) => r.key);
      for (const k of ['direct', 'same-cluster', 'cross-cluster', 'cross-cluster-no-app-sidecar', 'dapr-invoke', 'state', 'nginx-chain']) assert.ok(keys.includes(k), `row ${k} present`);
      for (const k of ['direct', 'same-cluster', 'cross-cluster']) assert.ok(result.rows.find((r) => r.key === k)!.available, `${k} is always measured`);
      for (const row of result.rows) {
        if (!row.available) {
          assert.ok(row.note && row.note.length > 0, `${row.key}: an unavailable row says why`);
          continue;
        }
        const { rate, closed } = row;
        assert.ok(rate && closed && row.processes, `${row.key}: both load shapes measured`);
        assert.ok(rate.requests >= 100 && rate.ok === rate.requests, `${row.key}: fixed rate all answered 2xx (${JSON.stringify(rate)})`);
        for (const p of ['p50', 'p90', 'p99'] as const) assert.ok(Number.isFinite(rate.latencyMs[p]) && rate.latencyMs[p] > 0, `${row.key}: ${p} is a number`);
        assert.ok(rate.latencyMs.p50 <= rate.latencyMs.p90 && rate.latencyMs.p90 <= rate.latencyMs.p99);
        assert.ok(closed.rps > 0 && closed.ok > 0, `${row.key}: closed loop req/s`);
        for (const p of [...row.processes.rate, ...row.processes.closed]) {
          assert.ok(Number.isFinite(p.cpuPercent) && p.cpuPercent >= 0, `${row.key} ${p.name}: CPU`);
          assert.ok(p.peakRssMb > 0, `${row.key} ${p.name}: peak RSS`);
        }
      }
    } finally {
      cleanup();
    }
  });
});
