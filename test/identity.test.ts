import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request as httpRequest, Agent } from 'node:http';
import { eventually, runCli, tempDir } from './helpers.js';
import { generateRootCa, issueIntermediate, issueWorkloadCert, loadCa } from '../src/identity/ca.js';
import { createWorkloadCsr } from '../src/identity/csr.js';
import type { SidecarRecord } from '../src/sidecar/record.js';

const NODEAPP = fileURLToPath(new URL('../../examples/nodeapp/app.mjs', import.meta.url));

/** nodeapp exported from cluster-1 to callers with service account `curl` only. */
const EXPORT = `apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata: {name: nodeapp}
spec:
  serviceAccountName: curl
  pathRewrite: {from: '^/nodeapp/?', to: '/'}
  rules: [{portNumber: 3000, path: '/nodeapp', pathType: Prefix}]
`;
const POLICY = `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: nodeapp}
spec:
  lbType: FailOver
  targets: [{clusterKey: default/default/default/cluster-1}]
`;

interface Reply { status: number; body: string }

/** What a TLS client saw: a response, or the handshake / connection error. */
async function tlsAttempt(port: number, opts: ConnectionOptions): Promise<{ response?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...opts });
    let text = '';
    s.on('secureConnect', () => s.write('GET /ports HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    s.on('data', (d) => (text += d.toString()));
    s.on('error', (err) => resolve({ error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` }));
    s.on('close', () => resolve(text ? { response: text } : { error: 'closed without a response' }));
  });
}

/**
 * Mesh identity end to end with real processes (a control plane and two members, real sidecars
 * and apps): workload certificates from each cluster's CA under the control plane's root, mTLS
 * from the calling sidecar to the app sidecar inside the gateway tunnel, the export's
 * serviceAccountName enforced at the exporting side, refusals of callers without the right
 * certificate, and rotation under load (workload certificates live 8 s here, so each sidecar
 * renews every ~5 s while the tests run).
 */
describe('mesh identity: mTLS between sidecars across clusters, authorization by service account', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  /** The ready file of an app's (only) instance. */
  const record = (cluster: string, ns: string, appId: string): SidecarRecord => {
    const dir = join(home, 'apps', cluster, ns, appId);
    const [instance] = readdirSync(dir);
    return JSON.parse(readFileSync(join(dir, instance, 'sidecar.json'), 'utf8')) as SidecarRecord;
  };
  const clusterJson = (name: string) => JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')) as { meshPort: number; gatewayPort: number };
  let curlProxy = 0;
  let intruderProxy = 0;

  /** One GET through a client app's sidecar (its HTTP proxy), as its HTTP client sends it. */
  function call(proxyPort: number, path = '/ports'): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxyPort, path: `http://nodeapp.dapr-test:3000${path}`, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  async function metric(port: number, name: string, labels: string): Promise<number> {
    const text = await new Promise<string>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve(t));
      }).on('error', reject).end();
    });
    // The sum over the series of `name` whose labels include `labels`.
    return text.split('\n').filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  }

  const proxyOf = async (appId: string) => {
    const env = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', appId, '--', process.execPath, '-e', 'console.log(process.env.HTTP_PROXY)']);
    assert.equal(env.code, 0, env.stderr);
    return Number(new URL(env.stdout.trim()).port);
  };

  before(async () => {
    const up = await cli(['up', '--clusters', 'control-plane,cluster-1,cluster-2', '--api-port', '0', '--gateway-port', '0', '--workload-cert-ttl', '8s']);
    assert.equal(up.code, 0, up.stderr);
    for (const [c, ns] of [['cluster-1', 'dapr-test'], ['cluster-2', 'dapr-test'], ['cluster-2', 'curl']]) {
      const r = await cli(['--cluster', c, 'create', 'namespace', ns]);
      assert.equal(r.code, 0, r.stderr);
    }
    const runs = await Promise.all([
      cli(['--cluster', 'cluster-1', 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, NODEAPP]),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'curl', '--app-id', 'curl', '--service-account', 'curl', '--detach', '--', 'sleep', '3600']),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'curl', '--app-id', 'intruder', '--detach', '--', 'sleep', '3600']),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const [c, doc] of [['cluster-1', EXPORT], ['cluster-2', POLICY]]) {
      const r = await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], doc);
      assert.equal(r.code, 0, r.stderr);
    }
    [curlProxy, intruderProxy] = await Promise.all([proxyOf('curl'), proxyOf('intruder')]);
    await eventually(async () => (await call(curlProxy)).status === 200, 15_000, 'curl reaches nodeapp in cluster-1');
  });

  after(async () => {
    agent.destroy();
    const down = await cli(['down', '--purge']);
    assert.equal(down.code, 0, down.stderr);
    cleanup();
  });

  it('the caller with service account curl reaches nodeapp in cluster-1 through the tunnel, mTLS end to end', async () => {
    const r = await call(curlProxy);
    assert.equal(r.status, 200);
    assert.match(r.body, /from cluster: cluster-1/);
    const route = await cli(['--cluster', 'cluster-2', 'route', '-n', 'curl', 'nodeapp.dapr-test:3000']);
    assert.equal(route.code, 0, route.stderr);
    assert.match(route.stdout, /cluster-1 via tunnel to nodeapp\.dapr-test:3000 .*mTLS end to end/);
    assert.match(route.stdout, /transport: +mesh mTLS \(trust domain crossmesh\.local\)/);
    const status = await cli(['status']);
    assert.match(status.stdout, /curl\s+curl\s+\S+\s+running.*spiffe:\/\/crossmesh\.local\/ns\/curl\/sa\/curl\s+\d{4}-\d\d-\d\dT/);
    assert.match(status.stdout, /nodeapp.*spiffe:\/\/crossmesh\.local\/ns\/dapr-test\/sa\/default/);
  });

  it('another service account is refused at the exporting side: 403 CM_ERR_FORBIDDEN naming its identity and the rule, counted, nothing reaches the app', async () => {
    const nodeapp = record('cluster-1', 'dapr-test', 'nodeapp');
    const before = await metric(nodeapp.ports.http, 'crossmesh_sidecar_inbound_forbidden_total', 'reason="service_account"');
    const r = await call(intruderProxy);
    assert.equal(r.status, 403, r.body);
    const body = JSON.parse(r.body);
    assert.equal(body.errorCode, 'CM_ERR_FORBIDDEN');
    assert.match(body.message, /caller spiffe:\/\/crossmesh\.local\/ns\/curl\/sa\/default of cluster cluster-2 refused: ServiceExport dapr-test\/nodeapp admits only service account "curl"/);
    assert.equal(await metric(nodeapp.ports.http, 'crossmesh_sidecar_inbound_forbidden_total', 'reason="service_account"'), before + 1);
    // The app saw nothing: its sidecar recorded the 403 as its own answer, not the app's.
    assert.equal(await metric(nodeapp.ports.http, 'crossmesh_sidecar_requests_total', 'code="403"') >= 1, true);
  });

  it('a process without a mesh certificate is refused at the handshake of an inbound port: plaintext HTTP and TLS without a client certificate; both counted', async () => {
    const nodeapp = record('cluster-1', 'dapr-test', 'nodeapp');
    const before = await metric(nodeapp.ports.http, 'crossmesh_sidecar_inbound_tls_refused_total', '');
    const plain = await new Promise<string>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: nodeapp.ports.inbound! });
      let text = '';
      s.on('connect', () => s.write('GET /ports HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve(text));
    });
    assert.doesNotMatch(plain, /^HTTP\/1\.1 200/, 'no HTTP answer to plaintext');
    const noCert = await tlsAttempt(nodeapp.ports.inbound!, { rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    assert.equal(noCert.response, undefined, 'no response without a client certificate');
    await eventually(async () => (await metric(nodeapp.ports.http, 'crossmesh_sidecar_inbound_tls_refused_total', '')) >= before + 2, 5000, 'refusals counted');
  });

  it('a client certificate from another root, and an expired one from the mesh root, are refused in the handshake', async () => {
    const nodeapp = record('cluster-1', 'dapr-test', 'nodeapp');
    const spiffeId = 'spiffe://crossmesh.local/ns/curl/sa/curl';
    const meshRoot = readFileSync(join(home, 'clusters', 'control-plane', 'pki', 'root.crt'), 'utf8');
    // Another root: a perfectly formed identity the mesh never issued.
    const otherRoot = await generateRootCa();
    const otherCa = await issueIntermediate(otherRoot, { clusterName: 'cluster-2' });
    const forged = await createWorkloadCsr(spiffeId);
    const forgedCert = await issueWorkloadCert(otherCa, { csrPem: forged.csrPem, spiffeId });
    const a = await tlsAttempt(nodeapp.ports.inbound!, { key: forged.keyPem, cert: forgedCert.chainPem, ca: meshRoot, checkServerIdentity: () => undefined });
    assert.equal(a.response, undefined, `forged certificate got an answer: ${a.response}`);
    // The mesh's own root, but expired: a 2-second certificate, used once its notAfter passed.
    const root = await loadCa(meshRoot, readFileSync(join(home, 'clusters', 'control-plane', 'pki', 'root.key'), 'utf8'));
    const ca = await issueIntermediate(root, { clusterName: 'cluster-2' });
    const short = await createWorkloadCsr(spiffeId);
    const shortCert = await issueWorkloadCert(ca, { csrPem: short.csrPem, spiffeId, ttlSeconds: 2 });
    await eventually(() => Date.now() > shortCert.notAfter.getTime() + 1000, 5000, 'the short certificate expired');
    const b = await tlsAttempt(nodeapp.ports.inbound!, { key: short.keyPem, cert: shortCert.chainPem, ca: meshRoot, checkServerIdentity: () => undefined });
    assert.equal(b.response, undefined, `expired certificate got an answer: ${b.response}`);
    // The sidecar logs the refusal after it closed the connection: wait for the line, not the close.
    await eventually(() => /inbound connection from 127\.0\.0\.1:\d+ refused: .*expired/.test(readFileSync(nodeapp.logs!.sidecar!, 'utf8')), 5000, 'the sidecar logging the expired certificate refusal');
  });

  it("a CONNECT to cluster-1's mesh port naming a service it does not export is refused, nothing is spliced", async () => {
    const { meshPort } = clusterJson('cluster-1');
    const answer = await new Promise<string>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: meshPort });
      let text = '';
      s.on('connect', () => s.write('CONNECT ghost.dapr-test:3000 HTTP/1.1\r\nhost: ghost.dapr-test:3000\r\n\r\n'));
      s.on('data', (d) => {
        text += d.toString();
        if (text.includes('\r\n\r\n')) s.destroy();
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 404/);
  });

  it('rotation under load: every sidecar renews its certificate while calls cross clusters, and no call fails', async () => {
    const curl = record('cluster-2', 'curl', 'curl');
    const nodeapp = record('cluster-1', 'dapr-test', 'nodeapp');
    const rotations = () => Promise.all([metric(curl.ports.http, 'crossmesh_sidecar_certificate_rotations_total', ''), metric(nodeapp.ports.http, 'crossmesh_sidecar_certificate_rotations_total', '')]);
    const [c0, n0] = await rotations();
    let failed = 0;
    let ok = 0;
    let done = false;
    const loops = Array.from({ length: 4 }, async () => {
      while (!done) {
        const r = await call(curlProxy).catch((err) => ({ status: 0, body: String(err) }));
        if (r.status === 200) ok++;
        else failed++;
      }
    });
    // Until both sides renewed twice more (each renewal is a new key and certificate).
    await eventually(async () => {
      const [c, n] = await rotations();
      return c >= c0 + 2 && n >= n0 + 2;
    }, 30_000, 'two rotations on both sidecars');
    done = true;
    await Promise.all(loops);
    assert.equal(failed, 0, `${failed} of ${ok + failed} calls failed across the rotations`);
    assert.ok(ok > 50, `only ${ok} calls made`);
  });
});
