import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  clusterKeyOf,
  validateObject,
  type ClusterObject,
  type GlobalTrafficPolicyObject,
  type ServiceExportObject,
  type ServiceImportObject,
} from './validation.js';
import { invalid, throwsCm } from '../../test/support/api-asserts.js';

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "http://192.168.1.10:8091"}
users: [{name: u, user: {token: t}}]
contexts: [{name: c1, context: {cluster: c1, user: u}}]
current-context: c1
`;
const cluster = (spec: unknown, apiVersion = 'flomesh.io/v1alpha1') => ({ apiVersion, kind: 'Cluster', metadata: { name: 'cluster-1' }, spec });

test('Cluster: defaults, alias group, cluster-scoped, clusterKeyOf', () => {
  const c = validateObject({ ...cluster({ gatewayHost: '192.168.1.10', kubeconfig: KUBECONFIG }), metadata: { name: 'cluster-1', namespace: 'x' } }) as ClusterObject;
  assert.deepEqual([c.spec.region, c.spec.zone, c.spec.group, c.spec.gatewayPort], ['default', 'default', 'default', 80]);
  assert.equal(c.metadata.namespace, undefined);
  assert.equal(clusterKeyOf(c), 'default/default/default/cluster-1');
  const c2 = validateObject(cluster({ region: 'eu', gatewayHost: 'gw.example.com', gatewayPort: 81, kubeconfig: KUBECONFIG }, 'multicluster.flomesh.io/v1alpha1'));
  assert.equal(clusterKeyOf(c2), 'eu/default/default/cluster-1');
  assert.equal(clusterKeyOf({ apiVersion: 'x', kind: 'Cluster', metadata: { name: 'c' } }), 'default/default/default/c');
});

test('Cluster: bad inputs', () => {
  invalid(cluster({ kubeconfig: KUBECONFIG }), 'spec.gatewayHost', /is required/);
  invalid(cluster({ gatewayHost: 'not a host!', kubeconfig: KUBECONFIG }), 'spec.gatewayHost', /IPv4 address or a DNS name/);
  invalid(cluster({ gatewayHost: '1.2.3.4', gatewayPort: 0, kubeconfig: KUBECONFIG }), 'spec.gatewayPort', /got 0/);
  invalid(cluster({ gatewayHost: '1.2.3.4' }), 'spec.kubeconfig', /is required/);
  invalid(cluster({ gatewayHost: '1.2.3.4', kubeconfig: '' }), 'spec.kubeconfig', /empty/);
  invalid(cluster({ gatewayHost: '1.2.3.4', kubeconfig: '<the kubeconfig>' }), 'spec.kubeconfig', /kubeconfig document/);
  invalid(cluster({ gatewayHost: '1.2.3.4', kubeconfig: 'a: [' }), 'spec.kubeconfig', /not a valid YAML/);
  invalid(cluster({ gatewayHost: '1.2.3.4', kubeconfig: { clusters: [] } }), 'spec.kubeconfig', /must be a string/);
});

const sexp = (spec: unknown) => ({ apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, spec });

test('ServiceExport: defaults', () => {
  const e = validateObject(sexp({ rules: [{ portNumber: 3000, path: '/nodeapp' }], pathRewrite: { from: '^/nodeapp/?', to: '/' } })) as ServiceExportObject;
  assert.deepEqual(e.spec.rules[0], { portNumber: 3000, path: '/nodeapp', pathType: 'Prefix' });
  assert.equal(e.spec.sessionSticky, false);
  assert.equal(e.spec.loadBalancer, 'RoundRobinLoadBalancer');
  assert.equal(e.spec.serviceAccountName, '*');
  assert.equal(e.spec.targetClusters, undefined);
});

test('ServiceExport: bad inputs', () => {
  const rule = { portNumber: 3000, path: '/nodeapp' };
  invalid(sexp({ rules: [] }), 'spec.rules', /at least one rule/);
  invalid(sexp({}), 'spec.rules', /is required/);
  invalid(sexp({ rules: [{ ...rule, portNumber: 70000 }] }), 'spec.rules[0].portNumber', /got 70000/);
  invalid(sexp({ rules: [{ portNumber: 3000 }] }), 'spec.rules[0].path', /is required/);
  invalid(sexp({ rules: [{ ...rule, path: 'nodeapp' }] }), 'spec.rules[0].path', /start with "\/"/);
  invalid(sexp({ rules: [{ ...rule, pathType: 'Regex' }] }), 'spec.rules[0].pathType', /Exact, Prefix \(got "Regex"\)/);
  invalid(sexp({ rules: [rule, rule] }), 'spec.rules[1].path', /duplicate rule/);
  const err = invalid(sexp({ rules: [rule], pathRewrite: { from: '^/nodeapp(', to: '/' } }), 'spec.pathRewrite.from', /\/\^\/nodeapp\(\/ is not a valid regular expression/);
  assert.match(err.message, /Unterminated group/);
  invalid(sexp({ rules: [rule], pathRewrite: { from: '^/a' } }), 'spec.pathRewrite.to', /is required/);
  // Catastrophic backtracking is refused at apply time, with why and what to do.
  for (const from of ['^(a+)+$', '^/nodeapp/(.*)*$', '(x+x+)+y', '^/(a|aa)+(b+)+$']) {
    const redos = invalid(sexp({ rules: [rule], pathRewrite: { from, to: '/' } }), 'spec.pathRewrite.from', /can backtrack catastrophically/);
    assert.match(redos.message, /stall the gateway/);
    assert.match(redos.message, /without nested repetition/);
  }
  invalid(sexp({ rules: [rule], pathRewrite: { from: `^/${'a'.repeat(1100)}`, to: '/' } }), 'spec.pathRewrite.from', /at most 1024/);
  for (const from of ['^/nodeapp/?', '^/api/v1/(.*)$', '^/(users|orders)/([0-9]+)/?', '/$']) {
    assert.equal((validateObject(sexp({ rules: [rule], pathRewrite: { from, to: '/' } })) as ServiceExportObject).spec.pathRewrite!.from, from);
  }
  invalid(sexp({ rules: [rule], sessionSticky: 'yes' }), 'spec.sessionSticky', /true or false/);
  invalid(sexp({ rules: [rule], loadBalancer: 'Random' }), 'spec.loadBalancer', /RoundRobinLoadBalancer/);
  invalid(sexp({ rules: [rule], targetClusters: ['cluster-1'] }), 'spec.targetClusters[0]', /region\/zone\/group\/cluster/);
});

test('ServiceExport: serviceAccountName is "*", a service account, or namespace/name', () => {
  const rule = { portNumber: 3000, path: '/nodeapp' };
  for (const sa of ['*', 'curl', 'curl/curl', 'ns-1/sa-2']) {
    assert.equal((validateObject(sexp({ rules: [rule], serviceAccountName: sa })) as ServiceExportObject).spec.serviceAccountName, sa);
  }
  for (const sa of ['', 'Curl', 'a/b/c', '/curl', 'curl/', '**', 'ns/*', 'cu rl']) {
    invalid(sexp({ rules: [rule], serviceAccountName: sa }), 'spec.serviceAccountName', /must be "\*" \(any mesh identity\), a service account name/);
  }
});

const simp = (spec: unknown) => ({ apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceImport', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, spec });

test('ServiceImport: the reference example, defaults', () => {
  const ref = {
    ports: [{ port: 8080, protocol: 'TCP', endpoints: [{ clusterKey: 'default/default/default/cluster-1', target: { host: '192.168.1.110', ip: '192.168.1.110', port: 81, path: '/nodeapp' } }] }],
    serviceAccountName: '*',
    type: 'ClusterSetIP',
  };
  const i = validateObject(simp(ref)) as ServiceImportObject;
  assert.deepEqual(i.spec, ref);
  const d = validateObject(simp({ ports: [{ port: 80 }] })) as ServiceImportObject;
  assert.equal(d.spec.type, 'ClusterSetIP');
  assert.deepEqual(d.spec.ports[0], { protocol: 'TCP', port: 80, endpoints: [] });
});

test('ServiceImport: bad inputs', () => {
  invalid(simp({ type: 'Virtual' }), 'spec.type', /ClusterSetIP, Headless/);
  invalid(simp({ ports: [{ port: -1 }] }), 'spec.ports[0].port');
  invalid(simp({ ports: [{ port: 80, endpoints: [{ clusterKey: 'x', target: { host: 'h', port: 81, path: '/a' } }] }] }), 'spec.ports[0].endpoints[0].clusterKey');
  invalid(simp({ ports: [{ port: 80, endpoints: [{ clusterKey: 'a/b/c/d', target: { host: 'h', ip: 'nope', port: 81, path: '/a' } }] }] }), 'spec.ports[0].endpoints[0].target.ip');
  invalid(simp({ ports: [{ port: 80, endpoints: [{ clusterKey: 'a/b/c/d' }] }] }), 'spec.ports[0].endpoints[0].target', /is required/);
});

const gtp = (spec: unknown) => ({ apiVersion: 'flomesh.io/v1alpha1', kind: 'GlobalTrafficPolicy', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, spec });

test('GlobalTrafficPolicy: defaults; weight unset stays unset and 0 stays 0', () => {
  const d = validateObject(gtp(undefined)) as GlobalTrafficPolicyObject;
  assert.deepEqual(d.spec, { lbType: 'Locality', targets: [] });
  const a = validateObject(gtp({ lbType: 'ActiveActive', targets: [{ clusterKey: 'default/default/default/cluster-1' }, { clusterKey: 'default/default/default/cluster-3', weight: 0 }] })) as GlobalTrafficPolicyObject;
  assert.equal(a.spec.targets[0].weight, undefined);
  assert.ok(!('weight' in a.spec.targets[0]));
  assert.equal(a.spec.targets[1].weight, 0);
  validateObject(gtp({ lbType: 'ActiveActive' }));
  validateObject(gtp({ lbType: 'Locality', targets: [{ clusterKey: 'a/b/c/d' }] }));
});

test('GlobalTrafficPolicy: bad inputs', () => {
  const t = (k: string, weight?: unknown) => ({ clusterKey: `default/default/default/${k}`, ...(weight === undefined ? {} : { weight }) });
  const err = invalid(gtp({ lbType: 'Active' }), 'spec.lbType');
  assert.match(err.message, /spec\.lbType: must be one of Locality, FailOver, ActiveActive \(got "Active"\)/);
  invalid(gtp({ lbType: 'Locality', targets: [t('a'), t('b')] }), 'spec.targets', /at most 1 target/);
  invalid(gtp({ targets: [t('a'), t('b')] }), 'spec.targets', /at most 1 target/);
  invalid(gtp({ lbType: 'FailOver' }), 'spec.targets', /at least 1 target/);
  invalid(gtp({ lbType: 'ActiveActive', targets: [t('a', -5)] }), 'spec.targets[0].weight', /got -5/);
  invalid(gtp({ lbType: 'ActiveActive', targets: [t('a', 1.5)] }), 'spec.targets[0].weight', /integer/);
  invalid(gtp({ lbType: 'ActiveActive', targets: [{ clusterKey: 'cluster-1' }] }), 'spec.targets[0].clusterKey', /region\/zone\/group\/cluster/);
  invalid(gtp({ lbType: 'ActiveActive', targets: [{ weight: 5 }] }), 'spec.targets[0].clusterKey', /is required/);
  invalid(gtp({ lbType: 'ActiveActive', targets: [t('a'), t('a')] }), 'spec.targets[1].clusterKey', /duplicate/);
  // cross-field check still runs beside a type error
  const e2 = invalid(gtp({ lbType: 'FailOver', targets: 'x' }), 'spec.targets', /must be a list/);
  assert.equal(e2.details.problems!.length, 1);
  const e3 = throwsCm(() => validateObject(gtp({ lbType: 'Locality', targets: [t('a', 'x'), t('b')] })), 'CM_ERR_INVALID');
  assert.deepEqual(e3.details.problems!.map((p) => p.field).sort(), ['spec.targets', 'spec.targets[0].weight']);
});
