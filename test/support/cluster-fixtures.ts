/** Test fixtures of the gateway and export tests: a whole cluster in-process and the objects of the reference scenario. */
import { KINDS, type KubeObject } from '../../src/api/index.js';
import { ApiClient } from '../../src/client/api-client.js';
import { startCluster, type ClusterOptions, type RunningCluster } from '../../src/cluster/cluster.js';
import { generateRootCa } from '../../src/identity/ca.js';
import { ClusterPki } from '../../src/identity/cluster-pki.js';
import type { ApiTlsCredentials } from '../../src/apiserver/server.js';

export const kind = (k: string) => KINDS.find((x) => x.kind === k)!;
export const SVC = kind('Service');
export const EPS = kind('Endpoints');
export const SEXP = kind('ServiceExport');

export interface TestCluster {
  cluster: RunningCluster;
  api: ApiClient;
  close(): Promise<void>;
}

/**
 * One in-process cluster. Clusters of one test that call each other through the mesh need one
 * trust root, as a control plane's members get: pass the same `meshRoot()` to each.
 */
export async function startTestCluster(name = 'cluster-1', opts: Partial<ClusterOptions> = {}): Promise<TestCluster> {
  const cluster = await startCluster({ name, dataDir: null, gatewayPort: 0, ...opts });
  const api = new ApiClient(cluster.endpoint);
  return {
    cluster,
    api,
    async close() {
      await api.close();
      await cluster.close();
    },
  };
}

export function service(name: string, ns: string, ports: Record<string, unknown>[] = [{ port: 3000 }], extra: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports, ...extra } };
}

/** Endpoints with one subset per backend port, all on 127.0.0.1. */
export function endpoints(name: string, ns: string, ports: number[]): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name, namespace: ns },
    subsets: ports.map((port) => ({ addresses: [{ ip: '127.0.0.1' }], ports: [{ port }] })),
  };
}

/** The seed's export: rule port 3000, `/nodeapp` Prefix, rewrite `^/nodeapp/?` → `/`. */
export function seedExport(name = 'nodeapp', ns = 'dapr-test', spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'flomesh.io/v1alpha1',
    kind: 'ServiceExport',
    metadata: { name, namespace: ns },
    spec: {
      serviceAccountName: '*',
      pathRewrite: { from: '^/nodeapp/?', to: '/' },
      rules: [{ portNumber: 3000, path: '/nodeapp', pathType: 'Prefix' }],
      ...spec,
    },
  };
}

export async function ensureNamespace(api: ApiClient, ns: string): Promise<void> {
  await api.apply(kind('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
}

/**
 * A serving certificate for an ApiServer started on its own in a test (the API is HTTPS only),
 * and the CA a client must trust for it (`ca` of the ApiEndpoint).
 */
export async function testApiTls(clusterName = 'test'): Promise<{ tls: ApiTlsCredentials; ca: string }> {
  const pki = await ClusterPki.open(null, { clusterName });
  pki.close();
  return { tls: pki.servingCredentials(), ca: pki.rootPem };
}

/** A root CA to share between in-process clusters (their --ca-cert/--ca-key): one mesh, mutual trust. */
export async function meshRoot(): Promise<Pick<ClusterOptions, 'caCertPem' | 'caKeyPem'>> {
  const root = await generateRootCa();
  return { caCertPem: root.certPem, caKeyPem: root.keyPem };
}
