import { isDeepStrictEqual } from 'node:util';
import { kindFor, validateObject } from '../api/validation.js';
import type { Condition, KubeObject } from '../api/types.js';
import { StoreCache } from '../client/cache.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import type { ResourceStore } from '../store/types.js';
import { log } from '../util/log.js';
import { inParallel } from '../util/parallel.js';
import { mergeCondition } from '../api/conditions.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, plan, type DesiredImport, type ExportVerdict } from './desired.js';
import { MESH_IDENTITY_CONDITION, type MeshIdentityState, type MeshSigner } from './identity.js';
import { MemberConnection, type MemberState } from './member.js';

const CLUSTERS_KEY = 'flomesh.io/clusters';
const SERVICE_IMPORT = () => kindFor('flomesh.io/v1alpha1', 'ServiceImport');
const SERVICE_EXPORT = () => kindFor('flomesh.io/v1alpha1', 'ServiceExport');
const NAMESPACE = () => kindFor('v1', 'Namespace');

export interface MulticlusterControllerOptions {
  /**
   * The control plane's own `ClusterPki`: its root is the mesh root, and each member's mesh CA
   * is kept issued by it (`identity.ts`, condition `MeshIdentity` on the Cluster). Without it,
   * members' mesh CAs are left as they are.
   */
  pki?: MeshSigner;
  /** Re-check period of a member's mesh CA while all is well (default 5 min; tests). */
  identityRecheckMs?: number;
}

/**
 * The multicluster controller. It runs in every cluster process and does nothing until the
 * cluster holds `Cluster` resources, which makes it the control plane: it connects to each
 * member, and keeps every member's ServiceImports equal to the plan computed from all members'
 * exports. Convergence is event-driven (informer events schedule one coalesced reconcile).
 */
export class MulticlusterController {
  private readonly clusters: StoreCache;
  private readonly members = new Map<string, MemberConnection>();
  private readonly controlPlaneId: string;
  private running: Promise<void> | undefined;
  private dirty = false;
  private closed = false;
  private scheduled = false;
  /** Plan everything on the next pass (a member connected, left, came back or relisted). */
  private fullPending = true;
  /** Otherwise only these services (`namespace/name`) changed. */
  private dirtyKeys = new Set<string>();
  /** Conflict conditions to write, by `clusterKey ns/name` (the latest verdict wins). */
  private readonly statusQueue = new Map<string, { member: MemberConnection; verdict: ExportVerdict }>();
  private statusDraining: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly store: ResourceStore, private readonly clusterName: string, private readonly opts: MulticlusterControllerOptions = {}) {
    if (!opts.pki) log.debug(`multicluster: ${clusterName}: no cluster PKI given, so members' mesh CAs are not managed (no MeshIdentity condition)`);
    const def = store.get({ storageKey: 'core/namespaces', name: 'default' });
    this.controlPlaneId = `${clusterName}/${def?.metadata.uid ?? 'unknown'}`;
    this.clusters = new StoreCache(store, CLUSTERS_KEY);
    this.clusters.on('add', (c) => this.connect(c));
    this.clusters.on('update', (old, c) => {
      if (!isDeepStrictEqual(old.spec, c.spec)) this.connect(c);
    });
    this.clusters.on('delete', (c) => void this.disconnect(c.metadata.name, true));
  }

  start(): this {
    this.clusters.start();
    return this;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.clusters.stop();
    await Promise.all([...this.members.values()].map((m) => m.stop(false)));
    this.members.clear();
    await this.running;
    this.statusQueue.clear();
    await this.statusDraining;
  }

  /**
   * Member `name`'s mesh identity as this controller last saw it, with its checks and installs
   * since the connection started (status, tests); undefined without a PKI or such a member.
   */
  meshIdentity(name: string): { state: MeshIdentityState | undefined; checks: number; installs: number } | undefined {
    const sync = this.members.get(name)?.identity;
    return sync ? { state: sync.current, ...sync.counts } : undefined;
  }

  /** Resolves when no reconcile is pending or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running || this.scheduled || this.statusDraining) await (this.running ?? this.statusDraining ?? new Promise((r) => setImmediate(r)));
  }

  private connect(cluster: KubeObject): void {
    const name = cluster.metadata.name;
    const old = this.members.get(name);
    if (old) void old.stop(false);
    let member: MemberConnection;
    try {
      member = new MemberConnection(cluster, this.controlPlaneId, { signer: this.opts.pki, identityRecheckMs: this.opts.identityRecheckMs });
    } catch (err) {
      this.members.delete(name);
      this.writeManaged(name, { managed: false, reason: 'InvalidKubeconfig', message: toCrossmeshError(err).message });
      return;
    }
    this.members.set(name, member);
    member.on('state', (s) => this.writeManaged(name, s));
    member.on('identity', (s) => this.writeMeshIdentity(name, s));
    member.on('changed', (key) => this.schedule(key));
    member.start();
  }

  private async disconnect(name: string, release: boolean): Promise<void> {
    const member = this.members.get(name);
    if (!member) return;
    this.members.delete(name);
    // What this control plane wrote into the departing member goes with it.
    if (release && member.isReachable) {
      for (const imp of member.currentImports()) {
        if (imp.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE) {
          await member.client.delete(SERVICE_IMPORT(), imp.metadata.name, imp.metadata.namespace).catch(() => undefined);
        }
      }
    }
    await member.stop(release);
    this.schedule();
  }

  private writeManaged(name: string, s: MemberState): void {
    this.writeCondition(name, { type: 'Managed', status: s.managed ? 'True' : 'False', reason: s.managed ? 'Success' : s.reason, message: s.message });
  }

  private writeMeshIdentity(name: string, s: MeshIdentityState): void {
    this.writeCondition(name, { type: MESH_IDENTITY_CONDITION, status: s.ok ? 'True' : 'False', reason: s.reason, message: s.message });
  }

  /** Merges one condition into a Cluster's status: read-modify-write on resourceVersion, only when it changed. */
  private writeCondition(name: string, cond: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>): void {
    if (this.closed) return;
    const ref = { storageKey: CLUSTERS_KEY, name };
    const current = this.store.get(ref);
    if (!current) return;
    const conditions = mergeCondition(current.status?.conditions, { ...cond, observedGeneration: current.metadata.generation }, new Date().toISOString());
    if (!conditions) return;
    try {
      this.store.update(ref, { ...current, status: { ...current.status, conditions } }, { statusOnly: true, expectedResourceVersion: current.metadata.resourceVersion });
    } catch (err) {
      log.warn(`multicluster: could not write status of Cluster ${name}: ${toCrossmeshError(err).message}`);
    }
  }

  private schedule(key?: string): void {
    if (this.closed) return;
    if (key === undefined) this.fullPending = true;
    else if (!this.fullPending) this.dirtyKeys.add(key);
    this.kick();
  }

  /** Runs a pass soon (after the running one) for what schedule() recorded. */
  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // Coalesce a burst of informer events into one pass.
    setImmediate(() => {
      this.scheduled = false;
      this.running = this.reconcile().finally(() => {
        this.running = undefined;
        if (this.dirty) {
          this.dirty = false;
          // What came in meanwhile (keys, or a full pass) is already recorded.
          this.kick();
        }
      });
    });
  }

  /**
   * One pass: everything after a connectivity change, else only the services that changed
   * (a service's imports depend only on the exports and Services of its name), so one export
   * costs work for one service in each member, not for the whole mesh.
   */
  private async reconcile(): Promise<void> {
    const keys = this.fullPending ? undefined : this.dirtyKeys;
    this.fullPending = false;
    this.dirtyKeys = new Set();
    const started = performance.now();
    const members = [...this.members.values()];
    const p = plan(members.map((m) => m.snapshot()), keys);
    const planned = performance.now();
    let failed = false;
    let writes = 0;
    // Each member's writes are independent of the others', and within a member of each other:
    // they go out WRITES_PER_MEMBER at a time, so a pass costs round trips / concurrency.
    await Promise.all(members.map(async (m) => {
      if (!m.importsSynced || !m.isReachable) return;
      const jobs = this.importWrites(m, p.imports.get(m.clusterKey) ?? new Map(), keys);
      writes += jobs.length;
      await inParallel(jobs, WRITES_PER_MEMBER, async (job) => {
        try {
          await job();
        } catch (err) {
          log.warn(`multicluster: syncing imports of ${m.clusterKey}: ${toCrossmeshError(err).message}`);
          failed = true;
        }
      });
    }));
    // The member's informers will report it away, or a pass a second later retries (all of it:
    // which writes failed is not tracked; a write refused for good must not spin the CPU).
    if (failed && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.schedule();
      }, FAILED_PASS_RETRY_MS);
      this.retryTimer.unref();
    }
    // Conflict conditions go to a queue of their own: they do not change any import, and a
    // bulk of them (10,000 after a large initial sync) must not hold up the next pass.
    const byKey = new Map(members.map((m) => [m.clusterKey, m]));
    let conflicts = 0;
    for (const v of p.verdicts) {
      const m = byKey.get(v.clusterKey);
      if (!m || !m.isReachable || !this.conflictDiffers(m, v)) continue;
      this.statusQueue.set(`${v.clusterKey} ${v.namespace}/${v.name}`, { member: m, verdict: v });
      conflicts++;
    }
    if (conflicts) this.drainStatus();
    log.debug(`multicluster: pass over ${keys ? `${keys.size} service(s)` : 'everything'}: plan ${Math.round(planned - started)} ms, ${writes} import write(s), ${conflicts} conflict status write(s) queued, ${Math.round(performance.now() - started)} ms`);
  }

  /**
   * What makes the member's imports (of `keys`, or all) what the plan says, as one job per
   * write: an import is written only when its content differs (compared before it is built and
   * validated: most passes change nothing), and only imports this control plane labelled are
   * deleted.
   */
  private importWrites(m: MemberConnection, desired: Map<string, DesiredImport>, keys: ReadonlySet<string> | undefined): (() => Promise<void>)[] {
    const ours = (i: KubeObject | undefined) => i?.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
    const jobs: (() => Promise<void>)[] = [];
    for (const [key, d] of desired) {
      const have = m.importOf(key);
      if (have && ours(have) && isDeepStrictEqual(have.spec, d.spec)) continue;
      const obj = validateObject({
        apiVersion: 'flomesh.io/v1alpha1',
        kind: 'ServiceImport',
        metadata: { name: d.name, namespace: d.namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
        spec: d.spec,
      });
      if (have && ours(have) && isDeepStrictEqual(have.spec, obj.spec)) continue;
      jobs.push(() => this.applyImport(m, d.namespace, obj));
    }
    const stale = keys ? [...keys].map((k) => [k, m.importOf(k)] as const) : m.currentImports().map((i) => [`${i.metadata.namespace}/${i.metadata.name}`, i] as const);
    for (const [key, have] of stale) {
      if (!have || desired.has(key) || !ours(have)) continue;
      jobs.push(async () => { await m.client.delete(SERVICE_IMPORT(), have.metadata.name, have.metadata.namespace); });
    }
    return jobs;
  }

  private async applyImport(m: MemberConnection, namespace: string, obj: KubeObject): Promise<void> {
    try {
      await m.client.apply(SERVICE_IMPORT(), obj);
    } catch (err) {
      if (!(err instanceof CrossmeshError && err.code === 'CM_ERR_NOT_FOUND' && err.details.kind === 'Namespace')) throw err;
      await m.client.create(NAMESPACE(), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } } }).catch((e) => {
        if (!(e instanceof CrossmeshError && e.code === 'CM_ERR_ALREADY_EXISTS')) throw e;
      });
      await m.client.apply(SERVICE_IMPORT(), obj);
    }
  }

  /** Writes the queued Conflict conditions, WRITES_PER_MEMBER at a time; the latest verdict per export wins. */
  private drainStatus(): void {
    if (this.statusDraining) return;
    this.statusDraining = (async () => {
      while (this.statusQueue.size > 0 && !this.closed) {
        const batch = [...this.statusQueue.values()].slice(0, 256);
        for (const { verdict } of batch) this.statusQueue.delete(`${verdict.clusterKey} ${verdict.namespace}/${verdict.name}`);
        await inParallel(batch, WRITES_PER_MEMBER, async ({ member, verdict }) => {
          // A member that left, or a verdict the cache already shows, is skipped.
          if (this.members.get(member.cluster.metadata.name) !== member || !member.isReachable || !this.conflictDiffers(member, verdict)) return;
          try {
            await this.writeConflict(member, verdict);
          } catch (err) {
            log.warn(`multicluster: writing conflict status of ${verdict.namespace}/${verdict.name} in ${verdict.clusterKey}: ${toCrossmeshError(err).message}`);
          }
        });
      }
    })().finally(() => {
      this.statusDraining = undefined;
    });
  }

  /** Whether the export's cached Conflict condition says something else than the verdict. */
  private conflictDiffers(m: MemberConnection, v: ExportVerdict): boolean {
    const cur = (m.exportOf(`${v.namespace}/${v.name}`)?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'Conflict');
    return !(cur && cur.status === (v.conflict ? 'True' : 'False') && cur.message === v.message);
  }

  private async writeConflict(m: MemberConnection, v: ExportVerdict): Promise<void> {
    const want = { type: 'Conflict', status: v.conflict ? 'True' : 'False', reason: v.conflict ? 'Conflict' : 'NoConflict', message: v.message } as const;
    // Read-modify-write with the resourceVersion: the member's export controller writes `Valid`
    // on the same object, and neither may drop the other's condition. The first try uses the
    // cached object (usually current: no extra round trip); a conflict reads it afresh.
    let current = m.exportOf(`${v.namespace}/${v.name}`);
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!current) return;
      const conditions = mergeCondition(current.status?.conditions, want, new Date().toISOString());
      if (!conditions) return;
      try {
        await m.client.replaceStatus(SERVICE_EXPORT(), { ...current, status: { ...current.status, conditions } });
        return;
      } catch (err) {
        if (!(err instanceof CrossmeshError && err.code === 'CM_ERR_CONFLICT')) throw err;
      }
      current = await m.client.get(SERVICE_EXPORT(), v.name, v.namespace);
    }
  }
}

/** A pass with failed writes is retried (in full) this much later. */
const FAILED_PASS_RETRY_MS = 1000;

/** Writes a pass sends to one member at a time. */
const WRITES_PER_MEMBER = 8;
