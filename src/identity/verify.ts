/**
 * Checking a peer outside a TLS handshake: its certificate chain against the trust bundle at a
 * given time, and the SPIFFE ID and cluster it proves, with errors that say which certificate
 * failed and why (signatures are checked with node:crypto's X509Certificate, synchronously).
 * On the data path OpenSSL verifies the chain in the handshake and mesh-tls.ts reads the
 * identity from node's PeerCertificate: this module loads @peculiar/x509, which a sidecar must
 * not (+21 MB, ~190 ms).
 */
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { CrossmeshError } from '../errors.js';
import { clusterOfCaName } from './mesh-tls.js';
import { DEFAULT_TRUST_DOMAIN, formatWorkloadId, parseSpiffeId, parseWorkloadId, type WorkloadIdentity } from './spiffe.js';
import { canSignCertificates, isCaCertificate, parseCertificate, uriSans, x509 } from './x509.js';

/** A verified peer: its workload identity, the SPIFFE ID it was read from and the cluster whose CA issued it. */
export interface VerifiedPeer extends WorkloadIdentity {
  spiffeId: string;
  cluster: string;
  notAfter: Date;
}

type CertInput = string | Uint8Array | x509.X509Certificate;

function toCert(c: CertInput, what: string): x509.X509Certificate {
  return c instanceof x509.X509Certificate ? c : parseCertificate(typeof c === 'string' ? c : new Uint8Array(c), 'CM_ERR_CERT_INVALID', what);
}

function certInvalid(message: string, cause?: unknown): CrossmeshError {
  return new CrossmeshError('CM_ERR_CERT_INVALID', message, cause === undefined ? {} : { cause });
}

/** The trust domain a root (or any mesh CA) certificate declares in its `spiffe://<td>` SAN; the default without one. */
export function trustDomainOf(caCert: CertInput): string {
  const cert = toCert(caCert, 'CA certificate');
  const declared = uriSans(cert).find((u) => u.startsWith('spiffe://'));
  return declared === undefined ? DEFAULT_TRUST_DOMAIN : parseSpiffeId(declared).trustDomain;
}

/**
 * The workload identity a leaf certificate carries: exactly one URI SAN, a crossmesh workload
 * SPIFFE ID in `trustDomain`. Does not check the chain (see `verifyPeerChain`).
 */
export function spiffeIdOf(leaf: CertInput, trustDomain: string): WorkloadIdentity & { spiffeId: string } {
  const cert = toCert(leaf, 'peer certificate');
  let uris: string[];
  try {
    uris = uriSans(cert);
  } catch (err) {
    throw certInvalid(`peer certificate "${cert.subject}" has an unreadable subjectAltName`, err);
  }
  if (uris.length === 0) throw certInvalid(`peer certificate "${cert.subject}" has no SPIFFE ID (no URI subjectAltName)`);
  if (uris.length > 1) throw certInvalid(`peer certificate "${cert.subject}" has ${uris.length} URI subjectAltNames; an X.509-SVID has exactly one`);
  let id: WorkloadIdentity;
  try {
    id = parseWorkloadId(uris[0]);
  } catch (err) {
    throw certInvalid(`peer certificate "${cert.subject}" has an invalid SPIFFE ID: ${(err as Error).message}`, err);
  }
  if (id.trustDomain !== trustDomain) {
    throw certInvalid(`peer certificate's SPIFFE ID ${uris[0]} is from trust domain "${id.trustDomain}", not this mesh's "${trustDomain}"`);
  }
  return { ...id, spiffeId: formatWorkloadId(id) };
}

function checkTime(cert: x509.X509Certificate, now: Date, role: string): void {
  if (now < cert.notBefore) throw certInvalid(`${role} "${cert.subject}" is not valid before ${cert.notBefore.toISOString()} (now ${now.toISOString()})`);
  if (now > cert.notAfter) throw certInvalid(`${role} "${cert.subject}" expired at ${cert.notAfter.toISOString()} (now ${now.toISOString()})`);
}

/**
 * Verifies `chain` (leaf first, then intermediates; a copy of a root at its end is ignored) up
 * to one of `roots` (the trust bundle; one PEM is a bundle of one) at `now`, and returns the
 * leaf's identity and the cluster whose intermediate issued it. Refused (CM_ERR_CERT_INVALID):
 * any certificate outside its validity window, a link whose signature or issuer name does not
 * match, an intermediate that is not a CA or exceeds a pathLen, a chain that ends at no root of
 * the bundle, a leaf that is a CA, a leaf without one valid SPIFFE ID of the root's trust
 * domain, a leaf not issued by a crossmesh cluster CA (`crossmesh cluster <name> CA`).
 */
export function verifyPeerChain(chain: readonly CertInput[], roots: string | readonly string[], opts: { now?: Date; trustDomain?: string } = {}): VerifiedPeer {
  const now = opts.now ?? new Date();
  const bundle = (typeof roots === 'string' ? [roots] : roots).map((r, i) => toCert(r, `mesh root certificate ${i + 1}`));
  if (bundle.length === 0) throw certInvalid('the trust bundle is empty: no root to verify the peer against');
  const rootDers = bundle.map((r) => Buffer.from(r.rawData));
  const certs = chain
    .map((c, i) => toCert(c, i === 0 ? 'peer certificate' : `peer chain certificate ${i + 1}`))
    .filter((c, i) => i === 0 || !rootDers.some((d) => Buffer.from(c.rawData).equals(d)));
  if (certs.length === 0) throw certInvalid('the peer sent no certificate');
  const leaf = certs[0];
  if (isCaCertificate(leaf)) throw certInvalid(`peer certificate "${leaf.subject}" is a CA certificate, not a workload's`);
  const nodeRoots = rootDers.map((d) => new NodeX509Certificate(d));
  let root: x509.X509Certificate | undefined;
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i];
    const role = i === 0 ? 'peer certificate' : 'peer intermediate CA';
    checkTime(cert, now, role);
    if (i > 0) {
      if (!isCaCertificate(cert) || !canSignCertificates(cert)) throw certInvalid(`${role} "${cert.subject}" is not a CA that may sign certificates`);
      const pathLen = cert.getExtension(x509.BasicConstraintsExtension)?.pathLength;
      if (pathLen !== undefined && i - 1 > pathLen) throw certInvalid(`${role} "${cert.subject}" allows ${pathLen} CAs below it, the chain has ${i - 1}`);
    }
    const node = new NodeX509Certificate(Buffer.from(cert.rawData));
    if (i < certs.length - 1) {
      const issuer = new NodeX509Certificate(Buffer.from(certs[i + 1].rawData));
      if (!node.checkIssued(issuer) || !node.verify(issuer.publicKey)) {
        throw certInvalid(`${role} "${cert.subject}" is not signed by the next certificate in the chain, "${certs[i + 1].subject}"`);
      }
      continue;
    }
    const r = nodeRoots.findIndex((nr) => node.checkIssued(nr) && node.verify(nr.publicKey));
    if (r === -1) {
      const names = bundle.map((b) => `"${b.subject}"`).join(', ');
      throw certInvalid(`${role} "${cert.subject}" (issuer "${cert.issuer}") is not issued by this mesh's root${bundle.length > 1 ? 's' : ''} ${names}: it comes from another CA`);
    }
    root = bundle[r];
  }
  checkTime(root!, now, 'mesh root certificate');
  const rootPathLen = root!.getExtension(x509.BasicConstraintsExtension)?.pathLength;
  if (rootPathLen !== undefined && certs.length - 1 > rootPathLen) throw certInvalid(`the mesh root allows ${rootPathLen} intermediate CAs, the chain has ${certs.length - 1}`);
  const id = spiffeIdOf(leaf, opts.trustDomain ?? trustDomainOf(root!));
  const issuerCn = leaf.issuerName.getField('CN')[0] ?? '';
  const cluster = clusterOfCaName(issuerCn);
  if (cluster === undefined) throw certInvalid(`peer certificate was issued by ${JSON.stringify(issuerCn)}, not by a crossmesh cluster CA ("crossmesh cluster <name> CA")`);
  return { ...id, cluster, notAfter: leaf.notAfter };
}

/** When a certificate should be renewed: at 2/3 of its lifetime, leaving 1/3 for retries. */
export function rotationTime(cert: CertInput): Date {
  const c = toCert(cert, 'certificate');
  const start = c.notBefore.getTime();
  return new Date(start + ((c.notAfter.getTime() - start) * 2) / 3);
}

/** True once 2/3 of the certificate's lifetime has passed at `now`. */
export function rotationDue(cert: CertInput, now: Date = new Date()): boolean {
  return now.getTime() >= rotationTime(cert).getTime();
}
