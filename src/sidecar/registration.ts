/**
 * The sidecar's side of endpoint leases (scheme in src/leases/names.ts): registers the app
 * instance as one subset of the app's Endpoints plus a Lease, renews the Lease every second,
 * re-registers when the Lease was expired meanwhile, and deregisters on a clean stop.
 * Never throws after start: API failures are retried with backoff and logged once per change.
 */
import { kindFor, toMicroTime, type EndpointsSubset } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import type { ApiClient } from '../client/api-client.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { ENDPOINTS_LABEL, INSTANCE_LABEL, LEASE_DURATION_SECONDS, RENEW_INTERVAL_MS, instancePodName, withoutInstance } from '../leases/names.js';
import { Backoff } from '../util/backoff.js';
import { log } from '../util/log.js';

const LEASE = () => kindFor('coordination.k8s.io/v1', 'Lease');
const ENDPOINTS = () => kindFor('v1', 'Endpoints');
const MAX_WRITE_ATTEMPTS = 25;

export interface RegistrationOptions {
  client: ApiClient;
  namespace: string;
  appId: string;
  instanceId: string;
  /** The sidecar's inbound listener port: what callers reach. */
  port: number;
  renewIntervalMs?: number;
  leaseDurationSeconds?: number;
  /** Prefix of log lines. */
  label?: string;
}

export type RegistrationState = 'registering' | 'registered' | 'failing' | 'closed';

export class EndpointRegistration {
  state: RegistrationState = 'registering';
  private readonly pod: string;
  private readonly renewMs: number;
  private readonly label: string;
  private present = false;
  /** Short: the lease lasts only a few seconds. 500 ms, 1 s, then 2 s. */
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 2000 });
  private lastError = '';
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private waiters: Array<() => void> = [];

  constructor(private readonly opts: RegistrationOptions) {
    this.pod = instancePodName(opts.appId, opts.instanceId);
    this.renewMs = opts.renewIntervalMs ?? RENEW_INTERVAL_MS;
    this.label = opts.label ?? `${opts.namespace}/${this.pod}`;
  }

  start(): this {
    this.schedule(0);
    return this;
  }

  /** Resolves once registered (true), or false after `timeoutMs`. */
  whenRegistered(timeoutMs: number): Promise<boolean> {
    if (this.state === 'registered') return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  /** Stops renewing; with `deregister`, removes the subset and the Lease now (best effort). */
  async close(deregister = true): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    await this.inflight;
    if (!deregister) return;
    try {
      await deregisterInstance(this.opts.client, this.opts.namespace, this.opts.appId, this.opts.instanceId);
      log.info(`${this.label}: deregistered`);
    } catch (err) {
      log.warn(`${this.label}: could not deregister (the lease will expire instead): ${toCrossmeshError(err).message}`);
    }
  }

  private schedule(ms: number): void {
    if (this.state === 'closed') return;
    this.timer = setTimeout(() => {
      this.inflight = this.tick().finally(() => { this.inflight = undefined; });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      if (this.present) {
        try {
          await this.opts.client.mergePatch(LEASE(), this.pod, this.opts.namespace, { spec: { renewTime: toMicroTime() } });
        } catch (err) {
          if (!(err instanceof CrossmeshError && err.code === 'CM_ERR_NOT_FOUND')) throw err;
          log.warn(`${this.label}: lease was expired (the cluster did not hear from this sidecar in time); registering again`);
          this.present = false;
        }
      }
      if (!this.present) {
        await this.register();
        this.present = true;
      }
      if (this.state === 'closed') return;
      if (this.state !== 'registered') {
        log.info(`${this.label}: registered endpoint 127.0.0.1:${this.opts.port} in ${this.opts.namespace}/${this.opts.appId}${this.backoff.attempts ? ` after ${this.backoff.attempts} failed attempts` : ''}`);
        this.state = 'registered';
        for (const w of this.waiters.splice(0)) w();
      }
      this.backoff.reset();
      this.lastError = '';
      this.schedule(this.renewMs);
    } catch (err) {
      if (this.state === 'closed') return;
      const msg = toCrossmeshError(err).message;
      if (this.state !== 'failing' || msg !== this.lastError) {
        log.warn(`${this.label}: registration failed, retrying with backoff: ${msg}`);
      }
      this.state = 'failing';
      this.lastError = msg;
      this.schedule(this.backoff.next());
    }
  }

  /** Lease first, then the subset: a crash in between leaves a lease that expires, never an orphan subset. */
  private async register(): Promise<void> {
    const { client, namespace, appId, instanceId } = this.opts;
    const now = toMicroTime();
    const lease: KubeObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.pod, namespace, labels: { [ENDPOINTS_LABEL]: appId, [INSTANCE_LABEL]: instanceId } },
      spec: { holderIdentity: this.pod, leaseDurationSeconds: this.opts.leaseDurationSeconds ?? LEASE_DURATION_SECONDS, acquireTime: now, renewTime: now },
    };
    await client.apply(LEASE(), lease);
    const mine: EndpointsSubset = {
      addresses: [{ ip: '127.0.0.1', targetRef: { kind: 'Pod', namespace, name: this.pod } }],
      ports: [{ port: this.opts.port, protocol: 'TCP' }],
    };
    await updateEndpoints(client, namespace, appId, (subsets) => [...(withoutInstance(subsets, this.pod) ?? []), mine]);
  }
}

/** Read-modify-write of the app's Endpoints with resourceVersion, retried on conflicts (several instances write it). */
async function updateEndpoints(client: ApiClient, namespace: string, appId: string, change: (s: EndpointsSubset[] | undefined) => EndpointsSubset[] | undefined): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const ep = await client.get(ENDPOINTS(), appId, namespace);
    const before = ep?.subsets as EndpointsSubset[] | undefined;
    const after = change(before);
    if (after === before) return;
    try {
      if (!ep) {
        if (!after || after.length === 0) return;
        await client.create(ENDPOINTS(), { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: appId, namespace }, subsets: after });
      } else {
        await client.replace(ENDPOINTS(), { ...ep, subsets: after });
      }
      return;
    } catch (err) {
      const retry = err instanceof CrossmeshError && (err.code === 'CM_ERR_CONFLICT' || err.code === 'CM_ERR_ALREADY_EXISTS');
      if (!retry || attempt >= MAX_WRITE_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}

/** Removes an instance's subset and its Lease (what a clean stop does; `crossmesh stop` uses it for dead sidecars). */
export async function deregisterInstance(client: ApiClient, namespace: string, appId: string, instanceId: string): Promise<void> {
  const pod = instancePodName(appId, instanceId);
  await updateEndpoints(client, namespace, appId, (subsets) => withoutInstance(subsets, pod));
  await client.delete(LEASE(), pod, namespace);
}
