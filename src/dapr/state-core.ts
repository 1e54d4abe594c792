/**
 * The Dapr state building block, transport-neutral: store lookup, key prefixing, concurrency and
 * consistency options, ttl from metadata, etag failures mapped to daprd's answers, transactions
 * and query. The HTTP API (state-api.ts) and the gRPC API (grpc/server.ts) parse their requests
 * into these calls and write the results in their own wire form; neither re-implements a rule.
 * The etag rules themselves are the stores' (src/state/etag.ts).
 */
import { toCrossmeshError } from '../errors.js';
import type { Concurrency, Consistency, DeleteRequest, QueryRequest, QueryResult, SetRequest, StateStore, StoredValue, TransactionOperation } from '../state/types.js';
import type { LoadedStateStore } from './components.js';
import { KEY_SEPARATOR } from './components.js';
import { DaprError, daprError } from './respond.js';

export interface StateStores {
  getStateStore(name: string): LoadedStateStore | undefined;
  hasStateStores(): boolean;
}

/** A failure of a request option (concurrency, consistency, ttl): the caller's error for it. */
export type OptionFail = (msg: string) => DaprError;

/** daprd's store lookup: none configured → ERR_STATE_STORE_NOT_CONFIGURED, unknown → ERR_STATE_STORE_NOT_FOUND. */
export function lookupStateStore(stores: StateStores, name: string): LoadedStateStore {
  const s = stores.getStateStore(name);
  if (s) return s;
  if (!stores.hasStateStores()) throw daprError('ERR_STATE_STORE_NOT_CONFIGURED');
  throw daprError('ERR_STATE_STORE_NOT_FOUND', { store: name });
}

/** Dapr keyPrefix applied to one key; `||` in a key is refused (ERR_MALFORMED_REQUEST). */
export function fullKey(s: LoadedStateStore, key: string): string {
  if (key.indexOf(KEY_SEPARATOR) >= 0) throw daprError('ERR_MALFORMED_REQUEST:key', { key });
  return s.keyPrefix + key;
}

/** The key the app used (daprd GetOriginalStateKey). */
export function originalKey(s: LoadedStateStore, key: string): string {
  if (s.keyPrefix && key.startsWith(s.keyPrefix)) return key.slice(s.keyPrefix.length);
  const i = key.indexOf(KEY_SEPARATOR);
  return i >= 0 ? key.slice(i + KEY_SEPARATOR.length) : key;
}

/** Runs a store call inside the component's Resiliency policy, when there is one. */
export function runOnStore<T>(s: LoadedStateStore, fn: (store: StateStore) => Promise<T>): Promise<T> {
  const p = s.policy;
  return p ? p.run(() => fn(s.store)) : fn(s.store);
}

const CONCURRENCY = new Set(['first-write', 'last-write']);
const CONSISTENCY = new Set(['strong', 'eventual']);

/**
 * Dapr semantics: an etag is checked whenever one is given, unless last-write is asked for
 * explicitly; first-write also refuses a write without etag on an existing key. The store
 * contract expresses both as first-write. `raw` is the option as the request names it
 * ('first-write' / 'last-write'; absent or '' = unspecified).
 */
export function concurrencyOf(raw: unknown, hasEtag: boolean, fail: OptionFail): Concurrency {
  if (raw === undefined || raw === null || raw === '') return hasEtag ? 'first-write' : 'last-write';
  if (typeof raw !== 'string' || !CONCURRENCY.has(raw)) throw fail(`unrecognized concurrency model '${String(raw)}'`);
  return raw as Concurrency;
}

export function consistencyOf(raw: unknown, fail: OptionFail): Consistency | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string' || !CONSISTENCY.has(raw)) throw fail(`unrecognized consistency model '${String(raw)}'`);
  return raw as Consistency;
}

/** `ttlInSeconds` of an item's metadata: > 0 expires, -1 / 0 / absent = none. */
export function ttlOf(md: Record<string, unknown> | undefined, fail: OptionFail): number | undefined {
  const v = md?.ttlInSeconds;
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : /^-?\d+$/.test(String(v).trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < -1) throw fail(`ttlInSeconds must be an integer >= -1, got ${JSON.stringify(v)}`);
  return n === 0 ? undefined : n;
}

/** An etag as the request gave it; '' / absent = none. */
export function etagOf(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  return typeof v === 'string' ? v : String(v);
}

/** Maps a store failure to Dapr's answer for a save. */
export function saveError(store: string, err: unknown): DaprError {
  if (err instanceof DaprError) return err;
  const e = toCrossmeshError(err);
  const args = { store, error: e.message };
  if (e.code === 'CM_ERR_ETAG_MISMATCH') return daprError('ERR_STATE_SAVE:etag-mismatch', args, { cause: e });
  if (e.code === 'CM_ERR_ETAG_INVALID') return daprError('ERR_STATE_SAVE:etag-invalid', args, { cause: e });
  return daprError('ERR_STATE_SAVE', args, { cause: e });
}

/** Maps a store failure to Dapr's answer for a delete of one key. */
export function deleteError(key: string, err: unknown): DaprError {
  if (err instanceof DaprError) return err;
  const e = toCrossmeshError(err);
  const args = { key, error: e.message };
  if (e.code === 'CM_ERR_ETAG_MISMATCH') return daprError('ERR_STATE_DELETE:etag-mismatch', args, { cause: e });
  if (e.code === 'CM_ERR_ETAG_INVALID') return daprError('ERR_STATE_DELETE:etag-invalid', args, { cause: e });
  return daprError('ERR_STATE_DELETE', args, { cause: e });
}

/** Maps a store failure to Dapr's answer for a bulk delete (gRPC DeleteBulkState). */
export function bulkDeleteError(store: string, err: unknown): DaprError {
  if (err instanceof DaprError) return err;
  const e = toCrossmeshError(err);
  const args = { store, error: e.message };
  if (e.code === 'CM_ERR_ETAG_MISMATCH') return daprError('ERR_STATE_BULK_DELETE:etag-mismatch', args, { cause: e });
  if (e.code === 'CM_ERR_ETAG_INVALID') return daprError('ERR_STATE_BULK_DELETE:etag-invalid', args, { cause: e });
  return daprError('ERR_STATE_BULK_DELETE', args, { cause: e });
}

/** One item to save, as a transport parsed it (options still raw). */
export interface SaveItem {
  key: string;
  data: Buffer;
  etag?: string;
  concurrency?: unknown;
  consistency?: unknown;
  /** The item's metadata with the request's merged over it (daprd's precedence, done by the transport). */
  metadata?: Record<string, string>;
}

/** Save: every item is validated before anything is written; several items are written in parallel, as daprd's BulkSet. */
export async function saveItems(s: LoadedStateStore, storeName: string, items: readonly SaveItem[]): Promise<void> {
  if (items.length === 0) return;
  const fail: OptionFail = (msg) => daprError('ERR_STATE_SAVE', { store: storeName, error: msg });
  const reqs: SetRequest[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    reqs[i] = {
      key: fullKey(s, it.key),
      data: it.data,
      etag: it.etag,
      concurrency: concurrencyOf(it.concurrency, it.etag !== undefined, fail),
      consistency: consistencyOf(it.consistency, fail),
      ttlSeconds: ttlOf(it.metadata, fail),
    };
  }
  try {
    if (reqs.length === 1) await runOnStore(s, (st) => st.set(reqs[0]));
    else await runOnStore(s, (st) => Promise.all(reqs.map((r) => st.set(r))));
  } catch (err) {
    throw saveError(storeName, err);
  }
}

/** Get one key; undefined when it does not exist. */
export async function getItem(s: LoadedStateStore, storeName: string, key: string, consistency: unknown, fail: OptionFail): Promise<StoredValue | undefined> {
  const k = fullKey(s, key);
  consistencyOf(consistency, fail);
  try {
    return await runOnStore(s, (st) => st.get(k));
  } catch (err) {
    throw daprError('ERR_STATE_GET', { key, store: storeName, error: toCrossmeshError(err).message }, { cause: err });
  }
}

/** One key to delete, as a transport parsed it. */
export interface DeleteItem {
  key: string;
  etag?: string;
  concurrency?: unknown;
  consistency?: unknown;
}

function deleteRequest(s: LoadedStateStore, it: DeleteItem, fail: OptionFail): DeleteRequest {
  return {
    key: fullKey(s, it.key),
    etag: it.etag,
    concurrency: concurrencyOf(it.concurrency, it.etag !== undefined, fail),
    consistency: consistencyOf(it.consistency, fail),
  };
}

/** Delete one key (etag and first-write per the store's rules). */
export async function deleteItem(s: LoadedStateStore, it: DeleteItem): Promise<void> {
  const req = deleteRequest(s, it, (msg) => daprError('ERR_STATE_DELETE', { key: it.key, error: msg }));
  try {
    await runOnStore(s, (st) => st.delete(req));
  } catch (err) {
    throw deleteError(it.key, err);
  }
}

/** Delete several keys (daprd's BulkDelete: each key its own delete, in parallel). */
export async function deleteItems(s: LoadedStateStore, storeName: string, items: readonly DeleteItem[]): Promise<void> {
  if (items.length === 0) return;
  const fail: OptionFail = (msg) => daprError('ERR_STATE_BULK_DELETE', { store: storeName, error: msg });
  const reqs = items.map((it) => deleteRequest(s, it, fail));
  try {
    await runOnStore(s, (st) => Promise.all(reqs.map((r) => st.delete(r))));
  } catch (err) {
    throw bulkDeleteError(storeName, err);
  }
}

/** Bulk get: one answer per key, in order (undefined = missing). */
export async function getItems(s: LoadedStateStore, storeName: string, keys: readonly string[]): Promise<(StoredValue | undefined)[]> {
  const full = keys.map((k) => fullKey(s, k));
  if (full.length === 0) return [];
  try {
    return await runOnStore(s, (st) => st.bulkGet(full));
  } catch (err) {
    throw daprError('ERR_STATE_BULK_GET', { store: storeName, error: toCrossmeshError(err).message }, { cause: err });
  }
}

/** One transaction operation, as a transport parsed it. */
export interface TransactionItem {
  /** 'upsert' or 'delete'; anything else is ERR_NOT_SUPPORTED_STATE_OPERATION. */
  operation: unknown;
  key: string;
  data?: Buffer;
  etag?: string;
  concurrency?: unknown;
  consistency?: unknown;
  /** The operation's metadata (the request's merged over it by the transport). */
  metadata?: Record<string, string>;
}

/** The store must be transactional (ERR_STATE_STORE_NOT_SUPPORTED), checked before the operations. */
export function requireTransactional(s: LoadedStateStore, storeName: string): void {
  if (!s.store.features.transactional) throw daprError('ERR_STATE_STORE_NOT_SUPPORTED', { store: storeName });
}

/** A transaction: all operations validated, then one atomic store call. */
export async function transact(s: LoadedStateStore, storeName: string, items: readonly TransactionItem[]): Promise<void> {
  requireTransactional(s, storeName);
  if (items.length === 0) return;
  const fail: OptionFail = (msg) => daprError('ERR_STATE_TRANSACTION', { error: msg });
  const out: TransactionOperation[] = [];
  for (const it of items) {
    const kind = it.operation;
    if (kind !== 'upsert' && kind !== 'delete') throw daprError('ERR_NOT_SUPPORTED_STATE_OPERATION', { operation: String(kind) });
    const key = fullKey(s, it.key);
    const concurrency = concurrencyOf(it.concurrency, it.etag !== undefined, fail);
    const consistency = consistencyOf(it.consistency, fail);
    if (kind === 'upsert') {
      out.push({ operation: 'upsert', key, data: it.data ?? Buffer.from('null'), etag: it.etag, concurrency, consistency, ttlSeconds: ttlOf(it.metadata, fail) });
    } else {
      out.push({ operation: 'delete', key, etag: it.etag, concurrency, consistency });
    }
  }
  try {
    await runOnStore(s, (st) => st.transact(out));
  } catch (err) {
    throw daprError('ERR_STATE_TRANSACTION', { error: toCrossmeshError(err).message }, { cause: err });
  }
}

/** Query (alpha): `text` is the JSON query document; results keyed by the app's keys. */
export async function query(s: LoadedStateStore, storeName: string, text: string): Promise<QueryResult> {
  const store = s.store;
  if (!store.features.query || typeof store.query !== 'function') throw daprError('ERR_STATE_STORE_NOT_SUPPORTED:query');
  let q: QueryRequest;
  try {
    q = JSON.parse(text) as QueryRequest;
  } catch (err) {
    throw daprError('ERR_STATE_QUERY', { store: storeName, error: `failed to parse JSON query body: ${(err as Error).message}` }, { cause: err });
  }
  if (!q || typeof q !== 'object' || Array.isArray(q)) {
    throw daprError('ERR_STATE_QUERY', { store: storeName, error: 'failed to parse JSON query body: expected an object with filter, sort, page' });
  }
  let result: QueryResult;
  try {
    result = await runOnStore(s, (st) => st.query!(q, s.keyPrefix));
  } catch (err) {
    throw daprError('ERR_STATE_QUERY', { store: storeName, error: toCrossmeshError(err).message }, { cause: err });
  }
  return { ...result, results: result.results.map((r) => ({ ...r, key: originalKey(s, r.key) })) };
}
