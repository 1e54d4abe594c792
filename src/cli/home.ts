import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { clusterCaFile, clusterDir, clustersDir, contextEndpoint, crossmeshHome, readConfig, type CliConfig } from '../util/home.js';

// The layout of the home and its path helpers are in src/util/home.ts (the sidecar needs them too).
export { clusterCaFile, clusterDir, clustersDir, crossmeshHome };

/** What a running cluster process writes once it listens (its "ready file"). */
export interface ClusterRecord {
  name: string;
  pid: number;
  apiUrl: string;
  apiPort: number;
  gatewayPort: number;
  /** The gateway's mesh (tunnel) port (absent in records written before it existed). */
  meshPort?: number;
  host: string;
  startedAt: string;
}

export function readClusterRecord(name: string, home = crossmeshHome()): ClusterRecord | undefined {
  const file = join(clusterDir(name, home), 'cluster.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ClusterRecord;
  } catch {
    return undefined;
  }
}

/** Ports a cluster had when it last ran (kept after it stops). */
export function readClusterPorts(name: string, home = crossmeshHome()): { apiPort: number; gatewayPort: number; meshPort?: number } | undefined {
  const file = join(clusterDir(name, home), 'ports.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { apiPort: number; gatewayPort: number; meshPort?: number };
  } catch {
    return undefined;
  }
}

export function listClusterNames(home = crossmeshHome()): string[] {
  const dir = clustersDir(home);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => existsSync(join(dir, n, 'cluster.json')) || existsSync(join(dir, n, 'token'))).sort();
}

// config.json is read by the sidecar too (its cluster's endpoint): reader in util/home.ts.
export { contextEndpoint, readConfig, type CliConfig };

/** Atomic write (temp + rename), mode 0600: the file holds API tokens (and each cluster's CA). */
export function writeConfig(cfg: CliConfig, home = crossmeshHome()): void {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const file = join(home, 'config.json');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Whether a process runs. A killed process whose parent has not reaped it yet (a zombie: the
 * detached processes `up` starts are reparented to init, which may reap late) counts as dead.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name (which may itself contain spaces).
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (not Linux): kill(0) is the best we have
  }
}
