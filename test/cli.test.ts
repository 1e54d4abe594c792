import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync, readFileSync, statSync, existsSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { eventually, runCli, tempDir } from './helpers.js';
import { isProcessAlive } from '../src/cli/home.js';
import { generateRootCa, issueIntermediate } from '../src/identity/ca.js';

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** GET over HTTPS trusting `ca`: status and body. */
function httpsGet(url: string, ca: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}

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
    assert.match(st.stdout, /cluster-1\s+running\s+https:\/\/127\.0\.0\.1:\d+/);
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

  it('kubeconfig get prints an https server, its CA and a token that reach the cluster; curl and kubectl verify it', async () => {
    const res = await cli(['kubeconfig', 'get', 'cluster-1']);
    assert.equal(res.code, 0);
    const server = /server: (\S+)/.exec(res.stdout)![1];
    const token = /token: (\S+)/.exec(res.stdout)![1];
    const ca = Buffer.from(/certificate-authority-data: (\S+)/.exec(res.stdout)![1], 'base64').toString();
    assert.match(server, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(ca.trim(), readFileSync(join(home, 'clusters', 'cluster-1', 'pki', 'ca.crt'), 'utf8').trim());
    const ok = await httpsGet(`${server}/api/v1/namespaces`, ca, token);
    assert.equal(ok.status, 200);
    const body = JSON.parse(ok.body) as { items: { metadata: { name: string } }[] };
    assert.ok(body.items.some((n) => n.metadata.name === 'dapr-test'));
    // curl with the CA, and without it (no trust: exit 60).
    const caFile = join(home, 'cluster-1-ca.crt');
    writeFileSync(caFile, ca);
    const curl = await run('curl', ['-sS', '--fail', '--cacert', caFile, `${server}/api/v1/namespaces`, '-H', `Authorization: Bearer ${token}`]);
    assert.equal(curl.code, 0, curl.stderr);
    assert.match(curl.stdout, /dapr-test/);
    const untrusted = await run('curl', ['-sS', `${server}/api/v1/namespaces`, '-H', `Authorization: Bearer ${token}`]);
    assert.equal(untrusted.code, 60, untrusted.stderr);
    // The real kubectl with the kubeconfig file as printed.
    const kubeconfig = join(home, 'cluster-1.kubeconfig');
    writeFileSync(kubeconfig, res.stdout);
    const kubectl = await run('kubectl', ['--kubeconfig', kubeconfig, 'get', 'namespaces']);
    assert.equal(kubectl.code, 0, kubectl.stderr);
    assert.match(kubectl.stdout, /^NAME\s+/);
    assert.match(kubectl.stdout, /dapr-test/);
    const resources = await run('kubectl', ['--kubeconfig', kubeconfig, 'api-resources']);
    assert.equal(resources.code, 0, resources.stderr);
    assert.match(resources.stdout, /serviceexports\s+sexp/);
    // kubectl's TokenRequest for a ServiceAccount.
    assert.equal((await cli(['--cluster', 'cluster-1', 'apply', '-f', '-'], 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: cart, namespace: dapr-test}\n')).code, 0);
    const created = await run('kubectl', ['--kubeconfig', kubeconfig, 'create', 'token', 'cart', '-n', 'dapr-test']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
    // The member's Cluster resource on the control plane carries the member's CA.
    const cl = JSON.parse((await cli(['--cluster', 'control-plane', 'get', 'clusters', 'cluster-1', '-o', 'json'])).stdout) as { spec: { kubeconfig: string } };
    assert.match(cl.spec.kubeconfig, /server: https:/);
    assert.ok(cl.spec.kubeconfig.includes(`certificate-authority-data: ${Buffer.from(ca).toString('base64')}`));
  });

  it('join: a member of this home by name, one of another host by --kubeconfig and its gateway address; bad input names what is wrong and changes nothing', async () => {
    const getCluster = async () => JSON.parse((await cli(['--cluster', 'control-plane', 'get', 'clusters', 'cluster-1', '-o', 'json'])).stdout) as { metadata: { resourceVersion: string }; spec: Record<string, unknown> };
    const before = await getCluster();
    const again = await cli(['join', 'cluster-1']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /clusters\.flomesh\.io\/cluster-1 unchanged/);
    const kubeconfig = join(home, 'join-c1.kubeconfig');
    writeFileSync(kubeconfig, (await cli(['kubeconfig', 'get', 'cluster-1'])).stdout);
    const notKubeconfig = join(home, 'join-not-a-kubeconfig.yaml');
    writeFileSync(notKubeconfig, 'apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n');
    const cases: { args: string[]; code: number; match: RegExp }[] = [
      { args: ['join', 'cluster-9'], code: 1, match: /cluster cluster-9 has not run under .*--kubeconfig FILE --gateway-host ADDR --gateway-port PORT/ },
      { args: ['join', 'cluster-1', '--kubeconfig', kubeconfig], code: 2, match: /join cluster-1 --kubeconfig: also give --gateway-host and --gateway-port/ },
      { args: ['join', 'cluster-1', '--kubeconfig', join(home, 'missing.yaml'), '--gateway-host', '10.0.0.5', '--gateway-port', '8080'], code: 2, match: /--kubeconfig .*missing\.yaml: cannot read it \(ENOENT\); write it on the member's host with `crossmesh kubeconfig get cluster-1 > FILE`/ },
      { args: ['join', 'cluster-1', '--kubeconfig', notKubeconfig, '--gateway-host', '10.0.0.5', '--gateway-port', '8080'], code: 1, match: /--kubeconfig .*join-not-a-kubeconfig\.yaml/ },
      { args: ['join', 'cluster-1', '--kubeconfig', kubeconfig, '--gateway-host', 'not a host!', '--gateway-port', '8080'], code: 1, match: /Cluster\/cluster-1: spec\.gatewayHost: .*IPv4 address or a DNS name/ },
    ];
    for (const c of cases) {
      const r = await cli(c.args);
      assert.equal(r.code, c.code, `${c.args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, c.match, c.args.join(' '));
    }
    assert.equal((await getCluster()).metadata.resourceVersion, before.metadata.resourceVersion, 'a refused join changed the Cluster');
    // The other-host form: the same member as a kubeconfig and an address (here its own loopback one).
    const ports = JSON.parse(readFileSync(join(home, 'clusters', 'cluster-1', 'ports.json'), 'utf8')) as { gatewayPort: number; meshPort: number };
    const remote = await cli(['join', 'cluster-1', '--kubeconfig', kubeconfig, '--gateway-host', 'localhost', '--gateway-port', String(ports.gatewayPort), '--mesh-port', String(ports.meshPort)]);
    assert.equal(remote.code, 0, remote.stderr);
    assert.match(remote.stdout, /clusters\.flomesh\.io\/cluster-1 configured/);
    const after = await getCluster();
    assert.equal(after.spec.gatewayHost, 'localhost');
    assert.equal(after.spec.meshPort, ports.meshPort);
    await eventually(async () => {
      const c = JSON.parse((await cli(['--cluster', 'control-plane', 'get', 'clusters', 'cluster-1', '-o', 'json'])).stdout) as { status?: { conditions?: { type: string; status: string }[] } };
      return c.status?.conditions?.some((x) => x.type === 'Managed' && x.status === 'True');
    }, 10_000, 'cluster-1 managed after the re-join');
    assert.equal((await cli(['join', 'cluster-1'])).code, 0);
  });

  it('refuses bad --ca-cert/--ca-key files and identity settings other than the first start, naming what is wrong; nothing starts', async () => {
    const f = (name: string, text: string) => {
      const p = join(home, name);
      writeFileSync(p, text);
      return p;
    };
    const root = await generateRootCa();
    const other = await generateRootCa();
    const limited = await issueIntermediate(root, { clusterName: 'x' });
    const cases: { args: string[]; code: number; match: RegExp }[] = [
      { args: ['--ca-cert', f('garbage.crt', 'hello'), '--ca-key', f('root.key', root.keyPem)], code: 1, match: /--ca-cert .*garbage\.crt: .*no PEM certificate found/ },
      { args: ['--ca-cert', f('root.crt', root.certPem), '--ca-key', f('garbage.key', 'hello')], code: 1, match: /--ca-key .*garbage\.key: not a readable PEM private key/ },
      { args: ['--ca-cert', join(home, 'root.crt'), '--ca-key', f('other.key', other.keyPem)], code: 1, match: /--ca-cert .*root\.crt and --ca-key .*other\.key: .*not this certificate's key/ },
      { args: ['--ca-cert', join(home, 'missing.crt'), '--ca-key', join(home, 'root.key')], code: 1, match: /missing\.crt: can't read it \(ENOENT\)/ },
      { args: ['--ca-cert', f('limited.crt', [limited.certPem, root.certPem].join('\n')), '--ca-key', f('limited.key', limited.keyPem)], code: 1, match: /pathLen 0/ },
      { args: ['--ca-cert', join(home, 'root.crt')], code: 2, match: /--ca-cert needs --ca-key/ },
      { args: ['--workload-cert-ttl', 'soon'], code: 2, match: /--workload-cert-ttl: invalid duration "soon"/ },
      { args: ['--trust-domain', 'Bad_Domain'], code: 2, match: /--trust-domain: invalid trust domain/ },
    ];
    for (const c of cases) {
      const res = await cli(['up', '--clusters', 'fresh', '--api-port', '0', '--gateway-port', '0', ...c.args]);
      assert.equal(res.code, c.code, `${c.args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, c.match);
      assert.equal(existsSync(join(home, 'clusters', 'fresh')), false, `${c.args.join(' ')}: nothing started`);
    }
    // Running clusters were started with the defaults: other settings, or another root, are refused.
    for (const [args, match] of [
      [['--trust-domain', 'example.org'], /cluster control-plane: --trust-domain example\.org: the cluster's trust domain is "crossmesh\.local"/],
      [['--insecure-plaintext'], /mesh mode is "mtls"/],
      [['--workload-cert-ttl', '10s'], /--workload-cert-ttl 10s: the cluster issues workload certificates for 86400s/],
      [['--ca-cert', join(home, 'root.crt'), '--ca-key', join(home, 'root.key')], /cluster control-plane: --ca-cert: the cluster already has a root CA it generated/],
    ] as const) {
      const res = await cli(['up', '--clusters', 'control-plane,cluster-1', '--api-port', '0', '--gateway-port', '0', ...args]);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, match);
    }
  });

  it('keeps resources, the cluster root and the token key across a restart, and down stops every process', async () => {
    const record = JSON.parse(readFileSync(join(home, 'clusters', 'cluster-1', 'cluster.json'), 'utf8'));
    const pki = join(home, 'clusters', 'cluster-1', 'pki');
    assert.equal(statSync(pki).mode & 0o777, 0o700);
    for (const key of ['root.key', 'mesh-ca.key', 'token.key']) assert.equal(statSync(join(pki, key)).mode & 0o777, 0o600, key);
    const rootBefore = new X509Certificate(readFileSync(join(pki, 'ca.crt'))).fingerprint256;
    const saToken = (await run('kubectl', ['--kubeconfig', join(home, 'cluster-1.kubeconfig'), 'create', 'token', 'cart', '-n', 'dapr-test'])).stdout.trim();
    assert.ok(saToken.length > 0);
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
    // Same root: the kubeconfig handed out before still verifies; same token key: the token still works.
    assert.equal(new X509Certificate(readFileSync(join(pki, 'ca.crt'))).fingerprint256, rootBefore);
    const kubectl = await run('kubectl', ['--kubeconfig', join(home, 'cluster-1.kubeconfig'), 'get', 'namespaces']);
    assert.equal(kubectl.code, 0, kubectl.stderr);
    const ca = readFileSync(join(pki, 'ca.crt'), 'utf8');
    const bundle = await httpsGet(`${rec2.apiUrl}/apis/identity.crossmesh.io/v1/trustbundle`, ca, saToken);
    assert.equal(bundle.status, 200, bundle.body);
    assert.equal((JSON.parse(bundle.body) as { trustDomain: string }).trustDomain, 'crossmesh.local');
  });
});
