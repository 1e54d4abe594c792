/**
 * The one place that maps a Component `spec.type` to a StateStore implementation. A backend's
 * module is imported only when a component of its type is created, so a sidecar without a
 * sqlite or redis component never loads better-sqlite3 or ioredis (ioredis alone is ~25 MB).
 */
import { CrossmeshError } from '../errors.js';
import type { StateStore, StoreConfig } from './types.js';

const STORES: Record<string, (config: StoreConfig) => Promise<StateStore>> = {
  'state.in-memory': async (c) => new (await import('./memory.js')).MemoryStateStore(c),
  'state.sqlite': async (c) => new (await import('./sqlite.js')).SqliteStateStore(c),
  'state.redis': async (c) => new (await import('./redis.js')).RedisStateStore(c),
};

export const SUPPORTED_STATE_STORES: readonly string[] = Object.keys(STORES);

/**
 * A new, not yet initialised store (call `init()`), its backend module loaded on first use.
 * Metadata is validated here: bad metadata or an unknown type/version rejects with
 * CrossmeshError CM_ERR_CONFIG naming the component.
 */
export async function createStateStore(type: string, config: StoreConfig, version = 'v1'): Promise<StateStore> {
  const make = Object.hasOwn(STORES, type) ? STORES[type] : undefined;
  if (!make) {
    throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported state store type ${JSON.stringify(type)} (supported: ${SUPPORTED_STATE_STORES.join(', ')})`);
  }
  if (version !== 'v1' && version !== '') {
    throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported version ${JSON.stringify(version)} of ${type} (supported: v1)`);
  }
  return make(config);
}
