/**
 * Endpoint choice per export `spec.loadBalancer`:
 * - RoundRobinLoadBalancer (default): in turn.
 * - HashingLoadBalancer: FNV-1a hash of the client address (the TCP peer of the gateway), or of
 *   the request header named by the export's `crossmesh.io/hash-header` annotation (clients
 *   behind one proxy share its address; a header such as x-user-id tells them apart), so a key
 *   keeps its endpoint while the endpoint set is unchanged.
 * - LeastWorkLoadBalancer: fewest requests in flight through this gateway (ties in turn).
 * `sessionSticky` is applied before: a `cm-sticky=<ip:port>` cookie naming a current endpoint wins.
 */
export interface EndpointState {
  /** `ip:port` (`[v6]:port`). */
  readonly id: string;
  readonly origin: string;
  /** Requests in flight through this gateway (shared across route-table versions). */
  inflight: number;
  /** A mesh workload (registered by its sidecar): the HTTP ingress reaches it over mTLS. */
  mesh: boolean;
}

export const enum Lb {
  RoundRobin = 0,
  Hashing = 1,
  LeastWork = 2,
}

export function lbOf(name: unknown): Lb {
  return name === 'HashingLoadBalancer' ? Lb.Hashing : name === 'LeastWorkLoadBalancer' ? Lb.LeastWork : Lb.RoundRobin;
}

export interface Pickable {
  readonly endpoints: readonly EndpointState[];
  readonly lb: Lb;
  /** Round-robin cursor (mutable). */
  rr: number;
}

export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Picks an endpoint; `endpoints` must not be empty. */
export function pick(b: Pickable, clientAddress: string): EndpointState {
  const eps = b.endpoints;
  const n = eps.length;
  if (n === 1) return eps[0];
  switch (b.lb) {
    case Lb.Hashing:
      return eps[fnv1a(clientAddress) % n];
    case Lb.LeastWork: {
      const start = b.rr;
      b.rr = start + 1 >= n ? 0 : start + 1;
      let best = eps[start % n];
      for (let k = 1; k < n; k++) {
        const e = eps[(start + k) % n];
        if (e.inflight < best.inflight) best = e;
      }
      return best;
    }
    default: {
      const i = b.rr >= n ? 0 : b.rr;
      b.rr = i + 1;
      return eps[i];
    }
  }
}

export const STICKY_COOKIE = 'cm-sticky';

/** Value of the `cm-sticky` cookie in a Cookie header, or undefined. */
export function stickyValue(cookie: string | undefined): string | undefined {
  if (cookie === undefined) return undefined;
  let from = 0;
  for (;;) {
    const i = cookie.indexOf('cm-sticky=', from);
    if (i < 0) return undefined;
    const c = i === 0 ? 32 : cookie.charCodeAt(i - 1);
    if (c === 32 || c === 59 || c === 9) {
      const start = i + 10;
      const end = cookie.indexOf(';', start);
      return (end < 0 ? cookie.slice(start) : cookie.slice(start, end)).trim();
    }
    from = i + 10;
  }
}
