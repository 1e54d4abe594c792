import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../bench/run.js', import.meta.url));

interface Lat { p50: number; p90: number; p99: number }
interface Shape {
  mode: string;
  tool?: string;
  requests: number;
  ok: number;
  errors: number;
  rps: number;
  latencyMs?: Lat & { max: number; mean: number };
  fromScheduleMs?: Lat;
  sendLagMs?: { p50: number; p99: number; max: number };
  queued?: number;
  addedMs?: Lat;
}
interface Usage { id: string; name: string; cpuPercent: number; cpuUsPerRequest: number; rssMb: number; peakRssMb: number }
interface Row {
  key: string;
  available: boolean;
  note?: string;
  rate?: Shape;
  burst?: Shape;
  closed?: Shape & { vsNginx2hop?: number; vsNginx3hop?: number };
  processes?: { rate?: Usage[]; burst?: Usage[]; closed?: Usage[] };
}
interface Cli { key: string; command: string; runs: number; failures: number; medianMs: number; minMs: number; maxMs: number; samplesMs: number[] }
interface Target { key: string; what: string; limit: string; value?: number; unit: string; pass?: boolean; note?: string }
interface Result {
  smoke: boolean;
  machine: { cores: number; node: string };
  settings: { closedLoopTool: string; closedLoopWarning?: string };
  rows: Row[];
  cli: Cli[];
  targets: Target[];
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function assertLatency(what: string, l: Lat | undefined): void {
  assert.ok(l, `${what}: latency present`);
  for (const p of ['p50', 'p90', 'p99'] as const) assert.ok(finite(l[p]) && l[p] > 0, `${what}: ${p} is a positive number (${JSON.stringify(l)})`);
  assert.ok(l.p50 <= l.p90 && l.p90 <= l.p99, `${what}: p50 <= p90 <= p99 (${JSON.stringify(l)})`);
}

function assertOpenLoop(key: string, s: Shape | undefined, mode: 'rate' | 'burst'): void {
  assert.ok(s, `${key}: ${mode} measured`);
  assert.equal(s.mode, mode);
  assert.ok(s.requests >= 100 && s.ok === s.requests, `${key} ${mode}: all answered 2xx (${JSON.stringify(s)})`);
  assert.ok(s.rps > 0, `${key} ${mode}: req/s`);
  assertLatency(`${key} ${mode}`, s.latencyMs);
  assertLatency(`${key} ${mode} from schedule`, s.fromScheduleMs);
  assert.ok(s.sendLagMs && finite(s.sendLagMs.p99) && s.sendLagMs.p99 >= 0, `${key} ${mode}: send lag reported`);
  assert.ok(finite(s.queued) && s.queued >= 0, `${key} ${mode}: queued count`);
}

function assertUsage(key: string, us: Usage[] | undefined): void {
  assert.ok(us && us.length > 0, `${key}: per-process figures`);
  for (const p of us) {
    assert.ok(finite(p.cpuPercent) && p.cpuPercent >= 0, `${key} ${p.name}: CPU %`);
    assert.ok(finite(p.cpuUsPerRequest) && p.cpuUsPerRequest >= 0, `${key} ${p.name}: CPU µs/request`);
    assert.ok(p.peakRssMb > 0 && p.rssMb > 0, `${key} ${p.name}: RSS and peak RSS`);
  }
}

/**
 * `npm run bench -- --smoke`: the whole harness (clusters, sidecars, load processes, wrk or the
 * autocannon fallback, the CLI start-time runs) with a few hundred requests per row. Checks that
 * every row kind is there with sane figures; not the targets (smoke figures mean nothing).
 */
describe('bench smoke (npm run bench -- --smoke)', () => {
  it('starts the mesh as processes, measures every row kind and writes the JSON', { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crossmesh-bench-smoke-'));
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
      assert.match(stdout, /\| scenario \| proxy hops \| p50 ms \| p90 ms \| p99 ms \| added p50 \/ p90 \/ p99 ms \| closed-loop req\/s \| vs nginx 2-hop \| vs nginx 3-hop \|/);
      assert.match(stdout, /\| scenario \| proxy hops \| p50 ms \| p90 ms \| p99 ms \| added p50 \/ p90 \/ p99 ms \| closed-loop calls\/s \| vs gRPC direct \|/);
      assert.match(stdout, /^\| gRPC direct: grpc-js → orders app /m);
      assert.match(stdout, /\| command \| median ms/);
      assert.match(stdout, /^targets:$/m);
      assert.match(stdout, /\| target \| limit \| measured \| result \|/);

      const result = JSON.parse(readFileSync(out, 'utf8')) as Result;
      assert.equal(result.smoke, true);
      assert.equal(result.machine.node, process.version);
      assert.ok(['wrk', 'autocannon'].includes(result.settings.closedLoopTool));
      if (result.settings.closedLoopTool === 'autocannon') {
        assert.ok(result.settings.closedLoopWarning, 'the autocannon fallback is flagged');
        assert.ok(stdout.includes(result.settings.closedLoopWarning!), 'and printed');
      }

      const rows = new Map(result.rows.map((r) => [r.key, r]));
      for (const k of ['direct', 'direct-bursty', 'same-cluster', 'cross-cluster', 'cross-cluster-bursty', 'dapr-invoke', 'state', 'state-grpc', 'grpc-direct', 'grpc-cross', 'nginx-chain-2hop', 'nginx-chain']) {
        assert.ok(rows.has(k), `row ${k} present`);
      }
      for (const k of ['direct', 'direct-bursty', 'same-cluster', 'cross-cluster', 'cross-cluster-bursty', 'node-bare-chain', 'node-bare-chain-2hop']) assert.ok(rows.get(k)!.available, `${k} is always measured`);
      // The bare TLS reference chain needs the openssl CLI for its certificate; without it the row says so.
      assert.ok(rows.get('node-bare-chain-mtls')!.available || /openssl/.test(rows.get('node-bare-chain-mtls')!.note ?? ''), 'the bare mTLS chain is measured or names what is missing');
      for (const k of ['nginx-chain-2hop', 'nginx-chain']) assert.equal(rows.get(k)!.available, false, `${k}: no nginx in smoke mode`);

      for (const row of result.rows) {
        if (!row.available) {
          assert.ok(row.note && row.note.length > 0, `${row.key}: an unavailable row says why`);
          continue;
        }
        if (row.key.endsWith('-bursty')) {
          assertOpenLoop(row.key, row.burst, 'burst');
          assert.equal(row.closed, undefined, `${row.key}: latency only`);
          assertUsage(row.key, row.processes?.burst);
          continue;
        }
        assertOpenLoop(row.key, row.rate, 'rate');
        const closed = row.closed;
        assert.ok(closed, `${row.key}: closed loop measured`);
        // The gRPC rows (Dapr's gRPC API, the orders app) are loaded by grpc-js (wrk speaks no HTTP/2).
        assert.equal(closed.tool, row.key.endsWith('-grpc') || row.key.startsWith('grpc-') ? 'grpc-js' : result.settings.closedLoopTool);
        assert.ok(closed.rps > 0 && closed.ok > 0 && closed.errors === 0, `${row.key}: closed loop req/s (${JSON.stringify(closed)})`);
        if (closed.tool === 'wrk') assertLatency(`${row.key} closed`, closed.latencyMs);
        assertUsage(row.key, row.processes?.rate);
        assertUsage(row.key, row.processes?.closed);
      }
      // Latency added over direct, with the same arrival shape.
      for (const [k, shape] of [['same-cluster', 'rate'], ['cross-cluster', 'rate'], ['cross-cluster-bursty', 'burst']] as const) {
        const a = rows.get(k)![shape]!.addedMs;
        assert.ok(a && finite(a.p50) && finite(a.p90) && finite(a.p99), `${k}: added latency`);
      }
      const crossProcs = rows.get('cross-cluster')!.processes!.closed!.map((p) => p.id);
      for (const id of ['client-sidecar', 'gateway', 'app-sidecar', 'app']) assert.ok(crossProcs.includes(id), `cross-cluster: ${id} reported`);

      // CLI start time.
      const cli = new Map(result.cli.map((c) => [c.key, c]));
      for (const k of ['cli-get-svc', 'cli-status', 'cli-help', 'node-floor']) {
        const c = cli.get(k);
        assert.ok(c, `CLI row ${k}`);
        assert.equal(c.failures, 0, `${k}: every run exited 0`);
        assert.equal(c.samplesMs.length, c.runs);
        assert.ok(finite(c.medianMs) && c.medianMs > 0 && c.minMs <= c.medianMs && c.medianMs <= c.maxMs, `${k}: median (${JSON.stringify(c)})`);
      }

      // Targets: each listed with its limit; measured ones carry a value and PASS/FAIL, the
      // nginx ratios (no nginx in smoke mode) say why not.
      const targets = new Map(result.targets.map((t) => [t.key, t]));
      const measured = ['cross-added-p90', 'cross-bursty-added-p90', 'cpu-client-sidecar', 'cpu-gateway', 'cpu-app-sidecar', 'rss-sidecar', 'rss-cluster', 'cli-get-svc', 'cli-status', 'cli-help'];
      if (rows.get('dapr-invoke')!.available) measured.push('dapr-cpu-vs-proxied');
      for (const k of [...measured, 'cross-vs-nginx3', 'cross-vs-nginx3-floor', 'same-vs-nginx2', 'dapr-cpu-vs-proxied']) {
        const t = targets.get(k);
        assert.ok(t && t.limit && t.what, `target ${k} listed`);
      }
      for (const k of measured) {
        const t = targets.get(k)!;
        assert.ok(finite(t.value) && typeof t.pass === 'boolean', `target ${k} measured (${JSON.stringify(t)})`);
        assert.ok(stdout.includes(`| ${t.what} | ${t.limit} |`), `target ${k} printed`);
      }
      for (const k of ['cross-vs-nginx3', 'cross-vs-nginx3-floor', 'same-vs-nginx2']) {
        const t = targets.get(k)!;
        assert.equal(t.pass, undefined);
        assert.ok(t.note, `${k}: says why it is not measured`);
      }
      assert.match(stdout, /\| (PASS|FAIL) \|$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
