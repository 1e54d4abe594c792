/** The one place that maps a Component `spec.type` to a StateStore implementation. */
import { CrossmeshError } from '../errors.js';
import { MemoryStateStore } from './memory.js';
import { RedisStateStore } from './redis.js';
import { SqliteStateStore } from './sqlite.js';
import type { StateStore, StoreConfig } from './types.js';

const STORES: Record<string, (config: StoreConfig) => StateStore> = {
  'state.in-memory': (c) => new MemoryStateStore(c),
  'state.sqlite': (c) => new SqliteStateStore(c),
  'state.redis': (c) => new RedisStateStore(c),
};

export const SUPPORTED_STATE_STORES: readonly string[] = Object.keys(STORES);

/**
 * A new, not yet initialised store (call `init()`). Metadata is validated here: bad metadata or
 * an unknown type/version throws CrossmeshError CM_ERR_CONFIG naming the component.
 */
export function createStateStore(type: string, config: StoreConfig, version = 'v1'): StateStore {
  const make = STORES[type];
  if (!make) {
    throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported state store type ${JSON.stringify(type)} (supported: ${SUPPORTED_STATE_STORES.join(', ')})`);
  }
  if (version !== 'v1' && version !== '') {
    throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported version ${JSON.stringify(version)} of ${type} (supported: v1)`);
  }
  return make(config);
}
