/**
 * Test helper: the optimistic-concurrency counter loop (get → first-write set with the etag →
 * retry on mismatch) used by the contract suite and by state-counter-worker.ts in other processes.
 * If the store ever lets two writers both succeed from the same etag, the final value falls
 * short of the number of successful sets: a lost update.
 */
import { CrossmeshError } from '../../src/errors.js';
import type { StateStore } from '../../src/state/types.js';

export async function incrementTimes(store: StateStore, key: string, times: number): Promise<{ successes: number; conflicts: number }> {
  let successes = 0;
  let conflicts = 0;
  while (successes < times) {
    const cur = await store.get(key);
    const n = cur ? Number(cur.data.toString()) : 0;
    try {
      await store.set({ key, data: Buffer.from(String(n + 1)), etag: cur?.etag, concurrency: 'first-write' });
      successes++;
    } catch (err) {
      if (!(err instanceof CrossmeshError && err.code === 'CM_ERR_ETAG_MISMATCH')) throw err;
      conflicts++;
    }
  }
  return { successes, conflicts };
}

/** `clients` concurrent loops over the given stores (round-robin), `times` successes each. */
export async function runCounters(stores: StateStore[], key: string, clients: number, times: number): Promise<{ successes: number; conflicts: number }> {
  const results = await Promise.all(Array.from({ length: clients }, (_, i) => incrementTimes(stores[i % stores.length], key, times)));
  return results.reduce((a, r) => ({ successes: a.successes + r.successes, conflicts: a.conflicts + r.conflicts }), { successes: 0, conflicts: 0 });
}
