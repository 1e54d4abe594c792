/**
 * The kind registry: which kinds crossmesh serves, under which API groups and names, and
 * the lookups the API server (REST paths), the CLI (`get svc`) and manifests (apiVersion +
 * kind) use. Kubernetes workload kinds are recognised on purpose, to refuse them with a
 * pointer to `crossmesh run` instead of a bare "unknown kind".
 *
 * Names only, no schemas: the sidecar and the CLI's read commands look kinds up here without
 * loading zod, yaml and the schemas (~15 MB, ~50 ms); a kind's schema and cross-field check are
 * in schemas.ts (`schemaFor`, `checkFor`), which validate.ts loads.
 */
import { CrossmeshError } from '../errors.js';

export interface KindInfo {
  kind: string;
  /** '' for core v1. */
  group: string;
  version: string;
  /** Other API groups serving the same resource (FSM v1 renamed flomesh.io to multicluster.flomesh.io). */
  groupAliases: string[];
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  /** `${group||'core'}/${plural}`: the same for every alias group, so both names hit one collection. */
  storageKey: string;
  hasStatus: boolean;
}

const FLOMESH_ALIASES = ['multicluster.flomesh.io'];

function def(info: Omit<KindInfo, 'storageKey' | 'singular' | 'groupAliases'> & { groupAliases?: string[] }): KindInfo {
  return Object.freeze({
    ...info,
    groupAliases: info.groupAliases ?? [],
    singular: info.kind.toLowerCase(),
    storageKey: `${info.group || 'core'}/${info.plural}`,
  });
}

export const KINDS: readonly KindInfo[] = Object.freeze([
  def({ kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', shortNames: ['ns'], namespaced: false, hasStatus: true }),
  def({ kind: 'Service', group: '', version: 'v1', plural: 'services', shortNames: ['svc'], namespaced: true, hasStatus: true }),
  def({ kind: 'Endpoints', group: '', version: 'v1', plural: 'endpoints', shortNames: ['ep'], namespaced: true, hasStatus: false }),
  def({ kind: 'Secret', group: '', version: 'v1', plural: 'secrets', shortNames: [], namespaced: true, hasStatus: false }),
  def({ kind: 'ServiceAccount', group: '', version: 'v1', plural: 'serviceaccounts', shortNames: ['sa'], namespaced: true, hasStatus: false }),
  def({ kind: 'Cluster', group: 'flomesh.io', groupAliases: FLOMESH_ALIASES, version: 'v1alpha1', plural: 'clusters', shortNames: [], namespaced: false, hasStatus: true }),
  def({ kind: 'ServiceExport', group: 'flomesh.io', groupAliases: FLOMESH_ALIASES, version: 'v1alpha1', plural: 'serviceexports', shortNames: ['sexp'], namespaced: true, hasStatus: true }),
  def({ kind: 'ServiceImport', group: 'flomesh.io', groupAliases: FLOMESH_ALIASES, version: 'v1alpha1', plural: 'serviceimports', shortNames: ['simp'], namespaced: true, hasStatus: true }),
  def({ kind: 'GlobalTrafficPolicy', group: 'flomesh.io', groupAliases: FLOMESH_ALIASES, version: 'v1alpha1', plural: 'globaltrafficpolicies', shortNames: ['gtp'], namespaced: true, hasStatus: true }),
  def({ kind: 'Component', group: 'dapr.io', version: 'v1alpha1', plural: 'components', shortNames: [], namespaced: true, hasStatus: false }),
  def({ kind: 'Lease', group: 'coordination.k8s.io', version: 'v1', plural: 'leases', shortNames: [], namespaced: true, hasStatus: false }),
  def({ kind: 'Resiliency', group: 'dapr.io', version: 'v1alpha1', plural: 'resiliencies', shortNames: [], namespaced: true, hasStatus: false }),
  def({ kind: 'Configuration', group: 'dapr.io', version: 'v1alpha1', plural: 'configurations', shortNames: [], namespaced: true, hasStatus: false }),
  // Stored as v2alpha1; `crossmesh apply` converts a v1alpha1 manifest (api/dapr.ts upgradeSubscription).
  def({ kind: 'Subscription', group: 'dapr.io', version: 'v2alpha1', plural: 'subscriptions', shortNames: [], namespaced: true, hasStatus: false }),
]);

function apiVersionsOf(k: KindInfo): string[] {
  return [k.group, ...k.groupAliases].map((g) => (g ? `${g}/${k.version}` : k.version));
}

// Kinds people paste from Kubernetes manifests that crossmesh deliberately does not serve.
const WORKLOADS = new Set(['Deployment', 'Pod', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job', 'CronJob']);
const UNSUPPORTED = new Set([
  ...WORKLOADS,
  'Ingress', 'IngressClass', 'ConfigMap', 'PersistentVolumeClaim', 'PersistentVolume', 'HorizontalPodAutoscaler',
  'PodDisruptionBudget', 'NetworkPolicy', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding',
  'CustomResourceDefinition', 'EndpointSlice', 'Node', 'StorageClass', 'LimitRange', 'ResourceQuota',
]);

const RUN_HINT = '`crossmesh run -n NS --app-id ID [--app-port P] -- CMD`';

/** Why a Kubernetes kind is refused and what to do instead. */
export function unsupportedKindMessage(apiVersion: string, kind: string): string {
  let msg = `${kind} (${apiVersion}) is not supported: crossmesh does not run Kubernetes workloads or their plumbing. Start the app itself with ${RUN_HINT}, which gives it a sidecar in namespace NS`;
  if (WORKLOADS.has(kind)) {
    msg += `; the pod template's dapr.io/app-id annotation maps to --app-id and dapr.io/app-port to --app-port`;
  }
  if (kind === 'ConfigMap') msg += '; pass configuration to the app as environment variables or arguments on `crossmesh run`';
  if (kind === 'Ingress' || kind === 'IngressClass') msg += '; to reach a service from other clusters, export it with a ServiceExport';
  return `${msg}. Services, Secrets, ServiceExports, GlobalTrafficPolicies and Dapr Components in the same file are supported as written.`;
}

function knownKindsList(): string {
  return KINDS.map((k) => `${k.kind} (${apiVersionsOf(k).join(' or ')})`).join(', ');
}

/** The kind for a manifest's apiVersion + kind; throws CM_ERR_UNKNOWN_KIND / CM_ERR_UNSUPPORTED_KIND. */
export function kindFor(apiVersion: string, kind: string): KindInfo {
  const slash = typeof apiVersion === 'string' ? apiVersion.indexOf('/') : -1;
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const sameKind = KINDS.filter((k) => k.kind === kind);
  const hit = sameKind.find((k) => k.version === version && (k.group === group || k.groupAliases.includes(group)));
  if (hit) return hit;
  if (UNSUPPORTED.has(kind)) {
    throw new CrossmeshError('CM_ERR_UNSUPPORTED_KIND', unsupportedKindMessage(apiVersion, kind), { kind });
  }
  if (sameKind.length > 0) {
    const accepted = sameKind.flatMap(apiVersionsOf);
    throw new CrossmeshError(
      'CM_ERR_UNKNOWN_KIND',
      `kind ${kind} is not served under apiVersion "${apiVersion}": use apiVersion ${accepted.join(' or ')}`,
      { kind },
    );
  }
  const nearly = KINDS.find((k) => typeof kind === 'string' && k.kind.toLowerCase() === kind.toLowerCase());
  const hint = nearly ? `did you mean kind ${nearly.kind} (apiVersion ${apiVersionsOf(nearly)[0]})? Kinds are case-sensitive` : `crossmesh serves: ${knownKindsList()}`;
  throw new CrossmeshError('CM_ERR_UNKNOWN_KIND', `unknown kind "${kind}" with apiVersion "${apiVersion}": ${hint}`, { kind });
}

/** For REST paths: group '' is core; alias groups resolve to the same kind. */
export function kindForResource(group: string, version: string, plural: string): KindInfo | undefined {
  return KINDS.find((k) => k.plural === plural && k.version === version && (k.group === group || k.groupAliases.includes(group)));
}

function namesOf(k: KindInfo): string[] {
  return [k.plural, k.singular, k.kind.toLowerCase(), ...k.shortNames];
}

/**
 * For the CLI: `svc`, `Service`, `services`, `serviceexports.flomesh.io`,
 * `serviceimports.multicluster.flomesh.io`, `serviceexports.v1alpha1.flomesh.io` (all case-insensitive).
 */
export function resolveKindName(name: string): KindInfo {
  const n = String(name ?? '').trim().toLowerCase();
  const dot = n.indexOf('.');
  if (dot < 0) {
    const hit = KINDS.find((k) => namesOf(k).includes(n));
    if (hit) return hit;
  } else {
    const res = n.slice(0, dot);
    const rest = n.slice(dot + 1);
    for (const k of KINDS) {
      if (!namesOf(k).includes(res)) continue;
      const r = rest.startsWith(`${k.version}.`) ? rest.slice(k.version.length + 1) : rest;
      if (r === k.group || k.groupAliases.includes(r) || (k.group === '' && (r === 'core' || r === k.version))) return k;
    }
  }
  const known = KINDS.map((k) => [k.plural, ...k.shortNames].join('/')).join(', ');
  throw new CrossmeshError('CM_ERR_UNKNOWN_KIND', `unknown resource type "${name}": crossmesh knows ${known} (also singular, Kind and NAME.GROUP forms such as serviceexports.flomesh.io)`);
}
