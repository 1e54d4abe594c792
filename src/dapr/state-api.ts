/**
 * The Dapr state API over the component registry's stores: save, get, delete, bulk get,
 * transaction, query (alpha). Status codes, errorCodes and messages follow daprd
 * (pkg/api/http, pkg/messages); see /work/shared/reference/dapr-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rawSaveValues, rawTransactionValues } from './rawjson.js';
import { daprError } from './respond.js';
import {
  deleteItem, etagOf, getItem, getItems, lookupStateStore, query as queryItems, requireTransactional, saveItems, transact,
  type SaveItem, type StateStores, type TransactionItem,
} from './state-core.js';

export type { StateStores } from './state-core.js';

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

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw daprError('ERR_MALFORMED_REQUEST', { detail: (err as Error).message }, { cause: err });
  }
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
// Each takes what the router parsed, turns it into a state-core.ts call and either answers or
// throws a DaprError.

/** POST/PUT /v1.0/state/{store} */
export async function saveState(stores: StateStores, storeName: string, query: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookupStateStore(stores, storeName);
  const text = body.toString('utf8');
  const items = parseJson(text);
  if (!Array.isArray(items)) throw daprError('ERR_MALFORMED_REQUEST', { detail: 'expected a JSON array of state items' });
  if (items.length === 0) {
    res.writeHead(204).end();
    return;
  }
  const raw = rawSaveValues(text);
  const qmd = queryMetadata(query);
  const out: SaveItem[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i] as Record<string, any> | null;
    if (!it || typeof it !== 'object' || typeof it.key !== 'string' || it.key === '') {
      throw daprError('ERR_MALFORMED_REQUEST', { detail: `state item ${i} has no key` });
    }
    out[i] = {
      key: it.key,
      data: Buffer.from(raw[i] ?? 'null', 'utf8'),
      etag: etagOf(it.etag),
      concurrency: it.options?.concurrency,
      consistency: it.options?.consistency,
      metadata: withRequestMetadata(it.metadata, qmd),
    };
  }
  await saveItems(s, storeName, out);
  res.writeHead(204).end();
}

/** GET /v1.0/state/{store}/{key} */
export async function getState(stores: StateStores, storeName: string, key: string, query: string, res: ServerResponse): Promise<void> {
  const s = lookupStateStore(stores, storeName);
  const v = await getItem(s, storeName, key, query ? queryParam(query, 'consistency') : undefined, (m) => daprError('ERR_MALFORMED_REQUEST:option', { detail: m }));
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
  const s = lookupStateStore(stores, storeName);
  await deleteItem(s, {
    key,
    etag: etagOf(req.headers['if-match']),
    concurrency: query ? queryParam(query, 'concurrency') : undefined,
    consistency: query ? queryParam(query, 'consistency') : undefined,
  });
  res.writeHead(204).end();
}

/** POST/PUT /v1.0/state/{store}/bulk */
export async function bulkGetState(stores: StateStores, storeName: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookupStateStore(stores, storeName);
  const req = parseJson(body.toString('utf8')) as { keys?: unknown } | null;
  if (!req || typeof req !== 'object' || (req.keys !== undefined && req.keys !== null && !Array.isArray(req.keys))) {
    throw daprError('ERR_MALFORMED_REQUEST', { detail: 'expected {"keys": [...]}' });
  }
  const keys = ((req.keys as unknown[] | null | undefined) ?? []).map((k) => String(k));
  const values = await getItems(s, storeName, keys);
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
  const s = lookupStateStore(stores, storeName);
  requireTransactional(s, storeName);
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
  const out: TransactionItem[] = [];
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
    // daprd gives each operation its own metadata with the URL's merged over it; the body's
    // transaction-level metadata goes to the store as the transaction's, not into the operations.
    out.push({
      operation: kind, key: r.key, data: kind === 'upsert' ? Buffer.from(raw[i] ?? 'null', 'utf8') : undefined,
      etag: etagOf(r.etag), concurrency: r.options?.concurrency, consistency: r.options?.consistency,
      metadata: kind === 'upsert' ? withRequestMetadata(r.metadata, qmd) : undefined,
    });
  }
  await transact(s, storeName, out);
  res.writeHead(204).end();
}

/** POST/PUT /v1.0-alpha1/state/{store}/query */
export async function queryState(stores: StateStores, storeName: string, body: Buffer, res: ServerResponse): Promise<void> {
  const s = lookupStateStore(stores, storeName);
  const result = await queryItems(s, storeName, body.toString('utf8'));
  if (result.results.length === 0) {
    res.writeHead(204).end();
    return;
  }
  let out = '{"results":[';
  for (let i = 0; i < result.results.length; i++) {
    const r = result.results[i];
    if (i) out += ',';
    out += `{"key":${JSON.stringify(r.key)},"data":${dataJson(r.data)},"etag":${JSON.stringify(r.etag)}}`;
  }
  out += ']';
  if (result.token !== undefined) out += `,"token":${JSON.stringify(result.token)}`;
  out += '}';
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
}
