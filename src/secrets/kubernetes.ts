/**
 * The kubernetes secret store (components-contrib secretstores/kubernetes, the store daprd on
 * Kubernetes preloads as `kubernetes`): the cluster's own Secrets, values base64-decoded from
 * `data`. GetSecret = GET the Secret, BulkGetSecret = LIST the namespace's Secrets, as the
 * component does with client-go.
 *
 * Namespace: the component takes `metadata.namespace` from the request (else `defaultNamespace`,
 * else the pod's NAMESPACE). On Kubernetes what stops an app reading another namespace is RBAC:
 * Dapr's sidecar reads Secrets as the pod's service account, which Dapr's chart binds to a
 * secret-reader Role in its own namespace only. crossmesh's sidecar reads with the cluster's admin
 * token, so it enforces the same boundary itself: any other namespace is refused with the
 * Forbidden error the Kubernetes API would give that service account (answered ERR_SECRET_GET).
 */
import { CrossmeshError } from '../errors.js';
import type { KubeObject } from '../api/types.js';
import type { KubernetesSecretSource, SecretData, SecretStore, SecretStoreConfig } from './types.js';

/** A Secret's values: `data` base64-decoded (stringData, which the API merges into data on write, as a fallback). */
export function secretValues(secret: KubeObject): SecretData {
  const out: SecretData = {};
  const stringData = (secret.stringData ?? {}) as Record<string, string>;
  for (const [k, v] of Object.entries(stringData)) out[k] = String(v);
  const data = (secret.data ?? {}) as Record<string, string>;
  for (const [k, v] of Object.entries(data)) out[k] = Buffer.from(String(v), 'base64').toString('utf8');
  return out;
}

export class KubernetesSecretStore implements SecretStore {
  readonly features: readonly string[] = [];
  private readonly source: KubernetesSecretSource;
  private readonly defaultNamespace: string;

  constructor(private readonly config: SecretStoreConfig) {
    if (!config.kubernetes) throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${config.name}: no cluster API to read Secrets from`);
    this.source = config.kubernetes;
    this.defaultNamespace = config.metadata.defaultNamespace || config.namespace;
  }

  async init(): Promise<void> {
    // The component's kubeconfigPath (self-hosted daprd reaching a cluster) has no meaning here:
    // the sidecar reads its own cluster.
  }

  private namespaceOf(md: Record<string, string> | undefined, verb: 'get' | 'list', name?: string): string {
    const ns = md?.namespace || this.defaultNamespace;
    if (ns !== this.config.namespace) {
      const sa = this.config.serviceAccount ?? 'default';
      throw new CrossmeshError('CM_ERR_FORBIDDEN', `secrets${name !== undefined ? ` "${name}"` : ''} is forbidden: User "system:serviceaccount:${this.config.namespace}:${sa}" cannot ${verb} resource "secrets" in API group "" in the namespace "${ns}" (a sidecar reads only the Secrets of its app's namespace, ${this.config.namespace})`);
    }
    return ns;
  }

  async get(name: string, metadata?: Record<string, string>): Promise<SecretData> {
    const ns = this.namespaceOf(metadata, 'get', name);
    const secret = await this.source.get(name, ns);
    // client-go's NotFound text, which daprd passes on.
    if (!secret) throw new CrossmeshError('CM_ERR_NOT_FOUND', `secrets "${name}" not found`);
    return secretValues(secret);
  }

  async bulkGet(metadata?: Record<string, string>): Promise<Record<string, SecretData>> {
    const ns = this.namespaceOf(metadata, 'list');
    const out: Record<string, SecretData> = {};
    for (const s of await this.source.list(ns)) out[s.metadata.name] = secretValues(s);
    return out;
  }

  peek(name: string): SecretData | undefined {
    const s = this.source.cached(name, this.config.namespace);
    return s ? secretValues(s) : undefined;
  }

  async close(): Promise<void> {}
}
