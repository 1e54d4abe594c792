import { EventEmitter } from 'node:events';
import { clusterKeyOf, kindFor } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { ApiClient } from '../client/api-client.js';
import { Informer, planFields } from '../client/informer.js';
import { CONTROL_PLANE_USER_AGENT } from '../api/user-agents.js';
import { parseKubeconfig } from '../client/kubeconfig.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { Backoff, type BackoffOptions } from '../util/backoff.js';
import type { MemberSnapshot } from './desired.js';
import { memberIdentityApi, MeshIdentitySync, type MeshIdentityState, type MeshSigner } from './identity.js';

/** Annotation on the member's `default` Namespace naming the control plane that manages it. */
export const MANAGED_BY_ANNOTATION = 'multicluster.flomesh.io/managed-by';
/** Annotation on the member's `default` Namespace holding the member's own cluster key. */
export const CLUSTER_KEY_ANNOTATION = 'multicluster.flomesh.io/cluster-key';

/** Retries while a member is unreachable (its claim, its mesh CA): 100 ms doubling to 5 s, ±20 % jitter. */
export const MEMBER_RETRY_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 5000, jitter: 0.2 };

export interface MemberConnectionOptions {
  /** The control plane's PKI: with it, the member's mesh CA is kept issued by its root (`identity.ts`). */
  signer?: MeshSigner;
  /** Re-check period of the member's mesh CA while all is well (default 5 min). */
  identityRecheckMs?: number;
  /** Period of the liveness pings (GET /readyz) to a claimed member (default 500 ms). */
  pingIntervalMs?: number;
  /** How long one ping may take before it counts as missed (default 1000 ms). */
  pingTimeoutMs?: number;
}

/**
 * Missed pings in a row that mark a member unreachable. A watch on a partitioned member sees no
 * error at all (packets vanish, the socket stays open), so without pings the control plane would
 * call it Managed for as long as TCP keeps retrying (minutes).
 */
export const MEMBER_PING_MISSES = 2;
/** Overlapping pings to a member that is away: a new one every period, each on its own connection. */
const MAX_PINGS_WHILE_AWAY = 3;

export type MemberState =
  | { managed: true; message: string }
  | { managed: false; reason: string; message: string };

interface MemberEvents {
  /**
   * Something the plan depends on changed: the exports, Service or imports of the service `key`
   * (`namespace/name`), or, without a key, connectivity or a (re)list (plan everything).
   */
  changed: [key?: string];
  /** The Managed condition should change. */
  state: [MemberState];
  /** The MeshIdentity condition should change (only with a signer). */
  identity: [MeshIdentityState];
}

/**
 * The control plane's connection to one member, from its `Cluster` resource: claims the member
 * (refusing one managed by another control plane), follows its exports, services and imports
 * with informers, and reports Managed True/False. Retries with backoff until it succeeds; the
 * informers keep the last-known state while the member is away.
 */
export class MemberConnection extends EventEmitter<MemberEvents> {
  readonly clusterKey: string;
  readonly gatewayHost: string;
  readonly gatewayPort: number;
  /** The member gateway's mesh (tunnel) port, when its Cluster names one. */
  readonly meshPort: number | undefined;
  readonly client: ApiClient;
  private readonly exports: Informer;
  private readonly services: Informer;
  private readonly imports: Informer;
  private claimed = false;
  private stopped = false;
  private state: MemberState | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Claim retries while the member is unreachable: 100 ms doubling to 5 s, ±20 % jitter. */
  private readonly backoff = new Backoff(MEMBER_RETRY_BACKOFF);
  /** Re-checks of a member claimed by another control plane: every 5 s, ±20 % jitter. */
  private readonly recheck = new Backoff({ initialMs: 5000, maxMs: 5000, factor: 1, jitter: 0.2 });
  private reachable = false;
  private livenessTimer: NodeJS.Timeout | undefined;
  /** Pings waiting for an answer: one at a time while the member answers, overlapping while it is away. */
  private pingsInFlight = 0;
  private pingMisses = 0;
  /** Pings failed MEMBER_PING_MISSES times: the member is away until one is answered. */
  private pingDown = false;
  private lastRestartAt = 0;
  /** All three informers had synced at the last onReachable(). */
  private wasComplete = false;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  /** Keeps the member's mesh CA issued by the control plane's root; none without a signer. */
  readonly identity: MeshIdentitySync | undefined;

  constructor(readonly cluster: KubeObject, private readonly controlPlaneId: string, opts: MemberConnectionOptions = {}) {
    super();
    this.clusterKey = clusterKeyOf(cluster);
    this.gatewayHost = cluster.spec.gatewayHost;
    this.gatewayPort = cluster.spec.gatewayPort;
    this.meshPort = typeof cluster.spec.meshPort === 'number' ? cluster.spec.meshPort : undefined;
    const endpoint = parseKubeconfig(cluster.spec.kubeconfig, `Cluster ${cluster.metadata.name} spec.kubeconfig`);
    this.client = new ApiClient(endpoint, { connectTimeoutMs: 2000, userAgent: CONTROL_PLANE_USER_AGENT });
    this.pingIntervalMs = opts.pingIntervalMs ?? 500;
    this.pingTimeoutMs = opts.pingTimeoutMs ?? 1000;
    const informerOpts = { minBackoffMs: 100, maxBackoffMs: 2000 };
    this.exports = new Informer(this.client, kindFor('flomesh.io/v1alpha1', 'ServiceExport'), { ...informerOpts, transform: planFields });
    // Only what the plan reads is cached (informer.ts planFields): Services and imports are only
    // read (imports are written whole, by apply), an export's status write takes only its status
    // and resourceVersion.
    this.services = new Informer(this.client, kindFor('v1', 'Service'), { ...informerOpts, transform: planFields });
    this.imports = new Informer(this.client, kindFor('flomesh.io/v1alpha1', 'ServiceImport'), { ...informerOpts, transform: planFields });
    const changed = (o: KubeObject) => this.emit('changed', `${o.metadata.namespace}/${o.metadata.name}`);
    for (const inf of [this.exports, this.services, this.imports]) {
      inf.on('add', changed);
      inf.on('update', (_old, o) => changed(o));
      inf.on('delete', changed);
      inf.on('synced', () => this.onReachable());
      inf.on('error', (err) => this.onUnreachable(err));
    }
    if (opts.signer) {
      this.identity = new MeshIdentitySync(memberIdentityApi(this.client), opts.signer, cluster.metadata.name, this.clusterKey, {
        backoff: MEMBER_RETRY_BACKOFF,
        recheckMs: opts.identityRecheckMs,
      });
      this.identity.on('state', (s) => this.emit('identity', s));
    }
  }

  start(): this {
    void this.claim();
    return this;
  }

  /** Synced = the plan may trust this member's exports (else its last-known endpoints are kept). */
  snapshot(): MemberSnapshot {
    return {
      clusterKey: this.clusterKey,
      gatewayHost: this.gatewayHost,
      gatewayPort: this.gatewayPort,
      meshPort: this.meshPort,
      synced: this.claimed && this.reachable && this.exports.synced && this.services.synced,
      exports: this.exports.view(),
      services: this.services.view(),
      imports: this.imports.view(),
    };
  }

  get importsSynced(): boolean {
    return this.claimed && this.imports.synced;
  }

  currentImports(): KubeObject[] {
    return this.imports.list();
  }

  /** The member's ServiceImport of `key` (`namespace/name`), as last seen. */
  importOf(key: string): KubeObject | undefined {
    return this.imports.view().get(key);
  }

  /** The member's ServiceExport of `key`, as last seen. */
  exportOf(key: string): KubeObject | undefined {
    return this.exports.view().get(key);
  }

  get isReachable(): boolean {
    return this.reachable;
  }

  /** Stops following the member; with `release`, also removes the managed-by claim. */
  async stop(release: boolean): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.identity?.stop();
    for (const inf of [this.exports, this.services, this.imports]) inf.stop();
    if (release && this.claimed) {
      await this.client.mergePatch(kindFor('v1', 'Namespace'), 'default', undefined, {
        metadata: { annotations: { [MANAGED_BY_ANNOTATION]: null, [CLUSTER_KEY_ANNOTATION]: null } },
      }).catch(() => undefined);
    }
    await this.client.close();
  }

  private async claim(): Promise<void> {
    if (this.stopped) return;
    try {
      const ns = kindFor('v1', 'Namespace');
      const def = await this.client.get(ns, 'default');
      if (!def) throw new CrossmeshError('CM_ERR_NOT_FOUND', 'the member has no default namespace');
      const owner = def.metadata.annotations?.[MANAGED_BY_ANNOTATION];
      if (owner && owner !== this.controlPlaneId) {
        // Refuse, and keep checking: the other control plane may release it.
        this.setState({ managed: false, reason: 'ManagedByAnotherControlPlane', message: `Cluster ${this.clusterKey} is already managed by control plane ${owner}; delete its Cluster resource there first.` });
        this.scheduleRetry(this.recheck.next());
        return;
      }
      if (!owner || def.metadata.annotations?.[CLUSTER_KEY_ANNOTATION] !== this.clusterKey) {
        await this.client.replace(ns, {
          ...def,
          metadata: { ...def.metadata, annotations: { ...def.metadata.annotations, [MANAGED_BY_ANNOTATION]: this.controlPlaneId, [CLUSTER_KEY_ANNOTATION]: this.clusterKey } },
        });
      }
      this.claimed = true;
      this.reachable = true;
      for (const inf of [this.exports, this.services, this.imports]) inf.start();
      this.livenessTimer = setInterval(() => void this.ping(), this.pingIntervalMs);
      this.livenessTimer.unref();
      this.setState({ managed: true, message: `Cluster ${this.clusterKey} joined ClusterSet successfully.` });
      this.emit('changed');
      // Claimed: make sure its mesh CA is issued by this control plane's root.
      this.identity?.trigger();
    } catch (err) {
      const e = toCrossmeshError(err);
      this.setState({ managed: false, reason: e.code === 'CM_ERR_UNAUTHORIZED' ? 'Unauthorized' : 'Unreachable', message: `Cluster ${this.clusterKey}: ${e.message}` });
      this.scheduleRetry(this.backoff.next());
    }
  }

  private scheduleRetry(ms: number): void {
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => void this.claim(), ms);
    this.retryTimer.unref();
  }

  /**
   * One liveness ping. Missed twice: every request to the member is cut (watches included, so
   * nothing waits on a dead socket) and it is marked away, keeping its last-known state. The
   * first answer after that reconnects the informers at once instead of at their next back-off,
   * so a change made during the partition arrives within about a ping period of the heal.
   */
  private async ping(): Promise<void> {
    const away = this.pingDown;
    if (this.stopped || this.pingsInFlight >= (away ? MAX_PINGS_WHILE_AWAY : 1)) return;
    this.pingsInFlight++;
    try {
      await this.client.ping(this.pingTimeoutMs, away);
      this.pingMisses = 0;
      const now = Date.now();
      // Informers still failing (refused, back-off) while pings pass: reconnect them now too, at most every 2 s.
      if (this.pingDown || (!this.reachable && now - this.lastRestartAt > 2000)) {
        this.pingDown = false;
        this.lastRestartAt = now;
        for (const inf of [this.exports, this.services, this.imports]) inf.restart();
      }
    } catch (err) {
      if (this.stopped) return;
      if (++this.pingMisses < MEMBER_PING_MISSES || this.pingDown) return;
      this.pingDown = true;
      const e = toCrossmeshError(err);
      this.client.interrupt(`cluster ${this.clusterKey} missed ${this.pingMisses} liveness pings`);
      this.onUnreachable(new CrossmeshError('CM_ERR_UNAVAILABLE', `missed ${this.pingMisses} liveness pings (${e.message})`));
    } finally {
      this.pingsInFlight--;
    }
  }

  private onReachable(): void {
    // A watch reopened just before pings noticed the outage does not outvote them.
    if (!this.claimed || this.stopped || this.pingDown) return;
    const was = this.reachable;
    this.reachable = true;
    // Back after an outage (perhaps a restarted member with a new PKI): check its mesh CA again.
    if (!was) this.identity?.trigger();
    this.setState({ managed: true, message: `Cluster ${this.clusterKey} joined ClusterSet successfully.` });
    // Back, or a first sync that makes the member's view complete (perhaps with no events at
    // all): plan everything. A watch merely reopened changes nothing (a relist's differences
    // arrive as keyed events).
    const complete = this.exports.synced && this.services.synced && this.imports.synced;
    if (!was || (complete && !this.wasComplete)) this.emit('changed');
    this.wasComplete = complete;
  }

  private onUnreachable(err: CrossmeshError): void {
    if (this.stopped || !this.claimed) return;
    // Only connectivity loss marks the member away; other watch errors (410) just resync.
    if (err.code !== 'CM_ERR_UNAVAILABLE' && err.code !== 'CM_ERR_UNAUTHORIZED') return;
    const was = this.reachable;
    this.reachable = false;
    this.identity?.pause();
    this.setState({ managed: false, reason: err.code === 'CM_ERR_UNAUTHORIZED' ? 'Unauthorized' : 'Unreachable', message: `Cluster ${this.clusterKey}: ${err.message}` });
    if (was) this.emit('changed');
  }

  private setState(s: MemberState): void {
    const prev = this.state;
    if (prev && prev.managed === s.managed && prev.message === s.message) return;
    this.state = s;
    this.emit('state', s);
  }
}
