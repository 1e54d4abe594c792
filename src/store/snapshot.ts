/**
 * Listing a collection as it was at an older revision, from the current objects and the event
 * log (the store keeps one version of each object, like etcd after compaction keeps one per key
 * plus the history since). For revision R: the objects no event after R touched are as they are
 * now; an object touched after R is as its last event at or before R left it (absent when that
 * was a delete, or when its first event after R created it). When such an object was last written
 * before the oldest retained event, its state at R is lost: that list is Gone, as a compacted
 * etcd revision is.
 */
import type { KubeObject } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { compareKeys } from './keys.js';
import type { StoredWatchEvent } from './types.js';
import type { EventFilter } from './watchers.js';

export interface SnapshotSource {
  revision(): number;
  oldestRetained(): number | undefined;
  eventsSince(after: number, filter: EventFilter): StoredWatchEvent[];
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}\u0000${o.metadata.name}`;

export function tooOld(revision: number, oldest: number, current: number): CrossmeshError {
  return new CrossmeshError('CM_ERR_GONE', `too old resource version: ${revision} (the oldest event kept is ${oldest}, current is ${current}); list again without a resourceVersion`);
}

/** The collection (current objects `now`, sorted) as it was at `revision`; throws CM_ERR_GONE when the log does not cover it. */
export function snapshotAt(src: SnapshotSource, filter: EventFilter, now: KubeObject[], revision: number): KubeObject[] {
  const current = src.revision();
  if (revision >= current) return now;
  const oldest = src.oldestRetained() ?? current + 1;
  if (revision < oldest - 1) throw tooOld(revision, oldest, current);
  const later = src.eventsSince(revision, filter);
  if (later.length === 0) return now;
  // The first event after `revision` of each object touched since.
  const touched = new Map<string, StoredWatchEvent>();
  for (const ev of later) {
    const k = keyOf(ev.object);
    if (!touched.has(k)) touched.set(k, ev);
  }
  const needed = new Set([...touched].filter(([, ev]) => ev.type !== 'ADDED').map(([k]) => k));
  const before = new Map<string, StoredWatchEvent>();
  if (needed.size > 0) {
    for (const ev of src.eventsSince(oldest - 1, filter)) {
      if (ev.revision > revision) break;
      const k = keyOf(ev.object);
      if (needed.has(k)) before.set(k, ev);
    }
    for (const k of needed) {
      if (!before.has(k)) throw tooOld(revision, oldest, current);
    }
  }
  const out = now.filter((o) => !touched.has(keyOf(o)));
  for (const ev of before.values()) if (ev.type !== 'DELETED') out.push(ev.object);
  return out.sort((a, b) => compareKeys(
    { namespace: a.metadata.namespace ?? '', name: a.metadata.name },
    { namespace: b.metadata.namespace ?? '', name: b.metadata.name },
  ));
}

/** One page of `items` (sorted): after `after`, accepted by `filter`, at most `limit`. */
export function page(
  items: KubeObject[],
  opts: { after?: { namespace: string; name: string }; limit?: number; filter?: (o: KubeObject) => boolean },
): { items: KubeObject[]; next?: { namespace: string; name: string }; remainingItemCount?: number } {
  let start = 0;
  if (opts.after) {
    const after = opts.after;
    // Binary search: the first item strictly after the key.
    let lo = 0;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = items[mid].metadata;
      if (compareKeys({ namespace: m.namespace ?? '', name: m.name }, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const limit = opts.limit;
  if (!opts.filter) {
    const end = limit === undefined ? items.length : Math.min(items.length, start + limit);
    const out = items.slice(start, end);
    if (end >= items.length || out.length === 0) return { items: out };
    const last = out[out.length - 1].metadata;
    return { items: out, next: { namespace: last.namespace ?? '', name: last.name }, remainingItemCount: items.length - end };
  }
  const out: KubeObject[] = [];
  for (let i = start; i < items.length; i++) {
    if (!opts.filter(items[i])) continue;
    if (limit !== undefined && out.length === limit) {
      const last = out[out.length - 1].metadata;
      return { items: out, next: { namespace: last.namespace ?? '', name: last.name } };
    }
    out.push(items[i]);
  }
  return { items: out };
}
