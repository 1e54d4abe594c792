/**
 * `npm run bench [-- --smoke] [-- --out FILE]`: what the mesh costs against a direct call and
 * against nginx chains of the same hop counts, on this machine, in one run, with the project's
 * performance targets checked against the figures of that run.
 *
 * Starts everything as separate processes, as in production: three clusters with the real CLI
 * (`crossmesh up` under a temp CROSSMESH_HOME: control-plane, cluster-1, cluster-2), the bench
 * app (bench/app.ts) beside its sidecar in cluster-1 (`crossmesh run --detach`), a client-only
 * app (`sleep`) with a sidecar in cluster-1 and in cluster-2, and, when `nginx` is installed,
 * one nginx (`worker_processes auto`, keepalive upstreams) serving a 3-hop and a 2-hop chain in
 * front of the same app. The load generator (load.ts) runs in its own process for each
 * measurement.
 *
 * That mesh runs mTLS, the default (the rows `same-cluster`, `cross-cluster`, ...). Beside it, a
 * second, isolated mesh in a CROSSMESH_HOME of its own, started with `crossmesh up
 * --insecure-plaintext` with the same apps and resources, gives the plaintext rows of the same
 * paths (`same-cluster-plaintext`, `cross-cluster-plaintext`, `cross-cluster-plaintext-bursty`);
 * each is measured right after its mTLS row, shape by shape. The `mtlsVsPlaintext` part of the
 * JSON (and the table after the main one) has the mTLS / plaintext req/s ratios, the added p90s
 * of both, path CPU, and the connections opened during each closed loop (the gateway's tunnel
 * counter and the app sidecar's inbound sockets: each is one TLS handshake in an mTLS row) to
 * show sessions are reused; the issue's two targets are in the targets table. With `--only`, the
 * plaintext mesh starts only when a plaintext row is named.
 *
 * Load shapes (each timed by load.ts, see there):
 *   fixed rate: 1000 req/s over 16 keep-alive connections, arrivals evenly spaced (connection k
 *     sends at t0 + (n*16 + k)/rate), 1 KB POST body, latency from write to full reply;
 *   bursty: the same 1000 req/s with all 16 connections firing together every 16 ms;
 *   closed loop: `wrk -t1 -c32 -d5s` (autocannon, with a warning, when wrk is missing).
 * Per process: CPU (utime+stime, /proc/PID/stat) over the measured window divided by the
 * requests of that window, RSS (VmRSS) and peak RSS (VmHWM, /proc/PID/status).
 * CLI start time: wall time of `crossmesh get svc` (against the running cluster), `crossmesh
 * status`, `crossmesh --help` and `node -e 0` (the floor), median of several runs each.
 *
 * Full mode installs wrk and nginx-light when missing (scripts/ensure-bench-deps.sh: root +
 * apt-get; `--no-install` skips it). `--smoke`: a few hundred requests per row, no nginx, no
 * install, every other row kind still measured (run by test/bench-smoke.test.ts).
 *
 * Writes bench/results/latest.json (smoke: bench/results/smoke.json) unless --out is given.
 */
import { pubsubRows, pubsubTable, type PubSubRow } from './pubsub.js';
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
const BARE_HOP = fileURLToPath(new URL('./bare-hop.js', import.meta.url));
const HOOK = new URL('./profile-hook.js', import.meta.url).href;
const DEPS = join(ROOT, 'scripts', 'ensure-bench-deps.sh');
const ORDERS_SERVER = join(ROOT, 'examples', 'grpc-orders', 'server.mjs');

const args = process.argv.slice(2);
const argValue = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SMOKE = args.includes('--smoke');
const OUT = argValue('--out') ?? join(ROOT, 'bench', 'results', SMOKE ? 'smoke.json' : 'latest.json');
const NO_NGINX = args.includes('--no-nginx') || SMOKE;
/** `--only KEY,...`: measure only these rows (keys as in the JSON; `cli` for the start-time rows, `pubsub` for the pub/sub rows). */
const ONLY = argValue('--only') ? new Set(argValue('--only')!.split(',')) : undefined;
/** Keep the processes up after measuring (for profiling by hand); Ctrl-C ends. */
const HOLD = args.includes('--hold');
/** `--node-options "..."`: NODE_OPTIONS for the cluster and sidecar processes (e.g. V8 heap flags), to compare. */
const NODE_OPTS = argValue('--node-options');
/** `--profile DIR`: clusters and sidecars run with the V8 CPU profiler (profiles written to DIR when they stop). */
const PROFILE = argValue('--profile');
/** `--autocannon`: closed loop with autocannon even when wrk is installed (to compare the two). */
const FORCE_AUTOCANNON = args.includes('--autocannon');
/** `--plaintext-first`: in each mTLS / plaintext pair, measure the plaintext row first (to see whether the order biases the pair). */
const PLAINTEXT_FIRST = args.includes('--plaintext-first');
/** `--no-install`: do not apt-get install wrk / nginx-light when missing. */
const NO_INSTALL = args.includes('--no-install') || SMOKE;

const RATE = SMOKE ? 200 : 1000;
const RATE_CONNECTIONS = 16;
const CLOSED_CONNECTIONS = 32;
const MEASURE_MS = SMOKE ? 1000 : 5000;
const WARMUP_MS = SMOKE ? 0 : 1000;
const CLI_RUNS = SMOKE ? 3 : 10;
const BODY_1KB = JSON.stringify({ data: 'x'.repeat(1024 - 12) });
const STATE_BODY = JSON.stringify([{ key: 'bench', value: { data: 'x'.repeat(1000) } }]);
const NS = 'bench';
const APP_ID = 'benchapp';
const MESH_HOST = `${APP_ID}.${NS}:3000`;
const CLK_TCK = 100;
const BURST = `${RATE_CONNECTIONS} at once every ${(RATE_CONNECTIONS * 1000) / RATE} ms`;
/**
 * The gRPC rows: examples/grpc-orders run with --app-protocol grpc in cluster-1 as app `orders`
 * (service port 50051), exported, called by NewOrder with a 1000-byte item (about the HTTP rows'
 * 1 KB body) directly and from cluster-2 through the mesh.
 */
const ORDERS_ID = 'orders';
const ORDERS_HOST = `${ORDERS_ID}.${NS}:50051`;
const ORDERS_ITEM = 'x'.repeat(1000);
const GRPC_ROWS = ['grpc-direct', 'grpc-cross'];

const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

// ---------------------------------------------------------------------------------------------
// processes

const home = mkdtempSync(join(tmpdir(), 'crossmesh-bench-'));
/**
 * The second, isolated mesh of the plaintext rows: the same three clusters, apps and resources in
 * a CROSSMESH_HOME of its own, started with `crossmesh up --insecure-plaintext` (sidecars and
 * gateway without TLS; its APIs stay HTTPS). Created only when a plaintext row is measured.
 */
const plainHome = mkdtempSync(join(tmpdir(), 'crossmesh-bench-plaintext-'));
const children: ChildProcess[] = [];
let nginxPid: number | undefined;

/** `h`: the CROSSMESH_HOME of the mesh (the mTLS one unless told). */
function cliEnv(h = home): NodeJS.ProcessEnv {
  // --profile: the plaintext mesh's profiles go to DIR/plaintext (same cluster and app names).
  const profileDir = PROFILE && h === plainHome ? join(PROFILE, 'plaintext') : PROFILE;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  return {
    ...process.env,
    CROSSMESH_HOME: h,
    CROSSMESH_CLUSTER: '',
    ...(PROFILE || NODE_OPTS ? { NODE_OPTIONS: [NODE_OPTS, PROFILE ? `--import ${HOOK}` : ''].filter(Boolean).join(' ') } : {}),
    ...(profileDir ? { CROSSMESH_BENCH_PROFILE_DIR: profileDir } : {}),
  };
}

function cli(argv: string[], input = '', h = home): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...argv], { env: cliEnv(h), input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(argv: string[], input = '', h = home): string {
  const r = cli(argv, input, h);
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
  /** The mesh mode the sidecar runs (mtls / plaintext). */
  identity?: { mode: 'mtls' | 'plaintext'; spiffeId?: string };
}

function sidecarRecord(cluster: string, appId: string, h = home): SidecarRecord {
  const dir = join(h, 'apps', cluster, NS, appId);
  const inst = readdirSync(dir)[0];
  return JSON.parse(readFileSync(join(dir, inst, 'sidecar.json'), 'utf8')) as SidecarRecord;
}

function clusterPid(name: string, h = home): number {
  return (JSON.parse(readFileSync(join(h, 'clusters', name, 'cluster.json'), 'utf8')) as { pid: number }).pid;
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

function findBinary(name: string): string | undefined {
  for (const p of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin', '/usr/local/nginx/sbin'])) {
    if (p && existsSync(join(p, name))) return join(p, name);
  }
  return undefined;
}

/** Full mode: wrk and nginx-light from Debian's packages when missing (root + apt-get), else a warning. */
function ensureDeps(): void {
  if (NO_INSTALL || (findBinary('wrk') && findBinary('nginx'))) return;
  spawnSync('sh', [DEPS], { stdio: ['ignore', 2, 2], timeout: 300_000 });
}

interface NginxChains {
  pid: number;
  /** Entry port of nginx → nginx → nginx → app. */
  port3: number;
  /** Entry port of nginx → nginx → app. */
  port2: number;
}

/** One nginx (master + `worker_processes auto`) serving both chains, keepalive upstreams. */
async function startNginx(bin: string, appPort: number): Promise<NginxChains> {
  const dir = join(home, 'nginx');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const three = [await freePort(), await freePort(), await freePort()];
  const two = [await freePort(), await freePort()];
  const chain = (name: string, ports: number[]) =>
    ports
      .map((p, i) => {
        const upstream = i + 1 < ports.length ? ports[i + 1] : appPort;
        return `
  upstream ${name}_${i} { server 127.0.0.1:${upstream}; keepalive 64; }
  server {
    listen 127.0.0.1:${p};
    location / {
      proxy_pass http://${name}_${i};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`;
      })
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
${chain('three', three)}
${chain('two', two)}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  children.push(child);
  nginxPid = child.pid;
  await eventually('nginx chains', async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${err}`);
    return (await call(three[0], '/echo')).status === 200 && (await call(two[0], '/echo')).status === 200;
  }, 10_000);
  return { pid: child.pid!, port3: three[0], port2: two[0] };
}

interface BareChains {
  /** Entry port of bare L7 → bare L4 pipe → bare L7 → app (the mesh path's shape). */
  port3: number;
  /** Entry port of bare L7 → bare L7 → app (the same-cluster path's shape). */
  port2: number;
  /** Per hop process: the 3-hop chain's, then the 2-hop chain's. */
  pids3: number[];
  pids2: number[];
  /** The 3-hop chain with mutual TLS 1.3 from the first L7 hop to the last, through the pipe; undefined when openssl is missing. */
  portTls?: number;
  pidsTls: number[];
  tlsNote?: string;
}

/** A self-signed P-256 certificate (its own CA) for the bare TLS chain, made with the openssl CLI. */
function bareTlsDir(): string | undefined {
  const dir = join(home, 'bare-tls');
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '2', '-subj', '/CN=bare', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=digitalSignature,keyCertSign', '-addext', 'extendedKeyUsage=serverAuth,clientAuth'], { encoding: 'utf8' });
  return r.status === 0 ? dir : undefined;
}

/** One reference hop process (bench/bare-hop.ts); resolves with its pid and port once it listens. */
function startBareHop(mode: 'l7' | 'l4', upstream: number, flags: string[] = [], tlsDir?: string): Promise<{ pid: number; port: number }> {
  const env = tlsDir ? { ...process.env, BARE_TLS_DIR: tlsDir } : process.env;
  const child = spawn(process.execPath, [BARE_HOP, mode, '0', String(upstream), ...flags], { stdio: ['ignore', 'pipe', 'pipe'], env });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve({ pid: child.pid!, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`bare ${mode} hop exited (${code}): ${err}`)));
  });
}

/** The reference chains of Node processes with no product feature (bench/bare-hop.ts). */
async function startBareChains(appPort: number): Promise<BareChains> {
  const appSide = await startBareHop('l7', appPort);
  const tunnel = await startBareHop('l4', appSide.port);
  const clientSide = await startBareHop('l7', tunnel.port);
  const second = await startBareHop('l7', appPort);
  const first = await startBareHop('l7', second.port);
  const chains: BareChains = { port3: clientSide.port, port2: first.port, pids3: [clientSide.pid, tunnel.pid, appSide.pid], pids2: [first.pid, second.pid], pidsTls: [] };
  const tlsDir = bareTlsDir();
  if (tlsDir) {
    const tlsApp = await startBareHop('l7', appPort, ['tls-in'], tlsDir);
    const tlsPipe = await startBareHop('l4', tlsApp.port);
    const tlsClient = await startBareHop('l7', tlsPipe.port, ['tls-up'], tlsDir);
    chains.portTls = tlsClient.port;
    chains.pidsTls = [tlsClient.pid, tlsPipe.pid, tlsApp.pid];
  } else {
    chains.tlsNote = 'openssl (the CLI) is not installed: no certificate for the bare TLS chain';
  }
  await eventually('bare Node chains', async () =>
    (await call(chains.port3, '/echo')).status === 200 && (await call(chains.port2, '/echo')).status === 200 && (chains.portTls === undefined || (await call(chains.portTls, '/echo')).status === 200), 10_000);
  return chains;
}

function cleanup(): void {
  if (nginxPid !== undefined) {
    try { process.kill(nginxPid, 'SIGTERM'); } catch { /* gone */ }
  }
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  cli(['down', '--purge']);
  if (plainStarted) cli(['down', '--purge'], '', plainHome);
  rmSync(home, { recursive: true, force: true });
  rmSync(plainHome, { recursive: true, force: true });
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
  /** Stable id used by the targets (client-sidecar, gateway, app-sidecar, app, ...). */
  id: string;
  name: string;
  pids: number[];
  /** Not on the request path (reported to show it stays idle; left out of the path's CPU sum). */
  offPath?: boolean;
}

interface ProcUsage {
  id: string;
  name: string;
  offPath?: boolean;
  /** CPU time per request of the measured window (µs). */
  cpuUsPerRequest: number;
  /** CPU over the measured window, in % of one core. */
  cpuPercent: number;
  rssMb: number;
  peakRssMb: number;
}

// ---------------------------------------------------------------------------------------------
// the meshes

/** The plaintext rows (measured on the --insecure-plaintext mesh). */
const PLAINTEXT_ROWS = ['cross-cluster-plaintext', 'cross-cluster-plaintext-bursty', 'same-cluster-plaintext'];
let plainStarted = false;

interface MeshSetup {
  home: string;
  plaintext: boolean;
  app: SidecarRecord;
  /** The client sidecar in cluster-1 (same-cluster calls) and in cluster-2 (cross-cluster calls). */
  c1: SidecarRecord;
  c2: SidecarRecord;
  appPort: number;
  /** cluster-1's process: its gateway carries the cross-cluster tunnels. */
  gatewayPid: number;
  /** The gRPC orders app in cluster-1 (the gRPC rows), when started. */
  orders?: SidecarRecord;
}

/**
 * One mesh under CROSSMESH_HOME `h`: control-plane, cluster-1, cluster-2 (`crossmesh up`, with
 * `--insecure-plaintext` for the plaintext mesh), the bench app in cluster-1, client-only apps in
 * cluster-1 and cluster-2, the app's ServiceExport, a GlobalTrafficPolicy and a sqlite state store
 * in cluster-2. Both meshes get exactly the same.
 */
async function startMesh(h: string, plaintext: boolean, withOrders = false): Promise<MeshSetup> {
  const tag = plaintext ? 'plaintext mesh' : 'mTLS mesh';
  log(`${tag}: starting (CROSSMESH_HOME=${h})`);
  if (plaintext) plainStarted = true;
  const m = (argv: string[], input = '') => must(argv, input, h);
  m(['up', '--clusters', 'control-plane,cluster-1,cluster-2', '--api-port', '0', '--gateway-port', '0', ...(plaintext ? ['--insecure-plaintext'] : [])]);
  for (const c of ['cluster-1', 'cluster-2']) m(['--cluster', c, 'create', 'namespace', NS]);
  // The state store, before the sidecars start (Dapr loads components at start).
  m(['--cluster', 'cluster-2', 'apply', '-n', NS, '-f', '-'], `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: ${join(h, 'state.db')}
`);
  m(['--cluster', 'cluster-1', 'run', '-n', NS, '--app-id', APP_ID, '--app-port', '3000', '--detach', '--', process.execPath, APP]);
  for (const c of ['cluster-1', 'cluster-2']) m(['--cluster', c, 'run', '-n', NS, '--app-id', 'client', '--detach', '--', 'sleep', '86400']);
  if (withOrders) {
    // The gRPC rows' app: exported whole (path '/', no rewrite: a gRPC method's path is its
    // name), reached from cluster-2 under the same FailOver policy shape as the bench app.
    m(['--cluster', 'cluster-1', 'run', '-n', NS, '--app-id', ORDERS_ID, '--app-port', '50051', '--app-protocol', 'grpc', '--detach', '--', process.execPath, ORDERS_SERVER]);
    m(['--cluster', 'cluster-1', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  name: ${ORDERS_ID}
spec:
  serviceAccountName: '*'
  rules:
    - portNumber: 50051
      path: '/'
      pathType: Prefix
`);
    m(['--cluster', 'cluster-2', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: ${ORDERS_ID}
spec:
  lbType: FailOver
  targets:
    - clusterKey: default/default/default/cluster-1
`);
  }
  m(['--cluster', 'cluster-1', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
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
  m(['--cluster', 'cluster-2', 'apply', '-n', NS, '-f', '-'], `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: ${APP_ID}
spec:
  lbType: FailOver
  targets:
    - clusterKey: default/default/default/cluster-1
`);
  const app = sidecarRecord('cluster-1', APP_ID, h);
  const c1 = sidecarRecord('cluster-1', 'client', h);
  const c2 = sidecarRecord('cluster-2', 'client', h);
  await eventually(`${tag}: same-cluster route`, async () => (await call(c1.ports.outbound, '/echo', { host: MESH_HOST })).status === 200);
  await eventually(`${tag}: cross-cluster route`, async () => (await call(c2.ports.outbound, '/echo', { host: MESH_HOST })).status === 200, 20_000);
  // The mode each sidecar reports (sidecar.json, what `status` shows) is checked, so a plaintext
  // row can never silently measure an mTLS mesh or the other way round.
  const want = plaintext ? 'plaintext' : 'mtls';
  const modes = [app, c1, c2].map((r) => r.identity?.mode ?? 'not reported');
  if (modes.some((x) => x !== want)) throw new Error(`${tag}: sidecars report mesh mode ${modes.join(', ')}, not ${want}`);
  log(`${tag}: up (sidecars: ${want})`);
  return { home: h, plaintext, app, c1, c2, appPort: Number(app.env.APP_PORT), gatewayPid: clusterPid('cluster-1', h), ...(withOrders ? { orders: sidecarRecord('cluster-1', ORDERS_ID, h) } : {}) };
}

/** The gateway's count of established mesh tunnels from cluster-2 (cluster-1's API /metrics, HTTPS with the context's CA). */
async function tunnelsEstablished(h: string): Promise<number | undefined> {
  try {
    const cfg = JSON.parse(readFileSync(join(h, 'config.json'), 'utf8')) as { contexts: Record<string, { server: string; token: string; ca?: string }> };
    const ctx = cfg.contexts['cluster-1'];
    const { request } = await import('node:https');
    const text = await new Promise<string>((resolve, reject) => {
      request(`${ctx.server}/metrics`, { ca: ctx.ca, headers: { authorization: `Bearer ${ctx.token}` } }, (r) => {
        let t = '';
        r.setEncoding('utf8');
        r.on('data', (d) => (t += d));
        r.on('end', () => (r.statusCode === 200 ? resolve(t) : reject(new Error(`/metrics ${r.statusCode}`))));
      }).on('error', reject).end();
    });
    const m = /crossmesh_gateway_tunnels_total\{[^}]*source_cluster="cluster-2"[^}]*result="established"[^}]*\} (\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return undefined;
  }
}

/** Established TCP connections whose local port is `port` (/proc/net/tcp and tcp6), by remote address. */
function connectionsTo(port: number): Set<string> {
  const out = new Set<string>();
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const c = line.trim().split(/\s+/);
      // sl local rem st ...; st 01 = ESTABLISHED
      if (c.length > 3 && c[3] === '01' && c[1].endsWith(`:${hex}`)) out.add(c[2]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// measurements

/** Runs load.ts; `onMeasure` when its measured window starts, resolves with its result line. */
function runLoad(spec: LoadSpec, onMeasure: () => void): Promise<{ load: LoadResult; endedAt: bigint }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOAD, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let pending = '';
    let err = '';
    let result: { load: LoadResult; endedAt: bigint } | undefined;
    let lastLine = '';
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (!line) continue;
        lastLine = line;
        if (line === '{"phase":"measure"}') onMeasure();
        else {
          try {
            result = { load: JSON.parse(line) as LoadResult, endedAt: process.hrtime.bigint() };
          } catch { /* not ours */ }
        }
      }
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited ${code}: ${err}`));
      if (!result) return reject(new Error(`load generator printed no result: ${lastLine} ${err}`));
      resolve(result);
    });
  });
}

/** Where a row's connections are counted (see ConnCount). */
interface ConnProbe {
  /** The app sidecar's inbound port: TCP connections into it. */
  inboundPort?: number;
  /** CROSSMESH_HOME of the mesh whose gateway (cluster-1) counts the row's tunnels. */
  tunnelsOf?: string;
}

/**
 * Connections opened while a row's load ran (sessions reused = a few per load run, never one
 * per request), counted from before the load process starts to after it ended: the warmup and
 * the measured run (the load generator opens its connections in the first milliseconds of
 * each, too fast to read a counter in between; with wrk, the warmup and the measured run are
 * two runs of 32 connections each, and a run's end cuts the exchanges in flight, whose upstream
 * connections go with them). The app sidecar's inbound carries the only TLS hop of the mesh
 * rows (client sidecar → app sidecar, through the gateway's tunnel across clusters), so each
 * connection opened there is one TLS handshake in the mTLS rows (full or resumed).
 */
interface ConnCount {
  /** Established connections into the app sidecar's inbound before the load started / after it ended. */
  inboundBefore: number;
  inboundAfter: number;
  /** Distinct connections into it seen while the load ran (sampled every 250 ms and at the end) that were not there before. */
  inboundOpened: number;
  /** Cross cluster: mesh tunnels the gateway established from cluster-2 while the load ran (exact: its /metrics counter). */
  tunnelsOpened?: number;
  /** Requests of the measured window (the warmup's come on top). */
  measuredRequests: number;
}

async function measure(spec: LoadSpec, procs: Proc[], probe?: ConnProbe): Promise<{ load: LoadResult; usage: ProcUsage[]; connections?: ConnCount }> {
  let before = procs.map(() => 0);
  let t0 = process.hrtime.bigint();
  const port = probe?.inboundPort;
  const atStart = port ? connectionsTo(port) : new Set<string>();
  const seen = new Set<string>();
  const sampler = port ? setInterval(() => { for (const c of connectionsTo(port)) seen.add(c); }, 250) : undefined;
  const tunnels0 = probe?.tunnelsOf ? await tunnelsEstablished(probe.tunnelsOf) : undefined;
  const { load, endedAt } = await runLoad(spec, () => {
    before = procs.map((p) => p.pids.reduce((s, pid) => s + cpuTicks(pid), 0));
    t0 = process.hrtime.bigint();
  });
  const seconds = Number(endedAt - t0) / 1e9;
  const usage: ProcUsage[] = procs.map((p, i) => {
    const cpuSeconds = (p.pids.reduce((s, pid) => s + cpuTicks(pid), 0) - before[i]) / CLK_TCK;
    return {
      id: p.id,
      name: p.name,
      ...(p.offPath ? { offPath: true } : {}),
      cpuUsPerRequest: Math.round((cpuSeconds * 1e6) / Math.max(1, load.requests)),
      cpuPercent: Math.round((cpuSeconds / seconds) * 1000) / 10,
      rssMb: Math.round(p.pids.reduce((s, pid) => s + memKb(pid, 'VmRSS'), 0) / 102.4) / 10,
      peakRssMb: Math.round(p.pids.reduce((s, pid) => s + memKb(pid, 'VmHWM'), 0) / 102.4) / 10,
    };
  });
  let connections: ConnCount | undefined;
  if (sampler) clearInterval(sampler);
  if (probe) {
    const atEnd = port ? connectionsTo(port) : new Set<string>();
    for (const c of atEnd) seen.add(c);
    const tunnels1 = probe.tunnelsOf ? await tunnelsEstablished(probe.tunnelsOf) : undefined;
    connections = {
      inboundBefore: atStart.size,
      inboundAfter: atEnd.size,
      inboundOpened: [...seen].filter((c) => !atStart.has(c)).length,
      ...(tunnels1 !== undefined && tunnels0 !== undefined ? { tunnelsOpened: tunnels1 - tunnels0 } : {}),
      measuredRequests: load.requests,
    };
  }
  return { load, usage, connections };
}

type Shape = 'rate' | 'burst' | 'closed';

interface Scenario {
  key: string;
  title: string;
  hops: string;
  origin: string;
  requests: LoadRequest[];
  procs: Proc[];
  available: boolean;
  note?: string;
  shapes: Shape[];
  /** Count the connections of each measured window (mesh rows). */
  conns?: ConnProbe;
  /** Dapr gRPC state calls instead of HTTP requests. */
  grpc?: LoadSpec['grpc'];
}

type Added = { p50: number; p90: number; p99: number };

interface Row {
  key: string;
  title: string;
  hops: string;
  available: boolean;
  note?: string;
  /** Fixed rate, evenly spaced arrivals. */
  rate?: LoadResult & { addedMs?: Added };
  /** Fixed rate, all connections at once every connections/rate. */
  burst?: LoadResult & { addedMs?: Added };
  closed?: LoadResult & { vsNginx2hop?: number; vsNginx3hop?: number; vsGrpcDirect?: number };
  processes?: Partial<Record<Shape, ProcUsage[]>>;
  /** Connections opened during each measured window (mesh rows): sessions reused, not one per request. */
  connections?: Partial<Record<Shape, ConnCount>>;
}

interface CliTiming {
  key: string;
  command: string;
  runs: number;
  failures: number;
  firstFailure?: string;
  medianMs: number;
  minMs: number;
  maxMs: number;
  samplesMs: number[];
}

interface Target {
  key: string;
  what: string;
  limit: string;
  /** The measured value (undefined: not measured in this run). */
  value?: number;
  unit: string;
  /** undefined: not measured (see note). */
  pass?: boolean;
  note?: string;
}

/** Wall time of one command, median over `runs` (after one run not counted: disk cache). */
function timeCommand(key: string, label: string, argv: string[], env: NodeJS.ProcessEnv, runs: number): CliTiming {
  const samples: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  for (let i = 0; i <= runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) {
      failures++;
      firstFailure ??= `exit ${r.status}: ${(r.stderr || r.stdout || String(r.error ?? '')).trim().slice(0, 200)}`;
    }
    if (i > 0) samples.push(Math.round(ms * 10) / 10);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { key, command: label, runs, failures, firstFailure, medianMs: Math.round(median * 10) / 10, minMs: sorted[0], maxMs: sorted[sorted.length - 1], samplesMs: samples };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  log(`CROSSMESH_HOME=${home}${SMOKE ? ' (smoke mode)' : ''}`);
  ensureDeps();
  const wrk = FORCE_AUTOCANNON ? undefined : findBinary('wrk');
  const closedTool = wrk ? 'wrk' : 'autocannon';
  const toolWarning = wrk
    ? undefined
    : FORCE_AUTOCANNON
      ? 'closed loop with autocannon (--autocannon): a Node load generator takes a core from the system under test on 2 cores; req/s ratios are distorted'
      : 'WARNING: wrk is not installed (apt-get install -y wrk): closed loop falls back to autocannon, a Node load generator that takes a core from the system under test on 2 cores; req/s ratios are distorted';
  if (toolWarning) log(toolWarning);

  const wantGrpc = !ONLY || GRPC_ROWS.some((k) => ONLY.has(k));
  const mtlsMesh = await startMesh(home, false, wantGrpc);
  const { app, c1, c2, appPort, gatewayPid } = mtlsMesh;
  // The plaintext mesh, only when a plaintext row is to be measured.
  const wantPlain = !ONLY || PLAINTEXT_ROWS.some((k) => ONLY.has(k));
  const plain = wantPlain ? await startMesh(plainHome, true) : undefined;

  const daprHttp = Number(c2.env.DAPR_HTTP_PORT);
  const daprGrpc = Number(c2.env.DAPR_GRPC_PORT ?? 0);
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

  // The gRPC rows: one call each way must succeed before a row is measured; until then the row
  // says what the call answered (a mesh without the HTTP/2 path fails here, not in the middle).
  const orders = mtlsMesh.orders;
  const ordersAppPort = Number(orders?.env.APP_PORT ?? 0);
  const grpcDirectProbe = orders ? await probeOrders(`127.0.0.1:${ordersAppPort}`, undefined, 10_000) : 'not measured (--only)';
  const grpcCrossProbe = orders ? await probeOrders(`127.0.0.1:${c2.ports.outbound}`, ORDERS_HOST, 20_000) : 'not measured (--only)';
  if (orders) {
    log(`grpc-direct: probe ${grpcDirectProbe ?? 'ok'}`);
    log(`grpc-cross: probe ${grpcCrossProbe ?? 'ok'}`);
  }

  const nginx = NO_NGINX ? undefined : findBinary('nginx');
  let chains: NginxChains | undefined;
  let nginxNote = SMOKE ? 'skipped in smoke mode' : NO_NGINX ? 'skipped (--no-nginx)' : 'nginx is not installed (apt-get install -y nginx-light); row skipped';
  const wantNginx = !ONLY || ONLY.has('nginx-chain') || ONLY.has('nginx-chain-2hop');
  if (nginx && wantNginx) {
    try {
      chains = await startNginx(nginx, appPort);
    } catch (err) {
      nginxNote = `nginx did not start: ${(err as Error).message}`;
    }
  }

  // The reference chains of bare Node hops: what one Node process per hop costs on this machine.
  const wantBare = !ONLY || ONLY.has('node-bare-chain') || ONLY.has('node-bare-chain-2hop') || ONLY.has('node-bare-chain-mtls');
  let bare: BareChains | undefined;
  let bareNote = 'not measured (--only)';
  if (wantBare) {
    try {
      bare = await startBareChains(appPort);
    } catch (err) {
      bareNote = `bare hops did not start: ${(err as Error).message}`;
    }
  }

  const post: LoadRequest = { method: 'POST', path: '/echo', body: BODY_1KB };
  const mesh = (p: LoadRequest): LoadRequest => ({ ...p, headers: { host: MESH_HOST } });
  const P = {
    app: { id: 'app', name: 'app', pids: [app.appPid] },
    appSidecar: { id: 'app-sidecar', name: 'app sidecar (cluster-1)', pids: [app.pid] },
    c1Sidecar: { id: 'client-sidecar', name: 'client sidecar (cluster-1)', pids: [c1.pid] },
    c2Sidecar: { id: 'client-sidecar', name: 'client sidecar (cluster-2)', pids: [c2.pid] },
    gateway: { id: 'gateway', name: 'gateway (cluster-1 process)', pids: [gatewayPid] },
    cluster2: { id: 'cluster-2', name: 'cluster-2 process', pids: [clusterPid('cluster-2')], offPath: true },
    controlPlane: { id: 'control-plane', name: 'control-plane process', pids: [clusterPid('control-plane')], offPath: true },
    nginx: { id: 'nginx', name: 'nginx (master + workers)', pids: chains ? withChildren(chains.pid) : [] },
    bareL7Client: { id: 'bare-l7-client', name: 'bare L7 hop (client side)', pids: bare ? [bare.pids3[0]] : [] },
    bareL4: { id: 'bare-l4', name: 'bare L4 pipe', pids: bare ? [bare.pids3[1]] : [] },
    bareL7App: { id: 'bare-l7-app', name: 'bare L7 hop (app side)', pids: bare ? [bare.pids3[2]] : [] },
    bareL7First: { id: 'bare-l7-client', name: 'bare L7 hop (first)', pids: bare ? [bare.pids2[0]] : [] },
    bareL7Second: { id: 'bare-l7-app', name: 'bare L7 hop (second)', pids: bare ? [bare.pids2[1]] : [] },
    bareTlsClient: { id: 'bare-l7-client', name: 'bare L7 hop, TLS client (client side)', pids: bare?.pidsTls.length ? [bare.pidsTls[0]] : [] },
    bareTlsPipe: { id: 'bare-l4', name: 'bare L4 pipe (TLS inside)', pids: bare?.pidsTls.length ? [bare.pidsTls[1]] : [] },
    bareTlsApp: { id: 'bare-l7-app', name: 'bare L7 hop, TLS server (app side)', pids: bare?.pidsTls.length ? [bare.pidsTls[2]] : [] },
    ordersApp: { id: 'app', name: 'orders app (gRPC, cluster-1)', pids: orders ? [orders.appPid] : [] },
    ordersSidecar: { id: 'app-sidecar', name: 'orders app sidecar (cluster-1)', pids: orders ? [orders.pid] : [] },
  } satisfies Record<string, Proc>;
  const crossProcs = [P.c2Sidecar, P.gateway, P.appSidecar, P.app, P.cluster2, P.controlPlane];
  // The plaintext mesh's processes: the same roles, so the same ids in the JSON.
  const PP = plain && {
    app: { id: 'app', name: 'app (plaintext mesh)', pids: [plain.app.appPid] },
    appSidecar: { id: 'app-sidecar', name: 'app sidecar (cluster-1, plaintext mesh)', pids: [plain.app.pid] },
    c1Sidecar: { id: 'client-sidecar', name: 'client sidecar (cluster-1, plaintext mesh)', pids: [plain.c1.pid] },
    c2Sidecar: { id: 'client-sidecar', name: 'client sidecar (cluster-2, plaintext mesh)', pids: [plain.c2.pid] },
    gateway: { id: 'gateway', name: 'gateway (cluster-1 process, plaintext mesh)', pids: [plain.gatewayPid] },
    cluster2: { id: 'cluster-2', name: 'cluster-2 process (plaintext mesh)', pids: [clusterPid('cluster-2', plain.home)], offPath: true },
    controlPlane: { id: 'control-plane', name: 'control-plane process (plaintext mesh)', pids: [clusterPid('control-plane', plain.home)], offPath: true },
  } satisfies Record<string, Proc>;
  const plainCross = PP ? [PP.c2Sidecar, PP.gateway, PP.appSidecar, PP.app, PP.cluster2, PP.controlPlane] : [];
  const plainNote = 'not measured (--only: the plaintext mesh was not started)';
  // Connections counted during each measured window (TLS sessions reused, never one handshake
  // per request): into the app sidecar's inbound (the one TLS hop of either path), and, cross
  // cluster, the gateway's established tunnels (one per client sidecar → app sidecar connection).
  const inboundOf = (m: MeshSetup) => m.app.ports.inbound;
  const both: Shape[] = ['rate', 'closed'];
  const scenarios: Scenario[] = [
    { key: 'direct', title: 'direct: client → app', hops: '0', origin: `http://127.0.0.1:${appPort}`, requests: [post], procs: [P.app], available: true, shapes: both },
    {
      key: 'direct-bursty', title: `direct, bursty arrivals (${BURST})`, hops: '0',
      origin: `http://127.0.0.1:${appPort}`, requests: [post], procs: [P.app], available: true, shapes: ['burst'],
    },
    {
      key: 'same-cluster', title: 'same cluster via mesh, mTLS: client sidecar → app sidecar → app', hops: '2',
      origin: `http://127.0.0.1:${c1.ports.outbound}`, requests: [mesh(post)], procs: [P.c1Sidecar, P.appSidecar, P.app], available: true, shapes: both,
      conns: { inboundPort: inboundOf(mtlsMesh) },
    },
    {
      key: 'same-cluster-plaintext', title: 'same cluster via mesh, plaintext (--insecure-plaintext): client sidecar → app sidecar → app', hops: '2',
      origin: `http://127.0.0.1:${plain?.c1.ports.outbound ?? 0}`, requests: [mesh(post)], procs: PP ? [PP.c1Sidecar, PP.appSidecar, PP.app] : [],
      available: plain !== undefined, note: plain ? undefined : plainNote, shapes: both, conns: plain && { inboundPort: inboundOf(plain) },
    },
    {
      key: 'cross-cluster', title: 'cross cluster via mesh, mTLS: client sidecar → gateway → app sidecar → app', hops: '3',
      origin: `http://127.0.0.1:${c2.ports.outbound}`, requests: [mesh(post)], procs: crossProcs, available: true, shapes: both,
      conns: { inboundPort: inboundOf(mtlsMesh), tunnelsOf: home },
    },
    {
      key: 'cross-cluster-plaintext', title: 'cross cluster via mesh, plaintext (--insecure-plaintext): client sidecar → gateway → app sidecar → app', hops: '3',
      origin: `http://127.0.0.1:${plain?.c2.ports.outbound ?? 0}`, requests: [mesh(post)], procs: plainCross,
      available: plain !== undefined, note: plain ? undefined : plainNote, shapes: both, conns: plain && { inboundPort: inboundOf(plain), tunnelsOf: plain.home },
    },
    {
      key: 'cross-cluster-bursty', title: `cross cluster via mesh, mTLS, bursty arrivals (${BURST})`, hops: '3',
      origin: `http://127.0.0.1:${c2.ports.outbound}`, requests: [mesh(post)], procs: crossProcs, available: true, shapes: ['burst'],
      conns: { inboundPort: inboundOf(mtlsMesh), tunnelsOf: home },
    },
    {
      key: 'cross-cluster-plaintext-bursty', title: `cross cluster via mesh, plaintext, bursty arrivals (${BURST})`, hops: '3',
      origin: `http://127.0.0.1:${plain?.c2.ports.outbound ?? 0}`, requests: [mesh(post)], procs: plainCross,
      available: plain !== undefined, note: plain ? undefined : plainNote, shapes: ['burst'], conns: plain && { inboundPort: inboundOf(plain), tunnelsOf: plain.home },
    },
    {
      key: 'dapr-invoke', title: 'Dapr invoke cross cluster, mTLS: DAPR_HTTP_PORT → gateway → app sidecar → app', hops: '3',
      origin: `http://127.0.0.1:${daprHttp}`, requests: [{ ...post, path: invokePath }], procs: crossProcs, shapes: both,
      available: invokeOk, note: invokeOk ? undefined : `not available (probe: ${invokeProbe.status} ${invokeProbe.text.slice(0, 160)})`,
    },
    {
      key: 'state', title: 'state save+get through the sidecar (sqlite; each save and each get is one request)', hops: '1',
      origin: `http://127.0.0.1:${daprHttp}`, shapes: both,
      requests: [{ method: 'POST', path: '/v1.0/state/statestore', body: STATE_BODY }, { method: 'GET', path: '/v1.0/state/statestore/bench' }],
      procs: [P.c2Sidecar], available: stateOk, note: stateOk ? undefined : `not available (probe: ${stateNote})`,
    },
    {
      key: 'state-grpc', title: 'state SaveState+GetState over the Dapr gRPC API (DAPR_GRPC_PORT, sqlite; each call one request; load from grpc-js, a Node generator)', hops: '1',
      origin: `http://127.0.0.1:${daprGrpc}`, shapes: both, requests: [],
      grpc: { target: `127.0.0.1:${daprGrpc}`, store: 'statestore', key: 'bench', value: JSON.stringify({ data: 'x'.repeat(1000) }) },
      procs: [P.c2Sidecar], available: stateOk && daprGrpc > 0, note: !stateOk ? `not available (probe: ${stateNote})` : daprGrpc > 0 ? undefined : 'the sidecar reports no DAPR_GRPC_PORT',
    },
    {
      key: 'grpc-direct', title: 'gRPC direct: grpc-js → orders app (h2c; NewOrder, 1000-byte item; load from grpc-js, a Node generator)', hops: '0',
      origin: `http://127.0.0.1:${ordersAppPort}`, shapes: both, requests: [],
      grpc: { kind: 'orders', target: `127.0.0.1:${ordersAppPort}`, item: ORDERS_ITEM },
      procs: [P.ordersApp], available: orders !== undefined && grpcDirectProbe === undefined,
      note: grpcDirectProbe && (orders ? `not available: NewOrder straight to the app failed (${grpcDirectProbe})` : grpcDirectProbe),
    },
    {
      key: 'grpc-cross', title: 'gRPC cross cluster via mesh, mTLS: grpc-js → client sidecar (h2c, :authority orders.bench:50051) → gateway tunnel → app sidecar → orders app', hops: '3',
      origin: `http://127.0.0.1:${c2.ports.outbound}`, shapes: both, requests: [],
      grpc: { kind: 'orders', target: `127.0.0.1:${c2.ports.outbound}`, authority: ORDERS_HOST, item: ORDERS_ITEM },
      procs: [P.c2Sidecar, P.gateway, P.ordersSidecar, P.ordersApp, P.cluster2, P.controlPlane],
      available: orders !== undefined && grpcCrossProbe === undefined,
      note: grpcCrossProbe && (orders ? `not available: NewOrder from cluster-2 through the mesh (h2c to the client sidecar) failed (${grpcCrossProbe})` : grpcCrossProbe),
      conns: orders && { inboundPort: orders.ports.inbound, tunnelsOf: home },
    },
    {
      key: 'nginx-chain-2hop', title: 'nginx chain, 2 hops: nginx → nginx → app', hops: '2', shapes: both,
      origin: `http://127.0.0.1:${chains?.port2 ?? 0}`, requests: [post], procs: [P.nginx, P.app], available: chains !== undefined, note: chains ? undefined : nginxNote,
    },
    {
      key: 'nginx-chain', title: 'nginx chain, 3 hops: nginx → nginx → nginx → app', hops: '3', shapes: both,
      origin: `http://127.0.0.1:${chains?.port3 ?? 0}`, requests: [post], procs: [P.nginx, P.app], available: chains !== undefined, note: chains ? undefined : nginxNote,
    },
    {
      key: 'node-bare-chain-2hop', title: 'reference, bare Node hops (no features, bench/bare-hop.ts): L7 → L7 → app', hops: '2', shapes: both,
      origin: `http://127.0.0.1:${bare?.port2 ?? 0}`, requests: [post], procs: [P.bareL7First, P.bareL7Second, P.app], available: bare !== undefined, note: bare ? undefined : bareNote,
    },
    {
      key: 'node-bare-chain', title: 'reference, bare Node hops (no features, bench/bare-hop.ts): L7 → L4 pipe → L7 → app', hops: '3', shapes: both,
      origin: `http://127.0.0.1:${bare?.port3 ?? 0}`, requests: [post], procs: [P.bareL7Client, P.bareL4, P.bareL7App, P.app], available: bare !== undefined, note: bare ? undefined : bareNote,
    },
    {
      key: 'node-bare-chain-mtls', title: 'reference, bare Node hops with mutual TLS 1.3 from the first L7 hop to the last (node:tls): L7 → L4 pipe → L7 → app', hops: '3', shapes: both,
      origin: `http://127.0.0.1:${bare?.portTls ?? 0}`, requests: [post], procs: [P.bareTlsClient, P.bareTlsPipe, P.bareTlsApp, P.app],
      available: bare?.portTls !== undefined, note: bare ? bare.tlsNote : bareNote,
    },
  ];
  // Measured in this order (rows compared with each other run next to each other, so that a
  // neighbour's burst of CPU on this shared machine hits both sides of a ratio alike); printed
  // in the order above.
  // The bursty rows come after the cross-cluster closed loop: measured warm, like the others.
  // A group ([mTLS row, its plaintext row]) is measured shape by shape, interleaved: the mTLS
  // row's fixed rate, the plaintext row's, then the mTLS closed loop, the plaintext one; each
  // with the same warmup. So the two sides of the mTLS / plaintext ratio are the two closest
  // measurements of the run (`--plaintext-first` swaps the two).
  const order: (string | string[])[] = [
    'direct', 'nginx-chain', 'node-bare-chain', 'node-bare-chain-mtls', ['cross-cluster', 'cross-cluster-plaintext'], ['cross-cluster-bursty', 'cross-cluster-plaintext-bursty'], 'direct-bursty',
    'dapr-invoke', 'nginx-chain-2hop', 'node-bare-chain-2hop', ['same-cluster', 'same-cluster-plaintext'], 'state', 'state-grpc',
    // Measured shape by shape like a pair: the cross row's ratio is to the direct call next to it.
    ['grpc-direct', 'grpc-cross'],
  ];

  const rows = new Map<string, Row>();
  for (const s of scenarios) rows.set(s.key, { key: s.key, title: s.title, hops: s.hops, available: s.available, note: s.note });
  let crossPeak: { sidecars: ProcUsage[]; clusters: ProcUsage[] } | undefined;
  for (const entry of order) {
    const group: Scenario[] = [];
    const keys = typeof entry === 'string' ? [entry] : PLAINTEXT_FIRST && entry.some((k) => PLAINTEXT_ROWS.includes(k)) ? [...entry].reverse() : entry;
    for (const key of keys) {
      const s = scenarios.find((x) => x.key === key)!;
      const row = rows.get(key)!;
      if (!s.available || (ONLY && !ONLY.has(s.key))) {
        if (s.available) {
          row.note = 'not measured (--only)';
          row.available = false;
        }
        log(`${s.key}: ${row.note}`);
        continue;
      }
      row.processes = {};
      group.push(s);
    }
    /** gRPC mesh rows whose load failed: reported in their row, the bench goes on. */
    const failed = new Set<string>();
    for (const shape of ['rate', 'burst', 'closed'] as const) {
      for (const s of group) {
        if (!s.shapes.includes(shape) || failed.has(s.key)) continue;
        const row = rows.get(s.key)!;
        const spec: LoadSpec =
          shape === 'closed'
            ? { mode: 'closed', origin: s.origin, requests: s.requests, connections: CLOSED_CONNECTIONS, durationMs: MEASURE_MS, warmupMs: WARMUP_MS, wrk, tmpDir: home, ...(s.grpc ? { grpc: s.grpc } : {}) }
            : { mode: shape, origin: s.origin, requests: s.requests, connections: RATE_CONNECTIONS, rate: RATE, durationMs: MEASURE_MS, warmupMs: WARMUP_MS, ...(s.grpc ? { grpc: s.grpc } : {}) };
        log(`${s.key}: ${shape === 'closed' ? `closed loop (${s.grpc ? 'grpc-js' : closedTool}), ${CLOSED_CONNECTIONS} connections` : `${shape === 'burst' ? 'bursty' : 'evenly spaced'} ${RATE} req/s, ${RATE_CONNECTIONS} connections`}, ${MEASURE_MS} ms`);
        let m: Awaited<ReturnType<typeof measure>>;
        try {
          m = await measure(spec, s.procs, s.conns);
        } catch (err) {
          // The gRPC rows are the newest path: a generator that dies there must not end the run.
          if (s.grpc?.kind !== 'orders') throw err;
          failed.add(s.key);
          row.available = false;
          row.note = `failed during the ${shape === 'closed' ? 'closed loop' : 'fixed rate'}: ${(err as Error).message.slice(0, 300)}`;
          log(`${s.key}: ${row.note}`);
          continue;
        }
        row[shape] = m.load;
        row.processes![shape] = m.usage;
        if (m.connections) (row.connections ??= {})[shape] = m.connections;
        const l = m.load;
        const c = m.connections;
        const connText = c ? `; connections opened during the load (warmup + window): ${c.tunnelsOpened !== undefined ? `${c.tunnelsOpened} tunnels, ` : ''}${c.inboundOpened} into the app sidecar` : '';
        log(`${s.key}: ${l.latencyMs ? `p90 ${l.latencyMs.p90} ms, ` : ''}${l.rps} req/s${l.errors ? `, errors ${l.errors} (${l.firstError})` : ''}${connText}`);
        if (s.key === 'cross-cluster' && shape === 'closed') {
          // Peak RSS under the cross-cluster load: VmHWM right after its closed loop.
          const closed = m.usage;
          crossPeak = { sidecars: closed.filter((p) => p.id.endsWith('sidecar')), clusters: closed.filter((p) => ['gateway', 'cluster-2', 'control-plane'].includes(p.id)) };
        }
      }
    }
  }

  const cliTimes: CliTiming[] = [];
  if (!ONLY || ONLY.has('cli')) {
    log(`CLI start time: ${CLI_RUNS} runs each`);
    const env: NodeJS.ProcessEnv = { ...process.env, CROSSMESH_HOME: home, CROSSMESH_CLUSTER: '' };
    delete env.NODE_OPTIONS;
    const node = process.execPath;
    cliTimes.push(
      timeCommand('cli-get-svc', 'crossmesh get svc (against a running cluster)', [node, BIN, '--cluster', 'cluster-1', 'get', 'svc', '-n', NS], env, CLI_RUNS),
      timeCommand('cli-status', 'crossmesh status', [node, BIN, 'status'], env, CLI_RUNS),
      timeCommand('cli-help', 'crossmesh --help', [node, BIN, '--help'], env, CLI_RUNS),
      timeCommand('node-floor', 'node -e 0 (the floor)', [node, '-e', '0'], env, CLI_RUNS),
    );
    for (const c of cliTimes) log(`${c.key}: median ${c.medianMs} ms${c.failures ? `, ${c.failures} failed (${c.firstFailure})` : ''}`);
  }

  // Pub/sub (its own clusters, after every request-path row: nothing else is measured meanwhile).
  let pubsub: PubSubRow[] = [];
  if (!ONLY || ONLY.has('pubsub')) {
    log('pub/sub: publish in cluster-2 → subscriber in cluster-3, per broker');
    pubsub = await pubsubRows(BIN, SMOKE);
    for (const r of pubsub) log(`${r.broker}: ${r.available ? `${r.msgsPerSecond} msgs/s, p50 ${r.latencyMs?.p50} ms p90 ${r.latencyMs?.p90} ms` : r.note}`);
  }

  // Derived figures: latency added over direct (same arrival shape), ratios to the nginx chains.
  const get = (k: string) => rows.get(k);
  const directRate = get('direct')?.rate?.latencyMs;
  const directBurst = get('direct-bursty')?.burst?.latencyMs;
  const nginx2 = get('nginx-chain-2hop')?.closed?.rps;
  const nginx3 = get('nginx-chain')?.closed?.rps;
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const added = (l: { p50: number; p90: number; p99: number }, base: { p50: number; p90: number; p99: number }): Added => ({ p50: round(l.p50 - base.p50), p90: round(l.p90 - base.p90), p99: round(l.p99 - base.p99) });
  // The gRPC mesh rows are compared with the direct gRPC call (same generator, same protocol).
  const grpcDirect = get('grpc-direct');
  for (const r of rows.values()) {
    if (GRPC_ROWS.includes(r.key)) {
      if (r.key === 'grpc-direct') continue;
      if (r.rate?.latencyMs && grpcDirect?.rate?.latencyMs) r.rate.addedMs = added(r.rate.latencyMs, grpcDirect.rate.latencyMs);
      if (r.closed && grpcDirect?.closed?.rps) r.closed.vsGrpcDirect = ratio(r.closed.rps, grpcDirect.closed.rps);
      continue;
    }
    if (r.rate?.latencyMs && directRate && r.key !== 'direct') r.rate.addedMs = added(r.rate.latencyMs, directRate);
    if (r.burst?.latencyMs && directBurst && r.key !== 'direct-bursty') r.burst.addedMs = added(r.burst.latencyMs, directBurst);
    if (r.closed && nginx2) r.closed.vsNginx2hop = ratio(r.closed.rps, nginx2);
    if (r.closed && nginx3) r.closed.vsNginx3hop = ratio(r.closed.rps, nginx3);
  }

  const mtlsVsPlaintext = compareTls(rows);
  const reference = compareBare(rows);
  const targets = computeTargets(rows, crossPeak, cliTimes, nginxNote);

  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    nginx: nginx ? spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr.trim() : undefined,
    wrk: wrk ? spawnSync(wrk, ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0].replace(/\s*Copyright.*$/, '').trim() : undefined,
  };
  const rowList = scenarios.map((s) => rows.get(s.key)!);
  const result = {
    date: new Date().toISOString(),
    smoke: SMOKE,
    machine,
    settings: {
      fixedRate: RATE,
      rateConnections: RATE_CONNECTIONS,
      arrivals: { rate: 'evenly spaced: connection k sends at t0 + (n*16+k)/rate', burst: `all ${RATE_CONNECTIONS} connections together every ${(RATE_CONNECTIONS * 1000) / RATE} ms` },
      latencyTimed: 'from the write of the request to the last byte of its reply (fromScheduleMs: from its scheduled time)',
      closedConnections: CLOSED_CONNECTIONS,
      closedLoopTool: closedTool,
      ...(toolWarning ? { closedLoopWarning: toolWarning } : {}),
      measureMs: MEASURE_MS,
      warmupMs: WARMUP_MS,
      cliRuns: CLI_RUNS,
      body: '1 KB POST, 1 KB reply',
      pairs: `mTLS / plaintext rows measured back to back, shape by shape, ${PLAINTEXT_FIRST ? 'plaintext first (--plaintext-first)' : 'mTLS first'}; plaintext mesh: crossmesh up --insecure-plaintext in its own CROSSMESH_HOME`,
    },
    rows: rowList,
    mtlsVsPlaintext,
    reference,
    cli: cliTimes,
    pubsub,
    targets,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(
    [
      `latency: ${RATE} req/s over ${RATE_CONNECTIONS} connections (evenly spaced arrivals unless the row says bursty), timed from write to full reply, ${MEASURE_MS / 1000} s; closed loop: ${closedTool === 'wrk' ? `wrk -t1 -c${CLOSED_CONNECTIONS} -d${MEASURE_MS / 1000}s` : `autocannon -c ${CLOSED_CONNECTIONS}`}${toolWarning ? `\n${toolWarning}` : ''}`,
      table(rowList.filter((r) => !GRPC_ROWS.includes(r.key))),
      grpcTable(rowList.filter((r) => GRPC_ROWS.includes(r.key))),
      tlsTable(mtlsVsPlaintext),
      referenceText(reference),
      procTable(rowList) + (nginxPerHop(rowList) ? `\n\n${nginxPerHop(rowList)}` : ''),
      cliTable(cliTimes) + (machineScale(rowList, cliTimes) ? `\n\n${machineScale(rowList, cliTimes)}` : ''),
      ...(pubsub.length ? [pubsubTable(pubsub)] : []),
      targetTable(targets),
      `machine: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${machine.nginx ?? 'no nginx'}, ${machine.wrk ?? 'no wrk'}\nwritten: ${OUT} (${result.elapsedSeconds} s)`,
    ].join('\n\n') + '\n',
  );
  if (HOLD) {
    log(`holding: app sidecar pid ${app.pid}, c2 sidecar pid ${c2.pid}, gateway pid ${gatewayPid}; origins: cross http://127.0.0.1:${c2.ports.outbound}; Ctrl-C ends`);
    const keep = setInterval(() => undefined, 1 << 30);
    await new Promise<void>((r) => process.once('SIGINT', () => r()));
    clearInterval(keep);
  }
}

interface BareCompare {
  /** Closed-loop req/s of the bare Node chains vs nginx's of the same hop count. */
  bare3VsNginx3?: number;
  /** The bare chain with mutual TLS vs without: what node:tls costs the process-per-hop design. */
  bareMtlsVsBare3?: number;
  bareMtlsVsNginx3?: number;
  crossVsBareMtls?: number;
  bare2VsNginx2?: number;
  /** crossmesh's closed-loop req/s vs the bare Node chain of the same shape. */
  crossVsBare3?: number;
  crossPlaintextVsBare3?: number;
  sameVsBare2?: number;
  samePlaintextVsBare2?: number;
}

/**
 * How the gap to nginx splits: the bare chains (bench/bare-hop.ts) are the process-per-hop design
 * with nothing of the product, so bare / nginx is what that design reaches on this machine and
 * crossmesh / bare what crossmesh's own work keeps of it. Information only, no target.
 */
function compareBare(rows: Map<string, Row>): BareCompare {
  const rps = (k: string) => rows.get(k)?.closed?.rps;
  const r = (a: number | undefined, b: number | undefined) => (a && b ? Math.round((a / b) * 100) / 100 : undefined);
  return {
    bare3VsNginx3: r(rps('node-bare-chain'), rps('nginx-chain')),
    bareMtlsVsBare3: r(rps('node-bare-chain-mtls'), rps('node-bare-chain')),
    bareMtlsVsNginx3: r(rps('node-bare-chain-mtls'), rps('nginx-chain')),
    crossVsBareMtls: r(rps('cross-cluster'), rps('node-bare-chain-mtls')),
    bare2VsNginx2: r(rps('node-bare-chain-2hop'), rps('nginx-chain-2hop')),
    crossVsBare3: r(rps('cross-cluster'), rps('node-bare-chain')),
    crossPlaintextVsBare3: r(rps('cross-cluster-plaintext'), rps('node-bare-chain')),
    sameVsBare2: r(rps('same-cluster'), rps('node-bare-chain-2hop')),
    samePlaintextVsBare2: r(rps('same-cluster-plaintext'), rps('node-bare-chain-2hop')),
  };
}

function referenceText(b: BareCompare): string {
  const x = (v: number | undefined) => (v === undefined ? '–' : `${fmt(v)}x`);
  return [
    'process-per-hop reference (closed loop; bare Node hops = bench/bare-hop.ts, forwarding only):',
    '',
    '| shape | bare Node chain vs nginx chain | crossmesh mTLS vs bare | crossmesh plaintext vs bare |',
    '|---|---|---|---|',
    `| 3 hops (L7 → L4 → L7) | ${x(b.bare3VsNginx3)} | ${x(b.crossVsBare3)} | ${x(b.crossPlaintextVsBare3)} |`,
    `| 2 hops (L7 → L7) | ${x(b.bare2VsNginx2)} | ${x(b.sameVsBare2)} | ${x(b.samePlaintextVsBare2)} |`,
    '',
    `bare chain with mutual TLS (node:tls, TLS 1.3, first L7 hop to last): ${x(b.bareMtlsVsBare3)} the bare plaintext chain, ${x(b.bareMtlsVsNginx3)} nginx 3-hop; crossmesh mTLS cross-cluster ${x(b.crossVsBareMtls)} of it`,
  ].join('\n');
}

function computeTargets(rows: Map<string, Row>, crossPeak: { sidecars: ProcUsage[]; clusters: ProcUsage[] } | undefined, cliTimes: CliTiming[], nginxNote: string): Target[] {
  const t: Target[] = [];
  const check = (key: string, what: string, limit: string, unit: string, value: number | undefined, ok: (v: number) => boolean, note?: string) =>
    t.push({ key, what, limit, unit, value, pass: value === undefined || !Number.isFinite(value) ? undefined : ok(value), ...(note ? { note } : {}) });
  const cross = rows.get('cross-cluster');
  const same = rows.get('same-cluster');
  const noNginx = rows.get('nginx-chain')?.available ? undefined : `nginx chain not measured: ${nginxNote}`;
  check('cross-vs-nginx3', 'cross-cluster closed-loop req/s vs nginx 3-hop chain', '>= 0.7x', 'x', cross?.closed?.vsNginx3hop, (v) => v >= 0.7, noNginx);
  check('cross-vs-nginx3-floor', 'cross-cluster closed-loop req/s vs nginx 3-hop chain (floor)', '>= 0.6x', 'x', cross?.closed?.vsNginx3hop, (v) => v >= 0.6, noNginx);
  check('same-vs-nginx2', 'same-cluster closed-loop req/s vs nginx 2-hop chain', '>= 0.8x', 'x', same?.closed?.vsNginx2hop, (v) => v >= 0.8, rows.get('nginx-chain-2hop')?.available ? undefined : `nginx chain not measured: ${nginxNote}`);
  check('cross-added-p90', `cross-cluster added p90 over direct, ${RATE} req/s evenly spaced`, '<= 0.5 ms', 'ms', cross?.rate?.addedMs?.p90, (v) => v <= 0.5);
  check('cross-bursty-added-p90', `cross-cluster added p90 over direct, ${RATE} req/s bursty (${BURST})`, '<= 2 ms', 'ms', rows.get('cross-cluster-bursty')?.burst?.addedMs?.p90, (v) => v <= 2);
  // Issue 14 (mesh identity): mTLS against the same path in plaintext, in this run.
  const tls = compareTls(rows);
  const plainNote = rows.get('cross-cluster-plaintext')?.available ? undefined : `plaintext row not measured: ${rows.get('cross-cluster-plaintext')?.note ?? ''}`;
  check('mtls-cross-vs-plaintext', 'cross-cluster closed-loop req/s with mTLS vs the same path in plaintext (--insecure-plaintext mesh)', '>= 0.8x', 'x', tls['cross-cluster'].ratio, (v) => v >= 0.8,
    tls['cross-cluster'].ratio !== undefined ? `${tls['cross-cluster'].mtlsRps} vs ${tls['cross-cluster'].plaintextRps} req/s` : plainNote);
  check('mtls-cross-added-p90', `cross-cluster with mTLS, added p90 over direct, ${RATE} req/s evenly spaced`, '<= 0.8 ms', 'ms', tls['cross-cluster'].mtlsAddedP90, (v) => v <= 0.8,
    tls['cross-cluster'].plaintextAddedP90 !== undefined ? `plaintext: ${tls['cross-cluster'].plaintextAddedP90} ms` : undefined);
  // The closed loop's load opens CLOSED_CONNECTIONS connections per run (the warmup run and the
  // measured run), and each run's end cuts its exchanges in flight with their upstream
  // connections: so at most that many TLS connections per run, never one per request.
  const opened = tls['cross-cluster'].mtlsConnections;
  const runs = WARMUP_MS ? 2 : 1;
  check('mtls-sessions-reused', `TLS connections (handshakes) opened while the cross-cluster mTLS closed loop ran (${runs === 2 ? 'warmup + measured run' : 'one run'} of ${CLOSED_CONNECTIONS} connections)`, `<= ${runs * CLOSED_CONNECTIONS}, never one per request`, 'connections',
    opened?.tunnelsOpened ?? opened?.inboundOpened, (v) => v <= runs * CLOSED_CONNECTIONS, opened ? `${opened.measuredRequests} requests in the measured window alone` : undefined);
  const closedCpu = (id: string) => cross?.processes?.closed?.find((p) => p.id === id)?.cpuUsPerRequest;
  check('cpu-client-sidecar', 'CPU per request, client sidecar (L7 hop), cross-cluster closed loop', '<= 30 µs', 'µs', closedCpu('client-sidecar'), (v) => v <= 30);
  check('cpu-gateway', 'CPU per request, gateway (tunnel hop; cluster-1 process), cross-cluster closed loop', '<= 20 µs', 'µs', closedCpu('gateway'), (v) => v <= 20);
  check('cpu-app-sidecar', 'CPU per request, app sidecar (L7 hop), cross-cluster closed loop', '<= 30 µs', 'µs', closedCpu('app-sidecar'), (v) => v <= 30);
  const maxOf = (ps: ProcUsage[] | undefined) => (ps && ps.length ? ps.reduce((a, b) => (b.peakRssMb > a.peakRssMb ? b : a)) : undefined);
  const sc = maxOf(crossPeak?.sidecars);
  const cl = maxOf(crossPeak?.clusters);
  check('rss-sidecar', 'sidecar peak RSS (VmHWM) after the cross-cluster load, max of the path sidecars', '<= 60 MB', 'MB', sc?.peakRssMb, (v) => v <= 60, sc ? `max: ${sc.name}` : undefined);
  check('rss-cluster', 'cluster process peak RSS (VmHWM) after the cross-cluster load, max of the cluster processes', '<= 90 MB', 'MB', cl?.peakRssMb, (v) => v <= 90, cl ? `max: ${cl.name}` : undefined);
  for (const k of ['cli-get-svc', 'cli-status', 'cli-help']) {
    const c = cliTimes.find((x) => x.key === k);
    check(k, `start time, ${c?.command ?? k} (median of ${CLI_RUNS})`, '<= 100 ms', 'ms', c && c.failures === 0 ? c.medianMs : undefined, (v) => v <= 100, c?.failures ? `${c.failures} runs failed: ${c.firstFailure}` : undefined);
  }
  const pathCpu = (r: Row | undefined) => (r?.processes?.closed ? r.processes.closed.filter((p) => !p.offPath).reduce((s, p) => s + p.cpuUsPerRequest, 0) : undefined);
  const dapr = pathCpu(rows.get('dapr-invoke'));
  const proxied = pathCpu(cross);
  check(
    'dapr-cpu-vs-proxied', 'Dapr invoke cross-cluster CPU per request vs the proxied cross-cluster path (sum over the processes, closed loop)', '<= 1.15x', 'x',
    dapr !== undefined && proxied ? ratio2(dapr / proxied) : undefined, (v) => v <= 1.15,
    dapr !== undefined && proxied ? `${dapr} µs vs ${proxied} µs` : rows.get('dapr-invoke')?.note,
  );
  return t;
}

interface TlsCompare {
  /** The two rows compared (closed-loop req/s; fixed-rate and bursty latency). */
  mtlsRow: string;
  plaintextRow: string;
  mtlsRps?: number;
  plaintextRps?: number;
  /** mTLS req/s / plaintext req/s, closed loop. */
  ratio?: number;
  /** Added p90 over direct at the fixed rate, evenly spaced (ms). */
  mtlsAddedP90?: number;
  plaintextAddedP90?: number;
  /** Added p90 over direct-bursty, bursty arrivals (ms; cross cluster). */
  mtlsBurstyAddedP90?: number;
  plaintextBurstyAddedP90?: number;
  /** CPU per request summed over the path's processes, closed loop (µs). */
  mtlsPathCpuUs?: number;
  plaintextPathCpuUs?: number;
  /** Connections opened during the closed loop's measured window. */
  mtlsConnections?: ConnCount;
  plaintextConnections?: ConnCount;
}

/** mTLS rows against their plaintext rows of the same run (issue 14). */
function compareTls(rows: Map<string, Row>): Record<'cross-cluster' | 'same-cluster', TlsCompare> {
  const one = (m: string, p: string, mb?: string, pb?: string): TlsCompare => {
    const a = rows.get(m);
    const b = rows.get(p);
    const cpu = (r: Row | undefined) => (r?.processes?.closed ? r.processes.closed.filter((x) => !x.offPath).reduce((s, x) => s + x.cpuUsPerRequest, 0) : undefined);
    const ar = a?.available ? a.closed?.rps : undefined;
    const br = b?.available ? b.closed?.rps : undefined;
    return {
      mtlsRow: m,
      plaintextRow: p,
      mtlsRps: ar,
      plaintextRps: br,
      ratio: ar !== undefined && br ? ratio2(ar / br) : undefined,
      mtlsAddedP90: a?.rate?.addedMs?.p90,
      plaintextAddedP90: b?.rate?.addedMs?.p90,
      ...(mb ? { mtlsBurstyAddedP90: rows.get(mb)?.burst?.addedMs?.p90, plaintextBurstyAddedP90: rows.get(pb!)?.burst?.addedMs?.p90 } : {}),
      mtlsPathCpuUs: cpu(a),
      plaintextPathCpuUs: cpu(b),
      mtlsConnections: a?.connections?.closed,
      plaintextConnections: b?.connections?.closed,
    };
  };
  return {
    'cross-cluster': one('cross-cluster', 'cross-cluster-plaintext', 'cross-cluster-bursty', 'cross-cluster-plaintext-bursty'),
    'same-cluster': one('same-cluster', 'same-cluster-plaintext'),
  };
}

function tlsTable(t: Record<string, TlsCompare>): string {
  const lines = [
    'mTLS vs plaintext (issue 14; each pair measured back to back, same warmup):',
    '',
    '| path | mTLS req/s | plaintext req/s | mTLS / plaintext | added p90 ms mTLS / plaintext | bursty added p90 ms mTLS / plaintext | path CPU µs/req mTLS / plaintext | connections opened while the closed loop ran (warmup + measured run; mTLS: one handshake each) mTLS / plaintext | closed-loop requests (measured window) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const conn = (c: ConnCount | undefined) => (c ? `${c.tunnelsOpened ?? c.inboundOpened}` : '–');
  for (const [path, x] of Object.entries(t)) {
    lines.push(
      `| ${path} | ${x.mtlsRps?.toLocaleString('en-US') ?? '–'} | ${x.plaintextRps?.toLocaleString('en-US') ?? '–'} | ${x.ratio !== undefined ? `${fmt(x.ratio)}x` : '–'} | ${fmt(x.mtlsAddedP90)} / ${fmt(x.plaintextAddedP90)} | ${x.mtlsBurstyAddedP90 !== undefined || x.plaintextBurstyAddedP90 !== undefined ? `${fmt(x.mtlsBurstyAddedP90)} / ${fmt(x.plaintextBurstyAddedP90)}` : '–'} | ${x.mtlsPathCpuUs ?? '–'} / ${x.plaintextPathCpuUs ?? '–'} | ${conn(x.mtlsConnections)} / ${conn(x.plaintextConnections)} | ${x.mtlsConnections?.measuredRequests ?? '–'} / ${x.plaintextConnections?.measuredRequests ?? '–'} |`,
    );
  }
  return lines.join('\n');
}

const ratio2 = (x: number) => Math.round(x * 100) / 100;
const round = (x: number) => Math.round(x * 1000) / 1000;
const fmt = (x: number | undefined, d = 2) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));

function table(rows: Row[]): string {
  const lines = [
    '| scenario | proxy hops | p50 ms | p90 ms | p99 ms | added p50 / p90 / p99 ms | closed-loop req/s | vs nginx 2-hop | vs nginx 3-hop |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const lat = r.rate ?? r.burst;
    if (!r.available || !lat) {
      lines.push(`| ${r.title} | ${r.hops} | ${r.note ?? 'not available'} | | | | | | |`);
      continue;
    }
    const l = lat.latencyMs!;
    const a = lat.addedMs;
    const c = r.closed;
    lines.push(
      `| ${r.title} | ${r.hops} | ${fmt(l.p50)} | ${fmt(l.p90)} | ${fmt(l.p99)} | ${a ? `${fmt(a.p50)} / ${fmt(a.p90)} / ${fmt(a.p99)}` : '–'} | ${c ? c.rps.toLocaleString('en-US') : '–'} | ${c?.vsNginx2hop !== undefined ? `${fmt(c.vsNginx2hop)}x` : '–'} | ${c?.vsNginx3hop !== undefined ? `${fmt(c.vsNginx3hop)}x` : '–'} |`,
    );
  }
  // Open loop: a row whose path could not keep up with the schedule answered slower than the
  // arrivals; its write → reply latency then leaves out the time requests waited for their
  // connection (fromScheduleMs includes it).
  const notes: string[] = [];
  for (const r of rows) {
    const lat = r.rate ?? r.burst;
    if (!r.available || !lat || lat.queued === undefined) continue;
    if (lat.rps < RATE * 0.95 || lat.queued > lat.requests * 0.01) {
      notes.push(`${r.key}: the fixed rate was not sustained (${lat.rps} req/s answered of ${RATE}; ${lat.queued} of ${lat.requests} requests waited for their connection; p90 from the scheduled send time ${fmt(lat.fromScheduleMs?.p90)} ms)`);
    }
  }
  if (notes.length) lines.push('', ...notes.map((n) => `note: ${n}`));
  return lines.join('\n');
}

/**
 * The gRPC rows' table: the main table's shape, with latency added over the direct gRPC call and
 * the closed loop's ratio to it (an HTTP/1.1 row or nginx is no reference for HTTP/2 calls from
 * a Node generator).
 */
function grpcTable(rows: Row[]): string {
  const lines = [
    `gRPC (examples/grpc-orders NewOrder, load from grpc-js on the same cores; ${RATE} calls/s over ${RATE_CONNECTIONS} channels, closed loop over ${CLOSED_CONNECTIONS}; added and ratio over the direct gRPC call):`,
    '',
    '| scenario | proxy hops | p50 ms | p90 ms | p99 ms | added p50 / p90 / p99 ms | closed-loop calls/s | vs gRPC direct |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const notes: string[] = [];
  for (const r of rows) {
    const lat = r.rate;
    if (!r.available || !lat?.latencyMs) {
      lines.push(`| ${r.title} | ${r.hops} | ${r.note ?? 'not available'} | | | | | |`);
      continue;
    }
    const l = lat.latencyMs;
    const a = lat.addedMs;
    const c = r.closed;
    lines.push(`| ${r.title} | ${r.hops} | ${fmt(l.p50)} | ${fmt(l.p90)} | ${fmt(l.p99)} | ${a ? `${fmt(a.p50)} / ${fmt(a.p90)} / ${fmt(a.p99)}` : '–'} | ${c ? c.rps.toLocaleString('en-US') : '–'} | ${c?.vsGrpcDirect !== undefined ? `${fmt(c.vsGrpcDirect)}x` : '–'} |`);
    for (const x of [r.rate, r.closed]) {
      if (x?.errors) notes.push(`${r.key} ${x.mode}: ${x.errors} of ${x.requests} calls failed (first: ${x.firstError})`);
    }
    if (lat.rps < RATE * 0.95) notes.push(`${r.key}: the fixed rate was not sustained (${lat.rps} calls/s answered of ${RATE}; p90 from the scheduled time ${fmt(lat.fromScheduleMs?.p90)} ms)`);
  }
  if (notes.length) lines.push('', ...notes.map((n) => `note: ${n}`));
  return lines.join('\n');
}

/** One NewOrder to `target` until it succeeds or `timeoutMs` passes: undefined, or the last error. */
async function probeOrders(target: string, authority: string | undefined, timeoutMs: number): Promise<string | undefined> {
  const { ordersClient } = await import('../test/support/grpc-orders.js');
  const c = ordersClient(target, authority ? { authority } : {});
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  try {
    while (Date.now() < deadline) {
      try {
        await c.newOrder({ id: 'probe', item: 'probe', quantity: 1 }, { deadlineMs: Math.max(500, Math.min(3000, deadline - Date.now())) });
        return undefined;
      } catch (err) {
        const e = err as { code?: number; details?: string; message: string };
        last = `${e.code !== undefined ? `${(await import('@grpc/grpc-js')).status[e.code]}: ` : ''}${e.details ?? e.message}`;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return last;
  } finally {
    c.close();
  }
}

function procTable(rows: Row[]): string {
  const lines = ['| scenario | process | CPU % at fixed rate | CPU % closed loop | CPU µs/request (closed loop) | RSS MB | peak RSS MB |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const closed = r.processes?.closed;
    if (!closed) continue;
    closed.forEach((c, i) => {
      const f = r.processes?.rate?.[i];
      lines.push(`| ${r.key} | ${c.name}${c.offPath ? ' (off the path)' : ''} | ${f?.cpuPercent ?? '–'} | ${c.cpuPercent} | ${c.cpuUsPerRequest} | ${c.rssMb} | ${c.peakRssMb} |`);
    });
  }
  return lines.join('\n');
}

/** nginx's CPU per request per hop (closed loop), the reference for the per-hop CPU targets. */
function nginxPerHop(rows: Row[]): string | undefined {
  const parts: string[] = [];
  for (const r of rows) {
    const n = r.key.startsWith('nginx-chain') ? r.processes?.closed?.find((p) => p.id === 'nginx') : undefined;
    if (n) parts.push(`${r.hops}-hop chain ${n.cpuUsPerRequest} µs / ${r.hops} = ${Math.round(n.cpuUsPerRequest / Number(r.hops))} µs per hop`);
  }
  return parts.length ? `nginx CPU per request (closed loop): ${parts.join('; ')}` : undefined;
}

/**
 * The issue's absolute targets (µs per hop, ms per command) were set on the machine of
 * ../shared/reference/perf-baseline.md, where nginx costs 11-13 µs per hop and `node -e 0` ~40 ms.
 * Machines of "this kind" have varied since (a 2-core VM measured nginx at ~48 µs per hop); this
 * line says how far this run's machine is from that one, so an absolute figure can be read in
 * context. It changes no PASS/FAIL: the targets are checked as written.
 */
function machineScale(rows: Row[], cli: CliTiming[]): string | undefined {
  const REF_NGINX_US_PER_HOP = 12;
  const REF_NODE_FLOOR_MS = 40;
  const hop: number[] = [];
  for (const r of rows) {
    const n = r.key.startsWith('nginx-chain') ? r.processes?.closed?.find((p) => p.id === 'nginx') : undefined;
    if (n) hop.push(n.cpuUsPerRequest / Number(r.hops));
  }
  const floor = cli.find((c) => c.key === 'node-floor');
  const parts: string[] = [];
  if (hop.length) {
    const k = hop.reduce((a, b) => a + b, 0) / hop.length / REF_NGINX_US_PER_HOP;
    parts.push(`nginx per hop ${fmt(k, 1)}x the baseline machine's (${REF_NGINX_US_PER_HOP} µs): the 30 / 20 µs hop targets correspond to ${Math.round(30 * k)} / ${Math.round(20 * k)} µs here`);
  }
  if (floor) {
    const k = floor.medianMs / REF_NODE_FLOOR_MS;
    parts.push(`\`node -e 0\` ${fmt(k, 1)}x the baseline's (${REF_NODE_FLOOR_MS} ms): the 100 ms CLI target corresponds to ${Math.round(100 * k)} ms here`);
  }
  return parts.length ? `machine scale (information only, targets are checked as written): ${parts.join('; ')}` : undefined;
}

function cliTable(c: CliTiming[]): string {
  if (!c.length) return 'CLI start time: not measured (--only)';
  const lines = ['| command | median ms | min ms | max ms | runs |', '|---|---|---|---|---|'];
  for (const x of c) lines.push(`| ${x.command} | ${fmt(x.medianMs, 1)} | ${fmt(x.minMs, 1)} | ${fmt(x.maxMs, 1)} | ${x.runs}${x.failures ? ` (${x.failures} failed)` : ''} |`);
  return lines.join('\n');
}

function targetTable(t: Target[]): string {
  const lines = ['targets:', '', '| target | limit | measured | result |', '|---|---|---|---|'];
  for (const x of t) {
    const v = x.value === undefined || !Number.isFinite(x.value) ? '–' : `${x.unit === 'x' ? `${fmt(x.value)}x` : `${x.value} ${x.unit}`}`;
    lines.push(`| ${x.what} | ${x.limit} | ${v}${x.note ? ` (${x.note})` : ''} | ${x.pass === undefined ? 'not measured' : x.pass ? 'PASS' : 'FAIL'} |`);
  }
  const n = t.filter((x) => x.pass !== undefined);
  lines.push('', `${n.filter((x) => x.pass).length} of ${n.length} measured targets met${SMOKE ? ' (smoke mode: too few requests for the figures to mean anything)' : ''}`);
  return lines.join('\n');
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
