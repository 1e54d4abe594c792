/**
 * secretstores.local.env (components-contrib secretstores/local/env): the sidecar's process
 * environment. Metadata `prefix` is prepended to the requested name (and stripped in bulk).
 * As the component: a variable that is not set is `""`, not an error; `DAPR_*` and
 * `APP_API_TOKEN` are never given out (case-insensitive), a denied one reads as `""` too.
 */
import type { SecretData, SecretStore, SecretStoreConfig } from './types.js';

function allowed(name: string): boolean {
  const k = name.toUpperCase();
  return k !== 'APP_API_TOKEN' && !k.startsWith('DAPR_');
}

export class LocalEnvSecretStore implements SecretStore {
  readonly features: readonly string[] = [];
  private readonly prefix: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(config: SecretStoreConfig) {
    this.prefix = config.metadata.prefix ?? '';
    this.env = config.env ?? process.env;
  }

  async init(): Promise<void> {}

  async get(name: string): Promise<SecretData> {
    return this.peek(name);
  }

  async bulkGet(): Promise<Record<string, SecretData>> {
    const out: Record<string, SecretData> = {};
    const p = this.prefix;
    for (const [k, v] of Object.entries(this.env)) {
      if (v === undefined) continue;
      if (p && (k.length <= p.length || !k.startsWith(p))) continue;
      if (!allowed(k)) continue;
      const name = k.slice(p.length);
      out[name] = { [name]: v };
    }
    return out;
  }

  peek(name: string): SecretData {
    const full = this.prefix + name;
    return { [name]: allowed(full) ? (this.env[full] ?? '') : '' };
  }

  async close(): Promise<void> {}
}
