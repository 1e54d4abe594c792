/**
 * `npm run bench:scale [-- --smoke] [-- --sizes N:E:S1,S2,...;...] [-- --out FILE]`: how the
 * control plane's and the sidecars' cost grows with clusters (N members), exported services per
 * member (S) and endpoints per service (E), on this machine.
 *
 * For each (N, E) a fresh mesh is started with the real CLI under a temp CROSSMESH_HOME
 * (`crossmesh up`: the control plane and N members as processes, joined), with one real sidecar
 * (a client-only app in member-1) observing. Then S grows along its ladder: every member gets
 * Services `svc-0 … svc-(S-1)` in namespace `scale` with E endpoint addresses each and a
 * ServiceExport of each, through the API (the same names in every member, as one app deployed
 * everywhere: each member imports S services with N-1 exporters). At each size it measures:
 *   - sync: time until every member holds all S imports with N-1 endpoints;
 *   - propagation: 20 new exports, one at a time (round robin over the members): from the
 *     ServiceExport's create to its ServiceImport in every other member (watched), p50 / p99;
 *   - resync: the control plane SIGKILLed, an export created while it is down, `crossmesh up`
 *     again: time from the restart to that import in every member, and how many imports were
 *     deleted or re-created in the members meanwhile (must be 0: members keep routing);
 *   - control-plane CPU seconds over the propagation phase and its RSS; the largest member RSS;
 *     the sidecar's RSS and its mean route update time (its /metrics counters);
 *   - API requests/s and watch events/s the control plane causes on the members (their
 *     /metrics, counted by the control plane's User-Agent) during the propagation phase;
 *   - the data directories' size on disk.
 * Last, leases: L sidecar leases renewed once a second (merge patches of their renewTime, as a
 * sidecar sends them) against one member for 10 s: that cluster process's CPU.
 *
 * Writes bench/results/scale-latest.json (smoke: scale-smoke.json) and prints a table.
 */
import { spawn } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/client/api-client.js';
import { Informer } from '../src/client/informer.js';
import { kindFor } from '../src/api/index.js';
import type { KubeObject } from '../src/api/types.js';
import { contextEndpoint, readConfig } from '../src/util/home.js';
import { inParallel } from '../src/util/parallel.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'crossmesh.js');
const args = process.argv.slice(2);
const argValue = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SMOKE = args.includes('--smoke');
const NS = 'scale';
const SERVICE = kindFor('v1', 'Service');
const ENDPOINTS = kindFor('v1', 'Endpoints');
const EXPORT = kindFor('flomesh.io/v1alpha1', 'ServiceExport');
const IMPORT = kindFor('flomesh.io/v1alpha1', 'ServiceImport');
const NAMESPACE = kindFor('v1', 'Namespace');
const LEASE = kindFor('coordination.k8s.io/v1', 'Lease');
const CLK_TCK = 100;

interface Plan { members: number; endpoints: number; services: number[] }
/** `N:E:S1,S2;N:E:...` */
function parseSizes(text: string): Plan[] {
  return text.split(';').map((part) => {
    const [n, e, s] = part.split(':');
    const plan = { members: Number(n), endpoints: Number(e), services: s.split(',').map(Number) };
    if (!(plan.members >= 1 && plan.endpoints >= 1 && plan.services.every((x) => x >= 1))) throw new Error(`--sizes: bad part "${part}" (want N:E:S1,S2,...)`);
    return plan;
  });
}
const PLANS = parseSizes(argValue('--sizes') ?? (SMOKE ? '2:1:5' : '3:1:10,100,1000;3:10:10,100,1000;10:1:10,100,1000;10:10:10,100,1000'));
const PROBES = Number(argValue('--probes') ?? (SMOKE ? 3 : 20));
const LEASES = Number(argValue('--leases') ?? (SMOKE ? 50 : 1000));
const LEASE_SECONDS = SMOKE ? 3 : 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

function cli(home: string, argv: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], { env: { ...process.env, CROSSMESH_HOME: home, CROSSMESH_CLUSTER: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      if (code === 0) resolve(out);
      else reject(new Error(`crossmesh ${argv.join(' ')} exited ${code}: ${err}${out}`));
    });
  });
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += dirBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

/** A cluster's /metrics page (bearer token, its CA). */
function metricsPage(ep: { server: string; token: string; ca?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${ep.server}/metrics`, { headers: { authorization: `Bearer ${ep.token}` }, ca: ep.ca }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${ep.server}/metrics answered ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sum of a counter's samples on a Prometheus text page whose labels match `filter`. */
function counterSum(text: string, name: string, filter: (labels: string) => boolean = () => true): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
    if (m && m[1] === name && filter(m[2] ?? '')) sum += Number(m[3]);
  }
  return sum;
}

export interface SizeResult {
  members: number;
  servicesPerMember: number;
  endpointsPerService: number;
  syncMs: number;
  /** After sync, until the control plane's writes (conflict conditions) stopped. */
  settleMs: number;
  propagationMs: { p50: number; p99: number; max: number; samples: number };
  resync: { ms: number; importsDeleted: number; importsRecreated: number };
  controlPlane: { cpuSeconds: number; rssMb: number; cpuSecondsPerChange: number };
  memberRssMbMax: number;
  sidecar: { rssMb: number; routeUpdateMeanMs: number; routeUpdates: number; importedServicePorts: number; kbPerServicePort?: number };
  controlPlaneTraffic: { requestsPerSecond: number; watchEventsPerSecond: number; requestsPerChange: number };
  storeBytes: { controlPlane: number; memberMean: number };
}

/** One (N, E) mesh grown along its S ladder. */
async function runPlan(p: Plan, out: SizeResult[], withLeases: boolean): Promise<{ leases?: LeaseResult }> {
  const home = mkdtempSync(join(tmpdir(), 'crossmesh-scale-'));
  const names = Array.from({ length: p.members }, (_, i) => `member-${i + 1}`);
  const clients = new Map<string, ApiClient>();
  const watchers: Informer[] = [];
  let keep = false;
  try {
    process.stderr.write(`scale: starting control-plane + ${p.members} members (E=${p.endpoints})...\n`);
    await cli(home, ['up', '--clusters', ['control-plane', ...names].join(','), '--api-port', '0', '--gateway-port', '0']);
    const cfg = readConfig(home);
    for (const n of ['control-plane', ...names]) clients.set(n, new ApiClient(contextEndpoint(cfg, n)!));
    const pidOf = (n: string) => (JSON.parse(readFileSync(join(home, 'clusters', n, 'cluster.json'), 'utf8')) as { pid: number }).pid;
    await Promise.all(names.map((n) => clients.get(n)!.create(NAMESPACE, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })));
    await cli(home, ['--cluster', names[0], 'run', '-n', NS, '--app-id', 'observer', '--detach', '--', 'sleep', '3600']);
    const sidecarDir = join(home, 'apps', names[0], NS, 'observer');
    const sidecar = JSON.parse(readFileSync(join(sidecarDir, readdirSync(sidecarDir)[0], 'sidecar.json'), 'utf8')) as { pid: number; env: Record<string, string> };
    const sidecarMetrics = async () => (await fetch(`http://127.0.0.1:${sidecar.env.DAPR_HTTP_PORT}/metrics`)).text();

    // Every member's imports, watched: arrival times of probes, deletes and re-creates during a resync.
    const arrived = new Map<string, Map<string, number>>();
    const churn = { deleted: 0, added: 0, counting: false };
    for (const n of names) {
      const inf = new Informer(clients.get(n)!, IMPORT, { namespace: NS });
      arrived.set(n, new Map());
      inf.on('add', (o) => {
        arrived.get(n)!.set(o.metadata.name, performance.now());
        if (churn.counting && !o.metadata.name.startsWith('probe-')) churn.added++;
      });
      inf.on('delete', () => { if (churn.counting) churn.deleted++; });
      inf.start();
      watchers.push(inf);
    }
    await Promise.all(watchers.map((w) => w.waitForSync(30_000)));
    const importedEverywhere = (name: string, except?: string) => names.every((n) => n === except || arrived.get(n)!.has(name));
    const untilImported = async (name: string, except: string | undefined, timeoutMs: number) => {
      const deadline = performance.now() + timeoutMs;
      while (!importedEverywhere(name, except)) {
        if (performance.now() > deadline) throw new Error(`${name} was not imported in every member within ${timeoutMs} ms`);
        await sleep(2);
      }
      return Math.max(...names.filter((n) => n !== except).map((n) => arrived.get(n)!.get(name)!));
    };

    const service = (name: string, member: number, i: number): KubeObject[] => [
      { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      { apiVersion: 'v1', kind: 'Endpoints', metadata: { name, namespace: NS }, subsets: [{ addresses: Array.from({ length: p.endpoints }, (_, e) => ({ ip: `10.${member}.${Math.floor(i / 200)}.${(i % 200) + e + 1}` })), ports: [{ name: 'http', port: 8080 }] }] },
      { apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name, namespace: NS }, spec: { serviceAccountName: '*', rules: [{ portNumber: 80, path: `/${name}`, pathType: 'Prefix' }] } },
    ];
    const createAll = async (client: ApiClient, objs: KubeObject[]) => {
      for (const o of objs) await client.create(o.kind === 'Service' ? SERVICE : o.kind === 'Endpoints' ? ENDPOINTS : EXPORT, o);
    };

    let have = 0;
    let probeSeq = 0;
    let prevSidecarRss: { rss: number; ports: number } | undefined;
    for (const s of p.services) {
      process.stderr.write(`scale: N=${p.members} E=${p.endpoints} S=${s}: creating services...\n`);
      const t0 = performance.now();
      await Promise.all(names.map((n, m) => inParallel(Array.from({ length: s - have }, (_, k) => have + k), 4, (i) => createAll(clients.get(n)!, service(`svc-${i}`, m + 1, i)))));
      // Synced: every member has every svc import, each with N-1 exporters.
      const deadline = performance.now() + 600_000;
      const complete = async () => {
        if (p.members === 1) return true; // nothing to import from
        for (const n of names) {
          const list = (await clients.get(n)!.list(IMPORT, NS)).items.filter((o) => o.metadata.name.startsWith('svc-'));
          if (list.length !== s) return false;
          const endpoints = (o: KubeObject) => ((o.spec?.ports ?? []) as { endpoints?: unknown[] }[])[0]?.endpoints?.length ?? 0;
          if (p.members > 1 && !list.every((o) => endpoints(o) === p.members - 1)) return false;
        }
        return true;
      };
      while (!(await complete())) {
        if (performance.now() > deadline) throw new Error(`imports of ${s} services did not converge`);
        await sleep(200);
      }
      const syncMs = performance.now() - t0;
      have = s;
      const cp = pidOf('control-plane');
      const traffic = async () => {
        const pages = await Promise.all(names.map((n) => metricsPage(contextEndpoint(cfg, n)!)));
        const cpOnly = (l: string) => l.includes('client="control-plane"');
        return { requests: pages.reduce((a, t) => a + counterSum(t, 'crossmesh_apiserver_requests_total', cpOnly), 0), events: pages.reduce((a, t) => a + counterSum(t, 'crossmesh_apiserver_watch_events_total', cpOnly), 0) };
      };
      // Settled: the control plane has written everything it will (conflict conditions come
      // after the imports): its requests to the members stop growing for a second.
      const settleStart = performance.now();
      for (let last = -1, quiet = 0; quiet < (SMOKE ? 2 : 5) && performance.now() - settleStart < 300_000;) {
        const now = (await traffic()).requests;
        quiet = now === last ? quiet + 1 : 0;
        last = now;
        await sleep(200);
      }
      const settleMs = performance.now() - settleStart;

      // Propagation of one new export at a time.
      const sidecarBefore = await sidecarMetrics();
      const trafficBefore = await traffic();
      const cpuBefore = cpuSeconds(cp);
      const phaseStart = performance.now();
      const samples: number[] = [];
      for (let j = 0; j < (p.members > 1 ? PROBES : 0); j++) {
        const m = j % p.members;
        const name = `probe-${probeSeq++}`;
        const [svc, ep, exp] = service(name, m + 1, 199);
        await clients.get(names[m])!.create(SERVICE, svc);
        await clients.get(names[m])!.create(ENDPOINTS, ep);
        const start = performance.now();
        await clients.get(names[m])!.create(EXPORT, exp);
        samples.push((await untilImported(name, names[m], 30_000)) - start);
      }
      const phaseSeconds = (performance.now() - phaseStart) / 1000;
      const cpCpu = cpuSeconds(cp) - cpuBefore;
      const trafficAfter = await traffic();
      await sleep(SMOKE ? 100 : 500);
      const sidecarAfter = await sidecarMetrics();
      const updates = counterSum(sidecarAfter, 'crossmesh_sidecar_route_updates_total') - counterSum(sidecarBefore, 'crossmesh_sidecar_route_updates_total');
      const updateSeconds = counterSum(sidecarAfter, 'crossmesh_sidecar_route_update_seconds_total') - counterSum(sidecarBefore, 'crossmesh_sidecar_route_update_seconds_total');
      const cpRss = rssMb(cp);
      const memberRss = Math.max(...names.map((n) => rssMb(pidOf(n))));
      const sidecarRss = rssMb(sidecar.pid);
      const ports = s + probeSeq;
      const kbPerServicePort = prevSidecarRss ? ((sidecarRss - prevSidecarRss.rss) * 1024) / (ports - prevSidecarRss.ports) : undefined;
      prevSidecarRss = { rss: sidecarRss, ports };

      // Resync after a control-plane SIGKILL and restart.
      let resync = { ms: NaN, importsDeleted: 0, importsRecreated: 0 };
      if (p.members > 1) {
        process.kill(cp, 'SIGKILL');
        while ((() => { try { process.kill(cp, 0); return true; } catch { return false; } })()) await sleep(10);
        const name = `probe-${probeSeq++}`;
        await createAll(clients.get(names[0])!, service(name, 1, 198));
        churn.deleted = 0;
        churn.added = 0;
        churn.counting = true;
        const restart = performance.now();
        await cli(home, ['up', '--clusters', 'control-plane', '--api-port', '0', '--gateway-port', '0']);
        const at = await untilImported(name, names[0], 120_000);
        await sleep(SMOKE ? 200 : 1000);
        churn.counting = false;
        resync = { ms: at - restart, importsDeleted: churn.deleted, importsRecreated: churn.added };
        const cfg2 = readConfig(home);
        await clients.get('control-plane')!.close();
        clients.set('control-plane', new ApiClient(contextEndpoint(cfg2, 'control-plane')!));
      }
      const memberStores = names.map((n) => dirBytes(join(home, 'clusters', n)));
      const r: SizeResult = {
        members: p.members,
        servicesPerMember: s,
        endpointsPerService: p.endpoints,
        syncMs: Math.round(syncMs),
        settleMs: Math.round(settleMs),
        propagationMs: { p50: round(percentile(samples, 50)), p99: round(percentile(samples, 99)), max: round(Math.max(...samples)), samples: samples.length },
        resync: { ms: Math.round(resync.ms), importsDeleted: resync.importsDeleted, importsRecreated: resync.importsRecreated },
        controlPlane: { cpuSeconds: round(cpCpu, 2), rssMb: round(cpRss), cpuSecondsPerChange: round(cpCpu / Math.max(1, samples.length), 3) },
        memberRssMbMax: round(memberRss),
        sidecar: { rssMb: round(sidecarRss), routeUpdateMeanMs: round(updates ? (updateSeconds / updates) * 1000 : NaN, 3), routeUpdates: updates, importedServicePorts: ports, ...(kbPerServicePort !== undefined ? { kbPerServicePort: round(kbPerServicePort, 2) } : {}) },
        controlPlaneTraffic: {
          requestsPerSecond: round((trafficAfter.requests - trafficBefore.requests) / phaseSeconds),
          watchEventsPerSecond: round((trafficAfter.events - trafficBefore.events) / phaseSeconds),
          requestsPerChange: round((trafficAfter.requests - trafficBefore.requests) / Math.max(1, samples.length)),
        },
        storeBytes: { controlPlane: dirBytes(join(home, 'clusters', 'control-plane')), memberMean: Math.round(memberStores.reduce((a, b) => a + b, 0) / memberStores.length) },
      };
      out.push(r);
      process.stderr.write(`scale: ${JSON.stringify(r)}\n`);
    }
    // Leases against one member, on the first plan only.
    return { leases: withLeases ? await leaseLoad(clients.get(names[0])!, pidOf(names[0])) : undefined };
  } catch (err) {
    // Kept for a look: the clusters' logs are in the home.
    process.stderr.write(`scale: failed; clusters left running, logs under ${home}/clusters/*/cluster.log (crossmesh down --purge with CROSSMESH_HOME=${home})\n`);
    keep = true;
    throw err;
  } finally {
    for (const w of watchers) w.stop();
    await Promise.all([...clients.values()].map((c) => c.close()));
    if (!keep) {
      await cli(home, ['down', '--purge']).catch((err) => process.stderr.write(`scale: down failed: ${(err as Error).message}\n`));
      rmSync(home, { recursive: true, force: true });
    }
  }
}

export interface LeaseResult { leases: number; renewalsPerSecond: number; clusterCpuPercent: number; failed: number }

/** L leases renewed once a second each (spread evenly), as L sidecars would, for LEASE_SECONDS. */
async function leaseLoad(client: ApiClient, pid: number): Promise<LeaseResult> {
  process.stderr.write(`scale: ${LEASES} leases renewing...\n`);
  const names = Array.from({ length: LEASES }, (_, i) => `bench-lease-${i}`);
  const now = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  await inParallel(names, 8, (name) => client.create(LEASE, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: NS }, spec: { holderIdentity: name, leaseDurationSeconds: 3600, renewTime: now() } }));
  let failed = 0;
  let sent = 0;
  const cpu0 = cpuSeconds(pid);
  const start = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; performance.now() - start < LEASE_SECONDS * 1000; i++) {
    const due = start + (i * 1000) / LEASES;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    sent++;
    inflight.push(client.mergePatch(LEASE, names[i % LEASES], NS, { spec: { renewTime: now() } }).catch(() => { failed++; }));
    if (inflight.length > 256) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  return { leases: LEASES, renewalsPerSecond: round(sent / seconds), clusterCpuPercent: round((cpu / seconds) * 100), failed };
}

function table(rows: SizeResult[], leases: LeaseResult | undefined): string {
  const head = '| N members | S services/member | E endpoints | sync (+ settle) | propagation p50 / p99 ms | resync ms (imports deleted/re-created) | CP CPU s per change | CP RSS MB | member RSS MB | sidecar RSS MB (KB per service-port) | sidecar route update ms | CP req/s, watch ev/s on members | store MB (CP / member) |';
  const lines = [head, '|' + '---|'.repeat(13)];
  for (const r of rows) {
    lines.push(`| ${r.members} | ${r.servicesPerMember} | ${r.endpointsPerService} | ${(r.syncMs / 1000).toFixed(1)} s (+${(r.settleMs / 1000).toFixed(1)} s) | ${r.propagationMs.p50} / ${r.propagationMs.p99} | ${r.resync.ms} (${r.resync.importsDeleted}/${r.resync.importsRecreated}) | ${r.controlPlane.cpuSecondsPerChange} | ${r.controlPlane.rssMb} | ${r.memberRssMbMax} | ${r.sidecar.rssMb}${r.sidecar.kbPerServicePort !== undefined ? ` (${r.sidecar.kbPerServicePort})` : ''} | ${r.sidecar.routeUpdateMeanMs} | ${r.controlPlaneTraffic.requestsPerSecond}, ${r.controlPlaneTraffic.watchEventsPerSecond} | ${(r.storeBytes.controlPlane / 1e6).toFixed(1)} / ${(r.storeBytes.memberMean / 1e6).toFixed(1)} |`);
  }
  if (leases) lines.push('', `Leases: ${leases.leases} renewing once a second each (${leases.renewalsPerSecond} renewals/s sent, ${leases.failed} failed): the cluster process used ${leases.clusterCpuPercent}% of one core.`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const started = performance.now();
  const rows: SizeResult[] = [];
  let leases: LeaseResult | undefined;
  for (const [i, p] of PLANS.entries()) {
    const r = await runPlan(p, rows, i === 0);
    leases ??= r.leases;
  }
  const result = { date: new Date().toISOString(), smoke: SMOKE, plans: PLANS, probes: PROBES, seconds: round((performance.now() - started) / 1000), sizes: rows, leases };
  const file = argValue('--out') ?? join(ROOT, 'bench', 'results', SMOKE ? 'scale-smoke.json' : 'scale-latest.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(table(rows, leases));
  console.log(`\nwrote ${file} (${result.seconds} s)`);
}

await main();
