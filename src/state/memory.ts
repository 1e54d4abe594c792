/**
 * state.in-memory: one Map per store instance, lost with the process (as Dapr's). Every method
 * body is synchronous, so a transaction (checked, then applied) is atomic with respect to every
 * other call. ETag = a fresh random UUID per write, as in Dapr's in-memory store.
 */
import { randomUUID } from 'node:crypto';
import { checkWrite, IN_MEMORY_ETAG_RULES } from './etag.js';
import { MetadataReader } from './metadata.js';
import { runQuery, type QueryCandidate } from './query.js';
import { effectiveTtl, expiresAtMs } from './ttl.js';
import type { DeleteRequest, QueryRequest, QueryResult, SetRequest, StateStore, StoreConfig, StoredValue, TransactionOperation } from './types.js';

interface Entry {
  data: Buffer;
  etag: string;
  expiresAt?: number;
}

/** Callers get their own bytes: mutating a returned buffer must not change the store. */
function copy(e: Entry | undefined): StoredValue | undefined {
  return e && { ...e, data: Buffer.from(e.data) };
}

/** Expired entries are invisible at once; the sweep only frees their memory. */
const SWEEP_MS = 5_000;

export class MemoryStateStore implements StateStore {
  readonly features = { etag: true, transactional: true, ttl: true, query: true };
  private readonly items = new Map<string, Entry>();
  private readonly defaultTtl: number | undefined;
  private sweeper?: NodeJS.Timeout;

  constructor(config: StoreConfig) {
    this.defaultTtl = new MetadataReader(config).defaultTtlSeconds();
  }

  async init(): Promise<void> {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref(); // never keeps a sidecar alive
  }

  async get(key: string): Promise<StoredValue | undefined> {
    return copy(this.live(key, Date.now()));
  }

  async bulkGet(keys: string[]): Promise<(StoredValue | undefined)[]> {
    const now = Date.now();
    return keys.map((k) => copy(this.live(k, now)));
  }

  async set(req: SetRequest): Promise<void> {
    this.transactSync([{ operation: 'upsert', ...req }]);
  }

  async delete(req: DeleteRequest): Promise<void> {
    this.transactSync([{ operation: 'delete', ...req }]);
  }

  async transact(ops: TransactionOperation[]): Promise<void> {
    this.transactSync(ops);
  }

  async query(q: QueryRequest, keyPrefix: string): Promise<QueryResult> {
    const now = Date.now();
    const candidates: QueryCandidate[] = [];
    for (const key of this.items.keys()) {
      if (!key.startsWith(keyPrefix)) continue;
      const e = this.live(key, now);
      if (e) candidates.push({ key, data: e.data, etag: e.etag });
    }
    return runQuery(q, candidates);
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.items.clear();
  }

  /**
   * Every write goes through here. Ops are checked in order against a staged view (so a later
   * op sees an earlier one's effect), and the view is only committed when all checks passed.
   */
  private transactSync(ops: TransactionOperation[]): void {
    const now = Date.now();
    const staged = new Map<string, Entry | undefined>();
    for (const op of ops) {
      const current = staged.has(op.key) ? staged.get(op.key) : this.live(op.key, now);
      checkWrite(op.operation, op.key, current?.etag, op.etag, op.concurrency, IN_MEMORY_ETAG_RULES);
      if (op.operation === 'upsert') {
        const expiresAt = expiresAtMs(effectiveTtl(op.ttlSeconds, this.defaultTtl), now);
        // Copy: the caller may reuse its buffer.
        staged.set(op.key, { data: Buffer.from(op.data), etag: randomUUID(), ...(expiresAt !== undefined ? { expiresAt } : {}) });
      } else {
        staged.set(op.key, undefined);
      }
    }
    for (const [key, e] of staged) {
      if (e) this.items.set(key, e);
      else this.items.delete(key);
    }
  }

  /** The entry if present and not expired; an expired one is purged on the way. */
  private live(key: string, now: number): Entry | undefined {
    const e = this.items.get(key);
    if (e?.expiresAt !== undefined && e.expiresAt <= now) {
      this.items.delete(key);
      return undefined;
    }
    return e;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, e] of this.items) if (e.expiresAt !== undefined && e.expiresAt <= now) this.items.delete(key);
  }
}
