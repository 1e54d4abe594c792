/**
 * The one place that maps a Component `spec.type` to a SecretStore, each backend imported on
 * first use (as src/state/factory.ts does for state stores).
 */
import { CrossmeshError } from '../errors.js';
import type { SecretStore, SecretStoreConfig } from './types.js';

const STORES: Record<string, (config: SecretStoreConfig) => Promise<SecretStore>> = {
  'secretstores.kubernetes': async (c) => new (await import('./kubernetes.js')).KubernetesSecretStore(c),
  'secretstores.local.env': async (c) => new (await import('./local-env.js')).LocalEnvSecretStore(c),
  'secretstores.local.file': async (c) => new (await import('./local-file.js')).LocalFileSecretStore(c),
};

export const SUPPORTED_SECRET_STORES: readonly string[] = Object.keys(STORES);

/** daprd on Kubernetes preloads this store under this name (secretstoresLoader.BuiltinKubernetesSecretStore). */
export const BUILTIN_KUBERNETES_STORE = 'kubernetes';

/** A new, not yet initialised secret store; unknown type/version or bad metadata → CM_ERR_CONFIG. */
export async function createSecretStore(type: string, config: SecretStoreConfig, version = 'v1'): Promise<SecretStore> {
  const make = Object.hasOwn(STORES, type) ? STORES[type] : undefined;
  if (!make) throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported secret store type ${JSON.stringify(type)} (supported: ${SUPPORTED_SECRET_STORES.join(', ')})`);
  if (version !== 'v1' && version !== '') throw new CrossmeshError('CM_ERR_CONFIG', `component ${config.name}: unsupported version ${JSON.stringify(version)} of ${type} (supported: v1)`);
  return make(config);
}
