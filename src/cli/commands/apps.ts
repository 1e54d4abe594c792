/**
 * `crossmesh run`, `exec`, `stop`, and the apps part of `status` and `down`.
 * A running app instance lives in `$CROSSMESH_HOME/apps/<cluster>/<ns>/<appId>/<instanceId>/`:
 * `config.json` (what the sidecar was started with), `launch.json` (pid of a detached sidecar
 * before it is ready), `sidecar.json` (the ready file: pids, ports, env), `app.log`, `sidecar.log`.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiClient } from '../../client/api-client.js';
import { CrossmeshError, toCrossmeshError } from '../../errors.js';
import { EXIT_FILE, RECORD_FILE, type SidecarProcessConfig, type SidecarRecord } from '../../sidecar/record.js';
import { httpGet } from '../../util/http.js';
import { crossmeshHome, isProcessAlive } from '../home.js';
import { formatTable } from '../output.js';

/** The sidecar's own entry point: loads only the sidecar, not the CLI (src/sidecar/main.ts). */
const SIDECAR_BIN = fileURLToPath(new URL('../../../../bin/crossmesh-sidecar.js', import.meta.url));
const LABEL_RULE = 'must be a lowercase RFC 1123 label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63)';

export function appsDir(home = crossmeshHome()): string {
  return join(home, 'apps');
}

export interface AppEntry {
  cluster: string;
  namespace: string;
  appId: string;
  instanceId: string;
  dir: string;
  record?: SidecarRecord;
  /** Sidecar pid: from the ready file, else from launch.json (still starting). */
  pid?: number;
  /** dead: the sidecar died without cleaning up; exited: the app failed (exit code kept, logs in the dir). */
  state: 'running' | 'starting' | 'dead' | 'exited';
  exitCode?: number;
}

function readJson<T>(file: string): T | undefined {
  try { return JSON.parse(readFileSync(file, 'utf8')) as T; } catch { return undefined; }
}

function subdirs(dir: string): string[] {
  try { return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort(); } catch { return []; }
}

/** Every app instance recorded under this home (optionally only one cluster / namespace / app id). */
export function listApps(filter: { cluster?: string; namespace?: string; appId?: string } = {}, home = crossmeshHome()): AppEntry[] {
  const out: AppEntry[] = [];
  const root = appsDir(home);
  for (const cluster of subdirs(root)) {
    if (filter.cluster && cluster !== filter.cluster) continue;
    for (const namespace of subdirs(join(root, cluster))) {
      if (filter.namespace && namespace !== filter.namespace) continue;
      for (const appId of subdirs(join(root, cluster, namespace))) {
        if (filter.appId && appId !== filter.appId) continue;
        for (const instanceId of subdirs(join(root, cluster, namespace, appId))) {
          const dir = join(root, cluster, namespace, appId, instanceId);
          const record = readJson<SidecarRecord>(join(dir, RECORD_FILE));
          const pid = record?.pid ?? readJson<{ pid: number }>(join(dir, 'launch.json'))?.pid;
          const alive = pid !== undefined && isProcessAlive(pid);
          const exit = alive ? undefined : readJson<{ code: number }>(join(dir, EXIT_FILE));
          const state = alive ? (record ? 'running' : 'starting') : exit ? 'exited' : 'dead';
          out.push({ cluster, namespace, appId, instanceId, dir, record, pid, state, exitCode: exit?.code });
        }
      }
    }
  }
  return out;
}

export interface RunOptions {
  cluster?: string;
  namespace: string;
  appId: string;
  appPort?: number;
  /** The app's service account (its mesh identity); default `default`, created when missing. */
  serviceAccount?: string;
  /** --config: the Dapr Configuration (in the app's namespace) whose secrets scopes apply, as daprd's --config. */
  daprConfig?: string;
  /** --app-protocol: Dapr's app-protocol, 'http' (default) or 'grpc'. */
  appProtocol?: string;
  /** --connect-timeout: Go duration (default 500ms). */
  connectTimeout?: string;
  detach: boolean;
  command: string[];
  /** How long `--detach` waits for the sidecar to be ready. Default 30 s. */
  timeoutMs?: number;
}

// `status` and `down` use this module too: what only run / exec / stop need is imported in them.
const api = () => import('../../api/index.js');
const targetModule = () => import('../target.js');
const stopProcess = async (pid: number, graceMs: number) => (await import('../processes.js')).stopProcess(pid, graceMs);

/** `--connect-timeout` as ms: a Go duration from 10ms to 30s, else a usage error naming it. */
async function connectTimeoutOf(value: string): Promise<number> {
  const { parseGoDuration } = await import('../../api/duration.js');
  let ms: number;
  try {
    ms = parseGoDuration(value);
  } catch (err) {
    throw new CrossmeshError('CM_ERR_USAGE', `--connect-timeout: ${(err as Error).message}`, { cause: err });
  }
  if (!(ms >= 10 && ms <= 30_000)) throw new CrossmeshError('CM_ERR_USAGE', `--connect-timeout "${value}" is out of range: give 10ms to 30s (default 500ms)`);
  return Math.round(ms);
}

/** Dapr's --app-protocol values crossmesh serves (daprd also has grpcs, https and h2c). */
const APP_PROTOCOLS = ['http', 'grpc'];

async function checkRunInput(o: { namespace: string; appId: string; command: string[]; serviceAccount?: string; appProtocol?: string }, verb: string): Promise<void> {
  if (o.appProtocol !== undefined && !APP_PROTOCOLS.includes(o.appProtocol)) {
    const dapr = ['grpcs', 'https', 'h2c'].includes(o.appProtocol) ? ` (Dapr's ${o.appProtocol} is not supported by crossmesh yet)` : '';
    throw new CrossmeshError('CM_ERR_USAGE', `--app-protocol "${o.appProtocol}" is not one of the allowed values: ${APP_PROTOCOLS.join(', ')}${dapr}`);
  }
  const { isValidDnsLabel } = await api();
  if (!isValidDnsLabel(o.appId)) throw new CrossmeshError('CM_ERR_USAGE', `--app-id "${o.appId}" ${LABEL_RULE}`);
  if (o.serviceAccount !== undefined && !isValidDnsLabel(o.serviceAccount)) {
    throw new CrossmeshError('CM_ERR_USAGE', `--service-account "${o.serviceAccount}" ${LABEL_RULE} (it becomes the sa/ segment of the app's SPIFFE ID)`);
  }
  if (!isValidDnsLabel(o.namespace)) throw new CrossmeshError('CM_ERR_USAGE', `-n "${o.namespace}" is not a valid namespace: ${LABEL_RULE}`);
  if (o.command.length === 0 || !o.command[0]) {
    throw new CrossmeshError('CM_ERR_USAGE', `${verb}: give the command after --, e.g. \`crossmesh ${verb} -n ${o.namespace} --app-id ${o.appId} -- node app.mjs\``);
  }
}

/** The Service callers use (`<appId>.<ns>:<port>`), created when missing; refuses a missing namespace. */
async function prepareCluster(client: ApiClient, cluster: string, namespace: string, appId: string, servicePort: number | undefined): Promise<string | undefined> {
  const { kindFor } = await api();
  const ns = await client.get(kindFor('v1', 'Namespace'), namespace);
  if (!ns) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `namespace "${namespace}" not found in cluster ${cluster}; create it first with \`crossmesh --cluster ${cluster} create namespace ${namespace}\``, { kind: 'Namespace', name: namespace });
  }
  if (servicePort === undefined) return undefined;
  const svcKind = kindFor('v1', 'Service');
  const svc = await client.get(svcKind, appId, namespace);
  if (svc) {
    const ports = (svc.spec?.ports ?? []) as Array<{ port: number }>;
    if (!ports.some((p) => p.port === servicePort)) {
      return `warning: service ${namespace}/${appId} exists without port ${servicePort} (it has ${ports.map((p) => p.port).join(', ') || 'none'}); callers using ${appId}.${namespace}:${servicePort} will not reach this app`;
    }
    return undefined;
  }
  try {
    await client.create(svcKind, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: appId, namespace, labels: { 'app.kubernetes.io/managed-by': 'crossmesh-run' } },
      spec: { ports: [{ protocol: 'TCP', port: servicePort, targetPort: servicePort }] },
    });
    return `service/${appId} created in ${cluster}/${namespace} (port ${servicePort})`;
  } catch (err) {
    if (err instanceof CrossmeshError && err.code === 'CM_ERR_ALREADY_EXISTS') return undefined;
    throw err;
  }
}

function tail(file: string, lines = 10): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n');
}

/** `crossmesh run`: resolves with the exit code (the app's, in the foreground). */
export async function runApp(opts: RunOptions, print: (line: string) => void): Promise<number> {
  await checkRunInput(opts, 'run');
  // Checked before anything is created.
  const connectTimeoutMs = opts.connectTimeout === undefined ? undefined : await connectTimeoutOf(opts.connectTimeout);
  const [{ endpointFor, selectedClusterName }, { ApiClient }, { spawn }] = await Promise.all([targetModule(), import('../../client/api-client.js'), import('node:child_process')]);
  const cluster = selectedClusterName(opts.cluster);
  const ep = endpointFor(cluster);
  const client = new ApiClient(ep);
  try {
    const note = await prepareCluster(client, cluster, opts.namespace, opts.appId, opts.appPort);
    if (note) (note.startsWith('warning') ? process.stderr.write(note + '\n') : print(note));
  } finally {
    await client.close();
  }
  // The sidecar's modules are loaded only by the commands that run one (not by status, stop, ...).
  const { newInstanceId } = await import('../../sidecar/sidecar.js');
  let instanceId = newInstanceId();
  let dir = join(appsDir(), cluster, opts.namespace, opts.appId, instanceId);
  while (existsSync(dir)) {
    instanceId = newInstanceId();
    dir = join(appsDir(), cluster, opts.namespace, opts.appId, instanceId);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cfg: SidecarProcessConfig = { ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}), cluster, namespace: opts.namespace, appId: opts.appId, instanceId, servicePort: opts.appPort, serviceAccount: opts.serviceAccount, ...(opts.daprConfig ? { daprConfig: opts.daprConfig } : {}), ...(opts.appProtocol === 'grpc' ? { appProtocol: 'grpc' as const } : {}), command: opts.command, dir };
  if (!opts.detach) return (await import('../../sidecar/process.js')).runSidecarProcess(cfg, ep);

  cfg.appLog = join(dir, 'app.log');
  cfg.sidecarLog = join(dir, 'sidecar.log');
  const cfgFile = join(dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2) + '\n');
  const out = openSync(cfg.sidecarLog, 'a');
  const { sidecarNodeFlags } = await import('../node-flags.js');
  const child = spawn(process.execPath, [...sidecarNodeFlags(), SIDECAR_BIN, '--config', cfgFile], { detached: true, stdio: ['ignore', out, out], env: process.env });
  closeSync(out);
  writeFileSync(join(dir, 'launch.json'), JSON.stringify({ pid: child.pid }) + '\n');
  let exited: number | null | undefined;
  child.on('exit', (code) => { exited = code; });
  child.unref();
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && exited === undefined) {
    const record = readJson<SidecarRecord>(join(dir, RECORD_FILE));
    if (record && record.pid === child.pid) {
      const p = record.ports;
      print(`${opts.appId} instance ${instanceId} running in ${cluster}/${opts.namespace}: sidecar pid ${record.pid}, app pid ${record.appPid}`);
      print(`  ports: ${p.app !== undefined ? `app ${p.app}, inbound ${p.inbound}, ` : ''}outbound ${p.outbound}, dapr http ${p.http}, dapr grpc ${p.grpc}`);
      print(`  logs: ${cfg.appLog} (app), ${cfg.sidecarLog} (sidecar)`);
      print(`  stop with: crossmesh --cluster ${cluster} stop -n ${opts.namespace} --app-id ${opts.appId}`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (exited === undefined) await stopProcess(child.pid!, 6000);
  const logs = `last lines of ${cfg.sidecarLog}:\n${tail(cfg.sidecarLog)}\nlast lines of ${cfg.appLog}:\n${tail(cfg.appLog)}`;
  rmSync(dir, { recursive: true, force: true });
  throw new CrossmeshError('CM_ERR_UNAVAILABLE', `${opts.appId} did not become ready${exited !== undefined ? ` (the sidecar exited with code ${exited})` : ` within ${timeoutMs} ms`}; ${logs}`);
}

function runningInstances(cluster: string, namespace: string, appId: string): AppEntry[] {
  return listApps({ cluster, namespace, appId }).filter((a) => a.state === 'running');
}

/** `crossmesh exec`: runs CMD with the app's sidecar env, stdio inherited; resolves with its exit code. */
export async function execApp(opts: { cluster?: string; namespace: string; appId: string; instance?: string; command: string[] }): Promise<number> {
  await checkRunInput(opts, 'exec');
  const [{ selectedClusterName }, { spawn }] = await Promise.all([targetModule(), import('node:child_process')]);
  const cluster = selectedClusterName(opts.cluster);
  const all = runningInstances(cluster, opts.namespace, opts.appId);
  const target = opts.instance ? all.find((a) => a.instanceId === opts.instance) : all[0];
  if (!target) {
    const what = opts.instance ? `instance ${opts.instance} of ${opts.appId}` : `app ${opts.appId}`;
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `no running ${what} in ${cluster}/${opts.namespace}${all.length ? ` (running instances: ${all.map((a) => a.instanceId).join(', ')})` : ''}; start it with \`crossmesh --cluster ${cluster} run -n ${opts.namespace} --app-id ${opts.appId} -- CMD\``);
  }
  const child = spawn(opts.command[0], opts.command.slice(1), { stdio: 'inherit', env: { ...process.env, ...target.record!.env } });
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      reject(new CrossmeshError(code === 'ENOENT' ? 'CM_ERR_NOT_FOUND' : 'CM_ERR_INTERNAL', `exec: cannot run \`${opts.command[0]}\`: ${err.message}`, { cause: err }));
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? 1 : 0)));
  });
}

/** Stops one instance: SIGTERM to the sidecar (it deregisters and stops the app), then makes sure the app is gone. */
async function stopInstance(a: AppEntry): Promise<void> {
  if (a.pid !== undefined && isProcessAlive(a.pid)) await stopProcess(a.pid, 8000);
  const appPid = a.record?.appPid;
  if (appPid !== undefined && isProcessAlive(appPid)) await stopProcess(appPid, 2000);
  rmSync(a.dir, { recursive: true, force: true });
}

/** `crossmesh stop`: every instance of the app in that cluster and namespace. */
export async function stopApp(opts: { cluster?: string; namespace: string; appId: string }): Promise<string[]> {
  const { endpointFor, selectedClusterName } = await targetModule();
  const cluster = selectedClusterName(opts.cluster);
  const entries = listApps({ cluster, namespace: opts.namespace, appId: opts.appId });
  if (entries.length === 0) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `no app ${opts.appId} runs in ${cluster}/${opts.namespace} under this CROSSMESH_HOME (see \`crossmesh status\`)`);
  }
  const lines: string[] = [];
  const dead = entries.filter((a) => a.state === 'dead' && a.record);
  await Promise.all(entries.map(async (a) => {
    await stopInstance(a);
    const note = a.state === 'dead' ? ' (its sidecar had died)' : a.state === 'exited' ? ` (it had exited with code ${a.exitCode}; logs removed)` : '';
    lines.push(`stopped ${a.appId} instance ${a.instanceId} in ${cluster}/${a.namespace}${note}`);
  }));
  // A sidecar that died could not deregister: remove its endpoint now rather than when its lease expires.
  if (dead.length) {
    const [{ ApiClient }, { deregisterInstance }] = await Promise.all([import('../../client/api-client.js'), import('../../sidecar/registration.js')]);
    const client = new ApiClient(endpointFor(cluster));
    try {
      for (const a of dead) await deregisterInstance(client, a.namespace, a.appId, a.instanceId).catch((err) => lines.push(`note: endpoint of ${a.instanceId} not removed now (${toCrossmeshError(err).message}); its lease will expire`));
    } finally {
      await client.close();
    }
  }
  return lines.sort();
}

/** For `crossmesh down`: stops every app instance under this home; returns what was stopped. */
export async function stopAllApps(home = crossmeshHome()): Promise<string[]> {
  const entries = listApps({}, home);
  await Promise.all(entries.map(stopInstance));
  return entries.filter((a) => a.state === 'running' || a.state === 'starting').map((a) => `app ${a.cluster}/${a.namespace}/${a.appId} (instance ${a.instanceId})`).sort();
}

export function appsTable(entries: AppEntry[]): string {
  return formatTable(['CLUSTER', 'NAMESPACE', 'APP-ID', 'INSTANCE', 'STATE', 'PID', 'APP-PID', 'SERVICE-PORT', 'APP-PORT', 'INBOUND', 'OUTBOUND', 'DAPR-HTTP', 'DAPR-GRPC', 'IDENTITY', 'CERT-EXPIRES'], entries.map((a) => {
    const p = a.record?.ports;
    const s = (v: number | undefined) => (v === undefined ? '-' : String(v));
    const id = a.record?.identity;
    const identity = id === undefined ? '-' : id.mode === 'plaintext' ? 'plaintext (--insecure-plaintext)' : (id.spiffeId ?? '-');
    return [a.cluster, a.namespace, a.appId, a.instanceId, a.state === 'exited' ? `exited(${a.exitCode})` : a.state, s(a.pid), s(a.record?.appPid), s(p?.service), s(p?.app), s(p?.inbound), s(p?.outbound), s(p?.http), s(p?.grpc), identity, id?.notAfter ?? '-'];
  }));
}

/** `crossmesh sidecar --config FILE`: the same as `crossmesh-sidecar --config FILE` (what `run --detach` starts). */
export async function sidecarFromConfig(file: string): Promise<number> {
  return (await import('../../sidecar/main.js')).sidecarMain(['--config', file]);
}

interface ComponentReport { name: string; type: string; state: string; error?: string }
interface SubscriptionReport { pubsubname: string; topic: string; type: string; state: string; group?: string; deadLetterTopic?: string; error?: string }

/**
 * For `crossmesh status`: each running sidecar's Dapr components and their load state, and its
 * pub/sub subscriptions (consumer group, state), read from its /v1.0/metadata (a component that
 * failed to load, or a subscription waiting for its pubsub, is listed with its error).
 */
export async function componentsReport(entries: AppEntry[]): Promise<string> {
  const rows: string[][] = [];
  const subs: string[][] = [];
  await Promise.all(entries.filter((a) => a.state === 'running' && a.record?.ports.http).map(async (a) => {
    try {
      const res = await httpGet(`http://127.0.0.1:${a.record!.ports.http}/v1.0/metadata`, 1500);
      const meta = JSON.parse(res.text) as { crossmesh?: { components?: ComponentReport[]; subscriptions?: SubscriptionReport[] } };
      for (const c of meta.crossmesh?.components ?? []) rows.push([a.cluster, a.namespace, a.appId, c.name, c.type, c.state, c.error ?? '']);
      for (const s of meta.crossmesh?.subscriptions ?? []) {
        subs.push([a.cluster, a.namespace, a.appId, s.pubsubname, s.topic, s.group ?? '', s.type.toLowerCase(), s.deadLetterTopic || '-', s.state, s.error ?? '']);
      }
    } catch (err) {
      rows.push([a.cluster, a.namespace, a.appId, '-', '-', 'unknown', `sidecar did not answer /v1.0/metadata: ${(err as Error).message}`]);
    }
  }));
  const sort = (t: string[][]) => t.sort((x, y) => x.join('/').localeCompare(y.join('/')));
  let out = rows.length ? formatTable(['CLUSTER', 'NAMESPACE', 'APP-ID', 'COMPONENT', 'TYPE', 'STATE', 'ERROR'], sort(rows)) : '';
  if (subs.length) out += (out ? '\n' : '') + formatTable(['CLUSTER', 'NAMESPACE', 'APP-ID', 'PUBSUB', 'TOPIC', 'GROUP', 'SOURCE', 'DEAD-LETTER', 'STATE', 'ERROR'], sort(subs));
  return out;
}
