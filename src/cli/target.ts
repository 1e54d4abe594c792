import { CrossmeshError } from '../errors.js';
import { ApiClient } from '../client/api-client.js';
import { contextEndpoint, readConfig } from './home.js';
import type { ApiEndpoint } from '../client/kubeconfig.js';

/**
 * Which cluster a command talks to: --cluster, else $CROSSMESH_CLUSTER, else the context set
 * by `crossmesh ctx NAME` (or the first cluster `up` started).
 */
export function selectedClusterName(flag?: string): string {
  const name = flag || process.env.CROSSMESH_CLUSTER || readConfig().currentContext;
  if (!name) {
    throw new CrossmeshError('CM_ERR_USAGE', 'no cluster selected: pass --cluster NAME, set CROSSMESH_CLUSTER, or run `crossmesh up` / `crossmesh ctx NAME`');
  }
  return name;
}

export function endpointFor(name: string): ApiEndpoint {
  const cfg = readConfig();
  const ep = contextEndpoint(cfg, name);
  if (!ep) {
    const known = Object.keys(cfg.contexts);
    throw new CrossmeshError('CM_ERR_USAGE', `unknown cluster "${name}"; known: ${known.length ? known.join(', ') : 'none (run `crossmesh up`)'}`);
  }
  return ep;
}

export function clientFor(flag?: string): ApiClient {
  return new ApiClient(endpointFor(selectedClusterName(flag)));
}
