import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { startCluster, type RunningCluster } from '../cluster/cluster.js';
import { ApiClient } from '../client/api-client.js';
import { kindFor } from '../api/index.js';
import { CrossmeshError, type ErrorCode } from '../errors.js';
import { createWorkloadCsr } from '../identity/csr.js';
import { signProof } from '../identity/pop.js';
import { verifyPeerChain } from '../identity/verify.js';
import { TRUST_BUNDLE_PATH, WORKLOAD_CERTIFICATES_PATH } from '../identity/api.js';

const NS = kindFor('v1', 'Namespace');
const SA = kindFor('v1', 'ServiceAccount');
const CART = 'spiffe://crossmesh.local/ns/shop/sa/cart';

function rejectsWith(code: ErrorCode, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, `expected a CrossmeshError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** One request with node:https trusting `ca`: status and parsed JSON body. */
function call(c: RunningCluster, method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const u = new URL(c.apiUrl);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest({ host: u.hostname, port: u.port, method, path, ca: c.ca, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('identity endpoints of the cluster API (HTTPS)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'crossmesh-idapi-'));
  let cluster: RunningCluster;
  let admin: ApiClient;
  let caFile: string;
  const saClient = (token: string) => new ApiClient({ ...cluster.endpoint, token });

  before(async () => {
    cluster = await startCluster({ name: 'cluster-1', dataDir: null, gatewayPort: 0, workloadCertTtlSeconds: 60 });
    admin = new ApiClient(cluster.endpoint);
    caFile = join(tmp, 'ca.crt');
    writeFileSync(caFile, cluster.ca);
    await admin.create(NS, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    await admin.create(SA, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cart', namespace: 'shop' } });
  });
  after(async () => {
    await admin?.close();
    await cluster?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves https only: curl with --cacert succeeds, without it fails verification; plain http gets a 400 saying https', async () => {
    assert.match(cluster.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const url = `${cluster.apiUrl}/api/v1/namespaces`;
    const ok = await run('curl', ['-sS', '--fail', '--cacert', caFile, url, '-H', `Authorization: Bearer ${cluster.token}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok((JSON.parse(ok.stdout) as { items: { metadata: { name: string } }[] }).items.some((n) => n.metadata.name === 'shop'));
    const untrusted = await run('curl', ['-sS', url, '-H', `Authorization: Bearer ${cluster.token}`]);
    assert.equal(untrusted.code, 60, `curl exit 60 = peer certificate cannot be authenticated; got ${untrusted.code}: ${untrusted.stderr}`);
    // The serving certificate names the loopback addresses and localhost.
    const viaName = await run('curl', ['-sS', '--fail', '--cacert', caFile, `https://localhost:${cluster.apiPort}/healthz`]);
    assert.equal(viaName.stdout, 'ok', viaName.stderr);
    const plain = await new Promise<string>((resolve) => {
      const s = connect(cluster.apiPort, '127.0.0.1', () => s.write('GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n\r\n'));
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('close', () => resolve(text));
    });
    assert.match(plain, /^HTTP\/1\.1 400 /);
    assert.match(plain, /serves HTTPS only: use https:/);
    // Oversized headers inside TLS get node:http's 431, as over plain TCP.
    const big = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: cluster.apiPort, ca: cluster.ca }, () => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`));
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('error', () => resolve(text));
      s.on('close', () => resolve(text));
    });
    assert.match(big, /^HTTP\/1\.1 431 /);
    // A client without the CA is refused, with the reason.
    const noCa = new ApiClient({ ...cluster.endpoint, ca: undefined });
    try {
      await assert.rejects(noCa.list(NS), rejectsWith('CM_ERR_UNAVAILABLE', /TLS certificate is not trusted .*no CA was given/));
    } finally {
      await noCa.close();
    }
  });

  it('TokenRequest: 201 with a token for an existing ServiceAccount, 404 for a missing one, 422 for a bad spec', async () => {
    const res = await call(cluster, 'POST', '/api/v1/namespaces/shop/serviceaccounts/cart/token', cluster.token, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} });
    assert.equal(res.status, 201);
    assert.equal(res.body.kind, 'TokenRequest');
    const status = res.body.status as { token: string; expirationTimestamp: string };
    assert.match(status.token, /^ey/);
    const days = (Date.parse(status.expirationTimestamp) - Date.now()) / 86400_000;
    assert.ok(days > 364 && days <= 365, String(days));
    const missing = await call(cluster, 'POST', '/api/v1/namespaces/shop/serviceaccounts/nobody/token', cluster.token, {});
    assert.equal(missing.status, 404);
    assert.equal(missing.body.reason, 'NotFound');
    assert.match(String(missing.body.message), /serviceaccounts "nobody" not found/);
    assert.equal((await call(cluster, 'POST', '/api/v1/namespaces/nowhere/serviceaccounts/cart/token', cluster.token, {})).status, 404);
    await assert.rejects(admin.requestToken('shop', 'cart', { expirationSeconds: 60 }), rejectsWith('CM_ERR_INVALID', /spec\.expirationSeconds: may not specify a duration less than 600 seconds/));
    assert.equal((await call(cluster, 'GET', '/api/v1/namespaces/shop/serviceaccounts/cart/token', cluster.token)).status, 405);
    assert.equal((await call(cluster, 'POST', '/api/v1/namespaces/shop/serviceaccounts/cart/token', undefined, {})).status, 401);
  });

  it('a service account token gets the trust bundle and a workload certificate (CSR form and key form) for its own identity only', async () => {
    const { token } = await admin.requestToken('shop', 'cart');
    const sa = saClient(token);
    try {
      const bundle = await sa.trustBundle();
      assert.deepEqual({ td: bundle.trustDomain, mode: bundle.mode, ttl: bundle.workloadCertTtlSeconds, n: bundle.roots.length }, { td: 'crossmesh.local', mode: 'mtls', ttl: 60, n: 1 });
      assert.equal(bundle.generation, cluster.pki.generation());

      const { csrPem } = await createWorkloadCsr(CART);
      const viaCsr = await sa.requestWorkloadCertificate({ csr: csrPem });
      assert.equal(viaCsr.spiffeId, CART);
      assert.equal(viaCsr.certificateChain.length, 2);
      assert.equal(verifyPeerChain(viaCsr.certificateChain, bundle.roots[0]).spiffeId, CART);
      const life = Date.parse(viaCsr.notAfter) - Date.now();
      assert.ok(life > 50_000 && life <= 60_000, String(life));

      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const pub = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const viaKey = await sa.requestWorkloadCertificate({ publicKey: pub, spiffeId: CART, proof: signProof(CART, pub, privateKey) });
      assert.equal(new X509Certificate(viaKey.certificateChain[0]).publicKey.export({ type: 'spki', format: 'pem' }), pub);

      // Another identity than the token's: refused, naming both.
      const { csrPem: adminCsr } = await createWorkloadCsr('spiffe://crossmesh.local/ns/shop/sa/admin');
      await assert.rejects(sa.requestWorkloadCertificate({ csr: adminCsr }), rejectsWith('CM_ERR_CSR_REFUSED', /asks for spiffe:\/\/crossmesh\.local\/ns\/shop\/sa\/admin, but the requester is entitled to spiffe:\/\/crossmesh\.local\/ns\/shop\/sa\/cart only/));
      const other = 'spiffe://crossmesh.local/ns/kube/sa/root';
      await assert.rejects(sa.requestWorkloadCertificate({ publicKey: pub, spiffeId: other, proof: signProof(other, pub, privateKey) }), rejectsWith('CM_ERR_CSR_REFUSED', /asks for spiffe:\/\/crossmesh\.local\/ns\/kube\/sa\/root, but the requester is entitled to .*sa\/cart only/));
      await assert.rejects(sa.requestWorkloadCertificate({ publicKey: pub, spiffeId: CART, proof: Buffer.from('nope').toString('base64') }), rejectsWith('CM_ERR_CSR_REFUSED', /proof/));
      const bad = await call(cluster, 'POST', WORKLOAD_CERTIFICATES_PATH, token, { csr: adminCsr });
      assert.equal(bad.status, 403);
      assert.equal((bad.body.details as { errorCode: string }).errorCode, 'CM_ERR_CSR_REFUSED');
    } finally {
      await sa.close();
    }
  });

  it('refuses the admin token at workloadcertificates, and a service account token everywhere but its two endpoints', async () => {
    const { csrPem } = await createWorkloadCsr(CART);
    await assert.rejects(admin.requestWorkloadCertificate({ csr: csrPem }), rejectsWith('CM_ERR_CSR_REFUSED', /needs a service account token/));
    assert.equal((await admin.trustBundle()).trustDomain, 'crossmesh.local', 'the admin token may read the trust bundle');
    const { token } = await admin.requestToken('shop', 'cart');
    const sa = saClient(token);
    try {
      const scope = /Forbidden: a service account token \(system:serviceaccount:shop:cart\) may only GET \/apis\/identity\.crossmesh\.io\/v1\/trustbundle and POST \/apis\/identity\.crossmesh\.io\/v1\/workloadcertificates/;
      await assert.rejects(sa.list(NS), rejectsWith('CM_ERR_FORBIDDEN', scope));
      await assert.rejects(sa.create(SA, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'x', namespace: 'shop' } }), rejectsWith('CM_ERR_FORBIDDEN', scope));
      await assert.rejects(sa.requestToken('shop', 'cart'), rejectsWith('CM_ERR_FORBIDDEN', scope));
      await assert.rejects(sa.intermediateInfo(), rejectsWith('CM_ERR_FORBIDDEN', scope));
      await assert.rejects(sa.intermediateCsr('crossmesh.local'), rejectsWith('CM_ERR_FORBIDDEN', scope));
      await assert.rejects(sa.raw('GET', '/metrics'), rejectsWith('CM_ERR_FORBIDDEN', scope));
      await assert.rejects(sa.raw('GET', '/apis'), rejectsWith('CM_ERR_FORBIDDEN', scope));
      const res = await call(cluster, 'GET', '/api/v1/namespaces', token);
      assert.equal(res.status, 403);
      assert.equal(res.body.reason, 'Forbidden');
    } finally {
      await sa.close();
    }
  });

  it('refuses forged, expired, foreign and stale service account tokens with 401', async () => {
    const { token } = await admin.requestToken('shop', 'cart');
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forged = [h, Buffer.from(JSON.stringify({ ...claims, sub: 'system:serviceaccount:shop:admin' })).toString('base64url'), s].join('.');
    const { privateKey } = await generateKeyPair('ES256');
    const selfSigned = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    const expired = (await cluster.tokens.issue({ namespace: 'shop', serviceAccount: 'cart', expirationSeconds: 600, now: new Date(Date.now() - 7200_000) })).token;
    const other = await startCluster({ name: 'cluster-2', dataDir: null, gatewayPort: 0 });
    let foreign: string;
    try {
      foreign = (await other.tokens.issue({ namespace: 'shop', serviceAccount: 'cart' })).token;
    } finally {
      await other.close();
    }
    for (const [what, t, msg] of [['forged', forged, /signature does not verify/], ['self-signed', selfSigned, /signature does not verify/], ['expired', expired, /expired at/], ['another cluster\'s', foreign, /signature|issued by/]] as const) {
      const res = await call(cluster, 'GET', TRUST_BUNDLE_PATH, t);
      assert.equal(res.status, 401, what);
      assert.match(String(res.body.message), msg, what);
    }
    // Deleting the ServiceAccount ends its tokens; a re-created one does not revive them.
    await admin.create(SA, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'temp', namespace: 'shop' } });
    const temp = (await admin.requestToken('shop', 'temp')).token;
    assert.equal((await call(cluster, 'GET', TRUST_BUNDLE_PATH, temp)).status, 200);
    await admin.delete(SA, 'temp', 'shop');
    const gone = await call(cluster, 'GET', TRUST_BUNDLE_PATH, temp);
    assert.equal(gone.status, 401);
    assert.match(String(gone.body.message), /service account shop\/temp of this token no longer exists/);
    await admin.create(SA, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'temp', namespace: 'shop' } });
    assert.match(String((await call(cluster, 'GET', TRUST_BUNDLE_PATH, temp)).body.message), /deleted and created again/);
  });

  it('intermediate exchange over the API between two clusters: csr → the control plane signs → install; a mismatched certificate is refused', async () => {
    const cp = await startCluster({ name: 'control-plane', dataDir: null, gatewayPort: 0 });
    const member = await startCluster({ name: 'cluster-3', dataDir: null, gatewayPort: 0 });
    const m = new ApiClient(member.endpoint);
    try {
      const before = await m.intermediateInfo();
      assert.equal(before.joined, false);
      assert.equal(before.rotationDue, false);
      const csr = await m.intermediateCsr('crossmesh.local');
      // A chain for another key (cluster-1's CSR) is refused, nothing changes.
      const strangerChain = await cp.pki.signIntermediateCsr(await admin.intermediateCsr('crossmesh.local'), 'cluster-3');
      await assert.rejects(m.installIntermediate(strangerChain), rejectsWith('CM_ERR_CA_INVALID', /not for the key of this cluster's pending CSR/));
      const refused = await call(member, 'PUT', '/apis/identity.crossmesh.io/v1/intermediate', member.token, { certificateChain: strangerChain });
      assert.equal(refused.status, 400);
      assert.deepEqual(await m.intermediateInfo(), before);
      await assert.rejects(m.intermediateCsr('other.mesh'), rejectsWith('CM_ERR_CA_INVALID', /trust domain/));
      await assert.rejects(m.raw('PUT', '/apis/identity.crossmesh.io/v1/intermediate', { chain: [] }), rejectsWith('CM_ERR_BAD_REQUEST', /certificateChain/));

      const info = await m.installIntermediate(await cp.pki.signIntermediateCsr(csr, 'cluster-3'));
      assert.equal(info.joined, true);
      assert.equal(info.rootFingerprint, cp.pki.rootFingerprint);
      assert.match(info.issuer, /crossmesh root CA/);
      const bundle = await m.trustBundle();
      assert.deepEqual(bundle.roots.map((r) => r.trim()), [cp.ca.trim(), member.ca.trim()]);
      // The API keeps its own serving certificate (clients keep trusting the member's own root).
      const again = new ApiClient(member.endpoint);
      try {
        assert.ok((await again.list(NS)).items.length >= 1);
      } finally {
        await again.close();
      }
    } finally {
      await m.close();
      await member.close();
      await cp.close();
    }
  });

  it('discovery lists the TokenRequest subresource; the identity API is non-resource paths, not a discovered group', async () => {
    const core = (await admin.raw('GET', '/api/v1')) as { resources: { name: string; kind: string }[] };
    assert.ok(core.resources.some((r) => r.name === 'serviceaccounts/token' && r.kind === 'TokenRequest'));
    const groups = (await admin.raw('GET', '/apis')) as { groups: { name: string }[] };
    assert.ok(!groups.groups.some((g) => g.name === 'identity.crossmesh.io'), 'kubectl would fail on a group without resources');
    await assert.rejects(admin.raw('GET', '/apis/identity.crossmesh.io/v1/widgets'), rejectsWith('CM_ERR_NOT_FOUND', /the identity API serves/));
  });
});
