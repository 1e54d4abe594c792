import { KINDS, type KindInfo } from '../api/index.js';

/**
 * Kubernetes discovery documents (/api, /api/v1, /apis, /apis/{group}/{version}), computed
 * once at start: they let kubectl and @kubernetes/client-node find our resources.
 */
export function buildDiscovery(): Map<string, unknown> {
  const docs = new Map<string, unknown>();
  const byGroupVersion = new Map<string, KindInfo[]>();
  for (const k of KINDS) {
    for (const g of [k.group, ...k.groupAliases]) {
      const gv = g ? `${g}/${k.version}` : k.version;
      const list = byGroupVersion.get(gv) ?? [];
      list.push(k);
      byGroupVersion.set(gv, list);
    }
  }
  const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
  const groups: unknown[] = [];
  for (const [gv, kinds] of byGroupVersion) {
    const resources = kinds.flatMap((k) => {
      const main = { name: k.plural, singularName: k.singular, namespaced: k.namespaced, kind: k.kind, verbs, shortNames: k.shortNames };
      const subs: unknown[] = [];
      if (k.hasStatus) subs.push({ name: `${k.plural}/status`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get', 'patch', 'update'] });
      // The TokenRequest subresource, listed as Kubernetes lists it (`kubectl create token` looks for it).
      if (k.kind === 'ServiceAccount') subs.push({ name: 'serviceaccounts/token', singularName: '', namespaced: true, group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
      return [main, ...subs];
    });
    const doc = { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources };
    if (gv.includes('/')) {
      docs.set(`/apis/${gv}`, doc);
      const [group, version] = gv.split('/');
      groups.push({ name: group, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } });
    } else {
      docs.set(`/api/${gv}`, doc);
    }
  }
  // The identity API (/apis/identity.crossmesh.io/v1/...: trust bundle, workload certificates,
  // intermediate CA) is non-resource paths and not listed: kubectl's discovery fails on a group
  // without resources ("received empty response"), and it must never try to list anything there.
  docs.set('/api', { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
  docs.set('/apis', { kind: 'APIGroupList', apiVersion: 'v1', groups });
  return docs;
}
