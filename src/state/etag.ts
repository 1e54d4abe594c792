/**
 * The concurrency rule, for stores that check etags in JS (memory) or need an etag's format
 * checked before it reaches the backend. SQL and Lua stores state the same rule in their own
 * statements (sqlite.ts, redis-scripts.ts); the contract suite keeps them equal.
 */
import type { Concurrency } from './types.js';
import { etagInvalid, etagMismatch } from './errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A store whose etags are UUIDs can tell a made-up etag from a stale one. */
export function assertUuidEtag(key: string, etag: string | undefined): void {
  if (etag !== undefined && etag !== '' && !UUID.test(etag)) throw etagInvalid(key, etag, 'a UUID');
}

/** Absent and empty etags are the same thing (Dapr sends "" for "no etag"). */
export function hasEtag(etag: string | undefined): etag is string {
  return etag !== undefined && etag !== '';
}

/**
 * Throws CM_ERR_ETAG_MISMATCH unless a write may go ahead. `current` = the stored etag
 * (undefined when the key is missing or expired).
 * - last-write: always allowed (etags ignored).
 * - first-write upsert: no etag = the key must not exist; an etag must equal the stored one.
 * - first-write delete: no etag = unconditional (nothing to protect); an etag must equal the stored one.
 */
export function checkWrite(op: 'upsert' | 'delete', key: string, current: string | undefined, etag: string | undefined, concurrency: Concurrency): void {
  if (concurrency !== 'first-write') return;
  if (!hasEtag(etag)) {
    if (op === 'upsert' && current !== undefined) throw etagMismatch(key, 'first-write: key already exists (no etag given)');
    return;
  }
  if (current !== etag) throw etagMismatch(key);
}
