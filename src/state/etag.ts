/**
 * The concurrency rules of the state stores, as daprd's components (dapr/components-contrib)
 * apply them. Common to all three: an etag that is given is checked whatever the concurrency
 * (daprd does not drop it under last-write; Dapr's docs: "if the ETag is omitted, last-write
 * wins"), and first-write without an etag may not overwrite an existing key. Where the components
 * differ, `EtagRules` says how:
 *
 * | case                                        | state.in-memory | state.sqlite | state.redis |
 * |---------------------------------------------|-----------------|--------------|-------------|
 * | an etag on a key that does not exist        | mismatch        | mismatch     | written / deleted (its Lua scripts write when no version is stored) |
 * | first-write delete without etag, key exists | mismatch        | deleted      | deleted     |
 * | an etag the store could never have issued   | mismatch        | mismatch     | invalid (400: versions are numbers) |
 *
 * Sources: state/in-memory/in_memory.go `doValidateEtag` (Set, Delete and Multi all call it with
 * the request's concurrency); state/sqlite/sqlite_dbaccess.go `doSet` (`UPDATE … WHERE key = ? AND
 * etag = ?` when an etag is given, `INSERT` for first-write without one) and `doDelete`;
 * state/redis/redis.go `setDefaultQuery` / `delDefaultQuery` and `parseETag`. memory.ts applies
 * these rules in JS, sqlite.ts in its statements, redis-scripts.ts in Lua; the contract suite
 * (test/support/state-contract.ts) checks each store against its row.
 */
import type { Concurrency } from './types.js';
import { etagMismatch } from './errors.js';

export interface EtagRules {
  /** An etag given for a key that does not exist: refused (in-memory, sqlite) or ignored (redis). */
  missingKeyWithEtag: 'mismatch' | 'ignore';
  /** A first-write delete without an etag of an existing key is refused (in-memory's quirk). */
  firstWriteDeleteNeedsEtag: boolean;
}

export const IN_MEMORY_ETAG_RULES: EtagRules = { missingKeyWithEtag: 'mismatch', firstWriteDeleteNeedsEtag: true };
export const SQLITE_ETAG_RULES: EtagRules = { missingKeyWithEtag: 'mismatch', firstWriteDeleteNeedsEtag: false };
/** Applied by redis-scripts.ts in Lua; stated here for the table and the contract suite. */
export const REDIS_ETAG_RULES: EtagRules = { missingKeyWithEtag: 'ignore', firstWriteDeleteNeedsEtag: false };

/** Absent and empty etags are the same thing (Dapr sends "" for "no etag"). */
export function hasEtag(etag: string | undefined): etag is string {
  return etag !== undefined && etag !== '';
}

/**
 * Throws CM_ERR_ETAG_MISMATCH unless a write may go ahead. `current` = the stored etag
 * (undefined when the key is missing or expired).
 */
export function checkWrite(op: 'upsert' | 'delete', key: string, current: string | undefined, etag: string | undefined, concurrency: Concurrency, rules: EtagRules): void {
  if (hasEtag(etag)) {
    if (current === undefined) {
      if (rules.missingKeyWithEtag === 'ignore') return;
      throw etagMismatch(key, 'no value is stored under this key (or it expired)');
    }
    if (current !== etag) throw etagMismatch(key);
    return;
  }
  if (concurrency !== 'first-write' || current === undefined) return;
  if (op === 'upsert' || rules.firstWriteDeleteNeedsEtag) throw etagMismatch(key, 'first-write: key already exists (no etag given)');
}
