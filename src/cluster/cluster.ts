import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ApiServer } from '../apiserver/server.js';
import { loadOrCreateToken } from '../apiserver/auth.js';
import { openStore } from '../store/index.js';
import type { ResourceStore } from '../store/types.js';
import { randomBytes } from 'node:crypto';
import { MulticlusterController } from '../multicluster/controller.js';

export interface ClusterOptions {
  name: string;
  /** null = in-memory store and a random token (tests). */
  dataDir: string | null;
  host?: string;
  apiPort?: number;
  gatewayPort?: number;
}

export interface RunningCluster {
  name: string;
  apiUrl: string;
  apiPort: number;
  gatewayPort: number;
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
  const api = new ApiServer({ store, token, clusterName: opts.name, host, port: opts.apiPort ?? 0 });
  try {
    await api.listen();
  } catch (err) {
    store.close();
    throw err;
  }
  // Idle until this cluster holds Cluster resources; then it is the control plane.
  const multicluster = new MulticlusterController(store, opts.name).start();
  let closed: Promise<void> | undefined;
  return {
    name: opts.name,
    apiUrl: api.url,
    apiPort: api.port,
    gatewayPort: opts.gatewayPort ?? 0,
    token,
    store,
    multicluster,
    close() {
      closed ??= (async () => {
        await multicluster.close();
        await api.close();
        store.close();
      })();
      return closed;
    },
  };
}
