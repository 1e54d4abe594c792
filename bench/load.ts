/**
 * The load generator, run as its own process by the harness (so its CPU is never charged to
 * the processes being measured, and it does not share their event loop).
 *
 *   node dist/bench/load.js '<LoadSpec JSON>'   → prints one LoadResult JSON line on stdout
 *
 * - `rate`: open-loop fixed rate over N keep-alive connections (undici Pool), latency of each
 *   request measured with hrtime from the moment it is issued to the end of its response body,
 *   kept exactly (no histogram rounding: autocannon's histogram has 1 ms resolution, too coarse
 *   for sub-millisecond differences).
 * - `closed`: closed-loop saturation with autocannon (N connections, each sends its next
 *   request when the previous answer arrived): throughput.
 * Requests cycle through `requests` (e.g. a state save then a get).
 */
import autocannon from 'autocannon';
import { Pool } from 'undici';

export interface LoadRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadSpec {
  mode: 'rate' | 'closed';
  /** http://127.0.0.1:port */
  origin: string;
  requests: LoadRequest[];
  connections: number;
  /** Requests per second (rate mode). */
  rate?: number;
  durationMs: number;
  /** Load before measuring (rate mode: at the same rate; closed mode: autocannon's warmup). */
  warmupMs?: number;
}

export interface LoadResult {
  mode: 'rate' | 'closed';
  durationMs: number;
  requests: number;
  ok: number;
  /** Non-2xx answers and transport errors. */
  errors: number;
  firstError?: string;
  rps: number;
  latencyMs?: { p50: number; p90: number; p99: number; max: number; mean: number };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

async function fixedRate(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.rate ?? 1000;
  const pool = new Pool(spec.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const reqs = spec.requests.map((r) => ({
    method: r.method,
    path: r.path,
    headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers },
    body: r.body,
  }));
  const run = (durationMs: number, record: boolean) =>
    new Promise<{ lat: Float64Array; n: number; ok: number; errors: number; firstError?: string; elapsed: number }>((resolve) => {
      const cap = Math.ceil((rate * durationMs) / 1000) + 16;
      const lat = new Float64Array(cap);
      let n = 0;
      let done = 0;
      let ok = 0;
      let errors = 0;
      let firstError: string | undefined;
      let finished = false;
      const total = Math.floor((rate * durationMs) / 1000);
      const t0 = process.hrtime.bigint();
      const complete = () => {
        if (finished || done < total || n < total) return;
        finished = true;
        resolve({ lat: lat.subarray(0, record ? done : 0), n, ok, errors, firstError, elapsed: Number(process.hrtime.bigint() - t0) / 1e6 });
      };
      const send = (i: number) => {
        const r = reqs[i % reqs.length];
        const start = process.hrtime.bigint();
        pool.request(r).then(
          async (res) => {
            await res.body.dump({ limit: Infinity }).catch(() => undefined);
            const ms = Number(process.hrtime.bigint() - start) / 1e6;
            if (res.statusCode >= 200 && res.statusCode < 300) ok++;
            else {
              errors++;
              firstError ??= `HTTP ${res.statusCode}`;
            }
            if (record) lat[done] = ms;
            done++;
            complete();
          },
          (err: Error) => {
            errors++;
            firstError ??= err.message;
            if (record) lat[done] = Number(process.hrtime.bigint() - start) / 1e6;
            done++;
            complete();
          },
        );
      };
      const tick = () => {
        const elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
        const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
        while (n < due) send(n++);
        if (n < total) setTimeout(tick, 1);
      };
      tick();
    });
  if (spec.warmupMs) await run(spec.warmupMs, false);
  const r = await run(spec.durationMs, true);
  await pool.close();
  const sorted = r.lat.slice().sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    mode: 'rate',
    durationMs: Math.round(r.elapsed),
    requests: r.n,
    ok: r.ok,
    errors: r.errors,
    firstError: r.firstError,
    rps: Math.round((r.n / r.elapsed) * 1000),
    latencyMs: {
      p50: round3(percentile(sorted, 50)),
      p90: round3(percentile(sorted, 90)),
      p99: round3(percentile(sorted, 99)),
      max: round3(sorted[sorted.length - 1] ?? NaN),
      mean: round3(sum / sorted.length),
    },
  };
}

async function closedLoop(spec: LoadSpec): Promise<LoadResult> {
  const opts: autocannon.Options = {
    url: spec.origin,
    connections: spec.connections,
    pipelining: 1,
    duration: spec.durationMs / 1000,
    requests: spec.requests.map((r) => ({
      method: r.method,
      path: r.path,
      headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers },
      body: r.body,
    })),
  };
  if (spec.warmupMs) (opts as { warmup?: unknown }).warmup = { connections: spec.connections, duration: spec.warmupMs / 1000 };
  const res = await autocannon(opts);
  const seconds = res.duration;
  const total = res.requests.total;
  const ok = res['2xx'];
  return {
    mode: 'closed',
    durationMs: Math.round(seconds * 1000),
    requests: total,
    ok,
    errors: total - ok + res.errors + res.timeouts,
    firstError: res.non2xx ? `${res.non2xx} non-2xx answers` : res.errors ? `${res.errors} errors` : undefined,
    rps: Math.round(ok / seconds),
  };
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const result = spec.mode === 'closed' ? await closedLoop(spec) : await fixedRate(spec);
process.stdout.write(JSON.stringify(result) + '\n');
