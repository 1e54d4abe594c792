import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ApiServer } from '../apiserver/server.js';
import { loadOrCreateToken } from '../apiserver/auth.js';
import { openStore } from '../store/index.js';
import type { ResourceStore } from '../store/types.js';
import { randomBytes } from 'node:crypto';
import { KINDS } from '../api/index.js';
import { StoreCache } from '../client/cache.js';
import { ExportController } from '../export/index.js';
import { Gateway } from '../gateway/index.js';
import { MulticlusterController } from '../multicluster/controller.js';
import { LeaseController } from '../leases/index.js';
import { ClusterPki, type MeshMode } from '../identity/cluster-pki.js';
import { GatewayIdentity } from '../gateway/identity.js';
import { SaTokens } from '../identity/sa-token.js';
import { PKI_DIR } from '../identity/pki-settings.js';
import type { ApiEndpoint } from '../client/kubeconfig.js';

const storageKeyOf = (kind: string) => KINDS.find((k) => k.kind === kind)!.storageKey;

export interface ClusterOptions {
  name: string;
  /** null = in-memory store and a random token (tests). */
  dataDir: string | null;
  host?: string;
  apiPort?: number;
  gatewayPort?: number;
  /** The gateway's mesh (tunnel) port for other clusters' sidecars; 0 = a free one (default). */
  meshPort?: number;
  /** Mesh trust domain (default crossmesh.local); kept in `<dataDir>/pki`, a restart must give the same or none. */
  trustDomain?: string;
  /** A supplied cluster root (PEM) and its key (`--ca-cert/--ca-key`), instead of a generated one. */
  caCertPem?: string;
  caKeyPem?: string;
  /** 'mtls' (default) or 'plaintext' (`--insecure-plaintext`): what the trust bundle tells sidecars. */
  meshMode?: MeshMode;
  /** Workload certificate lifetime (default 24 h). */
  workloadCertTtlSeconds?: number;
  /** API serving certificate lifetime (default 30 days; short in rotation tests). */
  servingCertTtlSeconds?: number;
}

export interface RunningCluster {
  name: string;
  /** https://host:port of the API. */
  apiUrl: string;
  /** PEM of the cluster root: the CA an API client must trust (kubeconfig certificate-authority-data). */
  ca: string;
  /** Server, admin token and CA: what an ApiClient of this cluster needs. */
  endpoint: ApiEndpoint;
  apiPort: number;
  /** The actual gateway port (opts.gatewayPort 0 = a free one). */
  gatewayPort: number;
  /** The actual mesh (tunnel) port. */
  meshPort: number;
  /** The cluster's gateway (route table introspection for tests and status). */
  gateway: Gateway;
  token: string;
  store: ResourceStore;
  multicluster: MulticlusterController;
  /** The cluster's PKI: trust bundle, mesh CA, workload certificates, intermediate exchange. */
  pki: ClusterPki;
  /** The cluster's service account tokens. */
  tokens: SaTokens;
  close(): Promise<void>;
}

/**
 * One cluster: its store, its API server, and (from the multi-cluster layer on) its gateway
 * and controllers. Everything a cluster process runs is wired here so tests can start a whole
 * cluster in-process exactly as `crossmesh cluster` does in its own process.
 */
export async function startCluster(opts: ClusterOptions): Promise<RunningCluster> {
  const host = opts.host ?? '127.0.0.1';
  if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  // The PKI first: a supplied CA or settings it refuses stop the start before anything runs.
  const pkiDir = opts.dataDir ? join(opts.dataDir, PKI_DIR) : null;
  const pki = await ClusterPki.open(pkiDir, {
    clusterName: opts.name,
    trustDomain: opts.trustDomain,
    caCertPem: opts.caCertPem,
    caKeyPem: opts.caKeyPem,
    mode: opts.meshMode,
    workloadTtlSeconds: opts.workloadCertTtlSeconds,
    hosts: [host],
    servingTtlSeconds: opts.servingCertTtlSeconds,
  });
  let tokens: SaTokens;
  try {
    tokens = await SaTokens.open(pkiDir, { clusterName: opts.name });
  } catch (err) {
    pki.close();
    throw err;
  }
  const store = openStore(opts.dataDir);
  const token = opts.dataDir ? loadOrCreateToken(join(opts.dataDir, 'token')) : randomBytes(32).toString('hex');
  // /metrics on the API (token required) exposes the gateway's metrics, created below.
  const metricsOf: { gateway?: Gateway } = {};
  const api = new ApiServer({
    store, token, clusterName: opts.name, host, port: opts.apiPort ?? 0,
    tls: pki.servingCredentials(),
    identity: { pki, tokens },
    metrics: async () => metricsOf.gateway ? metricsOf.gateway.metrics.render() : { contentType: 'text/plain', body: '' },
  });
  const unsubscribeServing = pki.onServingChange((c) => api.setTlsCredentials(c));
  const stopPki = () => {
    unsubscribeServing();
    pki.close();
  };
  try {
    await api.listen();
  } catch (err) {
    stopPki();
    store.close();
    throw err;
  }
  // Idle until this cluster holds Cluster resources; then it is the control plane.
  // Gateway + ServiceExport validation, over in-process caches of the cluster's own store.
  const services = new StoreCache(store, storageKeyOf('Service')).start();
  const endpoints = new StoreCache(store, storageKeyOf('Endpoints')).start();
  const exports = new StoreCache(store, storageKeyOf('ServiceExport')).start();
  const exportController = new ExportController({ store, exports, services }).start();
  // The gateway's HTTP ingress reaches app sidecars (mTLS only) as a workload of this cluster.
  let gatewayIdentity: GatewayIdentity | undefined;
  try {
    gatewayIdentity = pki.mode === 'mtls' ? await GatewayIdentity.start(pki, opts.name) : undefined;
  } catch (err) {
    exportController.stop();
    for (const c of [services, endpoints, exports]) c.stop();
    await api.close();
    stopPki();
    store.close();
    throw err;
  }
  const gateway = new Gateway({ clusterName: opts.name, exports, services, endpoints, host, port: opts.gatewayPort ?? 0, meshPort: opts.meshPort ?? 0, meshTls: gatewayIdentity?.tls });
  metricsOf.gateway = gateway;
  const stopGateway = async () => {
    exportController.stop();
    gatewayIdentity?.close();
    await gateway.close();
    for (const c of [services, endpoints, exports]) c.stop();
  };
  try {
    await gateway.listen();
  } catch (err) {
    await stopGateway();
    await api.close();
    stopPki();
    store.close();
    throw err;
  }
  // Idle until this cluster holds Cluster resources; then it is the control plane.
  // It signs its members' mesh CAs with this cluster's root (the mesh root) when it claims them.
  const multicluster = new MulticlusterController(store, opts.name, { pki }).start();
  // Removes the endpoint of an app instance whose sidecar stopped renewing its lease.
  const leases = new LeaseController(store).start();
  let closed: Promise<void> | undefined;
  return {
    name: opts.name,
    apiUrl: api.url,
    ca: pki.rootPem,
    endpoint: { name: opts.name, server: api.url, token, ca: pki.rootPem },
    apiPort: api.port,
    gatewayPort: gateway.port,
    meshPort: gateway.meshPort!,
    gateway,
    token,
    store,
    multicluster,
    pki,
    tokens,
    close() {
      closed ??= (async () => {
        leases.close();
        await multicluster.close();
        await stopGateway();
        await api.close();
        stopPki();
        store.close();
      })();
      return closed;
    },
  };
}
