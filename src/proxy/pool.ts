/**
 * One undici Pool per upstream origin, created on first use and reused (keep-alive), so a hop
 * pays the TCP handshake once per connection, not per request.
 */
import { Pool } from 'undici';
import { CrossmeshError } from '../errors.js';

export interface PoolOptions {
  /** Max connections per origin (default 128). */
  connections?: number;
  /** Connect timeout in ms (default 3000). */
  connectTimeoutMs?: number;
  /** Idle keep-alive in ms when the upstream gives no hint (default 30 s; a `Keep-Alive: timeout` hint wins). */
  keepAliveTimeoutMs?: number;
}

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();
  private closed = false;
  private readonly toRecycle = new Set<string>();
  private recycleScheduled = false;

  constructor(private readonly opts: PoolOptions = {}) {}

  /** The pool for `origin` (`http://host:port`, no trailing slash). */
  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      if (this.closed) throw new CrossmeshError('CM_ERR_SHUTTING_DOWN', `the request to ${origin} was not sent: this proxy is shutting down (its connection pools are closed); retry it on another instance`);
      pool = new Pool(origin, {
        connections: this.opts.connections ?? 128,
        pipelining: 1,
        connectTimeout: this.opts.connectTimeoutMs ?? 3000,
        keepAliveTimeout: this.opts.keepAliveTimeoutMs ?? 30_000,
        keepAliveMaxTimeout: 600_000,
        // Per-request timeouts are set by forward(); these are the defaults when none is given.
        headersTimeout: 300_000,
        bodyTimeout: 300_000,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /**
   * After a request to `origin` was aborted (client gone, deadline): the origin's pool is
   * replaced by a fresh one, and the old one closes once its requests in flight are done.
   * Works around undici re-queueing an aborted in-flight request and opening a new connection
   * for it (nodejs/undici#5845): that connection never serves a response, so no keep-alive timer
   * ever reaps it, and every abort would leave one idle socket behind on both ends for good.
   * Batched per event-loop turn, so a burst of aborts costs one pool.
   */
  recycleSoon(origin: string): void {
    if (this.closed) return;
    this.toRecycle.add(origin);
    if (this.recycleScheduled) return;
    this.recycleScheduled = true;
    setImmediate(() => {
      this.recycleScheduled = false;
      for (const o of this.toRecycle) {
        const pool = this.pools.get(o);
        if (pool === undefined) continue;
        this.pools.delete(o);
        void pool.close().catch(() => undefined);
      }
      this.toRecycle.clear();
    });
  }

  get size(): number {
    return this.pools.size;
  }

  /** Closes pools whose origin is not in `keep` (gracefully: in-flight requests finish). */
  retain(keep: ReadonlySet<string>): void {
    for (const [origin, pool] of this.pools) {
      if (!keep.has(origin)) {
        this.pools.delete(origin);
        void pool.close().catch(() => undefined);
      }
    }
  }

  /** Closes every pool; waits for in-flight requests up to `graceMs`, then destroys. Idempotent. */
  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(
      pools.map(async (p) => {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
          timer.unref();
        });
        await Promise.race([p.close().catch(() => undefined), grace]);
        clearTimeout(timer);
        await p.destroy().catch(() => undefined);
      }),
    );
  }
}

/** The process-wide registry used when forward() is given none. */
export const defaultPools = new PoolRegistry();

/** `http://ip:port` for an IPv4/IPv6 address or host name. */
export function originOf(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}
