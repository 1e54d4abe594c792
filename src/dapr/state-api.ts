/**
 * The Dapr state API over the component registry's stores: save, get, delete, bulk get,
 * transaction, query (alpha). Status codes, errorCodes and messages follow daprd
 * (pkg/api/http, pkg/messages); see /work/shared/reference/dapr-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { toCrossmeshError } from '../errors.js';
import type { Concurrency, Consistency, QueryRequest, SetRequest, StateStore, StoredValue, TransactionOperation } from '../state/types.js';
import type { LoadedStateStore } from './components.js';
import { KEY_SEPARATOR } from './components.js';
import { rawSaveValues, rawTransactionValues } from './rawjson.js';
import { DaprError, daprError } from './respond.js';

export interface StateStores {
  getStateStore(name: string): LoadedStateStore | undefined;
  hasStateStores(): boolean;
}

/**
 * An item's metadata with the request's (`metadata.<k>=v` on the URL) merged over it: daprd's
 * rule for save, bulk get and transaction operations — the URL wins over the body.
 */
function withRequestMetadata(item: unknown, request: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!item || typeof item !== 'object' || Array.isArray(item)) return request;
  return request ? { ...(item as Record<string, string>), ...request } : (item as Record<string, string>);
}

/** Request metadata from `metadata.<k>=v` query parameters. */
export function queryMetadata(query: string): Record<string, string> | undefined {
  if (!query || query.indexOf('metadata.') < 0) return undefined;
  let out: Record<string, string> | undefined;
  for (const [k, v] of new URLSearchParams(query)) {
    if (k.startsWith('metadata.') && k.length > 9) (out ??= {})[k.slice(9)] = v;
  }
  return out;
}

function queryParam(query: string, name: string): string | undefined {
  if (!query || query.indexOf(name) < 0) return undefined;
  return new URLSearchParams(query).get(name) ?? undefined;
}

/** Dapr keyPrefix applied to one key; `||` in a key is refused (400 ERR_MALFORMED_REQUEST). */
function fullKey(s: LoadedStateStore, key: string): string {
  if (key.indexOf(KEY_SEPARATOR) >= 0) throw daprError('ERR_MALFORMED_REQUEST:key', { key });
  return s.keyPrefix + key;
}

function originalKey(s: LoadedStateStore, key: string): string {
  if (s.keyPrefix && key.startsWith(s.keyPrefix)) return key.slice(s.keyPrefix.length);
  const i = key.indexOf(KEY_SEPARATOR);
  return i >= 0 ? key.slice(i + KEY_SEPARATOR.length) : key;
}

function lookup(stores: StateStores, name: string): LoadedStateStore {
  const s = stores.getStateStore(name);
  if (s) return s;
  if (!stores.hasStateStores()) throw daprError('ERR_STATE_STORE_NOT_CONFIGURED');
  throw daprError('ERR_STATE_STORE_NOT_FOUND', { store: name });
}

function run<T>(s: LoadedStateStore, fn: (store: StateStore) => Promise<T>): Promise<T> {
  const p = s.policy;
  return p ? p.run(() => fn(s.store)) : fn(s.store);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw daprError('ERR_MALFORMED_REQUEST', { detail: (err as Error).message }, { cause: err });
  }
}

const CONCURRENCY = new Set(['first-write', 'last-write']);
const CONSISTENCY = new Set(['strong', 'eventual']);

/**
 * Dapr semantics: an etag is checked whenever one is given, unless last-write is asked for
 * explicitly; first-write also refuses a write without etag on an existing key. The store
 * contract expresses both as first-write.
 */
function concurrencyOf(raw: unknown, hasEtag: boolean, fail: (msg: string) => DaprError): Concurrency {
  if (raw === undefined || raw === null || raw === '') return hasEtag ? 'first-write' : 'last-write';
  if (typeof raw !== 'string' || !CONCURRENCY.has(raw)) throw fail(`unrecognized concurrency model '${String(raw)}'`);
  return raw as Concurrency;
}

function consistencyOf(raw: unknown, fail: (msg: string) => DaprError): Consistency | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string' || !CONSISTENCY.has(raw)) throw fail(`unrecognized consistency model '${String(raw)}'`);
  return raw as Consistency;
}

function ttlOf(md: Record<string, unknown> | undefined, fail: (msg: string) => DaprError): number | undefined {
  const v = md?.ttlInSeconds;
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : /^-?\d+$/.test(String(v).trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < -1) throw fail(`ttlInSeconds must be an integer >= -1, got ${JSON.stringify(v)}`);
  return n === 0 ? undefined : n;
}

function etagOf(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  return typeof v === 'string' ? v : String(v);
}

/** Maps a store failure to Dapr's answer for a save. */
function saveError(store: string, err: unknown): DaprError {
  if (err instanceof DaprError) return err;
  const e = toCrossmeshError(err);
  const args = { store, error: e.message };
  if (e.code === 'CM_ERR_ETAG_MISMATCH') return daprError('ERR_STATE_SAVE:etag-mismatch', args, { cause: e });
  if (e.code === 'CM_ERR_ETAG_INVALID') return daprError('ERR_STATE_SAVE:etag-invalid', args, { cause: e });
  return daprError('ERR_STATE_SAVE', args, { cause: e });
}

function deleteError(key: string, err: unknown): DaprError {
  if (err instanceof DaprError) return err;
  const e = toCrossmeshError(err);
  const args = { key, error: e.message };
  if (e.code === 'CM_ERR_ETAG_MISMATCH') return daprError('ERR_STATE_DELETE:etag-mismatch', args, { cause: e });
  if (e.code === 'CM_ERR_ETAG_INVALID') return daprError('ERR_STATE_DELETE:etag-invalid', args, { cause: e });
  return daprError('ERR_STATE_DELETE', args, { cause: e });
}

function isValidJson(b: Buffer): boolean {
  // Values written through this API are JSON; anything else in the backend is returned as a JSON string.
  try {
    JSON.parse(b.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function dataJson(b: Buffer): string {
  return isValidJson(b) ? b.toString('utf8') : JSON.stringify(b.toString('utf8'));
}

// ---- handlers -----------------------------------------------------------------------------
// Each takes what the router parsed and either answers or throws a DaprError.

/** POST/PUT /v1.0/state/{store} */
export async function saveState(stores: StateStores, storeName: string, query: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookup(stores, storeName);
  const text = body.toString('utf8');
  const items = parseJson(text);
  if (!Array.isArray(items)) throw daprError('ERR_MALFORMED_REQUEST', { detail: 'expected a JSON array of state items' });
  if (items.length === 0) {
    res.writeHead(204).end();
    return;
  }
  const raw = rawSaveValues(text);
  const qmd = queryMetadata(query);
  const fail = (msg: string) => daprError('ERR_STATE_SAVE', { store: storeName, error: msg });
  const reqs: SetRequest[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i] as Record<string, any> | null;
    if (!it || typeof it !== 'object' || typeof it.key !== 'string' || it.key === '') {
      throw daprError('ERR_MALFORMED_REQUEST', { detail: `state item ${i} has no key` });
    }
    const etag = etagOf(it.etag);
    const md = withRequestMetadata(it.metadata, qmd);
    reqs[i] = {
      key: fullKey(s, it.key),
      data: Buffer.from(raw[i] ?? 'null', 'utf8'),
      etag,
      concurrency: concurrencyOf(it.options?.concurrency, etag !== undefined, fail),
      consistency: consistencyOf(it.options?.consistency, fail),
      ttlSeconds: ttlOf(md, fail),
    };
  }
  try {
    if (reqs.length === 1) await run(s, (st) => st.set(reqs[0]));
    else await run(s, (st) => Promise.all(reqs.map((r) => st.set(r))));
  } catch (err) {
    throw saveError(storeName, err);
  }
  res.writeHead(204).end();
}

/** GET /v1.0/state/{store}/{key} */
export async function getState(stores: StateStores, storeName: string, key: string, query: string, res: ServerResponse): Promise<void> {
  const s = lookup(stores, storeName);
  const k = fullKey(s, key);
  if (query) consistencyOf(queryParam(query, 'consistency'), (m) => daprError('ERR_MALFORMED_REQUEST:option', { detail: m }));
  let v: StoredValue | undefined;
  try {
    v = await run(s, (st) => st.get(k));
  } catch (err) {
    throw daprError('ERR_STATE_GET', { key, store: storeName, error: toCrossmeshError(err).message }, { cause: err });
  }
  if (!v) {
    res.writeHead(204).end();
    return;
  }
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': v.data.length, etag: v.etag };
  if (v.expiresAt !== undefined) headers['metadata.ttlexpiretime'] = new Date(v.expiresAt).toISOString();
  res.writeHead(200, headers).end(v.data);
}

/** DELETE /v1.0/state/{store}/{key} (If-Match = etag) */
export async function deleteState(stores: StateStores, storeName: string, key: string, query: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const s = lookup(stores, storeName);
  const k = fullKey(s, key);
  const ifMatch = req.headers['if-match'];
  const etag = etagOf(ifMatch);
  const fail = (msg: string) => daprError('ERR_STATE_DELETE', { key, error: msg });
  const concurrency = concurrencyOf(query ? queryParam(query, 'concurrency') : undefined, etag !== undefined, fail);
  const consistency = consistencyOf(query ? queryParam(query, 'consistency') : undefined, fail);
  try {
    await run(s, (st) => st.delete({ key: k, etag, concurrency, consistency }));
  } catch (err) {
    throw deleteError(key, err);
  }
  res.writeHead(204).end();
}

/** POST/PUT /v1.0/state/{store}/bulk */
export async function bulkGetState(stores: StateStores, storeName: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookup(stores, storeName);
  const req = parseJson(body.toString('utf8')) as { keys?: unknown } | null;
  if (!req || typeof req !== 'object' || (req.keys !== undefined && req.keys !== null && !Array.isArray(req.keys))) {
    throw daprError('ERR_MALFORMED_REQUEST', { detail: 'expected {"keys": [...]}' });
  }
  const keys = ((req.keys as unknown[] | null | undefined) ?? []).map((k) => String(k));
  const full = keys.map((k) => fullKey(s, k));
  let values: (StoredValue | undefined)[] = [];
  if (full.length > 0) {
    try {
      values = await run(s, (st) => st.bulkGet(full));
    } catch (err) {
      throw daprError('ERR_STATE_BULK_GET', { store: storeName, error: toCrossmeshError(err).message }, { cause: err });
    }
  }
  let out = '[';
  for (let i = 0; i < keys.length; i++) {
    if (i) out += ',';
    const v = values[i];
    out += v ? `{"key":${JSON.stringify(keys[i])},"data":${dataJson(v.data)},"etag":${JSON.stringify(v.etag)}}` : `{"key":${JSON.stringify(keys[i])}}`;
  }
  out += ']';
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
}

/** POST/PUT /v1.0/state/{store}/transaction */
export async function transactState(stores: StateStores, storeName: string, query: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookup(stores, storeName);
  if (!s.store.features.transactional) throw daprError('ERR_STATE_STORE_NOT_SUPPORTED', { store: storeName });
  const text = body.toString('utf8');
  const req = parseJson(text) as { operations?: unknown; metadata?: Record<string, string> | null } | null;
  if (!req || typeof req !== 'object' || Array.isArray(req) || (req.operations !== undefined && req.operations !== null && !Array.isArray(req.operations))) {
    throw daprError('ERR_MALFORMED_REQUEST', { detail: 'expected {"operations": [...], "metadata": {...}}' });
  }
  const ops = (req.operations as any[] | null | undefined) ?? [];
  if (ops.length === 0) {
    res.writeHead(204).end();
    return;
  }
  const raw = rawTransactionValues(text);
  const qmd = queryMetadata(query);
  const fail = (msg: string) => daprError('ERR_STATE_TRANSACTION', { error: msg });
  const out: TransactionOperation[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    const kind = op?.operation;
    if (kind !== 'upsert' && kind !== 'delete') {
      throw daprError('ERR_NOT_SUPPORTED_STATE_OPERATION', { operation: String(kind) });
    }
    const r = op.request;
    if (!r || typeof r !== 'object' || typeof r.key !== 'string' || r.key === '') {
      throw daprError('ERR_MALFORMED_REQUEST', { detail: `operation ${i} has no request.key` });
    }
    const key = fullKey(s, r.key);
    const etag = etagOf(r.etag);
    const concurrency = concurrencyOf(r.options?.concurrency, etag !== undefined, fail);
    const consistency = consistencyOf(r.options?.consistency, fail);
    if (kind === 'upsert') {
      // daprd gives each operation its own metadata with the URL's merged over it; the body's
      // transaction-level metadata goes to the store as the transaction's, not into the operations.
      const md = withRequestMetadata(r.metadata, qmd);
      out.push({ operation: 'upsert', key, data: Buffer.from(raw[i] ?? 'null', 'utf8'), etag, concurrency, consistency, ttlSeconds: ttlOf(md, fail) });
    } else {
      out.push({ operation: 'delete', key, etag, concurrency, consistency });
    }
  }
  try {
    await run(s, (st) => st.transact(out));
  } catch (err) {
    throw daprError('ERR_STATE_TRANSACTION', { error: toCrossmeshError(err).message }, { cause: err });
  }
  res.writeHead(204).end();
}

/** POST/PUT /v1.0-alpha1/state/{store}/query */
export async function queryState(stores: StateStores, storeName: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookup(stores, storeName);
  const store = s.store;
  if (!store.features.query || typeof store.query !== 'function') {
    throw daprError('ERR_STATE_STORE_NOT_SUPPORTED:query');
  }
  let q: QueryRequest;
  try {
    q = JSON.parse(body.toString('utf8')) as QueryRequest;
  } catch (err) {
    throw daprError('ERR_STATE_QUERY', { store: storeName, error: `failed to parse JSON query body: ${(err as Error).message}` }, { cause: err });
  }
  if (!q || typeof q !== 'object' || Array.isArray(q)) {
    throw daprError('ERR_STATE_QUERY', { store: storeName, error: 'failed to parse JSON query body: expected an object with filter, sort, page' });
  }
  let result;
  try {
    result = await run(s, (st) => st.query!(q, s.keyPrefix));
  } catch (err) {
    throw daprError('ERR_STATE_QUERY', { store: storeName, error: toCrossmeshError(err).message }, { cause: err });
  }
  if (result.results.length === 0) {
    res.writeHead(204).end();
    return;
  }
  let out = '{"results":[';
  for (let i = 0; i < result.results.length; i++) {
    const r = result.results[i];
    if (i) out += ',';
    out += `{"key":${JSON.stringify(originalKey(s, r.key))},"data":${dataJson(r.data)},"etag":${JSON.stringify(r.etag)}}`;
  }
  out += ']';
  if (result.token !== undefined) out += `,"token":${JSON.stringify(result.token)}`;
  out += '}';
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
}
