import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ApiEndpoint } from '../client/kubeconfig.js';

/**
 * Everything crossmesh keeps on disk lives under one home ($CROSSMESH_HOME, default
 * ~/.crossmesh), so two homes never mix:
 *   config.json                 contexts (API server + token + CA per cluster) and the current one
 *   clusters/<name>/            a cluster's data dir: resources.db, token, cluster.json, cluster.log,
 *                               pki/ (its CAs, keys, token key; pki/ca.crt is what API clients trust)
 *   apps/<cluster>/<ns>/<id>/   a running app + sidecar (from `crossmesh run`)
 *   state/                      data dir of the sidecars' Dapr state stores (state.sqlite's state.db)
 * The path helpers and the reader of config.json are here, low in the tree, because the CLI and
 * the sidecar both need them; what only the CLI writes (config, cluster records) is in
 * src/cli/home.ts.
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

/** config.json: the contexts (API server + token + the CA its certificate chains to, per cluster) and the current one. */
export interface CliConfig {
  currentContext?: string;
  contexts: Record<string, { server: string; token: string; ca?: string }>;
}

/** The PEM root a cluster's API clients trust, written by the cluster process (`<dataDir>/pki/ca.crt`). */
export function clusterCaFile(name: string, home = crossmeshHome()): string {
  return join(clusterDir(name, home), 'pki', 'ca.crt');
}

export function readConfig(home = crossmeshHome()): CliConfig {
  const file = join(home, 'config.json');
  if (!existsSync(file)) return { contexts: {} };
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as CliConfig;
  cfg.contexts ??= {};
  return cfg;
}

export function contextEndpoint(cfg: CliConfig, name: string): ApiEndpoint | undefined {
  const c = cfg.contexts[name];
  return c ? { name, server: c.server, token: c.token, ...(c.ca ? { ca: c.ca } : {}) } : undefined;
}
