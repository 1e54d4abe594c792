import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CrossmeshError, type ErrorCode } from '../errors.js';
import { generateRootCa, issueIntermediate, issueServingCert, issueWorkloadCert, loadCa } from './ca.js';
import { createWorkloadCsr } from './csr.js';
import { rotationDue, rotationTime, spiffeIdOf, verifyPeerChain } from './verify.js';
import { EC_P256, generateKeyPair, x509 } from './x509.js';

const CART = 'spiffe://crossmesh.local/ns/shop/sa/cart';
const HOUR = 3_600_000;

function rejectsWith(code: ErrorCode, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, `expected a CrossmeshError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('CA hierarchy', async () => {
  const root = await generateRootCa({ trustDomain: 'crossmesh.local' });
  const east = await issueIntermediate(root, { clusterName: 'east' });

  it('root: self-signed P-256 CA, 10 years, carrying its trust domain', async () => {
    assert.ok(await root.cert.isSelfSigned());
    const years = (root.cert.notAfter.getTime() - root.cert.notBefore.getTime()) / (365 * 24 * HOUR);
    assert.ok(years > 9.9 && years < 10.1, String(years));
    assert.equal((root.cert.publicKey.algorithm as EcKeyAlgorithm).namedCurve, 'P-256');
    assert.deepEqual(root.chainPems, []);
  });

  it('intermediate: pathLen 0, 1 year, chain = itself', async () => {
    assert.equal(east.cert.getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
    const days = (east.cert.notAfter.getTime() - east.cert.notBefore.getTime()) / (24 * HOUR);
    assert.ok(days > 364.9 && days < 365.1, String(days));
    assert.ok(await east.cert.verify({ publicKey: root.cert.publicKey, signatureOnly: true }));
    assert.equal(east.chainPems.length, 1);
  });

  it('workload cert from a CSR: the entitled SPIFFE ID, 24 h, chain leaf + intermediate verifying to the root', async () => {
    const { csrPem, keyPem } = await createWorkloadCsr(CART);
    const issued = await issueWorkloadCert(east, { csrPem, spiffeId: CART });
    assert.equal(issued.notAfter.getTime() - issued.notBefore.getTime(), 24 * HOUR + 60_000);
    assert.ok(keyPem.includes('BEGIN PRIVATE KEY'));
    const chain = issued.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    assert.equal(chain.length, 2);
    const peer = verifyPeerChain(chain, root.rootPem);
    assert.equal(peer.spiffeId, CART);
    assert.equal(peer.namespace, 'shop');
    assert.equal(peer.serviceAccount, 'cart');
  });

  it('a CSR without a SAN gets the entitled identity', async () => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'O=crossmesh', keys, signingAlgorithm: EC_P256 });
    const issued = await issueWorkloadCert(east, { csrPem: csr.toString('pem'), spiffeId: CART });
    assert.equal(spiffeIdOf(issued.certPem, 'crossmesh.local').spiffeId, CART);
  });

  it('refuses a CSR asking for another identity, or for an extra name', async () => {
    const { csrPem } = await createWorkloadCsr('spiffe://crossmesh.local/ns/shop/sa/admin');
    await assert.rejects(issueWorkloadCert(east, { csrPem, spiffeId: CART }), rejectsWith('CM_ERR_CSR_REFUSED', /asks for spiffe:\/\/crossmesh\.local\/ns\/shop\/sa\/admin.*entitled to spiffe:\/\/crossmesh\.local\/ns\/shop\/sa\/cart/));
    const keys = await generateKeyPair();
    const extra = await x509.Pkcs10CertificateRequestGenerator.create({
      keys,
      signingAlgorithm: EC_P256,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: CART }, { type: 'dns', value: 'api.example.com' }])],
    });
    await assert.rejects(issueWorkloadCert(east, { csrPem: extra.toString('pem'), spiffeId: CART }), rejectsWith('CM_ERR_CSR_REFUSED', /dns name "api\.example\.com"/));
  });

  it('refuses a CSR whose signature does not verify, and one that is not a CSR', async () => {
    const { csrPem } = await createWorkloadCsr(CART);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const der = new Uint8Array(csr.rawData);
    // Flip a bit inside the signature (the last bytes of the DER).
    der[der.length - 5] ^= 0x01;
    const tampered = x509.PemConverter.encode(der.buffer, 'CERTIFICATE REQUEST');
    await assert.rejects(issueWorkloadCert(east, { csrPem: tampered, spiffeId: CART }), rejectsWith('CM_ERR_CSR_REFUSED', /signature/));
    await assert.rejects(issueWorkloadCert(east, { csrPem: 'not a csr', spiffeId: CART }), rejectsWith('CM_ERR_CSR_REFUSED', /not a readable/));
  });

  it('refuses to issue an identity of another trust domain', async () => {
    const { csrPem } = await createWorkloadCsr('spiffe://other.mesh/ns/shop/sa/cart');
    await assert.rejects(issueWorkloadCert(east, { csrPem, spiffeId: 'spiffe://other.mesh/ns/shop/sa/cart' }), rejectsWith('CM_ERR_IDENTITY_INVALID', /trust domain "crossmesh\.local"/));
  });

  it('serving cert: DNS and IP SANs, verifies as a chain to the root', async () => {
    const s = await issueServingCert(east, { dnsNames: ['localhost', 'east.crossmesh.local'], ips: ['127.0.0.1'], ttlDays: 30 });
    const cert = new x509.X509Certificate(s.certPem);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    assert.deepEqual(san?.names.toJSON(), [{ type: 'dns', value: 'localhost' }, { type: 'dns', value: 'east.crossmesh.local' }, { type: 'ip', value: '127.0.0.1' }]);
    assert.ok(s.keyPem.includes('PRIVATE KEY'));
    assert.ok(await cert.verify({ publicKey: east.cert.publicKey, signatureOnly: true }));
  });

  it('a certificate never outlives its issuer', async () => {
    const shortRoot = await generateRootCa({ validityDays: 2 });
    const inter = await issueIntermediate(shortRoot, { clusterName: 'east' });
    assert.equal(inter.cert.notAfter.getTime(), shortRoot.cert.notAfter.getTime());
  });
});

describe('loadCa', async () => {
  const root = await generateRootCa({ trustDomain: 'example.org' });
  const east = await issueIntermediate(root, { clusterName: 'east' });

  it('loads a root (trust domain from its SAN) and an intermediate with its chain, and they issue', async () => {
    const loadedRoot = await loadCa(root.certPem, root.keyPem);
    assert.equal(loadedRoot.trustDomain, 'example.org');
    const loadedEast = await loadCa([east.certPem, root.certPem].join('\n'), east.keyPem);
    assert.equal(loadedEast.rootPem.trim(), root.certPem.trim());
    const { csrPem } = await createWorkloadCsr('spiffe://example.org/ns/a/sa/b');
    const issued = await issueWorkloadCert(loadedEast, { csrPem, spiffeId: 'spiffe://example.org/ns/a/sa/b' });
    assert.equal(verifyPeerChain([issued.chainPem.split(/(?<=-----END CERTIFICATE-----)\n/)[0], east.certPem], root.rootPem).spiffeId, 'spiffe://example.org/ns/a/sa/b');
  });

  it('refuses a non-CA certificate', async () => {
    const s = await issueServingCert(east, { dnsNames: ['localhost'] });
    await assert.rejects(loadCa(s.certPem, s.keyPem), rejectsWith('CM_ERR_CA_INVALID', /is not a CA certificate/));
  });

  it('refuses a key that is not the certificate’s', async () => {
    const other = await generateRootCa();
    await assert.rejects(loadCa(root.certPem, other.keyPem), rejectsWith('CM_ERR_CA_INVALID', /not this certificate's key/));
  });

  it('refuses an expired CA, an intermediate without its root, garbage', async () => {
    await assert.rejects(loadCa(root.certPem, root.keyPem, { now: new Date(Date.now() + 11 * 365 * 24 * HOUR) }), rejectsWith('CM_ERR_CA_INVALID', /expired at/));
    await assert.rejects(loadCa(east.certPem, east.keyPem), rejectsWith('CM_ERR_CA_INVALID', /not a self-signed root/));
    await assert.rejects(loadCa('hello', root.keyPem), rejectsWith('CM_ERR_CA_INVALID', /no PEM certificate/));
    await assert.rejects(loadCa(root.certPem, 'hello'), rejectsWith('CM_ERR_CA_INVALID', /not a readable PEM key/));
  });

  it('refuses a configured trust domain other than the one the CA declares', async () => {
    await assert.rejects(loadCa(root.certPem, root.keyPem, { trustDomain: 'crossmesh.local' }), rejectsWith('CM_ERR_CA_INVALID', /trust domain "example\.org"/));
  });
});

describe('verifyPeerChain and rotation', async () => {
  const root = await generateRootCa();
  const east = await issueIntermediate(root, { clusterName: 'east' });
  const otherRoot = await generateRootCa();
  const otherEast = await issueIntermediate(otherRoot, { clusterName: 'east' });
  const { csrPem } = await createWorkloadCsr(CART);

  it('refuses an expired leaf, naming when it expired', async () => {
    const issued = await issueWorkloadCert(east, { csrPem, spiffeId: CART, now: new Date(Date.now() - 48 * HOUR) });
    assert.throws(() => verifyPeerChain([issued.certPem, east.certPem], root.rootPem), rejectsWith('CM_ERR_CERT_INVALID', /peer certificate .* expired at/));
  });

  it('refuses a chain from another root', async () => {
    const issued = await issueWorkloadCert(otherEast, { csrPem, spiffeId: CART });
    assert.throws(() => verifyPeerChain([issued.certPem, otherEast.certPem], root.rootPem), rejectsWith('CM_ERR_CERT_INVALID', /not issued by this mesh's root/));
  });

  it('refuses a leaf without a SPIFFE ID', async () => {
    const s = await issueServingCert(east, { dnsNames: ['localhost'] });
    assert.throws(() => verifyPeerChain([s.certPem, east.certPem], root.rootPem), rejectsWith('CM_ERR_CERT_INVALID', /no SPIFFE ID/));
  });

  it('rotationDue at 2/3 of the lifetime', async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const issued = await issueWorkloadCert(east, { csrPem, spiffeId: CART, ttlHours: 24, now });
    const start = issued.notBefore.getTime();
    const life = issued.notAfter.getTime() - start;
    assert.equal(rotationTime(issued.certPem).getTime(), start + (life * 2) / 3);
    assert.equal(rotationDue(issued.certPem, new Date(start + (life * 2) / 3 - 1000)), false);
    assert.equal(rotationDue(issued.certPem, new Date(start + (life * 2) / 3)), true);
    assert.equal(rotationDue(issued.certPem, new Date(start + life / 2)), false);
  });
});
