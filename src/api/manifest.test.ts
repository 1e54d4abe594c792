import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ManifestProblem } from './validation.js';
import { clusterKeyOf, parseManifests, type ClusterObject, type ServiceObject } from './validation.js';
import { throwsCm } from '../../test/support/api-asserts.js';

/** The reference walkthrough's manifests, kept in the repository (test/fixtures/seed-manifests/). */
const SEEDS = fileURLToPath(new URL('../../../test/fixtures/seed-manifests', import.meta.url));
const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: cluster-1
  cluster:
    server: http://192.168.1.10:8091
users:
- name: admin
  user: {token: abc}
contexts:
- name: cluster-1
  context: {cluster: cluster-1, user: admin}
current-context: cluster-1`;

function seed(name: string, vars: Record<string, string> = {}): string {
  let text = readFileSync(`${SEEDS}/${name}`, 'utf8');
  text = text.replace(/^(\s*)<the member's kubeconfig[^\n]*$/m, (_m, indent: string) => KUBECONFIG.split('\n').map((l) => indent + l).join('\n'));
  return text.replace(/\$\{(\w+)\}/g, (_m, v: string) => vars[v] ?? `unset-${v}`);
}

const problemsOf = (e: { details: { problems?: unknown[] } }) => e.details.problems as ManifestProblem[];

test('seed 01: Cluster with kubeconfig block string', () => {
  const [d] = parseManifests(seed('01-cluster.yaml', { CLUSTER_NAME: 'cluster-1', HOST_IP: '192.168.1.10', PORT: '81' }), { file: '01-cluster.yaml', defaultNamespace: 'x' });
  const c = d.object as ClusterObject;
  assert.equal(c.metadata.namespace, undefined, 'cluster-scoped: no default namespace');
  assert.equal(c.spec.gatewayPort, 81);
  assert.equal(clusterKeyOf(c), 'default/default/default/cluster-1');
  assert.match(c.spec.kubeconfig, /current-context: cluster-1/);
  assert.deepEqual([d.document, d.line], [1, 2]);
});

test('seed 01 as written (placeholder kubeconfig) is refused at the kubeconfig line', () => {
  const text = readFileSync(`${SEEDS}/01-cluster.yaml`, 'utf8').replace('${CLUSTER_NAME}', 'cluster-1').replace('${HOST_IP}', '10.0.0.1').replace('${PORT}', '81');
  const e = throwsCm(() => parseManifests(text, { file: '01-cluster.yaml' }), 'CM_ERR_INVALID');
  assert.match(e.message, /^01-cluster\.yaml: document 1 \(line 9\), Cluster\/cluster-1: spec\.kubeconfig: must be a kubeconfig document/);
});

test('seeds 03, 06, 07 parse as written with the default namespace', () => {
  for (const [file, kind] of [['03-statestore.yaml', 'Component'], ['06-serviceexport.yaml', 'ServiceExport'], ['07-globaltrafficpolicy.yaml', 'GlobalTrafficPolicy']]) {
    const docs = parseManifests(seed(file), { file, defaultNamespace: 'dapr-test' });
    assert.equal(docs.length, 1);
    assert.equal(docs[0].object.kind, kind);
    assert.equal(docs[0].object.metadata.namespace, 'dapr-test');
  }
});

test('seed 04: the Deployment is refused with the crossmesh run hint, the Service is fine', () => {
  const e = throwsCm(() => parseManifests(seed('04-nodeapp.yaml', { CLUSTER_NAME: 'cluster-1' }), { file: '04-nodeapp.yaml', defaultNamespace: 'dapr-test' }), 'CM_ERR_UNSUPPORTED_KIND');
  const ps = problemsOf(e);
  assert.equal(ps.length, 1, e.message);
  assert.deepEqual([ps[0].document, ps[0].line, ps[0].field], [2, 17, 'kind']);
  assert.match(e.message, /^04-nodeapp\.yaml: document 2 \(line 17\), Deployment\/nodeapp: kind: /);
  assert.ok(e.message.includes('crossmesh run -n NS --app-id ID [--app-port P] -- CMD'));
  assert.ok(e.message.includes('crossmesh run -n dapr-test --app-id nodeapp --app-port 3000 --'), e.message);
  assert.match(e.message, /dapr\.io\/app-id annotation maps to --app-id/);
  assert.match(e.message.split('\n').at(-1)!, /nothing from it was accepted/);
  // the Service document alone is accepted
  const svcOnly = seed('04-nodeapp.yaml').split(/^---$/m)[0];
  const [d] = parseManifests(svcOnly, { file: '04-nodeapp.yaml', defaultNamespace: 'dapr-test' });
  assert.deepEqual((d.object as ServiceObject).spec.ports, [{ protocol: 'TCP', port: 3000, targetPort: 3000 }]);
});

test('seed 05: ServiceAccount and Service fine, Deployment (document 3) refused', () => {
  const e = throwsCm(() => parseManifests(seed('05-curl.yaml'), { file: '05-curl.yaml', defaultNamespace: 'curl' }), 'CM_ERR_UNSUPPORTED_KIND');
  const ps = problemsOf(e);
  assert.equal(ps.length, 1);
  assert.equal(ps[0].document, 3);
  assert.ok(e.message.includes('crossmesh run -n curl --app-id curl -- sleep 365d'), e.message);
  const ok = parseManifests(seed('05-curl.yaml').split(/^---$/m).slice(0, 2).join('---'), { file: '05-curl.yaml', defaultNamespace: 'curl' });
  assert.deepEqual(ok.map((d) => [d.object.kind, d.document, d.line]), [['ServiceAccount', 1, 2], ['Service', 2, 7]]);
  assert.equal((ok[1].object as ServiceObject).spec.ports![0].targetPort, 80);
});

test('seed 02 (a docker compose file) is refused: not a Kubernetes object', () => {
  const e = throwsCm(() => parseManifests(seed('02-redis-compose.yaml'), { file: 'compose.yaml' }), 'CM_ERR_INVALID');
  assert.match(e.message, /apiVersion: is required/);
  assert.match(e.message, /kind: is required/);
});

const MULTI = `# leading comment
apiVersion: v1
kind: Namespace
metadata:
  name: dapr-test
---
# only a comment
---
apiVersion: v1
kind: Service
metadata:
  name: nodeapp
spec:
  ports:
  - port: 3000
    targetPort: 99999
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: nodeapp
  namespace: other
spec:
  lbType: Active
---
`;

test('multi-document: every problem, with document index and the offending line', () => {
  const e = throwsCm(() => parseManifests(MULTI, { file: 'multi.yaml' }), 'CM_ERR_INVALID');
  const lines = e.message.split('\n');
  assert.equal(lines[0], 'multi.yaml: document 3 (line 16), Service/nodeapp: spec.ports[0].targetPort: must be a port number from 1 to 65535 (got 99999)');
  assert.equal(lines[1], 'multi.yaml: document 4 (line 24), GlobalTrafficPolicy/nodeapp: spec.lbType: must be one of Locality, FailOver, ActiveActive (got "Active")');
  assert.match(lines[2], /^2 problems in multi\.yaml; nothing from it was accepted\. To fix: fix the fields shown/);
  assert.deepEqual([e.details.file, e.details.document, e.details.line, e.details.kind, e.details.name], ['multi.yaml', 3, 16, 'Service', 'nodeapp']);
});

test('multi-document: good file, empty documents skipped but counted, defaults and namespaces', () => {
  const good = MULTI.replace('targetPort: 99999', 'targetPort: 3000').replace('lbType: Active', 'lbType: ActiveActive');
  const docs = parseManifests(good, { file: 'multi.yaml', defaultNamespace: 'dapr-test' });
  assert.deepEqual(docs.map((d) => [d.object.kind, d.document, d.line, d.object.metadata.namespace]), [
    ['Namespace', 1, 2, undefined],
    ['Service', 3, 9, 'dapr-test'],
    ['GlobalTrafficPolicy', 4, 18, 'other'],
  ]);
  assert.equal(parseManifests(good, { file: 'm' })[1].object.metadata.namespace, 'default');
  assert.deepEqual(parseManifests('', { file: 'empty.yaml' }), []);
  assert.deepEqual(parseManifests('# nothing\n---\n', { file: 'c.yaml' }), []);
});

test('a missing nested field reports the line of its parent', () => {
  const text = 'apiVersion: flomesh.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: a\nspec:\n  rules:\n  - portNumber: 80\n';
  const e = throwsCm(() => parseManifests(text, { file: 'f' }), 'CM_ERR_INVALID');
  assert.match(e.message, /^f: document 1 \(line 7\), ServiceExport\/a: spec\.rules\[0\]\.path: is required/);
});

test('YAML syntax error: CM_ERR_YAML with file and line, other documents still checked', () => {
  const text = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: Not_OK\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: "unterminated\n  x: [\n';
  const e = throwsCm(() => parseManifests(text, { file: 'bad.yaml' }), 'CM_ERR_YAML');
  assert.match(e.message, /^bad\.yaml: document 1 \(line 4\), Namespace\/Not_OK: metadata\.name: /);
  assert.match(e.message.split('\n')[1], /^bad\.yaml: document 2 \(line \d+\): YAML syntax error.*quote/);
  assert.match(e.message, /fix the YAML syntax/);
  const e2 = throwsCm(() => parseManifests('a: b\n c: d\n', { file: 'x.yaml' }), 'CM_ERR_YAML');
  assert.match(e2.message, /^x\.yaml: document 1 \(line 1\): YAML syntax error at column 4: Nested mappings/);
  const e3 = throwsCm(() => parseManifests('kind: Namespace\nkind: Namespace\n', { file: 'dup.yaml' }), 'CM_ERR_YAML');
  assert.match(e3.message, /line 2/);
});

test('kind: List is expanded; item problems report the item line', () => {
  const text = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: curl}
- apiVersion: v1
  kind: Secret
  metadata:
    name: redis
  stringData:
    redis-password: changeme
`;
  const docs = parseManifests(text, { file: 'list.yaml', defaultNamespace: 'curl' });
  assert.deepEqual(docs.map((d) => [d.object.kind, d.document, d.line, d.object.metadata.namespace]), [['ServiceAccount', 1, 4, 'curl'], ['Secret', 1, 7, 'curl']]);
  assert.equal(docs[1].object.data && (docs[1].object.data as Record<string, string>)['redis-password'], Buffer.from('changeme').toString('base64'));
  const bad = text.replace('kind: Secret', 'kind: Secret\n  data: {k: "!!"}');
  const e = throwsCm(() => parseManifests(bad, { file: 'list.yaml' }), 'CM_ERR_INVALID');
  assert.match(e.message, /^list\.yaml: document 1 \(line 9\), Secret\/redis: data\.k: is not valid base64/);
});

test('unknown kind and mixed problems: code of the first problem, all listed', () => {
  const text = 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 0}]}\n';
  const e = throwsCm(() => parseManifests(text, { file: 'w.yaml' }), 'CM_ERR_UNKNOWN_KIND');
  const ps = problemsOf(e);
  assert.deepEqual(ps.map((p) => [p.code, p.document, p.line, p.field]), [['CM_ERR_UNKNOWN_KIND', 1, 2, 'kind'], ['CM_ERR_INVALID', 2, 8, 'spec.ports[0].port']]);
  assert.match(e.message, /correct apiVersion\/kind.*fix the fields shown/);
});

test('alias API group and cluster-scoped namespace drop', () => {
  const text = `apiVersion: multicluster.flomesh.io/v1alpha1
kind: ServiceExport
metadata: {name: nodeapp}
spec:
  rules: [{portNumber: 3000, path: /nodeapp}]
---
apiVersion: v1
kind: Namespace
metadata: {name: dapr-test, namespace: ignored}
`;
  const docs = parseManifests(text, { file: 'a.yaml', defaultNamespace: 'dapr-test' });
  assert.equal(docs[0].object.apiVersion, 'multicluster.flomesh.io/v1alpha1');
  assert.equal(docs[0].object.metadata.namespace, 'dapr-test');
  assert.equal(docs[1].object.metadata.namespace, undefined);
});

test('a document that is not a mapping is refused', () => {
  const e = throwsCm(() => parseManifests('- a\n- b\n', { file: 's.yaml' }), 'CM_ERR_INVALID');
  assert.match(e.message, /^s\.yaml: document 1 \(line 1\), \(no kind\)\/\(no name\): must be a mapping/);
});

test('validation is idempotent: a normalized object validates to itself', async () => {
  const { validateObject } = await import('./validation.js');
  const text = [seed('03-statestore.yaml'), seed('06-serviceexport.yaml'), seed('07-globaltrafficpolicy.yaml'), seed('04-nodeapp.yaml').split(/^---$/m)[0]].join('\n---\n');
  for (const d of parseManifests(text, { file: 'all.yaml', defaultNamespace: 'dapr-test' })) {
    assert.deepEqual(validateObject(d.object), d.object);
  }
});
