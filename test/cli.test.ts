import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers.js';
import { isProcessAlive } from '../src/cli/home.js';

/**
 * The CLI against real cluster processes: `up` starts them, resource commands drive them,
 * `down` stops them. Ports are free ports (--api-port 0), the home is a temp dir.
 */
describe('crossmesh CLI against real cluster processes', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[], input?: string) => runCli(args, { home, input });

  before(async () => {
    const res = await cli(['up', '--clusters', 'control-plane,cluster-1', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /control-plane\s+started/);
    assert.match(res.stdout, /cluster-1\s+started/);
  });

  after(async () => {
    await cli(['down', '--purge']);
    cleanup();
  });

  it('up is idempotent and status shows the running clusters', async () => {
    const again = await cli(['up', '--clusters', 'control-plane,cluster-1', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /control-plane\s+running/);
    const st = await cli(['status']);
    assert.match(st.stdout, /cluster-1\s+running\s+http:\/\/127\.0\.0\.1:\d+/);
    const tokenFile = join(home, 'clusters', 'cluster-1', 'token');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600, 'token file is private');
  });

  it('applies the seed manifests as written and gets them back in every name form', async () => {
    assert.equal((await cli(['--cluster', 'cluster-1', 'create', 'namespace', 'dapr-test'])).code, 0);
    const sec = await cli(['--cluster', 'cluster-1', 'create', 'secret', 'generic', 'redis', '-n', 'dapr-test', '--from-literal=redis-password=changeme']);
    assert.equal(sec.code, 0, sec.stderr);
    const manifests = join(home, 'seed.yaml');
    writeFileSync(manifests, `kind: Service
apiVersion: v1
metadata:
  name: nodeapp
  labels:
    app: node
spec:
  selector:
    app: node
  ports:
  - protocol: TCP
    port: 3000
    targetPort: 3000
---
apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  name: nodeapp
spec:
  serviceAccountName: '*'
  pathRewrite:
    from: '^/nodeapp/?'
    to: '/'
  rules:
    - portNumber: 3000
      path: '/nodeapp'
      pathType: Prefix
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
  - name: redisPassword
    secretKeyRef:
      name: redis
      key: redis-password
auth:
  secretStore: kubernetes
`);
    const applied = await cli(['--cluster', 'cluster-1', 'apply', '-f', manifests, '-n', 'dapr-test']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /services\/nodeapp created/);
    assert.match(applied.stdout, /serviceexports\.flomesh\.io\/nodeapp created/);
    const reapplied = await cli(['--cluster', 'cluster-1', 'apply', '-f', manifests, '-n', 'dapr-test']);
    assert.match(reapplied.stdout, /serviceexports\.flomesh\.io\/nodeapp unchanged/);

    for (const form of ['serviceexports', 'serviceexport', 'sexp', 'serviceexports.flomesh.io', 'ServiceExport']) {
      const got = await cli(['--cluster', 'cluster-1', 'get', form, '-n', 'dapr-test']);
      assert.equal(got.code, 0, `${form}: ${got.stderr}`);
      assert.match(got.stdout, /^NAME/);
      assert.match(got.stdout, /nodeapp/);
    }
    const all = await cli(['--cluster', 'cluster-1', 'get', 'svc', '-A']);
    assert.match(all.stdout, /NAMESPACE\s+NAME/);
    assert.match(all.stdout, /dapr-test\s+nodeapp/);

    const json = await cli(['--cluster', 'cluster-1', 'get', 'sexp', 'nodeapp', '-n', 'dapr-test', '-o', 'json']);
    const obj = JSON.parse(json.stdout);
    assert.equal(obj.kind, 'ServiceExport');
    assert.equal(obj.spec.rules[0].pathType, 'Prefix');
    assert.equal(obj.spec.loadBalancer, 'RoundRobinLoadBalancer', 'defaults applied');
    const list = JSON.parse((await cli(['--cluster', 'cluster-1', 'get', 'secrets', '-n', 'dapr-test', '-o', 'json'])).stdout);
    assert.equal(list.kind, 'List');
    assert.equal(Buffer.from(list.items[0].data['redis-password'], 'base64').toString(), 'changeme');
    const yaml = await cli(['--cluster', 'cluster-1', 'get', 'component', 'statestore', '-n', 'dapr-test', '-o', 'yaml']);
    assert.match(yaml.stdout, /secretKeyRef:/);
  });

  it('refuses a file with one bad document and stores nothing from it', async () => {
    const bad = join(home, 'bad.yaml');
    writeFileSync(bad, `apiVersion: v1
kind: Service
metadata:
  name: fine
spec:
  ports:
  - port: 80
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: nodeapp
spec:
  lbType: Sideways
`);
    const res = await cli(['--cluster', 'cluster-1', 'apply', '-f', bad]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /bad\.yaml/);
    assert.match(res.stderr, /document 2/);
    assert.match(res.stderr, /line 14/);
    assert.match(res.stderr, /spec\.lbType/);
    const got = await cli(['--cluster', 'cluster-1', 'get', 'svc', 'fine']);
    assert.equal(got.code, 1);
    assert.match(got.stderr, /not found/);
  });

  it('refuses Deployments with a pointer to crossmesh run', async () => {
    const res = await cli(['--cluster', 'cluster-1', 'apply', '-f', '-'], `apiVersion: apps/v1
kind: Deployment
metadata:
  name: nodeapp
spec: {}
`);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /crossmesh run/);
  });

  it('reads from stdin, deletes by file and by name', async () => {
    const doc = `apiVersion: v1
kind: Service
metadata:
  name: tmp
  namespace: dapr-test
spec:
  ports: [{port: 81}]
`;
    assert.equal((await cli(['--cluster', 'cluster-1', 'apply', '-f', '-'], doc)).code, 0);
    const del = await cli(['--cluster', 'cluster-1', 'delete', '-f', '-'], doc);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /services\/tmp deleted/);
    assert.equal((await cli(['--cluster', 'cluster-1', 'apply', '-f', '-'], doc)).code, 0);
    const byName = await cli(['--cluster', 'cluster-1', 'delete', 'svc', 'tmp', '-n', 'dapr-test']);
    assert.equal(byName.code, 0, byName.stderr);
    const missing = await cli(['--cluster', 'cluster-1', 'delete', 'svc', 'tmp', '-n', 'dapr-test']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
  });

  it('picks the cluster from --cluster, CROSSMESH_CLUSTER and ctx', async () => {
    assert.equal((await cli(['ctx', 'cluster-1'])).code, 0);
    const viaCtx = await cli(['get', 'ns']);
    assert.match(viaCtx.stdout, /dapr-test/);
    const viaEnv = await runCli(['get', 'ns'], { home, env: { CROSSMESH_CLUSTER: 'control-plane' } });
    assert.doesNotMatch(viaEnv.stdout, /dapr-test/);
    const unknown = await cli(['--cluster', 'nope', 'get', 'ns']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown cluster "nope"/);
  });

  it('kubeconfig get prints a document whose server and token reach the cluster', async () => {
    const res = await cli(['kubeconfig', 'get', 'cluster-1']);
    assert.equal(res.code, 0);
    const server = /server: (\S+)/.exec(res.stdout)![1];
    const token = /token: (\S+)/.exec(res.stdout)![1];
    const ok = await fetch(`${server}/api/v1/namespaces`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as { items: { metadata: { name: string } }[] };
    assert.ok(body.items.some((n) => n.metadata.name === 'dapr-test'));
  });

  it('keeps resources across a restart, and down stops every process', async () => {
    const record = JSON.parse(readFileSync(join(home, 'clusters', 'cluster-1', 'cluster.json'), 'utf8'));
    const down = await cli(['down']);
    assert.equal(down.code, 0);
    assert.match(down.stdout, /stopped cluster-1/);
    assert.equal(isProcessAlive(record.pid), false, 'the cluster process is gone');
    assert.equal(existsSync(join(home, 'clusters', 'cluster-1', 'cluster.json')), false);
    const st = await cli(['status']);
    assert.match(st.stdout, /cluster-1\s+stopped/);
    const again = await cli(['up', '--clusters', 'control-plane,cluster-1', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(again.code, 0, again.stderr);
    const rec2 = JSON.parse(readFileSync(join(home, 'clusters', 'cluster-1', 'cluster.json'), 'utf8'));
    assert.equal(rec2.apiPort, record.apiPort, 'a restarted cluster keeps its port');
    const got = await cli(['--cluster', 'cluster-1', 'get', 'sexp', 'nodeapp', '-n', 'dapr-test']);
    assert.equal(got.code, 0, got.stderr);
  });
});
