/**
 * The one place that maps a Component `spec.type` to a LockStore, each backend imported on first
 * use (a sidecar without a lock component never loads ioredis or better-sqlite3 for it).
 * `lock.redis` is Dapr's; `lock.sqlite` is crossmesh's own (daprd has no embedded lock store).
 */
import { CrossmeshError } from '../errors.js';
import type { LockStore, LockStoreConfig } from './types.js';

const STORES: Record<string, (config: LockStoreConfig) => Promise<LockStore>> = {
  'lock.redis': async (c) => new (await import('./redis.js')).RedisLockStore(c),
  'lock.sqlite': async (c) => new (await import('./sqlite.js')).SqliteLockStore(c),
};

export const SUPPORTED_LOCK_STORES: readonly string[] = Object.keys(STORES);

export async function createLockStore(type: string, config: LockStoreConfig, version = 'v1'): Promise<LockStore> {
  const make = Object.hasOwn(STORES, type) ? STORES[type] : undefined;
  if (!make) throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported lock store type ${JSON.stringify(type)} (supported: ${SUPPORTED_LOCK_STORES.join(', ')})`);
  if (version !== 'v1' && version !== '') throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported version ${JSON.stringify(version)} of ${type} (supported: v1)`);
  return make(config);
}
