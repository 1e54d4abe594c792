import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Everything crossmesh keeps on disk lives under one home ($CROSSMESH_HOME, default
 * ~/.crossmesh), so two homes never mix:
 *   config.json                 contexts (API server + token per cluster) and the current one
 *   clusters/<name>/            a cluster's data dir: resources.db, token, cluster.json, cluster.log
 *   apps/<cluster>/<ns>/<id>/   a running app + sidecar (from `crossmesh run`)
 *   state/                      data dir of the sidecars' Dapr state stores (state.sqlite's state.db)
 * The path helpers are here, low in the tree, because the CLI and the sidecar both need them;
 * what only the CLI reads and writes (config, cluster records) is in src/cli/home.ts.
 */
export function crossmeshHome(): string {
  return process.env.CROSSMESH_HOME || join(homedir(), '.crossmesh');
}

export function clustersDir(home = crossmeshHome()): string {
  return join(home, 'clusters');
}

export function clusterDir(name: string, home = crossmeshHome()): string {
  return join(clustersDir(home), name);
}

/** Default data dir of the Dapr state stores a sidecar creates. */
export function stateDir(home = crossmeshHome()): string {
  return join(home, 'state');
}
