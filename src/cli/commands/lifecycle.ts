import { mkdirSync, openSync, closeSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CrossmeshError } from '../../errors.js';
import {
  clusterCaFile, clusterDir, crossmeshHome, contextEndpoint, isProcessAlive, listClusterNames, readClusterPorts, readClusterRecord, readConfig, writeConfig, type ClusterRecord,
} from '../home.js';
import { identityArgs, type IdentityFlags } from '../identity-flags.js';
import { formatTable } from '../output.js';
import { httpGet } from '../../util/http.js';
import { stopAllApps } from './apps.js';
import { CONTROL_PLANE, DEFAULT_CLUSTERS } from '../defaults.js';

export { CONTROL_PLANE, DEFAULT_CLUSTERS };
const BIN = fileURLToPath(new URL('../../../../bin/crossmesh.js', import.meta.url));

export interface UpOptions {
  clusters: string[];
  apiPort: number;
  gatewayPort: number;
  /** Mesh (tunnel) port of the first cluster, the next ones count up; 0 = free ones (default). */
  meshPort?: number;
  host: string;
  timeoutMs?: number;
  /** --ca-cert/--ca-key, --trust-domain, --insecure-plaintext, --workload-cert-ttl (undefined = not given). */
  identity?: IdentityFlags;
}

export interface ClusterState {
  name: string;
  record?: ClusterRecord;
  state: 'running' | 'started' | 'stopped' | 'unhealthy';
}

/** The cluster's CA as its process wrote it (undefined before its first start). */
function clusterCa(name: string, home = crossmeshHome()): string | undefined {
  try {
    return readFileSync(clusterCaFile(name, home), 'utf8');
  } catch {
    return undefined;
  }
}

async function healthy(record: ClusterRecord): Promise<boolean> {
  try {
    const res = await httpGet(`${record.apiUrl}/healthz`, 1000, { ca: clusterCa(record.name) });
    return res.status >= 200 && res.status < 300;
  } catch {
    return false;
  }
}

async function currentState(name: string): Promise<ClusterState> {
  const record = readClusterRecord(name);
  if (!record || !isProcessAlive(record.pid)) return { name, record, state: 'stopped' };
  return { name, record, state: (await healthy(record)) ? 'running' : 'unhealthy' };
}

/** What joining a member takes: where its gateway is reached, and its API (a kubeconfig). */
export interface MemberSpec {
  name: string;
  gatewayHost: string;
  gatewayPort: number;
  meshPort?: number;
  /** The member's API as a kubeconfig document (server, CA, token). */
  kubeconfig: string;
}

/** A member of this home as a MemberSpec: its record (gateway) and its context (API). */
export async function localMemberSpec(name: string, record: ClusterRecord): Promise<MemberSpec> {
  const { renderKubeconfig } = await import('../../client/kubeconfig.js');
  const ep = contextEndpoint(readConfig(), name);
  if (!ep) throw new CrossmeshError('CM_ERR_NOT_FOUND', `no context for cluster ${name} in ${crossmeshHome()}; start it with \`crossmesh up --clusters ${name}\`, or join it from another host with --kubeconfig and --gateway-host`);
  // A wildcard listen address is not an address to dial: the member is then reached on loopback.
  const gatewayHost = record.host === '0.0.0.0' ? '127.0.0.1' : record.host;
  return { name, gatewayHost, gatewayPort: record.gatewayPort, ...(record.meshPort ? { meshPort: record.meshPort } : {}), kubeconfig: renderKubeconfig(ep) };
}

/**
 * `crossmesh join NAME [flags]`: with --kubeconfig, a member on another host (its gateway address
 * and ports from the flags); without, a member of this home (its record and context), where the
 * flags given override what the record says.
 */
export async function memberSpecFromFlags(name: string, o: { kubeconfig?: string; gatewayHost?: string; gatewayPort?: number; meshPort?: number }): Promise<MemberSpec> {
  if (o.kubeconfig === undefined) {
    const record = readClusterRecord(name);
    if (!record) throw new CrossmeshError('CM_ERR_NOT_FOUND', `cluster ${name} has not run under ${crossmeshHome()}: start it with \`crossmesh up --clusters ${name}\`, or join one of another host with --kubeconfig FILE --gateway-host ADDR --gateway-port PORT`);
    const local = await localMemberSpec(name, record);
    return { ...local, ...(o.gatewayHost ? { gatewayHost: o.gatewayHost } : {}), ...(o.gatewayPort ? { gatewayPort: o.gatewayPort } : {}), ...(o.meshPort ? { meshPort: o.meshPort } : {}) };
  }
  const missing = [o.gatewayHost === undefined && '--gateway-host', o.gatewayPort === undefined && '--gateway-port'].filter(Boolean);
  if (missing.length) throw new CrossmeshError('CM_ERR_USAGE', `join ${name} --kubeconfig: also give ${missing.join(' and ')} (where other clusters reach its gateway; \`crossmesh status\` on its host shows the ports)`);
  let text: string;
  try {
    text = readFileSync(o.kubeconfig, 'utf8');
  } catch (err) {
    throw new CrossmeshError('CM_ERR_USAGE', `--kubeconfig ${o.kubeconfig}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); write it on the member's host with \`crossmesh kubeconfig get ${name} > FILE\``, { cause: err });
  }
  // Parsed here so a wrong file is named before anything is applied (the API checks it again).
  const { parseKubeconfig } = await import('../../client/kubeconfig.js');
  parseKubeconfig(text, `--kubeconfig ${o.kubeconfig}`);
  return { name, gatewayHost: o.gatewayHost!, gatewayPort: o.gatewayPort!, ...(o.meshPort ? { meshPort: o.meshPort } : {}), kubeconfig: text };
}

/**
 * Joins members to the control plane with the same resource a user would apply: a `Cluster`
 * carrying the member's gateway address and its kubeconfig. Every spec is validated before the
 * first is applied, so a wrong one changes nothing.
 */
export async function joinMembers(controlPlane: string, members: MemberSpec[]): Promise<string[]> {
  // validation (zod) only here: `status` shares this module.
  const [{ kindFor, validateObject }, { ApiClient }] = await Promise.all([import('../../api/validation.js'), import('../../client/api-client.js')]);
  const cfg = readConfig();
  const cpEndpoint = contextEndpoint(cfg, controlPlane);
  if (!cpEndpoint) throw new CrossmeshError('CM_ERR_NOT_FOUND', `no context for the control plane ${controlPlane} in ${crossmeshHome()}; start it with \`crossmesh up --clusters ${controlPlane}\` on this host`);
  const kind = kindFor('flomesh.io/v1alpha1', 'Cluster');
  const objects = members.map((m) => validateObject({
    apiVersion: 'flomesh.io/v1alpha1',
    kind: 'Cluster',
    metadata: { name: m.name },
    spec: { gatewayHost: m.gatewayHost, gatewayPort: m.gatewayPort, ...(m.meshPort ? { meshPort: m.meshPort } : {}), kubeconfig: m.kubeconfig },
  }));
  const cp = new ApiClient(cpEndpoint);
  const lines: string[] = [];
  try {
    for (const obj of objects) {
      const name = obj.metadata.name!;
      const before = await cp.get(kind, name);
      const after = await cp.apply(kind, obj);
      lines.push(`clusters.flomesh.io/${name} ${!before ? 'created' : before.metadata.resourceVersion === after.metadata.resourceVersion ? 'unchanged' : 'configured'}`);
    }
  } finally {
    await cp.close();
  }
  return lines;
}

/**
 * Starts the named clusters in the background (idempotent: running ones are left alone), waits
 * until each is healthy, and records each as a context. A cluster keeps the ports it had on an
 * earlier start, so kubeconfigs handed out before stay valid; `--api-port 0` picks free ports.
 */
export async function up(opts: UpOptions, onProgress: (msg: string) => void = () => undefined): Promise<ClusterState[]> {
  const home = crossmeshHome();
  const identity = await checkIdentityFlags(opts.clusters, opts.identity ?? {}, home);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const results: ClusterState[] = [];
  const starting: Promise<ClusterState>[] = [];
  opts.clusters.forEach((name, i) => {
    starting.push((async () => {
      const now = await currentState(name);
      if (now.state === 'running') return now;
      if (now.state === 'unhealthy') {
        throw new CrossmeshError('CM_ERR_UNAVAILABLE', `cluster ${name} (pid ${now.record!.pid}) runs but does not answer ${now.record!.apiUrl}/healthz; see ${join(clusterDir(name), 'cluster.log')} or run \`crossmesh down\``);
      }
      const previous = readClusterPorts(name);
      const apiPort = previous?.apiPort ?? (opts.apiPort === 0 ? 0 : opts.apiPort + i);
      const gatewayPort = previous?.gatewayPort ?? (opts.gatewayPort === 0 ? 0 : opts.gatewayPort + i);
      // Any free mesh port the first time unless given, then kept (ports.json) like the others.
      const meshPort = previous?.meshPort ?? (opts.meshPort ? opts.meshPort + i : 0);
      onProgress(`starting ${name}...`);
      const record = await spawnCluster(name, apiPort, gatewayPort, meshPort, opts.host, identityArgs(identity.flags, identity.caTargets.includes(name)), opts.timeoutMs ?? 15_000);
      return { name, record, state: 'started' as const };
    })());
  });
  for (const s of await Promise.allSettled(starting)) {
    if (s.status === 'rejected') throw s.reason;
    results.push(s.value);
  }
  const cfg = readConfig(home);
  for (const r of results) {
    const token = readFileSync(join(clusterDir(r.name, home), 'token'), 'utf8').trim();
    const ca = clusterCa(r.name, home);
    cfg.contexts[r.name] = { server: r.record!.apiUrl, token, ...(ca ? { ca } : {}) };
  }
  cfg.currentContext ??= opts.clusters[0];
  writeConfig(cfg, home);
  return results;
}

/**
 * The identity flags checked before anything starts: a supplied CA (readable, a CA, its key,
 * valid; the error names the file), and, for every named cluster that ran before, the same
 * trust domain / mode / workload TTL / root it was first started with. The supplied root goes to
 * the control plane when it is among the clusters (it is the mesh root), else to each of them.
 * A CA declaring a trust domain sets it for all of them (members must share the mesh's).
 */
async function checkIdentityFlags(clusters: string[], flags: IdentityFlags, home: string): Promise<{ flags: IdentityFlags; caTargets: string[] }> {
  const { checkPkiSettings, readPkiSettings, PKI_DIR } = await import('../../identity/pki-settings.js');
  let caCertPem: string | undefined;
  let resolved = flags;
  if (flags.caCert) {
    const { validateSuppliedCaFiles } = await import('../../identity/cluster-pki.js');
    const ca = await validateSuppliedCaFiles(flags.caCert, flags.caKey!, flags.trustDomain);
    caCertPem = ca.certPem;
    resolved = { ...flags, trustDomain: ca.trustDomain };
  }
  const caTargets = flags.caCert ? (clusters.includes(CONTROL_PLANE) ? [CONTROL_PLANE] : clusters) : [];
  for (const name of clusters) {
    const persisted = readPkiSettings(join(clusterDir(name, home), PKI_DIR));
    if (!persisted) continue;
    checkPkiSettings(name, persisted, {
      trustDomain: resolved.trustDomain,
      mode: resolved.insecurePlaintext ? 'plaintext' : undefined,
      workloadCertTtlSeconds: resolved.workloadCertTtlSeconds,
      caCertPem: caTargets.includes(name) ? caCertPem : undefined,
    }, 'CM_ERR_USAGE');
  }
  return { flags: resolved, caTargets };
}

async function spawnCluster(name: string, apiPort: number, gatewayPort: number, meshPort: number, host: string, extraArgs: string[], timeoutMs: number): Promise<ClusterRecord> {
  const [{ spawn }, { clusterNodeFlags }] = await Promise.all([import('node:child_process'), import('../node-flags.js')]);
  const dir = clusterDir(name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  rmSync(join(dir, 'cluster.json'), { force: true });
  const logFile = join(dir, 'cluster.log');
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...clusterNodeFlags(), BIN, 'cluster', '--name', name, '--api-port', String(apiPort), '--gateway-port', String(gatewayPort), '--mesh-port', String(meshPort), '--host', host, '--data-dir', dir, ...extraArgs], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  closeSync(out);
  let exited: number | null | undefined;
  child.on('exit', (code) => { exited = code; });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) break;
    const record = readClusterRecord(name);
    if (record && record.pid === child.pid && (await healthy(record))) return record;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (exited === undefined) {
    try { process.kill(child.pid!, 'SIGKILL'); } catch { /* already gone */ }
  }
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-8).join('\n') : '';
  throw new CrossmeshError('CM_ERR_UNAVAILABLE', `cluster ${name} did not become healthy${exited !== undefined ? ` (exited with code ${exited})` : ` within ${timeoutMs} ms`}; last lines of ${logFile}:\n${tail}`);
}

/** Stops every cluster (and, from the sidecar layer on, every app) started under this home. */
export async function down(opts: { purge: boolean }): Promise<string[]> {
  const home = crossmeshHome();
  // Apps first, while their clusters still answer: their sidecars deregister on the way out.
  const apps = await stopAllApps(home);
  const stopped: string[] = [];
  const names = listClusterNames(home);
  await Promise.all(names.map(async (name) => {
    const record = readClusterRecord(name, home);
    if (record && isProcessAlive(record.pid)) {
      await (await import('../processes.js')).stopProcess(record.pid);
      stopped.push(name);
    }
    rmSync(join(clusterDir(name, home), 'cluster.json'), { force: true });
  }));
  if (opts.purge) {
    rmSync(join(home, 'clusters'), { recursive: true, force: true });
    const cfg = readConfig(home);
    for (const name of names) delete cfg.contexts[name];
    if (cfg.currentContext && !cfg.contexts[cfg.currentContext]) delete cfg.currentContext;
    writeConfig(cfg, home);
  }
  return [...apps, ...stopped.sort()];
}

export async function status(): Promise<ClusterState[]> {
  return Promise.all(listClusterNames().map(currentState));
}

export function clusterTable(states: ClusterState[]): string {
  return formatTable(['NAME', 'STATE', 'API', 'GATEWAY', 'MESH PORT', 'PID'], states.map((s) => [
    s.name,
    s.state,
    s.record?.apiUrl ?? '-',
    s.record ? `${s.record.host}:${s.record.gatewayPort}` : '-',
    s.record?.meshPort ? String(s.record.meshPort) : '-',
    s.record && s.state !== 'stopped' ? String(s.record.pid) : '-',
  ]));
}
