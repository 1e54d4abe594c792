/**
 * `crossmesh demo`: the reference walkthrough (the seed's flomesh.sh) as one command. Every step
 * runs the real `crossmesh` CLI as a child process, prints the command first and its output
 * after, and checks what the seed expects (the Locality call must FAIL). Flags mirror the
 * seed's script: -i install, -r reset, -d demo, -u uninstall; none = install + demo.
 *
 * `--grpc`: the same walkthrough over gRPC. nodeapp (same app id, service and port) is the gRPC
 * orders app, examples/grpc-orders/server.mjs run with `--app-protocol grpc`, and the caller in
 * cluster-2 is examples/grpc-orders/client.mjs run with `crossmesh exec` beside the curl app's
 * sidecar: an unmodified grpc-js client that reaches the mesh through the `http_proxy` it is given
 * (CONNECT, then HTTP/2 in the tunnel). The state store steps are left out: that app keeps none.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crossmeshHome, isProcessAlive } from '../home.js';
import { stopProcess } from '../processes.js';
import { freePort } from '../../util/net.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'crossmesh.js');
const MANIFESTS = join(ROOT, 'examples', 'manifests');
const NODEAPP = join(ROOT, 'examples', 'nodeapp', 'app.mjs');
const ORDER_LOG = join(ROOT, 'examples', 'order-log', 'app.mjs');
const ORDERS_SERVER = join(ROOT, 'examples', 'grpc-orders', 'server.mjs');
const ORDERS_CLIENT = join(ROOT, 'examples', 'grpc-orders', 'client.mjs');
/** Paths shown relative to the clone, as a user would type them from there. */
const SHOWN: Record<string, string> = { [NODEAPP]: 'examples/nodeapp/app.mjs', [ORDER_LOG]: 'examples/order-log/app.mjs', [ORDERS_SERVER]: 'examples/grpc-orders/server.mjs', [ORDERS_CLIENT]: 'examples/grpc-orders/client.mjs' };
/**
 * Bound on one gRPC client step: its calls carry 10 s deadlines of their own (client.mjs), so
 * this only ends a client that somehow outlives them, as an error rather than a hung demo.
 */
const GRPC_STEP_TIMEOUT_MS = 45_000;
const MEMBERS = ['cluster-1', 'cluster-2', 'cluster-3'];
const EXPORTERS = ['cluster-1', 'cluster-3'];

export interface DemoOptions {
  install: boolean;
  demo: boolean;
  reset: boolean;
  uninstall: boolean;
  state: 'sqlite' | 'redis';
  redisHost?: string;
  quiet: boolean;
  fast: boolean;
  apiPort: number;
  gatewayPort: number;
  /** The walkthrough over gRPC (examples/grpc-orders) instead of HTTP. */
  grpc: boolean;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved in the order they arrived: what a terminal would have shown. */
  output: string;
}

interface Outcome { title: string; ok: boolean; detail: string }

const green = (s: string) => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (process.stdout.isTTY ? `\x1b[31m${s}\x1b[0m` : s);
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

class DemoRunner {
  readonly outcomes: Outcome[] = [];
  private readonly started = Date.now();
  lastAnswerAt = 0;

  constructor(private readonly opts: DemoOptions) {}

  say(line: string): void {
    if (!this.opts.quiet) process.stdout.write(line + '\n');
  }

  /** Runs `crossmesh ARGS`, echoing the command and its output. */
  async crossmesh(args: string[], input?: string, timeoutMs?: number): Promise<Run> {
    const shown = args.map((a) => SHOWN[a] ?? (a.startsWith(MANIFESTS) ? `examples/manifests/${a.slice(MANIFESTS.length + 1)}` : /[\s'"{}]/.test(a) ? `'${a}'` : a));
    this.say(`$ crossmesh ${shown.join(' ')}`);
    const res = await probe(args, input, timeoutMs);
    // In arrival order: `up` writes its progress to stderr long before its table to stdout.
    const text = res.output.trimEnd();
    if (text) this.say(text.split('\n').map((l) => `  ${l}`).join('\n'));
    return res;
  }

  check(title: string, ok: boolean, detail = ''): boolean {
    this.outcomes.push({ title, ok, detail });
    const mark = ok ? green('✔') : red('✘');
    process.stdout.write(`${mark} ${title}${!ok && detail ? `: ${detail}` : ''}\n`);
    return ok;
  }

  heading(title: string): void {
    this.say(`\n${bold(`==> ${title}`)}`);
  }

  /** Polls until `probe` returns true, printing progress dots. */
  async waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (!this.opts.quiet) process.stdout.write(`  waiting for ${what} `);
    while (Date.now() < deadline) {
      if (await probe()) {
        if (!this.opts.quiet) process.stdout.write(' ok\n');
        return true;
      }
      if (!this.opts.quiet) process.stdout.write('.');
      await new Promise((r) => setTimeout(r, 150));
    }
    if (!this.opts.quiet) process.stdout.write(' timed out\n');
    return false;
  }

  elapsed(): number {
    return Date.now() - this.started;
  }
}

/**
 * Runs `crossmesh ARGS` as a child process, capturing its output (no echo). With `timeoutMs` the
 * child (and what it runs: its process group) is killed when it outlives it, and the run fails
 * with a line saying so.
 */
function probe(args: string[], input?: string, timeoutMs?: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, CROSSMESH_CLUSTER: '' }, detached: timeoutMs !== undefined });
    let stdout = '';
    let stderr = '';
    let output = '';
    child.stdout.on('data', (d) => { stdout += d; output += d; });
    child.stderr.on('data', (d) => { stderr += d; output += d; });
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      const line = `crossmesh demo: no answer after ${timeoutMs / 1000} s; stopped it\n`;
      stderr += line;
      output += line;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr, output });
    });
    child.stdin.end(input ?? '');
  });
}

function demoDir(): string {
  return join(crossmeshHome(), 'demo');
}

/** Starts a redis-server for the demo (password changeme, like the seed's compose file). */
async function startRedis(r: DemoRunner): Promise<string | undefined> {
  const which = await new Promise<boolean>((resolve) => {
    const c = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    c.on('error', () => resolve(false));
    c.on('close', (code) => resolve(code === 0));
  });
  if (!which) {
    r.check('start redis-server', false, 'redis-server is not installed: apt-get install -y redis-server, or pass --redis-host HOST:PORT');
    return undefined;
  }
  const port = await freePort();
  const dir = demoDir();
  mkdirSync(join(dir, 'redis'), { recursive: true });
  r.say(`$ redis-server --port ${port} --appendonly yes --requirepass changeme`);
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--requirepass', 'changeme', '--dir', join(dir, 'redis')], { detached: true, stdio: 'ignore' });
  child.unref();
  writeFileSync(join(dir, 'redis.pid'), String(child.pid));
  const up = await r.waitFor('redis', async () => new Promise<boolean>((resolve) => {
    const c = spawn('redis-cli', ['-p', String(port), '-a', 'changeme', '--no-auth-warning', 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('error', () => resolve(false));
    c.on('close', () => resolve(out.includes('PONG')));
  }), 5000);
  r.check(`redis-server on 127.0.0.1:${port}`, up);
  return up ? `127.0.0.1:${port}` : undefined;
}

async function stopRedis(): Promise<void> {
  const file = join(demoDir(), 'redis.pid');
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8'));
  if (pid && isProcessAlive(pid)) await stopProcess(pid);
  rmSync(file, { force: true });
}

async function install(r: DemoRunner): Promise<void> {
  r.heading('Install: start the four clusters and join cluster-1..3 to control-plane');
  const up = await r.crossmesh(['up', '--api-port', String(r['opts'].apiPort), '--gateway-port', String(r['opts'].gatewayPort)]);
  if (!r.check('clusters up', up.code === 0, up.stderr.trim())) return;
  const joined = await r.waitFor('members to report Managed=True', async () => {
    const res = await probe(['--cluster', 'control-plane', 'get', 'clusters', '-o', 'json']);
    if (res.code !== 0) return false;
    const items = (JSON.parse(res.stdout).items ?? []) as { status?: { conditions?: { type: string; status: string }[] } }[];
    return items.length >= 3 && items.every((c) => c.status?.conditions?.some((x) => x.type === 'Managed' && x.status === 'True'));
  });
  r.check('cluster-1, cluster-2, cluster-3 joined the ClusterSet', joined);
  if (!r['opts'].quiet) await r.crossmesh(['--cluster', 'control-plane', 'get', 'clusters']);
}

async function demo(r: DemoRunner, opts: DemoOptions): Promise<void> {
  let redisHost = opts.redisHost;
  if (opts.state === 'redis' && !redisHost && !opts.grpc) {
    r.heading('Redis for the shared state store');
    redisHost = await startRedis(r);
    if (!redisHost) return;
  }

  r.heading('Namespaces: dapr-test in cluster-1..3, curl in cluster-2');
  const nsRuns = await Promise.all([
    ...MEMBERS.map((c) => r.crossmesh(['--cluster', c, 'create', 'namespace', 'dapr-test'])),
    r.crossmesh(['--cluster', 'cluster-2', 'create', 'namespace', 'curl']),
  ]);
  r.check('namespaces created', nsRuns.every((x) => x.code === 0 || /already exists/.test(x.stderr)), nsRuns.map((x) => x.stderr.trim()).filter(Boolean).join('; '));

  // The gRPC orders app keeps no state: no store to configure.
  if (!opts.grpc) {
    r.heading(`State store "statestore" (${opts.state}) in cluster-1..3`);
    const storeRuns = await Promise.all(MEMBERS.map(async (c) => {
      if (opts.state === 'redis') {
        const sec = await r.crossmesh(['--cluster', c, 'create', 'secret', 'generic', 'redis', '-n', 'dapr-test', '--from-literal=redis-password=changeme']);
        if (sec.code !== 0 && !/already exists/.test(sec.stderr)) return sec;
        const yaml = readFileSync(join(MANIFESTS, 'statestore-redis.yaml'), 'utf8').replace('127.0.0.1:6379', redisHost!);
        return r.crossmesh(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], yaml);
      }
      return r.crossmesh(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', join(MANIFESTS, 'statestore-sqlite.yaml')]);
    }));
    r.check('statestore component applied', storeRuns.every((x) => x.code === 0), storeRuns.map((x) => x.stderr.trim()).filter(Boolean).join('; '));

    r.heading('Pub/sub component "pubsub" (the embedded broker, one file on this host) in cluster-1..3');
    const psRuns = await Promise.all(MEMBERS.map((c) => r.crossmesh(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', join(MANIFESTS, 'pubsub-sqlite.yaml')])));
    r.check('pubsub component applied', psRuns.every((x) => x.code === 0), psRuns.map((x) => x.stderr.trim()).filter(Boolean).join('; '));
  }

  r.heading(opts.grpc
    ? 'nodeapp in cluster-1 and cluster-3 as the gRPC orders app (--app-protocol grpc), the curl client in cluster-2 (each beside a sidecar)'
    : 'nodeapp in cluster-1 and cluster-3, the curl client in cluster-2 (each beside a sidecar)');
  const nodeapp = opts.grpc ? ['--app-protocol', 'grpc', '--detach', '--', process.execPath, ORDERS_SERVER] : ['--detach', '--', process.execPath, NODEAPP];
  const appRuns = await Promise.all([
    ...EXPORTERS.map((c) => r.crossmesh(['--cluster', c, 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', ...nodeapp])),
    r.crossmesh(['--cluster', 'cluster-2', 'run', '-n', 'curl', '--app-id', 'curl', '--detach', '--', 'sleep', '365d']),
    // The subscriber of nodeapp's orders (pub/sub), in cluster-3.
    ...(opts.grpc ? [] : [r.crossmesh(['--cluster', 'cluster-3', 'run', '-n', 'dapr-test', '--app-id', 'order-log', '--app-port', '3000', '--detach', '--', process.execPath, ORDER_LOG])]),
  ]);
  r.check(opts.grpc ? 'nodeapp runs in cluster-1 and cluster-3, curl in cluster-2' : 'nodeapp runs in cluster-1 and cluster-3, curl in cluster-2, order-log in cluster-3', appRuns.every((x) => x.code === 0), appRuns.map((x) => x.stderr.trim()).filter(Boolean).join('; '));

  r.heading('Export nodeapp from cluster-1 and cluster-3');
  const exps = await Promise.all(EXPORTERS.map((c) => r.crossmesh(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', join(MANIFESTS, 'serviceexport.yaml')])));
  r.check('ServiceExport nodeapp applied', exps.every((x) => x.code === 0));
  const imported = await r.waitFor('the ServiceImport in cluster-2 to list cluster-1 and cluster-3', async () => {
    const res = await probe(['--cluster', 'cluster-2', 'get', 'simp', 'nodeapp', '-n', 'dapr-test', '-o', 'json']);
    if (res.code !== 0) return false;
    const keys = JSON.parse(res.stdout).spec?.ports?.flatMap((p: { endpoints: { clusterKey: string }[] }) => p.endpoints.map((e) => e.clusterKey)) ?? [];
    return keys.some((k: string) => k.endsWith('/cluster-1')) && keys.some((k: string) => k.endsWith('/cluster-3'));
  });
  if (!opts.fast) {
    await r.crossmesh(['--cluster', 'cluster-1', 'get', 'serviceexports.flomesh.io', '-A']);
    await r.crossmesh(['--cluster', 'cluster-2', 'get', 'serviceimports', '-A']);
  }
  r.check('cluster-2 imports nodeapp from cluster-1 and cluster-3', imported);

  if (opts.grpc) return grpcCalls(r);
  const curl = (extra: string[], url: string) => r.crossmesh(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', 'curl', '-s', '-w', '\\n[HTTP %{http_code}]', ...extra, url]);
  const status = (x: Run) => Number(/\[HTTP (\d+)\]\s*$/.exec(x.stdout)?.[1] ?? 0);

  r.heading('From curl in cluster-2, with no GlobalTrafficPolicy (Locality): the call must fail');
  const before = await curl([], 'http://nodeapp.dapr-test:3000/ports');
  r.check('GET /ports fails under Locality (cluster-2 has no local nodeapp)', status(before) >= 500 && status(before) < 600, `expected a 5xx, got HTTP ${status(before)}`);

  await applyPolicy(r);

  r.heading('The same calls now succeed, answered by cluster-1 and cluster-3');
  const servedBy = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const res = await curl([], 'http://nodeapp.dapr-test:3000/ports');
    const who = /from cluster: (\S+)/.exec(res.stdout)?.[1];
    if (who) servedBy.add(who);
    r.check(`GET /ports answered (${who ?? 'nobody'})`, status(res) === 200 && !!who, `HTTP ${status(res)}`);
  }
  r.check('answers came from both cluster-1 and cluster-3', servedBy.has('cluster-1') && servedBy.has('cluster-3'), [...servedBy].join(', '));

  const order = await curl(['-X', 'POST', '--data', '{"data":{"orderId":"42"}}', '--header', 'Content-Type:application/json', '--header', 'dapr-app-id:nodeapp'], 'http://nodeapp.dapr-test:3000/neworder');
  r.check('POST /neworder stores the order', status(order) === 200 && /created order via cluster: cluster-[13]/.test(order.stdout), `HTTP ${status(order)}`);
  const readers = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const res = await curl([], 'http://nodeapp.dapr-test:3000/order');
    const who = /from cluster: (\S+)/.exec(res.stdout)?.[1];
    if (who) readers.add(who);
    r.check(`GET /order returns {"orderId":"42"} (${who ?? 'nobody'})`, status(res) === 200 && res.stdout.includes('{"orderId":"42"}'), `HTTP ${status(res)}: ${res.stdout.trim().slice(0, 200)}`);
  }
  r.lastAnswerAt = r.elapsed();
  r.check('both clusters read the same order (shared state store)', readers.has('cluster-1') && readers.has('cluster-3'), [...readers].join(', '));

  r.heading('Pub/sub: POST /neworder also published the order to topic "orders"; order-log in cluster-3 received it');
  const logged = await r.waitFor('order-log to receive order 42', async () => {
    const res = await probe(['--cluster', 'cluster-3', 'exec', '-n', 'dapr-test', '--app-id', 'order-log', '--', 'sh', '-c', 'curl -s http://127.0.0.1:$APP_PORT/received']);
    return res.code === 0 && /"orderId":"42"/.test(res.stdout);
  }, 10_000);
  if (!opts.fast) await r.crossmesh(['--cluster', 'cluster-3', 'exec', '-n', 'dapr-test', '--app-id', 'order-log', '--', 'sh', '-c', 'curl -s http://127.0.0.1:$APP_PORT/received']);
  r.check('order-log in cluster-3 received {"orderId":"42"} from topic orders', logged);
}

/** The seed's GlobalTrafficPolicy in cluster-2 (ActiveActive over cluster-1 and cluster-3), waited for. */
async function applyPolicy(r: DemoRunner): Promise<void> {
  r.heading('Apply the GlobalTrafficPolicy in cluster-2 (ActiveActive over cluster-1 and cluster-3)');
  const gtp = await r.crossmesh(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', join(MANIFESTS, 'globaltrafficpolicy.yaml')]);
  r.check('GlobalTrafficPolicy nodeapp applied', gtp.code === 0, gtp.stderr.trim());
  await r.waitFor('the policy to reach the curl sidecar', async () => {
    const res = await probe(['--cluster', 'cluster-2', 'route', 'nodeapp.dapr-test:3000']);
    return /ActiveActive/.test(res.stdout);
  }, 5000);
}

/**
 * `demo --grpc`: the walkthrough's calls made by the gRPC client (examples/grpc-orders/client.mjs)
 * from beside the curl sidecar in cluster-2, before and after the policy. Each client line names
 * the cluster that answered (`served by cluster-N`); a mesh that cannot carry the call shows as
 * the client's gRPC error line (its calls have 10 s deadlines) and a failed check, never a hang.
 */
async function grpcCalls(r: DemoRunner): Promise<void> {
  const client = (extra: string[]) => r.crossmesh(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', process.execPath, ORDERS_CLIENT, 'nodeapp.dapr-test:3000', ...extra], undefined, GRPC_STEP_TIMEOUT_MS);
  const servers = (x: Run) => [...x.stdout.matchAll(/^NewOrder \S+: served by (\S+) /gm)].map((m) => m[1]);
  const errorOf = (x: Run) => (/^(?:NewOrder|WatchOrders)[^:]*: ([A-Z_]+: .*)$/m.exec(x.stdout)?.[1] ?? (x.stderr.trim() || `exit code ${x.code}`)).slice(0, 300);

  r.heading('From the gRPC client in cluster-2, with no GlobalTrafficPolicy (Locality): the call must fail');
  const before = await client([]);
  const refused = /^NewOrder order-1: UNAVAILABLE: /m.test(before.stdout);
  r.check('NewOrder fails with UNAVAILABLE under Locality (cluster-2 has no local nodeapp)', before.code === 1 && refused,
    `expected exit code 1 and an UNAVAILABLE line, got exit code ${before.code}: ${errorOf(before)}`);

  await applyPolicy(r);

  r.heading('The same calls now succeed over gRPC (HTTP/2 through the mesh), answered by cluster-1 and cluster-3');
  const calls = await client(['--count', '4']);
  const by = servers(calls);
  r.check(`NewOrder x4 answered (${by.join(', ') || 'nobody'})`, calls.code === 0 && by.length === 4, errorOf(calls));
  r.check('answers came from both cluster-1 and cluster-3', by.includes('cluster-1') && by.includes('cluster-3'), [...new Set(by)].join(', ') || errorOf(calls));

  const watch = await client(['--count', '0', '--watch', '3']);
  const updates = [...watch.stdout.matchAll(/^WatchOrders: update (\d) of 3 from (\S+) \(instance ([^)]+)\)$/gm)];
  const from = [...new Set(updates.map((m) => `${m[2]}/nodeapp-${m[3]}`))];
  r.lastAnswerAt = r.elapsed();
  r.check(`WatchOrders streams 3 updates across clusters, in order, from one instance (${from.join(', ') || 'nobody'})`,
    watch.code === 0 && updates.map((m) => m[1]).join() === '1,2,3' && from.length === 1 && /^cluster-[13]\//.test(from[0]), errorOf(watch));
}

async function reset(r: DemoRunner): Promise<void> {
  r.heading('Reset: remove what the walkthrough created (apps, namespaces) in every cluster');
  await r.crossmesh(['--cluster', 'cluster-2', 'stop', '-n', 'curl', '--app-id', 'curl']);
  for (const c of MEMBERS) await r.crossmesh(['--cluster', c, 'stop', '-n', 'dapr-test', '--app-id', 'nodeapp']);
  // Exports go first: while one exists the control plane keeps (re)creating imports and their
  // namespace in the other members.
  for (const c of EXPORTERS) await r.crossmesh(['--cluster', c, 'delete', 'serviceexport', 'nodeapp', '-n', 'dapr-test']);
  await r.waitFor('the imports to be withdrawn', async () => {
    const found = await Promise.all(MEMBERS.map((c) => probe(['--cluster', c, 'get', 'simp', 'nodeapp', '-n', 'dapr-test'])));
    return found.every((f) => f.code !== 0);
  }, 10_000);
  const deletions = await Promise.all([
    ...MEMBERS.map((c) => r.crossmesh(['--cluster', c, 'delete', 'namespace', 'dapr-test'])),
    r.crossmesh(['--cluster', 'cluster-2', 'delete', 'namespace', 'curl']),
  ]);
  await stopRedis();
  r.check('demo namespaces and apps removed', deletions.every((d) => d.code === 0 || /not found/.test(d.stderr)));
}

async function uninstall(r: DemoRunner): Promise<void> {
  r.heading('Uninstall: stop and delete all clusters');
  await stopRedis();
  const down = await r.crossmesh(['down', '--purge']);
  rmSync(demoDir(), { recursive: true, force: true });
  r.check('clusters stopped and deleted', down.code === 0, down.stderr.trim());
}

/** Runs the requested phases in the seed's order; returns the process exit code. */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const r = new DemoRunner(opts);
  if (opts.install) await install(r);
  if (opts.reset) await reset(r);
  if (opts.demo && r.outcomes.every((o) => o.ok)) await demo(r, opts);
  if (opts.uninstall) await uninstall(r);
  const failed = r.outcomes.filter((o) => !o.ok);
  process.stdout.write(`\n${bold('Summary')}: ${r.outcomes.length - failed.length} of ${r.outcomes.length} checks passed${failed.length ? `; failed: ${failed.map((f) => f.title).join('; ')}` : ''}\n`);
  if (r.lastAnswerAt) process.stdout.write(`Time from start to the last answer: ${(r.lastAnswerAt / 1000).toFixed(1)} s\n`);
  return failed.length ? 1 : 0;
}
