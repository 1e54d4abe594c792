/**
 * The Dapr distributed lock API (alpha) over the registry's lock stores, as daprd answers it
 * (dapr v1.13-v1.15: pkg/api/http/lock.go, pkg/api/universal/lock.go, pkg/components/lock
 * GetModifiedLockKey, errors of pkg/messages/predefined.go):
 *
 *   POST /v1.0-alpha1/lock/{store}    {resourceId, lockOwner, expiryInSeconds} → 200 {"success":true|false}
 *   POST /v1.0-alpha1/unlock/{store}  {resourceId, lockOwner} → 200 {"status":0|1|2|3}
 *     (SUCCESS, LOCK_DOES_NOT_EXIST, LOCK_BELONGS_TO_OTHERS, INTERNAL_ERROR)
 *
 * The body is read as protojson reads it (daprd's UniversalHTTPHandler): camelCase or the proto
 * field names (resource_id, lock_owner, expiry_in_seconds), unknown fields ignored, an int32 as
 * a number or a numeric string; an empty body is an empty request. Checks in daprd's order:
 * lock: expiryInSeconds ≤ 0 → 400 ERR_MALFORMED_REQUEST (before anything else); then no lock
 * store → 500 ERR_LOCK_STORE_NOT_CONFIGURED; no resourceId / lockOwner → 400
 * ERR_MALFORMED_REQUEST; unknown store → 400 ERR_LOCK_STORE_NOT_FOUND; a resourceId with `||` or
 * a store failure → 500 ERR_TRY_LOCK / ERR_UNLOCK.
 *
 * Keys: `lock||<appId>||<resourceId>` (keyPrefix appid, the default), `lock||<store>||<id>`
 * (name), `lock||<id>` (none), `lock||<literal>||<id>` (anything else, lowercased).
 */
import type { ServerResponse } from 'node:http';
import { toCrossmeshError } from '../errors.js';
import type { LoadedLockStore } from './components.js';
import { KEY_SEPARATOR } from './components.js';
import { DaprError, daprError } from './respond.js';

export interface LockStores {
  getLockStore(name: string): LoadedLockStore | undefined;
  hasLockStores(): boolean;
  readonly appId: string;
}

/** daprd GetModifiedLockKey. Throws (a plain Error with daprd's text) for a resourceId containing `||`. */
export function lockKey(strategy: string, store: string, appId: string, resourceId: string): string {
  if (resourceId.includes(KEY_SEPARATOR)) throw new Error(`input key/keyPrefix '${resourceId}' can't contain '${KEY_SEPARATOR}'`);
  switch (strategy) {
    case 'none':
      return `lock${KEY_SEPARATOR}${resourceId}`;
    case 'name':
      return `lock${KEY_SEPARATOR}${store}${KEY_SEPARATOR}${resourceId}`;
    case 'appid':
      return appId ? `lock${KEY_SEPARATOR}${appId}${KEY_SEPARATOR}${resourceId}` : `lock${KEY_SEPARATOR}${resourceId}`;
    default:
      return `lock${KEY_SEPARATOR}${strategy}${KEY_SEPARATOR}${resourceId}`;
  }
}


/** The request as protojson decodes it into TryLockRequest / UnlockRequest. */
function parseBody(body: Buffer): LockRequest {
  const out: LockRequest = { resourceId: '', lockOwner: '', expiryInSeconds: 0 };
  if (body.length === 0) return out;
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw daprError('ERR_MALFORMED_REQUEST', { detail: (err as Error).message }, { cause: err });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw daprError('ERR_MALFORMED_REQUEST', { detail: 'the body must be a JSON object' });
  const o = v as Record<string, unknown>;
  const str = (camel: string, snake: string): string => {
    const x = o[camel] ?? o[snake];
    if (x === undefined || x === null) return '';
    if (typeof x !== 'string') throw daprError('ERR_MALFORMED_REQUEST', { detail: `${camel}: invalid value ${JSON.stringify(x)} for string field` });
    return x;
  };
  out.resourceId = str('resourceId', 'resource_id');
  out.lockOwner = str('lockOwner', 'lock_owner');
  const e = o.expiryInSeconds ?? o.expiry_in_seconds;
  if (e !== undefined && e !== null) {
    const n = typeof e === 'number' ? e : typeof e === 'string' && /^-?\d+$/.test(e.trim()) ? Number(e) : NaN;
    if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw daprError('ERR_MALFORMED_REQUEST', { detail: `expiryInSeconds: invalid value ${JSON.stringify(e)} for int32 field` });
    out.expiryInSeconds = n;
  }
  return out;
}

function validate(stores: LockStores, store: string, req: LockRequest): LoadedLockStore {
  if (!stores.hasLockStores()) throw daprError('ERR_LOCK_STORE_NOT_CONFIGURED');
  if (req.resourceId === '') throw daprError('ERR_MALFORMED_REQUEST:lock-resource-id', { store });
  if (req.lockOwner === '') throw daprError('ERR_MALFORMED_REQUEST:lock-owner', { store });
  const s = stores.getLockStore(store);
  if (!s) throw daprError('ERR_LOCK_STORE_NOT_FOUND', { store });
  return s;
}

function run<T>(s: LoadedLockStore, fn: () => Promise<T>): Promise<T> {
  const p = s.policy;
  return p ? p.run(fn) : fn();
}

function sendJson(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** A lock request as a transport decoded it (TryLockRequest / UnlockRequest; unset = '' / 0). */
export interface LockRequest {
  resourceId: string;
  lockOwner: string;
  expiryInSeconds: number;
}

/** TryLockAlpha1 (both APIs): true when the lock was taken. */
export async function tryLockCore(stores: LockStores, store: string, req: LockRequest): Promise<boolean> {
  if (req.expiryInSeconds <= 0) throw daprError('ERR_MALFORMED_REQUEST:lock-expiry', { store });
  const s = validate(stores, store, req);
  try {
    const key = lockKey(s.keyPrefix, store, stores.appId, req.resourceId);
    return await run(s, () => s.store.tryLock(key, req.lockOwner, req.expiryInSeconds));
  } catch (err) {
    if (err instanceof DaprError) throw err;
    throw daprError('ERR_TRY_LOCK', { error: toCrossmeshError(err).message }, { cause: err });
  }
}

/** UnlockAlpha1 (both APIs): 0 SUCCESS, 1 LOCK_DOES_NOT_EXIST, 2 LOCK_BELONGS_TO_OTHERS, 3 INTERNAL_ERROR. */
export async function unlockCore(stores: LockStores, store: string, req: LockRequest): Promise<number> {
  const s = validate(stores, store, req);
  try {
    const key = lockKey(s.keyPrefix, store, stores.appId, req.resourceId);
    return await run(s, () => s.store.unlock(key, req.lockOwner));
  } catch (err) {
    if (err instanceof DaprError) throw err;
    throw daprError('ERR_UNLOCK', { error: toCrossmeshError(err).message }, { cause: err });
  }
}

export async function tryLock(stores: LockStores, store: string, body: Buffer, res: ServerResponse): Promise<void> {
  const ok = await tryLockCore(stores, store, parseBody(body));
  sendJson(res, `{"success":${ok}}`);
}

export async function unlock(stores: LockStores, store: string, body: Buffer, res: ServerResponse): Promise<void> {
  const status = await unlockCore(stores, store, parseBody(body));
  sendJson(res, `{"status":${status}}`);
}
