import { KINDS, type KindInfo } from '../api/index.js';

/**
 * Aggregated discovery (apidiscovery.k8s.io v2, and v2beta1 for kubectl 1.27/1.28): `/api` and
 * `/apis` answer every group, version and resource in one document when the client asks with
 * `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` (kubectl ≥
 * 1.26 does), instead of one request per group version. Built once at start, per version.
 */
const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

interface ResourceDiscovery {
  resource: string;
  responseKind: { group: string; version: string; kind: string };
  scope: 'Namespaced' | 'Cluster';
  singularResource: string;
  verbs: string[];
  shortNames?: string[];
  subresources?: Array<{ subresource: string; responseKind: { group: string; version: string; kind: string }; verbs: string[] }>;
}

function resourceOf(k: KindInfo, group: string): ResourceDiscovery {
  const subresources: NonNullable<ResourceDiscovery['subresources']> = [];
  if (k.hasStatus) subresources.push({ subresource: 'status', responseKind: { group, version: k.version, kind: k.kind }, verbs: ['get', 'patch', 'update'] });
  if (k.kind === 'ServiceAccount') subresources.push({ subresource: 'token', responseKind: { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest' }, verbs: ['create'] });
  return {
    resource: k.plural,
    responseKind: { group, version: k.version, kind: k.kind },
    scope: k.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: k.singular,
    verbs: VERBS,
    ...(k.shortNames.length ? { shortNames: [...k.shortNames] } : {}),
    ...(subresources.length ? { subresources } : {}),
  };
}

export interface AggregatedDiscovery {
  /** The serialized body for `/api` or `/apis` in apidiscovery.k8s.io/<version>. */
  body(path: '/api' | '/apis', version: 'v2' | 'v2beta1'): string;
}

export function buildAggregatedDiscovery(kinds: readonly KindInfo[] = KINDS): AggregatedDiscovery {
  const groups = new Map<string, Map<string, KindInfo[]>>();
  for (const k of kinds) {
    for (const g of [k.group, ...k.groupAliases]) {
      const versions = groups.get(g) ?? new Map<string, KindInfo[]>();
      const list = versions.get(k.version) ?? [];
      list.push(k);
      versions.set(k.version, list);
      groups.set(g, versions);
    }
  }
  const item = (group: string) => ({
    metadata: { name: group, creationTimestamp: null },
    versions: [...groups.get(group)!].map(([version, ks]) => ({
      version,
      resources: ks.map((k) => resourceOf(k, group)).sort((a, b) => (a.resource < b.resource ? -1 : 1)),
      freshness: 'Current',
    })),
  });
  const core = [item('')];
  const named = [...groups.keys()].filter((g) => g !== '').map(item);
  const bodies = new Map<string, string>();
  for (const v of ['v2', 'v2beta1'] as const) {
    const doc = (items: unknown[]) => JSON.stringify({ kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${v}`, metadata: {}, items });
    bodies.set(`/api ${v}`, doc(core));
    bodies.set(`/apis ${v}`, doc(named));
  }
  return { body: (path, version) => bodies.get(`${path} ${version}`)! };
}
