import type { KubeObject } from '../api/types.js';
import { StoreCache } from '../client/cache.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import type { ResourceStore } from '../store/types.js';
import { log } from '../util/log.js';
import { ENDPOINTS_KEY, ENDPOINTS_LABEL, LEASE_DURATION_SECONDS, LEASES_KEY, withoutInstance } from './names.js';

export interface LeaseControllerOptions {
  /** How often leases are checked. Default 500 ms. */
  checkIntervalMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

interface Seen {
  resourceVersion: string;
  /** Local time this controller last saw the lease change (renewed). */
  at: number;
}

/**
 * Expires endpoint leases (those labelled `crossmesh.io/endpoints`): a lease not renewed within
 * its leaseDurationSeconds gets its instance's subset removed from the app's Endpoints and is
 * deleted. Expiry is measured on this process's clock from when the controller last SAW the
 * lease change (as Kubernetes leader election does), not from the holder's renewTime: clock skew
 * cannot expire a live holder, and after a cluster restart every lease gets a full duration of
 * grace before it can expire (its sidecar may have been unable to renew while the API was down).
 */
export class LeaseController {
  private readonly cache: StoreCache;
  private readonly seen = new Map<string, Seen>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly store: ResourceStore, private readonly opts: LeaseControllerOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.cache = new StoreCache(store, LEASES_KEY);
    this.cache.on('add', (l) => this.observe(l));
    this.cache.on('update', (_old, l) => this.observe(l));
    this.cache.on('delete', (l) => this.seen.delete(keyOf(l)));
  }

  start(): this {
    this.cache.start();
    this.timer = setInterval(() => this.sweep(), this.opts.checkIntervalMs ?? 500);
    this.timer.unref();
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.cache.stop();
    this.seen.clear();
  }

  /** Expires every lease overdue now; returns the names of the expired leases (`ns/name`). */
  sweep(): string[] {
    const expired: string[] = [];
    if (this.closed) return expired;
    const now = this.now();
    for (const lease of this.cache.list()) {
      const appId = lease.metadata.labels?.[ENDPOINTS_LABEL];
      if (!appId) continue;
      const seen = this.seen.get(keyOf(lease));
      if (!seen) continue;
      const durationMs = (Number(lease.spec?.leaseDurationSeconds) || LEASE_DURATION_SECONDS) * 1000;
      if (now - seen.at <= durationMs) continue;
      try {
        if (this.expire(lease, appId)) expired.push(keyOf(lease));
      } catch (err) {
        log.warn(`lease controller: could not expire lease ${keyOf(lease)}: ${toCrossmeshError(err).message}`);
      }
    }
    return expired;
  }

  private observe(lease: KubeObject): void {
    const key = keyOf(lease);
    const rv = lease.metadata.resourceVersion ?? '';
    const old = this.seen.get(key);
    if (!old || old.resourceVersion !== rv) this.seen.set(key, { resourceVersion: rv, at: this.now() });
  }

  /** The store is synchronous: nothing can renew the lease between these two writes. */
  private expire(lease: KubeObject, appId: string): boolean {
    const namespace = lease.metadata.namespace!;
    const name = lease.metadata.name;
    try {
      this.store.delete({ storageKey: LEASES_KEY, namespace, name }, { expectedResourceVersion: lease.metadata.resourceVersion });
    } catch (err) {
      // Renewed (or deleted) since we looked: not expired after all.
      if (err instanceof CrossmeshError && (err.code === 'CM_ERR_CONFLICT' || err.code === 'CM_ERR_NOT_FOUND')) return false;
      throw err;
    }
    const ref = { storageKey: ENDPOINTS_KEY, namespace, name: appId };
    const ep = this.store.get(ref);
    const subsets = ep?.subsets as Parameters<typeof withoutInstance>[0];
    const kept = withoutInstance(subsets, name);
    if (ep && kept !== subsets) this.store.update(ref, { ...ep, subsets: kept }, { expectedResourceVersion: ep.metadata.resourceVersion });
    log.info(`lease ${namespace}/${name} expired: removed its endpoint from ${namespace}/${appId}`);
    return true;
  }
}

function keyOf(o: KubeObject): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}
