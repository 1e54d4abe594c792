import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { CrossmeshError, type ErrorCode } from '../errors.js';
import { generateRootCa, issueIntermediate, issueServingCert } from './ca.js';
import { ClusterPki, validateSuppliedCaFiles } from './cluster-pki.js';
import { createWorkloadCsr } from './csr.js';
import { PKI_FILES } from './pki-settings.js';
import { signProof } from './pop.js';
import { verifyPeerChain } from './verify.js';

const CART = 'spiffe://crossmesh.local/ns/shop/sa/cart';

function rejectsWith(code: ErrorCode, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, `expected a CrossmeshError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

function keyRequest(spiffeId: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  return { privateKey, body: { publicKey: publicKeyPem, spiffeId, proof: signProof(spiffeId, publicKeyPem, privateKey) } };
}

describe('ClusterPki', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'crossmesh-pki-'));
  const opened: ClusterPki[] = [];
  const open = async (dir: string | null, opts: Parameters<typeof ClusterPki.open>[1]) => {
    const p = await ClusterPki.open(dir, opts);
    opened.push(p);
    return p;
  };
  after(() => {
    for (const p of opened) p.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('in memory: one root, a trust bundle, a serving certificate for the loopback names and the host', async () => {
    const pki = await open(null, { clusterName: 'cluster-1', hosts: ['10.1.2.3', 'api.example.org'] });
    assert.equal(pki.trustDomain, 'crossmesh.local');
    assert.equal(pki.mode, 'mtls');
    assert.equal(pki.workloadTtlSeconds, 86400);
    assert.deepEqual(pki.roots().map((r) => r.trim()), [pki.rootPem.trim()]);
    const bundle = pki.trustBundle();
    assert.equal(bundle.generation, pki.generation());
    assert.equal(bundle.workloadCertTtlSeconds, 86400);
    const serving = new X509Certificate(pki.servingCredentials().certPem);
    assert.equal(serving.subjectAltName, 'DNS:localhost, DNS:api.example.org, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3');
    assert.ok(serving.checkIssued(new X509Certificate(pki.rootPem)));
    const info = pki.intermediateInfo();
    assert.equal(info.joined, false);
    assert.equal(info.rotationDue, false);
    assert.equal(info.rootFingerprint, pki.rootFingerprint);
    assert.match(info.subject, /CN=crossmesh cluster cluster-1 CA/);
  });

  it('issues workload certificates from a CSR and from the node:crypto form, for the entitled identity only', async () => {
    const pki = await open(null, { clusterName: 'cluster-1', workloadTtlSeconds: 10 });
    const { csrPem } = await createWorkloadCsr(CART);
    const a = await pki.issueWorkload(csrPem, CART);
    assert.equal(a.spiffeId, CART);
    assert.equal(a.certificateChain.length, 2);
    const life = a.notAfter.getTime() - Date.now();
    assert.ok(life > 8000 && life <= 10_000, String(life));
    assert.equal(verifyPeerChain(a.certificateChain, pki.roots()[0]).spiffeId, CART);

    const { body } = keyRequest(CART);
    const b = await pki.issueWorkloadFromRequest(body, CART);
    assert.equal(verifyPeerChain(b.certificateChain, pki.roots()[0]).spiffeId, CART);
    assert.equal(new X509Certificate(b.certificateChain[0]).publicKey.export({ type: 'spki', format: 'pem' }), body.publicKey);

    await assert.rejects(pki.issueWorkloadFromRequest(body, 'spiffe://crossmesh.local/ns/shop/sa/admin'), rejectsWith('CM_ERR_CSR_REFUSED', /asks for spiffe:\/\/crossmesh\.local\/ns\/shop\/sa\/cart, but the requester is entitled to spiffe:\/\/crossmesh\.local\/ns\/shop\/sa\/admin only/));
    const other = keyRequest(CART);
    await assert.rejects(pki.issueWorkloadFromRequest({ ...body, proof: other.body.proof }, CART), rejectsWith('CM_ERR_CSR_REFUSED', /proof is not a signature/));
    await assert.rejects(pki.issueWorkloadFromRequest({ ...body, proof: '' }, CART), rejectsWith('CM_ERR_CSR_REFUSED', /proof/));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await assert.rejects(pki.issueWorkloadFromRequest({ publicKey: rsaPem, spiffeId: CART, proof: signProof(CART, rsaPem, rsa.privateKey) }, CART), rejectsWith('CM_ERR_CSR_REFUSED', /rsa, crossmesh needs ECDSA P-256/));
    await assert.rejects(pki.issueWorkloadFromRequest({ hello: 1 }, CART), rejectsWith('CM_ERR_BAD_REQUEST', /"csr"/));
    const { csrPem: adminCsr } = await createWorkloadCsr('spiffe://crossmesh.local/ns/shop/sa/admin');
    await assert.rejects(pki.issueWorkload(adminCsr, CART), rejectsWith('CM_ERR_CSR_REFUSED', /asks for .*sa\/admin.*entitled to .*sa\/cart/));
  });

  it('persists under pki/ (0700, keys 0600) and keeps root, mesh CA and settings across a restart', async () => {
    const dir = join(tmp, 'persist', 'pki');
    const first = await open(dir, { clusterName: 'cluster-1', trustDomain: 'example.org', mode: 'plaintext', workloadTtlSeconds: 60 });
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of [PKI_FILES.rootKey, PKI_FILES.meshCaKey]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    assert.equal(readFileSync(join(dir, PKI_FILES.ca), 'utf8').trim(), first.rootPem.trim());
    first.close();
    const again = await open(dir, { clusterName: 'cluster-1' });
    assert.equal(again.rootFingerprint, first.rootFingerprint);
    assert.equal(again.trustDomain, 'example.org');
    assert.equal(again.mode, 'plaintext');
    assert.equal(again.workloadTtlSeconds, 60);
    assert.deepEqual(again.intermediateInfo(), first.intermediateInfo());
    // The same settings given again are fine; other ones are refused, naming the flag and both values.
    await open(dir, { clusterName: 'cluster-1', trustDomain: 'example.org', mode: 'plaintext', workloadTtlSeconds: 60 });
    await assert.rejects(ClusterPki.open(dir, { clusterName: 'cluster-1', trustDomain: 'other.org' }), rejectsWith('CM_ERR_CONFIG', /--trust-domain other\.org: the cluster's trust domain is "example\.org".*down --purge/));
    await assert.rejects(ClusterPki.open(dir, { clusterName: 'cluster-1', mode: 'mtls' }), rejectsWith('CM_ERR_CONFIG', /mesh mode is "plaintext"/));
    await assert.rejects(ClusterPki.open(dir, { clusterName: 'cluster-1', workloadTtlSeconds: 61 }), rejectsWith('CM_ERR_CONFIG', /--workload-cert-ttl 61s/));
    const mine = await generateRootCa({ trustDomain: 'example.org' });
    await assert.rejects(ClusterPki.open(dir, { clusterName: 'cluster-1', caCertPem: mine.certPem, caKeyPem: mine.keyPem }), rejectsWith('CM_ERR_CONFIG', /--ca-cert: the cluster already has a root CA it generated/));
  });

  it('a supplied root becomes the cluster root; one that cannot sign an intermediate is refused', async () => {
    const mine = await generateRootCa({ trustDomain: 'corp.example' });
    const pki = await open(join(tmp, 'supplied', 'pki'), { clusterName: 'control-plane', caCertPem: mine.certPem, caKeyPem: mine.keyPem });
    assert.equal(pki.rootPem.trim(), mine.certPem.trim());
    assert.equal(pki.trustDomain, 'corp.example');
    pki.close();
    const again = await open(join(tmp, 'supplied', 'pki'), { clusterName: 'control-plane', caCertPem: mine.certPem, caKeyPem: mine.keyPem });
    assert.equal(again.rootFingerprint, pki.rootFingerprint);
    const inter = await issueIntermediate(mine, { clusterName: 'x' });
    await assert.rejects(ClusterPki.open(null, { clusterName: 'c', caCertPem: [inter.certPem, mine.certPem].join('\n'), caKeyPem: inter.keyPem }), rejectsWith('CM_ERR_CA_INVALID', /pathLen 0/));
    await assert.rejects(ClusterPki.open(null, { clusterName: 'c', caCertPem: mine.certPem, caKeyPem: mine.keyPem, trustDomain: 'crossmesh.local' }), rejectsWith('CM_ERR_CA_INVALID', /trust domain "corp\.example"/));
  });

  it('--ca-cert/--ca-key files: each problem names the file and what is wrong', async () => {
    const root = await generateRootCa();
    const other = await generateRootCa();
    const serving = await issueServingCert(root, { dnsNames: ['x'] });
    const f = (name: string, text: string) => {
      const p = join(tmp, name);
      writeFileSync(p, text);
      return p;
    };
    const cert = f('ca.crt', root.certPem);
    const key = f('ca.key', root.keyPem);
    assert.equal((await validateSuppliedCaFiles(cert, key)).trustDomain, 'crossmesh.local');
    await assert.rejects(validateSuppliedCaFiles(join(tmp, 'missing.crt'), key), rejectsWith('CM_ERR_CA_INVALID', /--ca-cert .*missing\.crt: can't read it \(ENOENT\)/));
    await assert.rejects(validateSuppliedCaFiles(f('garbage.crt', 'hello'), key), rejectsWith('CM_ERR_CA_INVALID', /--ca-cert .*garbage\.crt: .*no PEM certificate/));
    await assert.rejects(validateSuppliedCaFiles(cert, f('garbage.key', 'hello')), rejectsWith('CM_ERR_CA_INVALID', /--ca-key .*garbage\.key: not a readable PEM private key/));
    await assert.rejects(validateSuppliedCaFiles(cert, f('other.key', other.keyPem)), rejectsWith('CM_ERR_CA_INVALID', /--ca-cert .*ca\.crt and --ca-key .*other\.key: .*not this certificate's key/));
    await assert.rejects(validateSuppliedCaFiles(f('leaf.crt', serving.certPem), f('leaf.key', serving.keyPem)), rejectsWith('CM_ERR_CA_INVALID', /--ca-cert .*leaf\.crt: .*is not a CA certificate/));
  });

  it('intermediate round trip: member CSR → control plane signs → member installs; the mesh root joins the trust bundle', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const memberDir = join(tmp, 'member', 'pki');
    const member = await open(memberDir, { clusterName: 'cluster-1' });
    const ownRoot = member.rootPem;
    const generationBefore = member.generation();
    let changes = 0;
    member.onChange(() => changes++);
    const csr = await member.createIntermediateCsr('crossmesh.local');
    assert.equal(statSync(join(memberDir, PKI_FILES.pendingKey)).mode & 0o777, 0o600);
    // Asked again before an install, the same key (a retried exchange still matches).
    const csr2 = await member.createIntermediateCsr('crossmesh.local');
    const chain = await cp.signIntermediateCsr(csr2, 'cluster-1');
    assert.equal(chain.length, 2);
    const intermediate = new X509Certificate(chain[0]);
    assert.match(intermediate.subject, /CN=crossmesh cluster cluster-1 CA/);
    assert.ok(csr.length > 0);
    const info = await member.installIntermediate(chain);
    assert.equal(info.joined, true);
    assert.equal(info.rootFingerprint, cp.rootFingerprint);
    assert.equal(changes, 1);
    assert.notEqual(member.generation(), generationBefore);
    assert.deepEqual(member.roots().map((r) => r.trim()), [cp.rootPem.trim(), ownRoot.trim()]);
    // Its workload certificates now verify against the mesh root.
    const { csrPem } = await createWorkloadCsr(CART);
    const issued = await member.issueWorkload(csrPem, CART);
    assert.equal(verifyPeerChain(issued.certificateChain, cp.rootPem).spiffeId, CART);
    assert.throws(() => verifyPeerChain(issued.certificateChain, ownRoot), /another CA/);
    // Kept across a restart.
    member.close();
    const again = await open(memberDir, { clusterName: 'cluster-1' });
    assert.deepEqual(again.intermediateInfo(), info);
    assert.equal(again.rootPem, ownRoot);
  });

  it('refuses a mismatched or foreign intermediate, and changes nothing', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'cluster-1' });
    const before = member.intermediateInfo();
    await assert.rejects(member.installIntermediate(await cp.signIntermediateCsr((await (await open(null, { clusterName: 'cluster-1' })).createIntermediateCsr('crossmesh.local')), 'cluster-1')), rejectsWith('CM_ERR_CA_INVALID', /no pending intermediate key/));
    await member.createIntermediateCsr('crossmesh.local');
    // A certificate for another member's key.
    const stranger = await open(null, { clusterName: 'cluster-2' });
    const foreign = await cp.signIntermediateCsr(await stranger.createIntermediateCsr('crossmesh.local'), 'cluster-2');
    await assert.rejects(member.installIntermediate(foreign), rejectsWith('CM_ERR_CA_INVALID', /not for the key of this cluster's pending CSR/));
    // Without the root, or with a root that did not sign it.
    const mine = await cp.signIntermediateCsr(await member.createIntermediateCsr('crossmesh.local'), 'cluster-1');
    await assert.rejects(member.installIntermediate([mine[0]]), rejectsWith('CM_ERR_CA_INVALID', /at least the intermediate and the root/));
    const otherRoot = await generateRootCa();
    await assert.rejects(member.installIntermediate([mine[0], otherRoot.certPem]), rejectsWith('CM_ERR_CA_INVALID', /not signed by the next certificate/));
    await assert.rejects(member.installIntermediate(['garbage', mine[1]]), rejectsWith('CM_ERR_CA_INVALID', /certificateChain/));
    // A mesh of another trust domain.
    const otherTd = await open(null, { clusterName: 'control-plane', trustDomain: 'other.mesh' });
    await assert.rejects(otherTd.signIntermediateCsr(await member.createIntermediateCsr('crossmesh.local'), 'cluster-1'), rejectsWith('CM_ERR_CSR_REFUSED', /trust domain spiffe:\/\/other\.mesh only/));
    await assert.rejects(member.createIntermediateCsr('other.mesh'), rejectsWith('CM_ERR_CA_INVALID', /trust domain "crossmesh\.local", the CSR was asked for "other\.mesh"/));
    assert.deepEqual(member.intermediateInfo(), before);
    // The right one still installs afterwards.
    assert.equal((await member.installIntermediate(mine)).joined, true);
  });

  it('renews the serving certificate at 2/3 of its life', async () => {
    const pki = await open(null, { clusterName: 'cluster-1', servingTtlSeconds: 3 });
    const first = pki.servingCredentials();
    // The renewal timer is unref'd (it never keeps a process alive): this test's own timer does.
    const keepAlive = setTimeout(() => undefined, 10_000);
    const renewed = await new Promise<{ certPem: string }>((resolve) => pki.onServingChange(resolve));
    clearTimeout(keepAlive);
    assert.notEqual(renewed.certPem, first.certPem);
    assert.equal(pki.servingCredentials().certPem, renewed.certPem);
  });

  it('localWorkload: a key and certificate made in-process', async () => {
    const pki = await open(null, { clusterName: 'cluster-1' });
    const gw = await pki.localWorkload('spiffe://crossmesh.local/ns/crossmesh-system/sa/crossmesh-gateway');
    assert.match(gw.keyPem, /BEGIN PRIVATE KEY/);
    assert.equal(verifyPeerChain(gw.certificateChain, pki.roots()[0]).serviceAccount, 'crossmesh-gateway');
  });
});
