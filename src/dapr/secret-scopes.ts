/**
 * A Dapr `Configuration`'s secret scopes (`spec.secrets.scopes[]: {storeName, defaultAccess,
 * allowedSecrets, deniedSecrets}`), with daprd's rule (pkg/config SecretsScope.IsSecretAllowed,
 * dapr v1.13-v1.15):
 *   - a store no scope names: every secret allowed;
 *   - a non-empty allowedSecrets: only those (defaultAccess and deniedSecrets are not looked at);
 *   - else a key in deniedSecrets: denied;
 *   - else defaultAccess (`allow`, the default, or `deny`, case-insensitive).
 * Read from the raw object (the sidecar loads no zod); the kind's schema validates it at apply.
 */
import type { KubeObject } from '../api/types.js';

interface Scope {
  deny: boolean;
  allowed: Set<string>;
  denied: Set<string>;
}

export interface SecretScopes {
  isAllowed(store: string, key: string): boolean;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function compileSecretScopes(config: KubeObject | undefined): SecretScopes {
  const byStore = new Map<string, Scope>();
  const scopes = (config?.spec as { secrets?: { scopes?: unknown } } | undefined)?.secrets?.scopes;
  if (Array.isArray(scopes)) {
    for (const s of scopes) {
      if (!s || typeof s !== 'object' || typeof s.storeName !== 'string') continue;
      byStore.set(s.storeName, {
        deny: typeof s.defaultAccess === 'string' && s.defaultAccess.toLowerCase() === 'deny',
        allowed: new Set(strings(s.allowedSecrets)),
        denied: new Set(strings(s.deniedSecrets)),
      });
    }
  }
  return {
    isAllowed(store, key) {
      const s = byStore.get(store);
      if (!s) return true;
      if (s.allowed.size > 0) return s.allowed.has(key);
      if (s.denied.has(key)) return false;
      return !s.deny;
    },
  };
}
