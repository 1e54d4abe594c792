import { Agent, request as httpRequest } from 'node:http';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';

/** One request's outcome, times in ms since the load started. */
export interface Sample {
  t0: number;
  t1: number;
  status: number;
  /** Who served it (nodeapp's "from cluster: X"), when known. */
  cluster?: string;
  body: string;
}

export interface LoadResult {
  samples: Sample[];
  sent: number;
  failed: Sample[];
  /** performance.now() at t = 0 (to place faults on the same clock). */
  start: number;
}

/**
 * Open-loop bounded load: request i is sent at i / rate seconds whatever the earlier ones do
 * (a stalled target shows up as latency and failures, not as fewer requests), `total` in all.
 * `during(at)` runs beside it; `at()` is the load clock in ms.
 */
export async function fixedRateLoad(opts: {
  total: number;
  ratePerSec: number;
  send: () => Promise<{ status: number; body: string; cluster?: string }>;
  ok?: (s: Sample) => boolean;
  during?: (at: () => number) => Promise<void>;
}): Promise<LoadResult> {
  const start = performance.now();
  const at = () => performance.now() - start;
  const samples: Sample[] = [];
  const interval = 1000 / opts.ratePerSec;
  const inflight: Promise<void>[] = [];
  const driver = (async () => {
    for (let i = 0; i < opts.total; i++) {
      const due = i * interval - at();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      const t0 = at();
      inflight.push(
        opts.send().then(
          (r) => void samples.push({ t0, t1: at(), status: r.status, cluster: r.cluster, body: r.body }),
          (err) => void samples.push({ t0, t1: at(), status: 0, body: String(err) }),
        ),
      );
    }
    await Promise.all(inflight);
  })();
  await Promise.all([driver, opts.during?.(at)]);
  samples.sort((a, b) => a.t0 - b.t0);
  const ok = opts.ok ?? ((s: Sample) => s.status === 200);
  return { samples, sent: samples.length, failed: samples.filter((s) => !ok(s)), start };
}

/** A GET through an HTTP proxy (the app's sidecar outbound), as an app's client sends it. */
export function proxyGet(agent: Agent, proxyPort: number, url: string, timeoutMs = 20_000, proxyHost = '127.0.0.1'): Promise<{ status: number; body: string; cluster?: string }> {
  return proxyRequest(agent, { host: proxyHost, port: proxyPort }, 'GET', url, undefined, timeoutMs);
}

/** A request through an HTTP proxy; `cluster` is who answered (nodeapp's "cluster: X"). */
export function proxyRequest(agent: Agent, proxy: { host: string; port: number }, method: string, url: string, body?: string, timeoutMs = 20_000): Promise<{ status: number; body: string; cluster?: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? undefined : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest({ host: proxy.host, port: proxy.port, method, path: url, agent, timeout: timeoutMs, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, cluster: /cluster: (\S+)/.exec(text)?.[1]?.replace(/,$/, '') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`client timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/**
 * Recovery time after a fault at `from` (load clock): the end of the last request started at or
 * after `from - lookbackMs` (and before `until`) that failed, was not `expected`, or was slower
 * than `slowMs`, minus `from`; 0 when no request was affected.
 */
export function recoveryMs(samples: Sample[], from: number, until: number, slowMs: number, expected: (s: Sample) => boolean = () => true, lookbackMs = 0): number {
  let last = from;
  for (const s of samples) {
    if (s.t0 < from - lookbackMs || s.t0 >= until) continue;
    const bad = s.status !== 200 || !expected(s) || s.t1 - s.t0 > slowMs;
    if (bad && s.t1 > last) last = s.t1;
  }
  return Math.round(last - from);
}

/** Open sockets of a process (links in /proc/PID/fd that are socket:[...]). */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Resident set size of a process in MB (VmRSS). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

/** p99 of a short fault-free run (x4, at least 100 ms): the yardstick for "slow" during a fault. */
export async function baselineSlowMs(send: () => Promise<{ status: number; body: string; cluster?: string }>): Promise<number> {
  const base = await fixedRateLoad({ total: 100, ratePerSec: 100, send });
  if (base.failed.length) throw new Error(`the fault-free baseline failed ${base.failed.length} requests: ${JSON.stringify(base.failed.slice(0, 3))}`);
  return Math.max(100, 4 * percentile(base.samples.map((s) => s.t1 - s.t0), 99));
}

/** nodeapp's GlobalTrafficPolicy with these target clusters (weight 100 each). */
export const nodeappPolicy = (lbType: string, clusters: string[]) => `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: nodeapp}
spec:
  lbType: ${lbType}
  targets:
${clusters.map((c) => `  - {clusterKey: default/default/default/${c}, weight: 100}`).join('\n')}
`;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** `123 ms`, or `never` for Infinity/NaN. */
export const ms = (n: number) => (Number.isFinite(n) ? `${Math.round(n)} ms` : 'never');
