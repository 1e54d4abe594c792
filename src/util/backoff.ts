/**
 * The one retry back-off of crossmesh (informers, the control plane's member connections, the
 * sidecar's endpoint registration, Dapr resiliency retries): an exponential delay with a cap and
 * optional jitter, and an abortable sleep over an injectable clock (as @kubernetes/client-node's
 * informer takes one), so tests can drive time by hand.
 *
 *   const b = new Backoff({ initialMs: 100, maxMs: 3000, jitter: 0.2 });
 *   on failure:  await sleep(b.next(), signal);
 *   on success:  b.reset();
 */

/** What `sleep` needs of time. `systemClock` is the real one. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface BackoffOptions {
  /** The first delay (before jitter). */
  initialMs: number;
  /** The base delay grows up to this (the first delay is not capped). */
  maxMs: number;
  /** Growth per attempt; default 2. 1 = a constant delay. */
  factor?: number;
  /**
   * Randomisation as a fraction: each delay is the base times a uniform value in
   * [1 - jitter, 1 + jitter]. Default 0 (none).
   */
  jitter?: number;
  /**
   * Also cap the jittered delay at `maxMs` (Dapr's retry does); by default a jittered delay may
   * exceed `maxMs` by up to the jitter fraction (client-go's informer back-off does).
   */
  capJitter?: boolean;
  /** Source of randomness in [0, 1); default Math.random. */
  random?: () => number;
}

export class Backoff {
  private base: number;
  private count = 0;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(private readonly opts: BackoffOptions) {
    this.base = opts.initialMs;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0;
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next attempt; grows the following one. */
  next(): number {
    this.count++;
    let delay = this.jitter > 0 ? this.base * (1 - this.jitter + 2 * this.jitter * this.random()) : this.base;
    if (this.opts.capJitter) delay = Math.min(this.opts.maxMs, delay);
    this.base = Math.min(this.opts.maxMs, this.base * this.factor);
    return delay;
  }

  /** Back to the first delay (after a success). */
  reset(): void {
    this.base = this.opts.initialMs;
    this.count = 0;
  }

  /** `next()` calls since construction or the last `reset()`: the failures in a row. */
  get attempts(): number {
    return this.count;
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts (also when it already has); never
 * rejects. The abort listener is removed when the timer fires, so a long-lived signal does not
 * collect one listener per sleep.
 */
export function sleep(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clock.clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
