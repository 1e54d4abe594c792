/**
 * `npm run bench [-- --smoke] [-- --out FILE]`: what the mesh costs against a direct call and
 * against an nginx chain of the same hop count, on this machine, in one run.
 *
 * Starts everything as separate processes, as in production: three clusters with the real CLI
 * (`crossmesh up` under a temp CROSSMESH_HOME: control-plane, cluster-1, cluster-2), the bench
 * app (bench/app.ts) beside its sidecar in cluster-1 (`crossmesh run --detach`), a client-only
 * app (`sleep`) with a sidecar in cluster-1 and in cluster-2, and, when `nginx` is installed,
 * three chained nginx servers in front of the same app. The load generator (load.ts) runs in
 * its own process for each measurement.
 *
 * Rows: direct, same-cluster via mesh, cross-cluster via mesh, Dapr invoke cross-cluster,
 * state save+get (sqlite), nginx chain. Shapes: fixed rate (1000 req/s, 16 connections, 1 KB
 * POST body) → p50/p90/p99 and the latency added over direct; closed loop (32 connections,
 * autocannon) → req/s and the ratio to the nginx chain. CPU (utime+stime from /proc/PID/stat)
 * and RSS (VmRSS, peak VmHWM from /proc/PID/status) of each sidecar / gateway process.
 *
 * Writes bench/results/latest.json (smoke: bench/results/smoke.json) unless --out is given.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadRequest, LoadResult, LoadSpec } from './load.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'crossmesh.js');
const LOAD = fileURLToPath(new URL('./load.js', import.meta.url));
const APP = fileURLToPath(new URL('./app.js', import.meta.url));
const HOOK = new URL('./profile-hook.js', import.meta.url).href;

const args = process.argv.slice(2);
const SMOKE = args.includes('--smoke');
const outIdx = args.indexOf('--out');
const OUT = outIdx >= 0 ? args[outIdx + 1] : join(ROOT, 'bench', 'results', SMOKE ? 'smoke.json' : 'latest.json');
const NO_NGINX = args.includes('--no-nginx') || SMOKE;
const ONLY = (() => {
  const i = args.indexOf('--only');
  return i >= 0 ? new Set(args[i + 1].split(',')) : undefined;
})();
/** Keep the processes up after measuring (for profiling by hand); Ctrl-C ends. */
const HOLD = args.includes('--hold');
/** `--node-options "..."`: NODE_OPTIONS for the cluster and sidecar processes (e.g. V8 heap flags), to compare. */
const NODE_OPTS = (() => {
  const i = args.indexOf('--node-options');
  return i >= 0 ? args[i + 1] : undefined;
})();
/** `--profile DIR`: clusters and sidecars run with `node --cpu-prof` (profiles written to DIR when they stop). */
const PROFILE = (() => {
  const i = args.indexOf('--profile');
  return i >= 0 ? args[i + 1] : undefined;
})();

const RATE = SMOKE ? 200 : 1000;
const RATE_CONNECTIONS = 16;
const CLOSED_CONNECTIONS = 32;
const MEASURE_MS = SMOKE ? 1000 : 5000;
const WARMUP_MS = SMOKE ? 0 : 1000;
const BODY_1KB = JSON.stringify({ data: 'x'.repeat(1024 - 12) });
const STATE_BODY = JSON.stringify([{ key: 'bench', value: { data: 'x'.repeat(1000) } }]);
const NS = 'bench';
const APP_ID = 'benchapp';
const MESH_HOST = `${APP_ID}.${NS}:3000`;
const DIRECT_ID = 'benchdirect';
const DIRECT_HOST = `${DIRECT_ID}.${NS}:3000`;
const CLK_TCK = 100;

const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

// ---------------------------------------------------------------------------------------------
// processes

const home = mkdtempSync(join(tmpdir(), 'crossmesh-bench-'));
const children: ChildProcess[] = [];
let nginxPid: number | undefined;

function cli(argv: string[], input = ''): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...argv], {
    env: { ...process.env, CROSSMESH_HOME: home, CROSSMESH_CLUSTER: '', ...(PROFILE || NODE_OPTS ? { NODE_OPTIONS: [NODE_OPTS, PROFILE ? `--import ${HOOK}` : ''].filter(Boolean).join(' ') } : {}),
      ...(PROFILE ? { CROSSMESH_BENCH_PROFILE_DIR: PROFILE } : {}) },
    input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(argv: string[], input = ''): string {
  const r = cli(argv, input);
  if (r.code !== 0) throw new Error(`crossmesh ${argv.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface SidecarRecord {
  pid: number;
  appPid: number;
  ports: { outbound: number; http: number; inbound?: number; app?: number };
  env: Record<string, string>;
}

function sidecarRecord(cluster: string, appId: string): SidecarRecord {
  const dir = join(home, 'apps', cluster, NS, appId);
  const inst = readdirSync(dir)[0];
  return JSON.parse(readFileSync(join(dir, inst, 'sidecar.json'), 'utf8')) as SidecarRecord;
}

function clusterPid(name: string): number {
  return (JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')) as { pid: number }).pid;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
}

async function call(port: number, path: string, init: { method?: string; body?: string; host?: string } = {}): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (init.host) headers.host = init.host;
  // node's fetch refuses a Host header: use node:http for mesh names.
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

function nginxBinary(): string | undefined {
  for (const p of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'])) {
    if (p && existsSync(join(p, 'nginx'))) return join(p, 'nginx');
  }
  return undefined;
}

async function startNginx(bin: string, appPort: number): Promise<{ port: number; pid: number }> {
  const dir = join(home, 'nginx');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const ports = [await freePort(), await freePort(), await freePort()];
  const upstreams = [ports[1], ports[2], appPort];
  const servers = ports
    .map(
      (p, i) => `
  upstream hop${i} { server 127.0.0.1:${upstreams[i]}; keepalive 64; }
  server {
    listen 127.0.0.1:${p};
    location / {
      proxy_pass http://hop${i};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`,
    )
    .join('\n');
  const conf = `worker_processes auto;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${servers}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  children.push(child);
  nginxPid = child.pid;
  await eventually('nginx chain', async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${err}`);
    return (await call(ports[0], '/echo')).status === 200;
  }, 10_000);
  return { port: ports[0], pid: child.pid! };
}

function cleanup(): void {
  if (nginxPid !== undefined) {
    try { process.kill(nginxPid, 'SIGTERM'); } catch { /* gone */ }
  }
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  cli(['down', '--purge']);
  rmSync(home, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// /proc accounting

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

function memKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** nginx: master + workers (children of the master). */
function withChildren(pid: number): number[] {
  const out = [pid];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

interface Proc {
  name: string;
  pids: number[];
}

interface ProcUsage {
  name: string;
  /** CPU time per request of the measurement (µs). */
  cpuUsPerRequest?: number;
  /** CPU over the measurement, in % of one core. */
  cpuPercent: number;
  rssMb: number;
  peakRssMb: number;
}

// ---------------------------------------------------------------------------------------------
// measurements

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOAD, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited ${code}: ${err}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as LoadResult);
      } catch {
        reject(new Error(`load generator printed no result: ${out} ${err}`));
      }
    });
  });
}

async function measure(spec: LoadSpec, procs: Proc[]): Promise<{ load: LoadResult; usage: ProcUsage[] }> {
  const before = procs.map((p) => p.pids.reduce((s, pid) => s + cpuTicks(pid), 0));
  const t0 = process.hrtime.bigint();
  const load = await runLoad(spec);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const usage: ProcUsage[] = procs.map((p, i) => ({
    name: p.name,
    cpuUsPerRequest: Math.round(((p.pids.reduce((s, pid) => s + cpuTicks(pid), 0) - before[i]) / CLK_TCK) * 1e6 / Math.max(1, load.requests + (spec.warmupMs ? (spec.mode === 'rate' ? ((spec.rate ?? 0) * spec.warmupMs) / 1000 : load.rps * (spec.warmupMs / 1000)) : 0))),
    // The load child's lifetime includes its start and warmup: CPU is averaged over all of it.
    cpuPercent: Math.round((((p.pids.reduce((s, pid) => s + cpuTicks(pid), 0) - before[i]) / CLK_TCK) / seconds) * 1000) / 10,
    rssMb: Math.round(p.pids.reduce((s, pid) => s + memKb(pid, 'VmRSS'), 0) / 102.4) / 10,
    peakRssMb: Math.round(p.pids.reduce((s, pid) => s + memKb(pid, 'VmHWM'), 0) / 102.4) / 10,
  }));
  return { load, usage };
}

interface Scenario {
  key: string;
  title: string;
  hops: string;
  origin: string;
  requests: LoadRequest[];
  procs: Proc[];
  available: boolean;
  note?: string;
}

interface Row {
  key: string;
  title: string;
  hops: string;
  available: boolean;
  note?: string;
  rate?: LoadResult & { addedMs?: { p50: number; p90: number; p99: number } };
  closed?: LoadResult & { vsNginx?: number };
  processes?: { rate: ProcUsage[]; closed: ProcUsage[] };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  log(`CROSSMESH_HOME=${home}${SMOKE ? ' (smoke mode)' : ''}`);
  must(['up', '--clusters', 'control-plane,cluster-1,cluster-2', '--api-port', '0', '--gateway-port', '0']);
  for (const c of ['cluster-1', 'cluster-2']) must(['--cluster', c, 'create', 'namespace', NS]);
  // The state store, before the sidecars start (Dapr loads components at start).
  must(['--cluster', 'cluster-2', 'apply', '-n', NS, '-f', '-'], `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: ${join(home, 'state.db')}
`);
  must(['--cluster', 'cluster-1', 'run', '-n', NS, '--app-id', APP_ID, '--app-port', '3000', '--detach', '--', process.execPath, APP]);
  for (const c of ['cluster-1', 'cluster-2']) must(['--cluster', c, 'run', '-n', NS, '--app-id', 'client', '--detach', '--', 'sleep', '86400']);
  must(['--cluster', 'cluster-1', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  name: ${APP_ID}
spec:
  serviceAccountName: '*'
  pathRewrite:
    from: '^/${APP_ID}/?'
    to: '/'
  rules:
    - portNumber: 3000
      path: '/${APP_ID}'
      pathType: Prefix
`);
  must(['--cluster', 'cluster-2', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: ${APP_ID}
spec:
  lbType: FailOver
  targets:
    - clusterKey: default/default/default/cluster-1
`);
  const app = sidecarRecord('cluster-1', APP_ID);
  // Design alternative measured alongside: the gateway forwards straight to the app (no app
  // sidecar inbound hop), via a Service whose Endpoints name APP_PORT itself.
  must(['--cluster', 'cluster-1', 'apply', '-n', NS, '-f', '-'], `apiVersion: v1
kind: Service
metadata:
  name: ${DIRECT_ID}
spec:
  ports:
    - port: 3000
      targetPort: ${app.env.APP_PORT}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ${DIRECT_ID}
subsets:
  - addresses:
      - ip: 127.0.0.1
    ports:
      - port: ${app.env.APP_PORT}
---
apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  name: ${DIRECT_ID}
spec:
  serviceAccountName: '*'
  pathRewrite:
    from: '^/${DIRECT_ID}/?'
    to: '/'
  rules:
    - portNumber: 3000
      path: '/${DIRECT_ID}'
      pathType: Prefix
`);
  must(['--cluster', 'cluster-2', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: ${DIRECT_ID}
spec:
  lbType: FailOver
  targets:
    - clusterKey: default/default/default/cluster-1
`);
  const c1 = sidecarRecord('cluster-1', 'client');
  const c2 = sidecarRecord('cluster-2', 'client');
  const appPort = Number(app.env.APP_PORT);
  const gatewayPid = clusterPid('cluster-1');
  await eventually('same-cluster route', async () => (await call(c1.ports.outbound, '/echo', { host: MESH_HOST })).status === 200);
  await eventually('cross-cluster route', async () => (await call(c2.ports.outbound, '/echo', { host: MESH_HOST })).status === 200, 20_000);
  await eventually('cross-cluster route to the app without its sidecar', async () => (await call(c2.ports.outbound, '/echo', { host: DIRECT_HOST })).status === 200, 20_000);

  const daprHttp = Number(c2.env.DAPR_HTTP_PORT);
  const invokePath = `/v1.0/invoke/${APP_ID}.${NS}/method/echo`;
  const invokeProbe = await call(daprHttp, invokePath, { method: 'POST', body: BODY_1KB }).catch((e: Error) => ({ status: 0, text: e.message }));
  const invokeOk = invokeProbe.status === 200;
  let stateOk = false;
  let stateNote = '';
  try {
    const save = await call(daprHttp, '/v1.0/state/statestore', { method: 'POST', body: STATE_BODY });
    const get = await call(daprHttp, '/v1.0/state/statestore/bench');
    stateOk = save.status >= 200 && save.status < 300 && get.status === 200;
    if (!stateOk) stateNote = `save ${save.status}, get ${get.status}: ${(save.status >= 300 ? save.text : get.text).slice(0, 160)}`;
  } catch (err) {
    stateNote = (err as Error).message;
  }

  const nginx = NO_NGINX ? undefined : nginxBinary();
  let nginxChain: { port: number; pid: number } | undefined;
  let nginxNote = SMOKE ? 'skipped in smoke mode' : 'nginx is not installed (apt-get install -y nginx-light); row skipped';
  if (nginx && !ONLY?.has('no-nginx')) {
    try {
      nginxChain = await startNginx(nginx, appPort);
    } catch (err) {
      nginxNote = `nginx did not start: ${(err as Error).message}`;
    }
  }

  const post: LoadRequest = { method: 'POST', path: '/echo', body: BODY_1KB };
  const mesh = (p: LoadRequest): LoadRequest => ({ ...p, headers: { host: MESH_HOST } });
  const P = {
    app: { name: 'app', pids: [app.appPid] },
    appSidecar: { name: 'app sidecar (cluster-1)', pids: [app.pid] },
    c1Sidecar: { name: 'client sidecar (cluster-1)', pids: [c1.pid] },
    c2Sidecar: { name: 'client sidecar (cluster-2)', pids: [c2.pid] },
    gateway: { name: 'cluster-1 process (gateway)', pids: [gatewayPid] },
  };
  const scenarios: Scenario[] = [
    { key: 'direct', title: 'direct: client → app', hops: '0', origin: `http://127.0.0.1:${appPort}`, requests: [post], procs: [P.app], available: true },
    {
      key: 'same-cluster', title: 'same cluster via mesh: client sidecar → app sidecar → app', hops: '2',
      origin: `http://127.0.0.1:${c1.ports.outbound}`, requests: [mesh(post)], procs: [P.c1Sidecar, P.appSidecar, P.app], available: true,
    },
    {
      key: 'cross-cluster', title: 'cross cluster via mesh: client sidecar → gateway → app sidecar → app', hops: '3',
      origin: `http://127.0.0.1:${c2.ports.outbound}`, requests: [mesh(post)], procs: [P.c2Sidecar, P.gateway, P.appSidecar, P.app], available: true,
    },
    {
      key: 'cross-cluster-no-app-sidecar', title: 'design alternative, cross cluster: client sidecar → gateway → app (no app sidecar hop)', hops: '2',
      origin: `http://127.0.0.1:${c2.ports.outbound}`, requests: [{ ...post, headers: { host: DIRECT_HOST } }], procs: [P.c2Sidecar, P.gateway, P.app], available: true,
      note: 'not a supported topology: the app sidecar is what registers the endpoint; measured to size the gain',
    },
    {
      key: 'dapr-invoke', title: 'Dapr invoke cross cluster: DAPR_HTTP_PORT → gateway → app sidecar → app', hops: '3',
      origin: `http://127.0.0.1:${daprHttp}`, requests: [{ ...post, path: invokePath }], procs: [P.c2Sidecar, P.gateway, P.appSidecar, P.app],
      available: invokeOk, note: invokeOk ? undefined : `not available yet (probe: ${invokeProbe.status} ${invokeProbe.text.slice(0, 160)})`,
    },
    {
      key: 'state', title: 'state save+get through the sidecar (sqlite)', hops: '1',
      origin: `http://127.0.0.1:${daprHttp}`,
      requests: [{ method: 'POST', path: '/v1.0/state/statestore', body: STATE_BODY }, { method: 'GET', path: '/v1.0/state/statestore/bench' }],
      procs: [P.c2Sidecar], available: stateOk, note: stateOk ? 'each save and each get counts as one request' : `not available yet (probe: ${stateNote})`,
    },
    {
      key: 'nginx-chain', title: 'nginx chain: nginx → nginx → nginx → app', hops: '3',
      origin: `http://127.0.0.1:${nginxChain?.port ?? 0}`, requests: [post],
      procs: nginxChain ? [{ name: 'nginx (master + workers)', pids: withChildren(nginxChain.pid) }, P.app] : [], available: nginxChain !== undefined,
      note: nginxChain ? undefined : nginxNote,
    },
  ];

  const rows: Row[] = [];
  for (const s of scenarios) {
    const row: Row = { key: s.key, title: s.title, hops: s.hops, available: s.available, note: s.note };
    rows.push(row);
    if (!s.available || (ONLY && !ONLY.has(s.key))) {
      if (s.available) row.note = 'not measured (--only)';
      row.available = row.available && !(ONLY && !ONLY.has(s.key));
      log(`${s.key}: ${row.note}`);
      continue;
    }
    log(`${s.key}: fixed rate ${RATE} req/s, ${RATE_CONNECTIONS} connections, ${MEASURE_MS} ms`);
    const rate = await measure({ mode: 'rate', origin: s.origin, requests: s.requests, connections: RATE_CONNECTIONS, rate: RATE, durationMs: MEASURE_MS, warmupMs: WARMUP_MS }, s.procs);
    log(`${s.key}: closed loop, ${CLOSED_CONNECTIONS} connections, ${MEASURE_MS} ms`);
    const closed = await measure({ mode: 'closed', origin: s.origin, requests: s.requests, connections: CLOSED_CONNECTIONS, durationMs: MEASURE_MS, warmupMs: WARMUP_MS }, s.procs);
    row.rate = rate.load;
    row.closed = closed.load;
    row.processes = { rate: rate.usage, closed: closed.usage };
    log(`${s.key}: p90 ${rate.load.latencyMs?.p90} ms, ${closed.load.rps} req/s${rate.load.errors + closed.load.errors ? `, errors ${rate.load.errors}+${closed.load.errors} (${rate.load.firstError ?? closed.load.firstError})` : ''}`);
  }

  const direct = rows.find((r) => r.key === 'direct')?.rate?.latencyMs;
  const nginxRps = rows.find((r) => r.key === 'nginx-chain')?.closed?.rps;
  for (const r of rows) {
    if (r.rate?.latencyMs && direct) {
      const l = r.rate.latencyMs;
      r.rate.addedMs = { p50: round(l.p50 - direct.p50), p90: round(l.p90 - direct.p90), p99: round(l.p99 - direct.p99) };
    }
    if (r.closed && nginxRps) r.closed.vsNginx = Math.round((r.closed.rps / nginxRps) * 100) / 100;
  }

  const cross = rows.find((r) => r.key === 'cross-cluster');
  const sidecarPeak = Math.max(
    ...(cross?.processes?.closed ?? []).filter((p) => p.name.includes('sidecar')).map((p) => p.peakRssMb),
    ...(cross?.processes?.rate ?? []).filter((p) => p.name.includes('sidecar')).map((p) => p.peakRssMb),
  );
  const targets = {
    addedP90AtFixedRate: { target: '<= 1.5 ms', value: cross?.rate?.addedMs?.p90, met: cross?.rate?.addedMs ? cross.rate.addedMs.p90 <= 1.5 : undefined },
    throughputVsNginx: { target: '>= 0.6x', value: cross?.closed?.vsNginx, met: cross?.closed?.vsNginx !== undefined ? cross.closed.vsNginx >= 0.6 : undefined },
    sidecarPeakRssMb: { target: '<= 60 MB', value: Number.isFinite(sidecarPeak) ? sidecarPeak : undefined, met: Number.isFinite(sidecarPeak) ? sidecarPeak <= 60 : undefined },
  };
  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    nginx: nginx ? spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr.trim() : undefined,
  };
  const result = {
    date: new Date().toISOString(),
    smoke: SMOKE,
    machine,
    settings: { fixedRate: RATE, rateConnections: RATE_CONNECTIONS, closedConnections: CLOSED_CONNECTIONS, measureMs: MEASURE_MS, warmupMs: WARMUP_MS, body: '1 KB POST, 1 KB reply' },
    rows,
    targets,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(table(rows) + '\n\n' + procTable(rows) + '\n\n' + targetLines(targets) + `\n\nmachine: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${machine.nginx ?? 'no nginx'}\nwritten: ${OUT} (${result.elapsedSeconds} s)\n`);
  if (HOLD) {
    log(`holding: app sidecar pid ${app.pid}, c2 sidecar pid ${c2.pid}, gateway pid ${gatewayPid}; origins: cross http://127.0.0.1:${c2.ports.outbound}; Ctrl-C ends`);
    const keep = setInterval(() => undefined, 1 << 30);
    await new Promise<void>((r) => process.once('SIGINT', () => r()));
    clearInterval(keep);
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const fmt = (x: number | undefined, d = 2) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));

function table(rows: Row[]): string {
  const lines = [
    '| scenario | proxy hops | p50 ms | p90 ms | p99 ms | added p50 / p90 / p99 ms | closed-loop req/s | vs nginx chain |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    if (!r.available || !r.rate || !r.closed) {
      lines.push(`| ${r.title} | ${r.hops} | ${r.note ?? 'not available yet'} | | | | | |`);
      continue;
    }
    const l = r.rate.latencyMs!;
    const a = r.rate.addedMs;
    lines.push(
      `| ${r.title} | ${r.hops} | ${fmt(l.p50)} | ${fmt(l.p90)} | ${fmt(l.p99)} | ${a ? `${fmt(a.p50)} / ${fmt(a.p90)} / ${fmt(a.p99)}` : '–'} | ${r.closed.rps.toLocaleString('en-US')} | ${r.closed.vsNginx !== undefined ? `${fmt(r.closed.vsNginx)}x` : '–'} |`,
    );
  }
  return lines.join('\n');
}

function procTable(rows: Row[]): string {
  const lines = ['| scenario | process | CPU % at fixed rate | CPU % closed loop | CPU µs/request (closed loop) | RSS MB | peak RSS MB |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    if (!r.processes) continue;
    r.processes.closed.forEach((c, i) => {
      const f = r.processes!.rate[i];
      lines.push(`| ${r.key} | ${c.name} | ${f.cpuPercent} | ${c.cpuPercent} | ${c.cpuUsPerRequest ?? '–'} | ${c.rssMb} | ${c.peakRssMb} |`);
    });
  }
  return lines.join('\n');
}

function targetLines(t: Record<string, { target: string; value: number | undefined; met: boolean | undefined }>): string {
  const names: Record<string, string> = {
    addedP90AtFixedRate: 'cross-cluster added p90 at 1000 req/s',
    throughputVsNginx: 'cross-cluster closed-loop req/s vs nginx chain',
    sidecarPeakRssMb: 'sidecar peak RSS (cross-cluster run)',
  };
  return Object.entries(t)
    .map(([k, v]) => `target ${names[k]}: ${v.target}, measured ${v.value ?? '–'}: ${v.met === undefined ? 'not measured' : v.met ? 'MET' : 'NOT MET'}`)
    .join('\n');
}

let exitCode = 0;
process.once('SIGINT', () => {
  if (HOLD) return;
  cleanup();
  process.exit(130);
});
try {
  await main();
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
  exitCode = 1;
} finally {
  cleanup();
}
process.exit(exitCode);
