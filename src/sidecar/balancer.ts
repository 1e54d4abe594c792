import { connect } from 'node:net';
import type { ServiceRoute, Target } from './routes.js';

interface Health {
  consecutive: number;
  ejectedUntil: number;
  ejections: number;
  probing: boolean;
  target: Target;
  /** Kept out by an outside signal (its gateway is dead or slow: gateway-liveness.ts), whatever its own record. */
  held: string | undefined;
}

export interface OutlierOptions {
  /** Consecutive 5xx answers that eject (connect failures eject at once). Default 5. */
  consecutive5xx?: number;
  /** First ejection period; doubles per repeated ejection up to maxEjectionMs. */
  baseEjectionMs?: number;
  maxEjectionMs?: number;
  probeTimeoutMs?: number;
  /** Clock (tests). Default Date.now. */
  now?: () => number;
}

/** What the detector knows about one target (`healthOf()`; a copy, for status output and tests). */
export interface TargetHealth {
  consecutive: number;
  /** 0 = admitted; else the time the ejection period ends (a probe may start from then on). */
  ejectedUntil: number;
  ejections: number;
  /** A re-admission probe is in flight. */
  probing: boolean;
  /** Why an outside signal keeps it out (its gateway dead or slow), if one does. */
  held?: string;
}

/**
 * Passive outlier detection per target (a local endpoint, or a remote cluster's gateway): a
 * refused connection ejects at once, repeated 5xx eject after a run; an ejected target comes
 * back only after its period AND a successful TCP probe (active re-check before re-admission).
 */
export class OutlierDetector {
  private readonly health = new Map<string, Health>();
  ejectionsTotal = 0;
  private readonly consecutive5xx: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly probeTimeoutMs: number;
  private readonly now: () => number;

  constructor(opts: OutlierOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.consecutive5xx = opts.consecutive5xx ?? 5;
    this.baseMs = opts.baseEjectionMs ?? 1000;
    this.maxMs = opts.maxEjectionMs ?? 30_000;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? 1000;
  }

  isHealthy(t: Target, now = this.now()): boolean {
    const h = this.health.get(t.id);
    if (!h || (h.ejectedUntil === 0 && h.held === undefined)) return true;
    if (h.held !== undefined) return false;
    if (now >= h.ejectedUntil && !h.probing) this.probe(h);
    return false;
  }

  success(t: Target): void {
    const h = this.health.get(t.id);
    if (h && h.ejectedUntil === 0) h.consecutive = 0;
  }

  /** `connect`: nothing reached the target (refused/unreachable/reset before answer). */
  failure(t: Target, kind: 'connect' | 'status'): void {
    const h = this.entry(t);
    if (h.ejectedUntil !== 0) return;
    h.consecutive++;
    if (kind === 'connect' || h.consecutive >= this.consecutive5xx) this.eject(h);
  }

  private entry(t: Target): Health {
    let h = this.health.get(t.id);
    if (!h) {
      h = { consecutive: 0, ejectedUntil: 0, ejections: 0, probing: false, target: t, held: undefined };
      this.health.set(t.id, h);
    }
    h.target = t;
    return h;
  }

  /** Keeps `t` out (not picked while another candidate is healthy) until release(); `why` is shown in status. */
  hold(t: Target, why: string): void {
    const h = this.entry(t);
    if (h.held === undefined) this.ejectionsTotal++;
    h.held = why;
  }

  /** Ends a hold; with `fresh` also forgets its ejection (its gateway answers again: try it now). */
  release(t: Target, fresh: boolean): void {
    const h = this.health.get(t.id);
    if (h === undefined) return;
    h.held = undefined;
    if (fresh) {
      h.ejectedUntil = 0;
      h.consecutive = 0;
      h.probing = false;
    }
  }

  /** Forgets targets that no longer exist (called when routes are recompiled). */
  retain(ids: { has(id: string): boolean }): void {
    for (const id of this.health.keys()) if (!ids.has(id)) this.health.delete(id);
  }

  ejected(): string[] {
    return [...this.health.entries()].filter(([, h]) => h.ejectedUntil !== 0 || h.held !== undefined).map(([id]) => id);
  }

  /** A copy of what is known about `t`, or undefined when it never failed (or was forgotten). */
  healthOf(t: Target): TargetHealth | undefined {
    const h = this.health.get(t.id);
    return h && { consecutive: h.consecutive, ejectedUntil: h.ejectedUntil, ejections: h.ejections, probing: h.probing, ...(h.held !== undefined ? { held: h.held } : {}) };
  }

  private eject(h: Health): void {
    h.ejections++;
    this.ejectionsTotal++;
    h.ejectedUntil = this.now() + Math.min(this.maxMs, this.baseMs * 2 ** (h.ejections - 1));
  }

  private probe(h: Health): void {
    h.probing = true;
    // A tunnel target is probed at the remote gateway's mesh port (its host and port).
    const sock = connect({ host: h.target.upstream.host, port: h.target.upstream.port });
    const done = (ok: boolean) => {
      sock.destroy();
      if (!h.probing) return;
      h.probing = false;
      if (ok) {
        h.ejectedUntil = 0;
        h.consecutive = 0;
        h.ejections = Math.max(0, h.ejections - 1);
      } else {
        // Still down: probe again after the base period. Doubling here (as before) meant a
        // target down for a few seconds stayed ejected up to 30 s after it came back; the
        // doubling is for targets that pass the probe and fail again (flapping).
        h.ejectedUntil = this.now() + this.baseMs;
      }
    };
    sock.setTimeout(this.probeTimeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  }
}

/**
 * Smooth weighted round robin (nginx's algorithm): over N picks each target is chosen in
 * proportion to its weight, evenly interleaved, with no randomness, so 100/300 gives 1:3.
 */
export class WeightedPicker {
  private readonly current = new Map<string, number>();

  pick(candidates: readonly Target[]): Target | undefined {
    let total = 0;
    let best: Target | undefined;
    let bestWeight = -Infinity;
    for (const t of candidates) {
      if (t.weight <= 0) continue;
      const w = (this.current.get(t.id) ?? 0) + t.weight;
      this.current.set(t.id, w);
      total += t.weight;
      if (w > bestWeight) {
        bestWeight = w;
        best = t;
      }
    }
    if (best) this.current.set(best.id, bestWeight - total);
    return best;
  }
}

/**
 * Chooses the next target for a request on `route` by its policy, skipping targets already
 * tried for this request and ejected ones (when every candidate is ejected, ejected ones are
 * still tried rather than failing outright: better a likely failure than a certain one).
 * `activeActive` is the route's locals + remotes when the caller keeps it (else built here).
 * The common case (first attempt, every candidate healthy and weighted) allocates nothing.
 */
export function chooseTarget(route: ServiceRoute, picker: WeightedPicker, outliers: OutlierDetector, tried: ReadonlySet<string> | undefined, activeActive?: readonly Target[]): Target | undefined {
  switch (route.lbType) {
    case 'ActiveActive':
      return pickFrom(activeActive ?? (route.locals.length ? [...route.locals, ...route.remotes] : route.remotes), picker, outliers, tried);
    case 'FailOver': {
      const now = Date.now();
      if (allOpenHealthy(route.locals, outliers, tried, now)) {
        if (route.locals.length) return picker.pick(route.locals);
      } else {
        const healthyLocals = usable(route.locals, tried).filter((t) => outliers.isHealthy(t, now));
        if (healthyLocals.length) return picker.pick(healthyLocals);
      }
      return pickFrom(route.remotes, picker, outliers, tried) ?? pickFrom(route.locals, picker, outliers, tried);
    }
    default:
      return pickFrom(route.locals, picker, outliers, tried);
  }
}

/**
 * Whether a retry of a request could go to a target other than `current` and those already
 * `tried` (weight > 0, among the candidates its policy may use). With none, the first answer is
 * the answer: a 503 the app gave is passed through instead of being held back for a retry that
 * cannot happen. A loop over the route's targets, no allocation.
 */
export function hasAlternative(route: ServiceRoute, current: Target, tried: ReadonlySet<string> | undefined): boolean {
  const other = (list: readonly Target[]) => {
    for (let i = 0; i < list.length; i++) {
      const t = list[i];
      if (t.weight > 0 && t.id !== current.id && !tried?.has(t.id)) return true;
    }
    return false;
  };
  return route.lbType === 'ActiveActive' || route.lbType === 'FailOver' ? other(route.locals) || other(route.remotes) : other(route.locals);
}

function usable(list: readonly Target[], tried: ReadonlySet<string> | undefined): Target[] {
  return list.filter((t) => t.weight > 0 && !tried?.has(t.id));
}

/** True when nothing was tried yet and every target has weight > 0 and is healthy (then `list` itself is the candidate set). */
function allOpenHealthy(list: readonly Target[], outliers: OutlierDetector, tried: ReadonlySet<string> | undefined, now: number): boolean {
  if (tried !== undefined && tried.size !== 0) return false;
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    if (t.weight <= 0 || !outliers.isHealthy(t, now)) return false;
  }
  return true;
}

function pickFrom(list: readonly Target[], picker: WeightedPicker, outliers: OutlierDetector, tried: ReadonlySet<string> | undefined): Target | undefined {
  const now = Date.now();
  if (allOpenHealthy(list, outliers, tried, now)) return list.length === 1 ? list[0] : picker.pick(list);
  const open = usable(list, tried);
  const healthy = open.filter((t) => outliers.isHealthy(t, now));
  return picker.pick(healthy.length ? healthy : open);
}
