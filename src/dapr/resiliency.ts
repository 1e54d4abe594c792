/**
 * Dapr `Resiliency` policies (dapr.io/v1alpha1) as a small policy engine: timeout per attempt,
 * retries (constant / exponential backoff, maxRetries, -1 = unlimited) around it, and a circuit
 * breaker counting every attempt. Used around state store calls and publishes (targets.components.<name>.outbound),
 * around deliveries of pub/sub messages to the app (targets.components.<name>.inbound)
 * and, by service invocation, for app targets (targets.apps.<appId>).
 *
 *   policy.run((signal) => doIt(signal))
 *
 * `fn` is called again for every retry (so it must be safe to re-run). A tripped breaker fails
 * fast with CM_ERR_UNAVAILABLE naming the breaker and the target; no retry is attempted then.
 * Errors for which `isPermanent(err)` is true (default: a CrossmeshError with a status < 500,
 * e.g. an etag mismatch) end the call at once and count as a success for the breaker: the
 * target answered, the caller asked for something it refuses.
 */
import type { KubeObject } from '../api/types.js';
import { parseGoDuration } from '../api/duration.js';
import { CrossmeshError, isCrossmeshError } from '../errors.js';
import { Backoff, sleep } from '../util/backoff.js';

export interface RunOptions {
  /** True: do not retry and do not count as a breaker failure. */
  isPermanent?: (err: unknown) => boolean;
  /** The caller's own cancellation (request closed): stops waiting and retrying. */
  signal?: AbortSignal;
}

export interface Policy {
  /** Human label: `component statestore` / `app nodeapp`. */
  readonly target: string;
  readonly timeoutMs?: number;
  readonly retry?: RetrySettings;
  readonly breaker?: CircuitBreaker;
  run<T>(fn: (signal: AbortSignal) => Promise<T>, opts?: RunOptions): Promise<T>;
}

export interface CompiledResiliency {
  forApp(appId: string): Policy | undefined;
  forComponent(name: string): Policy | undefined;
  /** targets.components.<name>.inbound: around each delivery of a pub/sub component's messages to the app. */
  forComponentInbound(name: string): Policy | undefined;
  /** Problems found while compiling (unparsable durations, unknown policy names); the rest still applies. */
  readonly problems: string[];
}

export interface RetrySettings {
  name: string;
  policy: 'constant' | 'exponential';
  /** constant: the pause; exponential: the first pause. */
  durationMs: number;
  maxIntervalMs: number;
  /** -1 = unlimited. */
  maxRetries: number;
}

export function defaultIsPermanent(err: unknown): boolean {
  return isCrossmeshError(err) && err.status < 500;
}

// ---- circuit breaker -------------------------------------------------------------------

interface Counts {
  requests: number;
  totalSuccesses: number;
  totalFailures: number;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}
type CountName = keyof Counts;
type Cmp = '>' | '>=' | '<' | '<=' | '==' | '!=';
interface Clause { v: CountName; op: Cmp; n: number }

/** `a > 5 && b < 3 || c == 1` → OR of AND groups. */
export function parseTrip(expr: string): (c: Counts) => boolean {
  const groups = expr.split('||').map((g) => g.split('&&').map((raw): Clause => {
    const m = /^\s*(requests|totalSuccesses|totalFailures|consecutiveSuccesses|consecutiveFailures)\s*(>=|<=|==|!=|>|<)\s*(\d+)\s*$/.exec(raw);
    if (!m) throw new CrossmeshError('CM_ERR_INVALID', `"${expr}" is not a trip expression (e.g. "consecutiveFailures > 5")`);
    return { v: m[1] as CountName, op: m[2] as Cmp, n: Number(m[3]) };
  }));
  const test = (c: Counts, { v, op, n }: Clause): boolean => {
    const x = c[v];
    switch (op) {
      case '>': return x > n;
      case '>=': return x >= n;
      case '<': return x < n;
      case '<=': return x <= n;
      case '==': return x === n;
      case '!=': return x !== n;
    }
  };
  return (c) => groups.some((g) => g.every((cl) => test(c, cl)));
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** gobreaker semantics (what Dapr uses): counts per `interval` while closed, `timeout` open, `maxRequests` probes half-open. */
export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private counts: Counts = { requests: 0, totalSuccesses: 0, totalFailures: 0, consecutiveSuccesses: 0, consecutiveFailures: 0 };
  private openedAt = 0;
  private intervalStart: number;
  private halfOpenInFlight = 0;
  private readonly trip: (c: Counts) => boolean;

  constructor(
    readonly name: string,
    readonly target: string,
    private readonly opts: { maxRequests: number; intervalMs: number; timeoutMs: number; trip: string },
    private readonly now: () => number = Date.now,
  ) {
    this.trip = parseTrip(opts.trip);
    this.intervalStart = now();
  }

  get currentState(): BreakerState {
    this.tick();
    return this.state;
  }

  /** Throws when the breaker refuses the call; otherwise the caller must report the outcome. */
  enter(): void {
    this.tick();
    if (this.state === 'open') {
      throw new CrossmeshError('CM_ERR_UNAVAILABLE', `circuit breaker "${this.name}" for ${this.target} is open (tripped on "${this.opts.trip}"); failing fast until it half-opens`);
    }
    if (this.state === 'half-open') {
      if (this.halfOpenInFlight >= this.opts.maxRequests) {
        throw new CrossmeshError('CM_ERR_UNAVAILABLE', `circuit breaker "${this.name}" for ${this.target} is half-open and already probing with ${this.opts.maxRequests} request(s)`);
      }
      this.halfOpenInFlight++;
    }
    this.counts.requests++;
  }

  success(): void {
    const c = this.counts;
    c.totalSuccesses++;
    c.consecutiveSuccesses++;
    c.consecutiveFailures = 0;
    if (this.state === 'half-open') {
      this.halfOpenInFlight = Math.max(0, this.halfOpenInFlight - 1);
      if (c.consecutiveSuccesses >= this.opts.maxRequests) this.toState('closed');
    }
  }

  failure(): void {
    const c = this.counts;
    c.totalFailures++;
    c.consecutiveFailures++;
    c.consecutiveSuccesses = 0;
    if (this.state === 'half-open') this.toState('open');
    else if (this.state === 'closed' && this.trip(c)) this.toState('open');
  }

  private tick(): void {
    const now = this.now();
    if (this.state === 'open' && now - this.openedAt >= this.opts.timeoutMs) this.toState('half-open');
    else if (this.state === 'closed' && this.opts.intervalMs > 0 && now - this.intervalStart >= this.opts.intervalMs) this.resetCounts();
  }

  private toState(s: BreakerState): void {
    this.state = s;
    this.halfOpenInFlight = 0;
    this.resetCounts();
    if (s === 'open') this.openedAt = this.now();
  }

  private resetCounts(): void {
    this.counts = { requests: 0, totalSuccesses: 0, totalFailures: 0, consecutiveSuccesses: 0, consecutiveFailures: 0 };
    this.intervalStart = this.now();
  }
}

// ---- policy ------------------------------------------------------------------------------

/** One attempt with a timeout: the signal aborts and the promise rejects with CM_ERR_TIMEOUT when it runs out. */
function attempt<T>(fn: (signal: AbortSignal) => Promise<T>, timeoutMs: number | undefined, target: string, outer?: AbortSignal): Promise<T> {
  const ac = new AbortController();
  const onOuter = () => ac.abort(outer?.reason);
  if (outer) {
    if (outer.aborted) ac.abort(outer.reason);
    else outer.addEventListener('abort', onOuter, { once: true });
  }
  const cleanup = () => outer?.removeEventListener('abort', onOuter);
  if (timeoutMs === undefined || timeoutMs <= 0) {
    return fn(ac.signal).finally(cleanup);
  }
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => {
      const err = new CrossmeshError('CM_ERR_TIMEOUT', `${target} did not answer within ${timeoutMs} ms (resiliency timeout)`);
      ac.abort(err);
      cleanup();
      reject(err);
    }, timeoutMs);
    fn(ac.signal).then(
      (v) => { clearTimeout(t); cleanup(); resolve(v); },
      (e) => { clearTimeout(t); cleanup(); reject(e); },
    );
  });
}

class PolicyImpl implements Policy {
  constructor(
    readonly target: string,
    readonly timeoutMs: number | undefined,
    readonly retry: RetrySettings | undefined,
    readonly breaker: CircuitBreaker | undefined,
  ) {}

  async run<T>(fn: (signal: AbortSignal) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const isPermanent = opts.isPermanent ?? defaultIsPermanent;
    let retries = 0;
    const r = this.retry;
    // constant: `duration` every time; exponential: randomised like backoff.ExponentialBackOff
    // (factor 0.5, so ±50 %), growing by 1.5, the delay capped at maxInterval.
    const backoff = r && (r.policy === 'exponential'
      ? new Backoff({ initialMs: r.durationMs, maxMs: r.maxIntervalMs, factor: 1.5, jitter: 0.5, capJitter: true })
      : new Backoff({ initialMs: r.durationMs, maxMs: r.durationMs, factor: 1 }));
    for (;;) {
      let err: unknown;
      // An open breaker is final: it throws, and no retry follows (as in Dapr).
      this.breaker?.enter();
      try {
        const v = await attempt(fn, this.timeoutMs, this.target, opts.signal);
        this.breaker?.success();
        return v;
      } catch (e) {
        err = e;
      }
      if (isPermanent(err)) {
        this.breaker?.success();
        throw err;
      }
      this.breaker?.failure();
      if (!r || !backoff || (r.maxRetries >= 0 && retries >= r.maxRetries) || opts.signal?.aborted) throw err;
      retries++;
      await sleep(backoff.next(), opts.signal);
      if (opts.signal?.aborted) throw err;
    }
  }
}

// ---- compile ------------------------------------------------------------------------------

interface Refs { timeout?: string; retry?: string; circuitBreaker?: string }

/**
 * Compiles Resiliency objects into per-target policies. With `appId`, objects whose `scopes`
 * do not list it are ignored. Several objects: sorted by name, the first to define a target
 * (or a policy name) wins. Breakers live as long as the compiled result: recompile on change.
 */
export function compileResiliency(objs: KubeObject[], opts: { appId?: string; now?: () => number } = {}): CompiledResiliency {
  const problems: string[] = [];
  const timeouts = new Map<string, number>();
  const retries = new Map<string, RetrySettings>();
  const breakers = new Map<string, { maxRequests: number; intervalMs: number; timeoutMs: number; trip: string }>();
  const apps = new Map<string, Refs>();
  const components = new Map<string, Refs>();
  const componentsInbound = new Map<string, Refs>();
  const sorted = [...objs].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const dur = (v: unknown, what: string, def: number): number => {
    if (v === undefined || v === null || v === '') return def;
    try {
      return parseGoDuration(String(v));
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
      return def;
    }
  };
  for (const o of sorted) {
    const scopes = o.scopes as string[] | undefined;
    if (opts.appId !== undefined && Array.isArray(scopes) && scopes.length > 0 && !scopes.includes(opts.appId)) continue;
    const name = o.metadata.name;
    const p = o.spec?.policies ?? {};
    for (const [k, v] of Object.entries<unknown>(p.timeouts ?? {})) {
      if (!timeouts.has(k)) timeouts.set(k, dur(v, `Resiliency ${name} timeout ${k}`, 0));
    }
    for (const [k, v] of Object.entries<any>(p.retries ?? {})) {
      if (retries.has(k)) continue;
      const policy = v?.policy === 'exponential' ? 'exponential' : 'constant';
      retries.set(k, {
        name: k,
        policy,
        durationMs: dur(v?.duration, `Resiliency ${name} retry ${k} duration`, policy === 'exponential' ? 500 : 5000),
        maxIntervalMs: dur(v?.maxInterval, `Resiliency ${name} retry ${k} maxInterval`, 60_000),
        maxRetries: typeof v?.maxRetries === 'number' ? v.maxRetries : -1,
      });
    }
    for (const [k, v] of Object.entries<any>(p.circuitBreakers ?? {})) {
      if (breakers.has(k)) continue;
      const trip = typeof v?.trip === 'string' && v.trip.trim() ? v.trip : 'consecutiveFailures > 5';
      try {
        parseTrip(trip);
      } catch (e) {
        problems.push(`Resiliency ${name} circuit breaker ${k}: ${(e as Error).message}`);
        continue;
      }
      breakers.set(k, {
        maxRequests: typeof v?.maxRequests === 'number' && v.maxRequests > 0 ? v.maxRequests : 1,
        intervalMs: dur(v?.interval, `Resiliency ${name} circuit breaker ${k} interval`, 0),
        timeoutMs: dur(v?.timeout, `Resiliency ${name} circuit breaker ${k} timeout`, 60_000),
        trip,
      });
    }
    const t = o.spec?.targets ?? {};
    for (const [k, v] of Object.entries<any>(t.apps ?? {})) if (!apps.has(k) && v) apps.set(k, v);
    for (const [k, v] of Object.entries<any>(t.components ?? {})) {
      if (!components.has(k) && v?.outbound) components.set(k, v.outbound);
      if (!componentsInbound.has(k) && v?.inbound) componentsInbound.set(k, v.inbound);
    }
  }

  const build = (label: string, refs: Refs): Policy | undefined => {
    const timeoutMs = refs.timeout !== undefined ? timeouts.get(refs.timeout) : undefined;
    if (refs.timeout !== undefined && timeoutMs === undefined) problems.push(`${label}: timeout policy "${refs.timeout}" is not defined`);
    const retry = refs.retry !== undefined ? retries.get(refs.retry) : undefined;
    if (refs.retry !== undefined && !retry) problems.push(`${label}: retry policy "${refs.retry}" is not defined`);
    const cb = refs.circuitBreaker !== undefined ? breakers.get(refs.circuitBreaker) : undefined;
    if (refs.circuitBreaker !== undefined && !cb) problems.push(`${label}: circuit breaker "${refs.circuitBreaker}" is not defined`);
    if (!timeoutMs && !retry && !cb) return undefined;
    const breaker = cb ? new CircuitBreaker(refs.circuitBreaker!, label, cb, opts.now) : undefined;
    return new PolicyImpl(label, timeoutMs || undefined, retry, breaker);
  };
  const appPolicies = new Map<string, Policy | undefined>();
  for (const [k, refs] of apps) appPolicies.set(k, build(`app ${k}`, refs));
  const componentPolicies = new Map<string, Policy | undefined>();
  for (const [k, refs] of components) componentPolicies.set(k, build(`component ${k}`, refs));
  const inboundPolicies = new Map<string, Policy | undefined>();
  for (const [k, refs] of componentsInbound) inboundPolicies.set(k, build(`component ${k} (inbound)`, refs));
  return {
    forApp: (appId) => appPolicies.get(appId),
    forComponent: (name) => componentPolicies.get(name),
    forComponentInbound: (name) => inboundPolicies.get(name),
    problems,
  };
}
