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
}

export interface RunningCluster {
  name: string;
  apiUrl: string;
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
  const store = openStore(opts.dataDir);
  const token = opts.dataDir ? loadOrCreateToken(join(opts.dataDir, 'token')) : randomBytes(32).toString('hex');
  // /metrics on the API (token required) exposes the gateway's metrics, created below.
  const metricsOf: { gateway?: Gateway } = {};
  const api = new ApiServer({
    store, token, clusterName: opts.name, host, port: opts.apiPort ?? 0,
    metrics: async () => metricsOf.gateway ? metricsOf.gateway.metrics.render() : { contentType: 'text/plain', body: '' },
  });
  try {
    await api.listen();
  } catch (err) {
    store.close();
    throw err;
  }
  // Idle until this cluster holds Cluster resources; then it is the control plane.
  // Gateway + ServiceExport validation, over in-process caches of the cluster's own store.
  const services = new StoreCache(store, storageKeyOf('Service')).start();
  const endpoints = new StoreCache(store, storageKeyOf('Endpoints')).start();
  const exports = new StoreCache(store, storageKeyOf('ServiceExport')).start();
  const exportController = new ExportController({ store, exports, services }).start();
  const gateway = new Gateway({ clusterName: opts.name, exports, services, endpoints, host, port: opts.gatewayPort ?? 0, meshPort: opts.meshPort ?? 0 });
  metricsOf.gateway = gateway;
  const stopGateway = async () => {
    exportController.stop();
    await gateway.close();
    for (const c of [services, endpoints, exports]) c.stop();
  };
  try {
    await gateway.listen();
  } catch (err) {
    await stopGateway();
    await api.close();
    store.close();
    throw err;
  }
  // Idle until this cluster holds Cluster resources; then it is the control plane.
  const multicluster = new MulticlusterController(store, opts.name).start();
  // Removes the endpoint of an app instance whose sidecar stopped renewing its lease.
  const leases = new LeaseController(store).start();
  let closed: Promise<void> | undefined;
  return {
    name: opts.name,
    apiUrl: api.url,
    apiPort: api.port,
    gatewayPort: gateway.port,
    meshPort: gateway.meshPort!,
    gateway,
    token,
    store,
    multicluster,
    close() {
      closed ??= (async () => {
        leases.close();
        await multicluster.close();
        await stopGateway();
        await api.close();
        store.close();
      })();
      return closed;
    },
  };
}
