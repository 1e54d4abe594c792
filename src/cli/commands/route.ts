import { kindFor } from '../../api/index.js';
import type { ApiClient } from '../../client/api-client.js';
import { CrossmeshError } from '../../errors.js';
import { compileRoutes, describeRoute, routeKey } from '../../sidecar/routes.js';
import type { UpstreamTls } from '../../proxy/h1/upstream.js';

/**
 * `crossmesh route NAME[:PORT]`: where a call from an app in namespace `callerNamespace` of this
 * cluster would go, computed with the same route compiler the sidecars run.
 */
export async function explainRoute(client: ApiClient, clusterName: string, target: string, callerNamespace: string): Promise<string> {
  const m = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(target.replace(/^http:\/\//, '').replace(/\/.*$/, ''));
  if (!m) throw new CrossmeshError('CM_ERR_USAGE', `route: "${target}" is not SERVICE[.NAMESPACE][:PORT]`);
  const parts = m[1].toLowerCase().split('.');
  const [name, namespace] = parts.length === 1 ? [parts[0], callerNamespace] : [parts[0], parts[1]];
  const port = m[2] ? Number(m[2]) : 80;
  const [services, endpoints, imports, policies, bundle] = await Promise.all([
    client.list(kindFor('v1', 'Service')),
    client.list(kindFor('v1', 'Endpoints')),
    client.list(kindFor('flomesh.io/v1alpha1', 'ServiceImport')),
    client.list(kindFor('flomesh.io/v1alpha1', 'GlobalTrafficPolicy')),
    client.trustBundle(),
  ]);
  // Which hops are mTLS follows the cluster's mesh mode, as in its sidecars; the credentials
  // themselves are the sidecars' (never needed to explain a route).
  const meshTls: UpstreamTls | undefined = bundle.mode === 'mtls' ? { context: () => { throw new Error('route explanation only'); }, trustDomain: bundle.trustDomain } : undefined;
  const routes = compileRoutes({ clusterName, services: services.items, endpoints: endpoints.items, imports: imports.items, policies: policies.items, meshTls });
  const route = routes.get(routeKey(namespace, name, port));
  if (!route) {
    const ports = [...routes.values()].filter((r) => r.namespace === namespace && r.name === name).map((r) => r.port);
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `no service ${namespace}/${name} with port ${port} in cluster ${clusterName}${ports.length ? ` (it has port ${ports.join(', ')})` : ''}`);
  }
  const mode = bundle.mode === 'mtls' ? `mesh mTLS (trust domain ${bundle.trustDomain})` : 'plaintext (the cluster runs --insecure-plaintext)';
  return `${describeRoute(route)}\n  transport:       ${mode}\n`;
}
