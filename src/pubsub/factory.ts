/**
 * The one place that maps a Component `spec.type` to a PubSub implementation, each backend's
 * module imported on first use (a sidecar without a redis pub/sub never loads ioredis for it).
 * `pubsub.in-memory` and `pubsub.redis` are Dapr's; `pubsub.sqlite` is crossmesh's embedded,
 * durable default (no broker to install; shared by every sidecar on the host through one file).
 */
import { CrossmeshError } from '../errors.js';
import type { PubSub, PubSubConfig } from './types.js';

const BACKENDS: Record<string, (config: PubSubConfig) => Promise<PubSub>> = {
  'pubsub.in-memory': async (c) => new (await import('./memory.js')).MemoryPubSub(c),
  'pubsub.redis': async (c) => new (await import('./redis.js')).RedisPubSub(c),
  'pubsub.sqlite': async (c) => new (await import('./sqlite.js')).SqlitePubSub(c),
};

export const SUPPORTED_PUBSUBS: readonly string[] = Object.keys(BACKENDS);

/** A new, not yet initialised pub/sub (call `init()`); bad metadata or an unknown type rejects CM_ERR_CONFIG naming the component. */
export async function createPubSub(type: string, config: PubSubConfig, version = 'v1'): Promise<PubSub> {
  const make = Object.hasOwn(BACKENDS, type) ? BACKENDS[type] : undefined;
  if (!make) throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported pub/sub type ${JSON.stringify(type)} (supported: ${SUPPORTED_PUBSUBS.join(', ')})`);
  if (version !== 'v1' && version !== '') throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported version ${JSON.stringify(version)} of ${type} (supported: v1)`);
  return make(config);
}
