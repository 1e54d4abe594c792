/**
 * The sidecar process's own entry point (`bin/crossmesh-sidecar.js --config FILE`, what
 * `crossmesh run --detach` spawns): reads the instance config written by `run`, resolves its
 * cluster's API from $CROSSMESH_HOME/config.json and runs runSidecarProcess(). It loads only
 * what a sidecar runs: no commander, no API server or resource store, no zod schemas or yaml;
 * a Dapr state store's backend (better-sqlite3, ioredis) only once a Component needs it.
 * Exit code: the app's; 2 for a usage error (bad arguments, unreadable config, unknown cluster).
 */
import { readFileSync } from 'node:fs';
import { isCrossmeshError, CrossmeshError } from '../errors.js';
import { contextEndpoint, readConfig } from '../util/home.js';
import { runSidecarProcess, type SidecarProcessConfig } from './process.js';

const USAGE = 'usage: crossmesh-sidecar --config FILE   (the JSON config `crossmesh run --detach` writes)';

/** Reads the config and the cluster's endpoint; runs until the app exits or the process is told to stop. */
export async function sidecarMain(argv: string[]): Promise<number> {
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--config') file = argv[++i];
    else if (a.startsWith('--config=')) file = a.slice('--config='.length);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE + '\n');
      return 0;
    } else throw new CrossmeshError('CM_ERR_USAGE', `unknown argument "${a}"; ${USAGE}`);
  }
  if (!file) throw new CrossmeshError('CM_ERR_USAGE', USAGE);
  let cfg: SidecarProcessConfig;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8')) as SidecarProcessConfig;
  } catch (err) {
    throw new CrossmeshError('CM_ERR_USAGE', `sidecar: cannot read the config file ${file}`, { cause: err });
  }
  if (cfg.appProtocol !== undefined && cfg.appProtocol !== 'http' && cfg.appProtocol !== 'grpc') {
    throw new CrossmeshError('CM_ERR_USAGE', `sidecar: the config file ${file} has appProtocol "${String(cfg.appProtocol)}"; allowed: http, grpc`);
  }
  const contexts = readConfig();
  const ep = contextEndpoint(contexts, cfg.cluster);
  if (!ep) {
    const known = Object.keys(contexts.contexts);
    throw new CrossmeshError('CM_ERR_USAGE', `unknown cluster "${cfg.cluster}"; known: ${known.length ? known.join(', ') : 'none (run `crossmesh up`)'}`);
  }
  return runSidecarProcess(cfg, ep);
}

export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await sidecarMain(argv);
  } catch (err) {
    process.stderr.write(`error: ${isCrossmeshError(err) ? err.message : ((err as Error)?.stack ?? String(err))}\n`);
    process.exitCode = isCrossmeshError(err) && err.code === 'CM_ERR_USAGE' ? 2 : 1;
  }
}
