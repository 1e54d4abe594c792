/**
 * The secret store contract behind the Dapr secrets API and a Component's `secretKeyRef`s
 * (src/dapr/secrets-api.ts, src/dapr/components.ts). Backends follow components-contrib's
 * secretstores (kubernetes, local.env, local.file). Every failure is a CrossmeshError; a
 * secret that does not exist is CM_ERR_NOT_FOUND with the backend's own wording (the Dapr layer
 * answers it ERR_SECRET_GET 500, as daprd does for every store error).
 */
import type { KubeObject } from '../api/types.js';

/** One secret: its keys and values (a Kubernetes Secret's data keys; a single `{name: value}` for env/file). */
export type SecretData = Record<string, string>;

export interface SecretStore {
  /** components-contrib feature names as daprd reports them in /v1.0/metadata (`MULTIPLE_KEY_VALUES_PER_SECRET`). */
  readonly features: readonly string[];
  init(): Promise<void>;
  /** GET /v1.0/secrets/{store}/{name}; `metadata` = the request's `metadata.*` query parameters. */
  get(name: string, metadata?: Record<string, string>): Promise<SecretData>;
  /** GET /v1.0/secrets/{store}/bulk: every secret by name. */
  bulkGet(metadata?: Record<string, string>): Promise<Record<string, SecretData>>;
  /**
   * The same secret from what the store holds right now, synchronously (a Component's
   * `secretKeyRef` is resolved while components reconcile); undefined: it does not exist.
   */
  peek(name: string): SecretData | undefined;
  close(): Promise<void>;
}

/** Where the kubernetes store reads Secrets: live through the sidecar's ApiClient, and its informer cache for peek(). */
export interface KubernetesSecretSource {
  /** The Secret, or undefined when it does not exist. */
  get(name: string, namespace: string): Promise<KubeObject | undefined>;
  list(namespace: string): Promise<KubeObject[]>;
  /** From the informer cache (synchronous). */
  cached(name: string, namespace: string): KubeObject | undefined;
}

export interface SecretStoreConfig {
  /** The component's name (for messages). */
  name: string;
  metadata: Record<string, string>;
  /** The app's namespace: the kubernetes store never reads outside it. */
  namespace: string;
  /** The app's service account (for the kubernetes store's refusal message, worded as Kubernetes RBAC's). */
  serviceAccount?: string;
  /** Relative `secretsFile` paths resolve here: the app's working directory (the sidecar's, which the app inherits). */
  workingDir: string;
  /** The kubernetes store's Secrets. */
  kubernetes?: KubernetesSecretSource;
  /** The environment local.env reads (default process.env). */
  env?: NodeJS.ProcessEnv;
}
