import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { runCli, tempDir } from './helpers.js';
import { KUBECTL_HINT, kubectlBinaries, run, type RunResult } from './support/kubectl.js';
import { KUBECTL_BODIES } from './support/kubectl-bodies.js';

/**
 * kubectl 1.33 (it sends Kubernetes protobuf bodies for built-in kinds, and client-go never
 * falls back to JSON for protobuf) against a real cluster process through the kubeconfig of
 * `crossmesh kubeconfig get`: create namespace, secret generic (the stored data is the literal),
 * serviceaccount, token (a JWT), service; the refusals kubectl shows; then, over HTTPS with
 * the kubeconfig's CA and token, the refusals of bodies kubectl does not send (a CRD kind → 415,
 * malformed → 400) and that they change nothing. The cluster process runs with the module
 * trace: protobufjs is loaded only once a protobuf body has arrived. No kubectl.1.33 = a failing
 * suite with the install hint, never a skip.
 */
const TRACE = fileURLToPath(new URL('./support/module-trace.js', import.meta.url));

function kubectl133(): string {
  const b = kubectlBinaries().find((x) => x.name === 'kubectl.1.33');
  if (!b) throw new Error(`kubectl.1.33 is not beside kubectl (the protobuf-sending kubectl this suite needs): ${KUBECTL_HINT}`);
  return b.path;
}

interface Answer {
  status: number;
  body: Record<string, any>;
}

describe('kubectl 1.33 protobuf bodies against a crossmesh cluster', () => {
  const { dir: home, cleanup } = tempDir();
  const kubeconfig = join(home, 'kubeconfig');
  const traceDir = join(home, 'trace');
  const env = { KUBECONFIG: kubeconfig };
  let bin = '';
  let server: URL;
  let ca = '';
  let token = '';
  let clusterPid = 0;

  const kubectl = (...args: string[]): Promise<RunResult> => run(bin, ['--cache-dir', join(home, 'cache'), ...args], env);
  const ok = async (...args: string[]): Promise<string> => {
    const res = await kubectl(...args);
    assert.equal(res.code, 0, `kubectl.1.33 ${args.join(' ')}: ${res.stderr}`);
    return res.stdout;
  };
  /** The modules the cluster process has resolved so far. */
  const clusterModules = (): string => {
    const file = join(traceDir, `${clusterPid}.log`);
    assert.ok(existsSync(file), `no module trace of the cluster process ${clusterPid} in ${traceDir}`);
    return readFileSync(file, 'utf8');
  };
  const api = (method: string, path: string, body?: Buffer, contentType = 'application/vnd.kubernetes.protobuf'): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request(new URL(path, server), {
        method,
        ca,
        headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.kubernetes.protobuf,application/json', ...(body ? { 'content-type': contentType } : {}) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch (err) {
            reject(new Error(`${method} ${path}: ${res.statusCode} answered no JSON (${(err as Error).message}): ${text}`));
          }
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  const revision = async (): Promise<string> => {
    const res = await api('GET', '/api/v1/namespaces');
    assert.equal(res.status, 200);
    return res.body.metadata.resourceVersion;
  };
  const captured = (command: string): Buffer => {
    const b = KUBECTL_BODIES.find((x) => x.command.startsWith(command));
    assert.ok(b, command);
    return Buffer.from(b.protobuf, 'base64');
  };

  before(async () => {
    bin = kubectl133();
    mkdirSync(traceDir);
    const up = await runCli(['up', '--clusters', 'control-plane', '--api-port', '0', '--gateway-port', '0'], {
      home,
      env: { NODE_OPTIONS: `--import ${TRACE}`, CROSSMESH_TRACE_MODULES: traceDir },
    });
    assert.equal(up.code, 0, up.stderr);
    clusterPid = JSON.parse(readFileSync(join(home, 'clusters', 'control-plane', 'cluster.json'), 'utf8')).pid;
    const kc = await runCli(['kubeconfig', 'get', 'control-plane'], { home });
    assert.equal(kc.code, 0, kc.stderr);
    writeFileSync(kubeconfig, kc.stdout);
    const doc = parseYaml(kc.stdout);
    server = new URL(doc.clusters[0].cluster.server);
    ca = Buffer.from(doc.clusters[0].cluster['certificate-authority-data'], 'base64').toString('utf8');
    token = doc.users[0].user.token;
  });

  after(async () => {
    await runCli(['down', '--purge'], { home });
    cleanup();
  });

  it('the cluster process has not loaded protobufjs before the first protobuf body', async () => {
    await ok('get', 'namespaces');
    assert.doesNotMatch(clusterModules(), /protobufjs|protobuf-body/);
  });

  it('create namespace: kubectl sends protobuf, crossmesh answers JSON, kubectl is content', async () => {
    const res = await kubectl('create', 'namespace', 't1', '-v=8');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^namespace\/t1 created$/m);
    assert.match(res.stderr, /Content-Type: application\/vnd\.kubernetes\.protobuf/, 'kubectl 1.33 no longer sends protobuf: this suite tests nothing');
    assert.match(res.stderr, /"Response" status="201 Created" headers=<[^>]*\tContent-Type: application\/json\n/);
    assert.match(res.stderr, /"Response Body" body="\{.*\\"kind\\":\\"Namespace\\"/);
    const ns = JSON.parse(await ok('get', 'namespace', 't1', '-o', 'json'));
    assert.equal(ns.status.phase, 'Active');
    assert.match(clusterModules(), /node_modules\/protobufjs\//);
  });

  it('create secret generic: the stored data decodes to the literals', async () => {
    assert.match(await ok('create', 'secret', 'generic', 's', '-n', 't1', '--from-literal=k=v', '--from-literal=bin=héllo wörld'), /secret\/s created/);
    const s = JSON.parse(await ok('get', 'secret', 's', '-n', 't1', '-o', 'json', '--show-managed-fields'));
    assert.equal(Buffer.from(s.data.k, 'base64').toString('utf8'), 'v');
    assert.equal(Buffer.from(s.data.bin, 'base64').toString('utf8'), 'héllo wörld');
    assert.equal(s.type, 'Opaque');
    assert.equal(s.metadata.managedFields?.[0]?.manager, 'kubectl-create');
  });

  it('create serviceaccount, then create token: a JWT for the service account comes back', async () => {
    assert.match(await ok('create', 'serviceaccount', 'sa1', '-n', 't1'), /serviceaccount\/sa1 created/);
    const jwt = (await ok('create', 'token', 'sa1', '-n', 't1', '--duration=1h')).trim();
    const parts = jwt.split('.');
    assert.equal(parts.length, 3, jwt);
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    assert.equal(claims.sub, 'system:serviceaccount:t1:sa1');
    assert.ok(Math.abs(claims.exp - claims.iat - 3600) <= 1, JSON.stringify(claims));
  });

  it('create service clusterip: ports and the numeric targetPort arrive', async () => {
    assert.match(await ok('create', 'service', 'clusterip', 'web', '-n', 't1', '--tcp=80:8080'), /service\/web created/);
    const svc = JSON.parse(await ok('get', 'service', 'web', '-n', 't1', '-o', 'json'));
    assert.deepEqual(svc.spec.ports.map((p: any) => [p.name, p.port, p.targetPort, p.protocol]), [['80-8080', 80, 8080, 'TCP']]);
    assert.deepEqual(svc.spec.selector, { app: 'web' });
  });

  it('kubectl shows the refusals of protobuf requests in Kubernetes style', async () => {
    const dup = await kubectl('create', 'namespace', 't1');
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /Error from server \(AlreadyExists\): namespaces "t1" already exists/);
    const short = await kubectl('create', 'token', 'sa1', '-n', 't1', '--duration=5m');
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /spec\.expirationSeconds: may not specify a duration less than 600 seconds/);
    const bound = await kubectl('create', 'token', 'sa1', '-n', 't1', '--bound-object-kind=Secret', '--bound-object-name=s');
    assert.notEqual(bound.code, 0);
    assert.match(bound.stderr, /spec\.boundObjectRef: binding a token to an object is not supported/);
    const missing = await kubectl('create', 'token', 'nobody', '-n', 't1');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /serviceaccounts "nobody" not found/);
  });

  it('a protobuf body for a CRD kind → 415 UnsupportedMediaType, as kube-apiserver answers', async () => {
    const before = await revision();
    for (const path of ['/apis/flomesh.io/v1alpha1/namespaces/t1/serviceexports', '/apis/dapr.io/v1alpha1/namespaces/t1/components']) {
      const res = await api('POST', path, captured('kubectl create namespace'));
      assert.equal(res.status, 415, JSON.stringify(res.body));
      assert.equal(res.body.kind, 'Status');
      assert.equal(res.body.reason, 'UnsupportedMediaType');
      assert.equal(res.body.message, 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml');
    }
    assert.equal(await revision(), before);
  });

  it('malformed protobuf → 400 BadRequest saying what was wrong, and nothing changes', async () => {
    const before = await revision();
    const secret = captured('kubectl create secret generic');
    // The captured body creates secret "s" in t1; in t2 (created for this) a truncated copy must create nothing.
    await ok('create', 'namespace', 't2');
    const afterNs = await revision();
    assert.notEqual(afterNs, before);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['truncated', secret.subarray(0, secret.length - 9), /the protobuf body is malformed: .*index out of range/],
      ['JSON sent as protobuf', Buffer.from('{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"}}'), /does not appear to be a protobuf message, expected prefix \[107 56 115 0\]/],
    ];
    for (const [what, body, pattern] of cases) {
      const res = await api('POST', '/api/v1/namespaces/t2/secrets', body);
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.reason, 'BadRequest');
      assert.match(res.body.message, /^the object provided is unrecognized \(must be of type Secret\): /);
      assert.match(res.body.message, pattern, what);
    }
    const wrongKind = await api('POST', '/api/v1/namespaces', secret);
    assert.equal(wrongKind.status, 400);
    assert.match(wrongKind.body.message, /the protobuf body is a Secret \(v1\) but the request is for a Namespace \(v1\)/);
    const token = await api('POST', '/api/v1/namespaces/t1/serviceaccounts/sa1/token', captured('kubectl create token sa1 --duration').subarray(0, 20));
    assert.equal(token.status, 400);
    assert.match(token.body.message, /must be of type TokenRequest\): the protobuf body is malformed/);
    assert.equal(await revision(), afterNs);
    assert.equal((await api('GET', '/api/v1/namespaces/t2/secrets/s')).status, 404);
  });
});
