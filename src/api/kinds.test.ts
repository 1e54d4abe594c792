import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KINDS, kindFor, kindForResource, resolveKindName } from './index.js';
import { throwsCm } from '../../test/support/api-asserts.js';

test('KINDS: registry facts', () => {
  const byKind = Object.fromEntries(KINDS.map((k) => [k.kind, k]));
  assert.deepEqual(Object.keys(byKind).sort(), ['Cluster', 'Component', 'Configuration', 'Endpoints', 'GlobalTrafficPolicy', 'Lease', 'Namespace', 'Resiliency', 'Secret', 'Service', 'ServiceAccount', 'ServiceExport', 'ServiceImport', 'Subscription']);
  assert.equal(byKind.Subscription.version, 'v2alpha1');
  assert.equal(byKind.Service.storageKey, 'core/services');
  assert.equal(byKind.ServiceExport.storageKey, 'flomesh.io/serviceexports');
  assert.deepEqual(byKind.ServiceExport.groupAliases, ['multicluster.flomesh.io']);
  assert.deepEqual(byKind.Component.groupAliases, []);
  assert.equal(byKind.Resiliency.plural, 'resiliencies');
  assert.equal(byKind.GlobalTrafficPolicy.plural, 'globaltrafficpolicies');
  assert.equal(byKind.Cluster.namespaced, false);
  assert.equal(byKind.Namespace.namespaced, false);
  assert.equal(byKind.Service.namespaced, true);
  assert.deepEqual(byKind.Endpoints.shortNames, ['ep']);
  assert.deepEqual(byKind.ServiceAccount.shortNames, ['sa']);
  assert.deepEqual(byKind.Secret.shortNames, []);
  for (const k of KINDS) assert.equal(k.storageKey, `${k.group || 'core'}/${k.plural}`);
});

test('kindFor: known kinds, alias group', () => {
  assert.equal(kindFor('v1', 'Service').plural, 'services');
  assert.equal(kindFor('multicluster.flomesh.io/v1alpha1', 'ServiceExport'), kindFor('flomesh.io/v1alpha1', 'ServiceExport'));
  assert.equal(kindFor('dapr.io/v1alpha1', 'Component').group, 'dapr.io');
});

test('kindFor: unknown kinds and wrong apiVersions', () => {
  let e = throwsCm(() => kindFor('v1', 'ServiceExport'), 'CM_ERR_UNKNOWN_KIND');
  assert.match(e.message, /flomesh\.io\/v1alpha1 or multicluster\.flomesh\.io\/v1alpha1/);
  e = throwsCm(() => kindFor('flomesh.io/v1', 'Cluster'), 'CM_ERR_UNKNOWN_KIND');
  assert.match(e.message, /flomesh\.io\/v1alpha1/);
  e = throwsCm(() => kindFor('example.com/v1', 'Widget'), 'CM_ERR_UNKNOWN_KIND');
  assert.match(e.message, /Widget/);
  assert.match(e.message, /ServiceExport/);
  e = throwsCm(() => kindFor('v1', 'service'), 'CM_ERR_UNKNOWN_KIND');
  assert.match(e.message, /did you mean kind Service/);
});

test('kindFor: Kubernetes workloads are refused with the crossmesh run hint', () => {
  for (const kind of ['Deployment', 'Pod', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'Ingress', 'ConfigMap']) {
    const e = throwsCm(() => kindFor(kind === 'Pod' || kind === 'ConfigMap' ? 'v1' : 'apps/v1', kind), 'CM_ERR_UNSUPPORTED_KIND');
    assert.match(e.message, /does not run Kubernetes workloads/);
    assert.ok(e.message.includes('crossmesh run -n NS --app-id ID [--app-port P] -- CMD'), e.message);
  }
  assert.match(throwsCm(() => kindFor('apps/v1', 'Deployment'), 'CM_ERR_UNSUPPORTED_KIND').message, /dapr\.io\/app-id annotation maps to --app-id/);
});

test('kindForResource: REST lookups incl. alias group', () => {
  assert.equal(kindForResource('', 'v1', 'services')?.kind, 'Service');
  assert.equal(kindForResource('flomesh.io', 'v1alpha1', 'serviceexports')?.kind, 'ServiceExport');
  assert.equal(kindForResource('multicluster.flomesh.io', 'v1alpha1', 'globaltrafficpolicies')?.kind, 'GlobalTrafficPolicy');
  assert.equal(kindForResource('dapr.io', 'v1alpha1', 'resiliencies')?.kind, 'Resiliency');
  assert.equal(kindForResource('', 'v1', 'serviceexports'), undefined);
  assert.equal(kindForResource('apps', 'v1', 'deployments'), undefined);
  assert.equal(kindForResource('flomesh.io', 'v1', 'clusters'), undefined);
});

test('resolveKindName: every form', () => {
  const cases: Array<[string, string]> = [
    ['serviceexports', 'ServiceExport'], ['serviceexport', 'ServiceExport'], ['ServiceExport', 'ServiceExport'], ['sexp', 'ServiceExport'],
    ['serviceexports.flomesh.io', 'ServiceExport'], ['serviceexport.flomesh.io', 'ServiceExport'],
    ['serviceimports.multicluster.flomesh.io', 'ServiceImport'], ['simp', 'ServiceImport'], ['SIMP', 'ServiceImport'],
    ['gtp', 'GlobalTrafficPolicy'], ['globaltrafficpolicies.flomesh.io', 'GlobalTrafficPolicy'], ['serviceexports.v1alpha1.flomesh.io', 'ServiceExport'],
    ['svc', 'Service'], ['services', 'Service'], ['Services', 'Service'], ['ns', 'Namespace'], ['ep', 'Endpoints'], ['endpoints', 'Endpoints'],
    ['sa', 'ServiceAccount'], ['secret', 'Secret'], ['components', 'Component'], ['components.dapr.io', 'Component'],
    ['resiliency', 'Resiliency'], ['resiliencies', 'Resiliency'], ['clusters', 'Cluster'], ['clusters.flomesh.io', 'Cluster'],
  ];
  for (const [name, kind] of cases) assert.equal(resolveKindName(name).kind, kind, name);
  const e = throwsCm(() => resolveKindName('deployments'), 'CM_ERR_UNKNOWN_KIND');
  assert.match(e.message, /serviceexports\/sexp/);
  throwsCm(() => resolveKindName('serviceexports.dapr.io'), 'CM_ERR_UNKNOWN_KIND');
  throwsCm(() => resolveKindName(''), 'CM_ERR_UNKNOWN_KIND');
});
