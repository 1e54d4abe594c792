/**
 * The sidecar's compiled outbound routes, updated per service: a change to one Service,
 * Endpoints, ServiceImport or GlobalTrafficPolicy recompiles only the routes of that
 * `namespace/name` (all four kinds are named after the service they route), not the table.
 * `compileRoutes()` over all inputs is the definition; `update()` over the changed keys gives
 * the same table (route-table.test.ts checks it on random change sequences).
 *
 * Beside the routes it keeps reference counts of what the routes use (target ids, upstream pool
 * keys, remote gateways), so pools, outlier state and liveness probes of targets that went away
 * can be dropped without walking every route.
 */
import type { KubeObject } from '../api/types.js';
import type { UpstreamTls } from '../proxy/h1/upstream.js';
import { compileRoutes, type ServiceRoute, type Target } from './routes.js';

/** Where the table reads a service's inputs (the sidecar's informer caches). */
export interface RouteSource {
  service(namespace: string, name: string): KubeObject | undefined;
  endpoints(namespace: string, name: string): KubeObject | undefined;
  serviceImport(namespace: string, name: string): KubeObject | undefined;
  policy(namespace: string, name: string): KubeObject | undefined;
}

/** Reference counts by key. */
class Refs<V = undefined> {
  readonly counts = new Map<string, { n: number; value: V }>();
  add(key: string, value: V): boolean {
    const e = this.counts.get(key);
    if (e) {
      e.n++;
      return false;
    }
    this.counts.set(key, { n: 1, value });
    return true;
  }
  remove(key: string): void {
    const e = this.counts.get(key);
    if (!e) return;
    if (--e.n === 0) this.counts.delete(key);
  }
  has(key: string): boolean {
    return this.counts.has(key);
  }
}

/** The gateway mesh port a tunnel target goes through, `host:port` (the liveness key). */
export function gatewayKey(t: Target): string {
  return t.origin.slice(0, t.origin.indexOf('>'));
}

export class RouteTable {
  /** routeKey(ns, name, port) → route. */
  readonly routes = new Map<string, ServiceRoute>();
  /** ns/name → the route of its lowest port. */
  readonly byService = new Map<string, ServiceRoute>();
  /** ns/name → its routes' keys. */
  private readonly keysOf = new Map<string, string[]>();
  private readonly ids = new Refs();
  private readonly origins = new Refs();
  private readonly gatewayRefs = new Refs<{ host: string; port: number }>();

  constructor(private readonly clusterName: string, private readonly meshTls: UpstreamTls | undefined) {}

  /** Target ids the routes use (outlier state of others can go). */
  get targetIds(): { has(id: string): boolean } {
    return this.ids;
  }

  /** Upstream pool keys the routes use. */
  get poolKeys(): { has(key: string): boolean } {
    return this.origins;
  }

  /** The target ids and pool keys the routes hold, as sets (tests, status). */
  used(): { ids: Set<string>; poolKeys: Set<string> } {
    return { ids: new Set(this.ids.counts.keys()), poolKeys: new Set(this.origins.counts.keys()) };
  }

  /** Remote gateway mesh ports the routes tunnel through, `host:port` → address. */
  gateways(): Map<string, { host: string; port: number }> {
    const out = new Map<string, { host: string; port: number }>();
    for (const [k, e] of this.gatewayRefs.counts) out.set(k, e.value);
    return out;
  }

  /** Whether the set of gateways changed in the last update (liveness probes to add or stop). */
  gatewaysChanged = false;

  /**
   * Recompiles the routes of these services (`namespace/name` keys) from `src`; returns the
   * targets that are new in the table (objects not in it before).
   */
  update(keys: Iterable<string>, src: RouteSource): Target[] {
    const added: Target[] = [];
    this.gatewaysChanged = false;
    for (const key of keys) {
      const slash = key.indexOf('/');
      const ns = key.slice(0, slash);
      const name = key.slice(slash + 1);
      for (const rk of this.keysOf.get(key) ?? []) {
        const old = this.routes.get(rk);
        if (old) this.unref(old);
        this.routes.delete(rk);
      }
      this.keysOf.delete(key);
      this.byService.delete(key);
      const one = <T>(v: T | undefined): T[] => (v === undefined ? [] : [v]);
      const compiled = compileRoutes({
        clusterName: this.clusterName,
        services: one(src.service(ns, name)),
        endpoints: one(src.endpoints(ns, name)),
        imports: one(src.serviceImport(ns, name)),
        policies: one(src.policy(ns, name)),
        meshTls: this.meshTls,
      });
      if (compiled.size === 0) continue;
      const rks: string[] = [];
      let lowest: ServiceRoute | undefined;
      for (const [rk, r] of compiled) {
        this.routes.set(rk, r);
        rks.push(rk);
        this.ref(r, added);
        if (!lowest || r.port < lowest.port) lowest = r;
      }
      this.keysOf.set(key, rks);
      this.byService.set(key, lowest!);
    }
    return added;
  }

  private ref(r: ServiceRoute, added: Target[]): void {
    for (const t of r.locals) {
      this.ids.add(t.id, undefined);
      this.origins.add(t.origin, undefined);
      added.push(t);
    }
    for (const t of r.remotes) {
      this.ids.add(t.id, undefined);
      this.origins.add(t.origin, undefined);
      if (t.tunnel !== undefined && this.gatewayRefs.add(gatewayKey(t), { host: t.upstream.host, port: t.upstream.port })) this.gatewaysChanged = true;
      added.push(t);
    }
  }

  private unref(r: ServiceRoute): void {
    for (const t of r.locals) {
      this.ids.remove(t.id);
      this.origins.remove(t.origin);
    }
    for (const t of r.remotes) {
      this.ids.remove(t.id);
      this.origins.remove(t.origin);
      if (t.tunnel !== undefined) {
        const g = gatewayKey(t);
        this.gatewayRefs.remove(g);
        if (!this.gatewayRefs.has(g)) this.gatewaysChanged = true;
      }
    }
  }
}
