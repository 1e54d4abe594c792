/**
 * The Dapr secrets API over the component registry's secret stores, as daprd answers it
 * (dapr v1.13-v1.15: pkg/api/http/secrets.go, pkg/api/universal/secrets.go, errors of
 * pkg/messages/predefined.go / pkg/api/errors/secret.go):
 *
 *   GET /v1.0/secrets/{store}/{key}  → 200 {"<k>":"<v>",...}
 *   GET /v1.0/secrets/{store}/bulk   → 200 {"<secret>":{"<k>":"<v>"},...}
 *
 * `metadata.<k>=v` query parameters are the request's metadata (kubernetes: `namespace`).
 * Order of checks: no secret store → 500 ERR_SECRET_STORES_NOT_CONFIGURED; unknown store → 401
 * ERR_SECRET_STORE_NOT_FOUND; (get) the Configuration's scopes deny the key → 403
 * ERR_PERMISSION_DENIED; the store fails (no such secret included) → 500 ERR_SECRET_GET. Bulk
 * leaves out the secrets the scopes deny. Every store call runs inside the component's
 * Resiliency policy when there is one (daprd: ComponentOutboundPolicy).
 */
import type { ServerResponse } from 'node:http';
import { toCrossmeshError } from '../errors.js';
import type { LoadedSecretStore } from './components.js';
import { daprError } from './respond.js';
import { queryMetadata } from './state-api.js';

export interface SecretStores {
  getSecretStore(name: string): LoadedSecretStore | undefined;
  hasSecretStores(): boolean;
  isSecretAllowed(store: string, key: string): boolean;
}

function lookup(stores: SecretStores, name: string): LoadedSecretStore {
  if (!stores.hasSecretStores()) throw daprError('ERR_SECRET_STORES_NOT_CONFIGURED');
  const s = stores.getSecretStore(name);
  if (!s) throw daprError('ERR_SECRET_STORE_NOT_FOUND', { store: name });
  return s;
}

function run<T>(s: LoadedSecretStore, fn: () => Promise<T>): Promise<T> {
  const p = s.policy;
  return p ? p.run(fn) : fn();
}

function sendJson(res: ServerResponse, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** GetSecret (both APIs): the secret's key/value pairs. `metadata` is the request's. */
export async function readSecret(stores: SecretStores, store: string, key: string, metadata: Record<string, string> | undefined): Promise<Record<string, string>> {
  const s = lookup(stores, store);
  if (!stores.isSecretAllowed(store, key)) throw daprError('ERR_PERMISSION_DENIED', { key, store });
  try {
    return await run(s, () => s.store.get(key, metadata));
  } catch (err) {
    throw daprError('ERR_SECRET_GET', { key, store, error: toCrossmeshError(err).message }, { cause: err });
  }
}

/** GetBulkSecret (both APIs): every secret the scopes allow, by name. */
export async function readBulkSecrets(stores: SecretStores, store: string, metadata: Record<string, string> | undefined): Promise<Record<string, Record<string, string>>> {
  const s = lookup(stores, store);
  let all: Record<string, Record<string, string>>;
  try {
    all = await run(s, () => s.store.bulkGet(metadata));
  } catch (err) {
    throw daprError('ERR_SECRET_GET:bulk', { store, error: toCrossmeshError(err).message }, { cause: err });
  }
  const out: Record<string, Record<string, string>> = {};
  for (const [name, data] of Object.entries(all)) if (stores.isSecretAllowed(store, name)) out[name] = data;
  return out;
}

export async function getSecret(stores: SecretStores, store: string, key: string, query: string, res: ServerResponse): Promise<void> {
  sendJson(res, await readSecret(stores, store, key, queryMetadata(query)));
}

export async function bulkGetSecret(stores: SecretStores, store: string, query: string, res: ServerResponse): Promise<void> {
  sendJson(res, await readBulkSecrets(stores, store, queryMetadata(query)));
}
