/** TTL rules shared by every store: a request's ttlSeconds wins over the component default. */
import { badRequest } from './errors.js';

/**
 * Seconds to live for one write, or undefined for none. `ttlSeconds` > 0 sets a TTL; -1 (Dapr's
 * "never expire") and 0 mean none even when the component has a default; undefined = default.
 */
export function effectiveTtl(ttlSeconds: number | undefined, defaultTtl: number | undefined): number | undefined {
  if (ttlSeconds === undefined) return defaultTtl;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < -1) throw badRequest(`ttlInSeconds must be an integer >= -1, got ${ttlSeconds}`);
  return ttlSeconds > 0 ? ttlSeconds : undefined;
}

export function expiresAtMs(ttl: number | undefined, now = Date.now()): number | undefined {
  return ttl === undefined ? undefined : now + ttl * 1000;
}
