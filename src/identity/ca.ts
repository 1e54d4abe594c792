/**
 * The mesh's certificate authorities. One root per mesh (the control plane's: generated on first
 * start, or the user's, loaded with `loadCa`), one intermediate per member cluster (`issueIntermediate`,
 * pathLen 0: it signs leaves only), and the leaves an intermediate signs: workload certificates
 * for sidecars from a CSR (`issueWorkloadCert`, the private key stays with the sidecar) and
 * serving certificates for a cluster's API (`issueServingCert`).
 *
 * Every certificate's validity ends no later than its issuer's: a chain is only valid while all
 * of it is, so a later end would only promise what the chain can't keep. Start times are set one
 * minute back so that a peer whose clock is slightly behind accepts a certificate issued just now.
 */
import { X509Certificate as NodeX509Certificate, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { CrossmeshError } from '../errors.js';
import { DEFAULT_TRUST_DOMAIN, formatWorkloadId, parseSpiffeId, parseWorkloadId, trustDomainId, validateTrustDomain } from './spiffe.js';
import {
  EC_P256,
  canSignCertificates,
  generateKeyPair,
  importSigningKey,
  isCaCertificate,
  parseCertificateBundle,
  privateKeyToPem,
  sanNames,
  uriSans,
  x509,
} from './x509.js';

export const ROOT_VALIDITY_DAYS = 3650;
export const INTERMEDIATE_VALIDITY_DAYS = 365;
export const WORKLOAD_TTL_HOURS = 24;
export const SERVING_TTL_DAYS = 30;

const CLOCK_SKEW_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A CA that can sign: its certificate, its key, and what a leaf it signs must carry up to the root. */
export interface CertificateAuthority {
  trustDomain: string;
  cert: x509.X509Certificate;
  certPem: string;
  key: CryptoKey;
  keyPem: string;
  /** The certificates between this CA and the root, this CA first; empty for the root. */
  chainPems: string[];
  /** The mesh root's certificate (this CA's own for the root): what peers are verified against. */
  rootPem: string;
}

/** A leaf certificate as TLS uses it. */
export interface IssuedCertificate {
  certPem: string;
  /** The leaf then its intermediates (not the root): node:tls's `cert`. */
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** A serving certificate together with the key generated for it. */
export interface IssuedServingCertificate extends IssuedCertificate {
  keyPem: string;
}

function randomSerial(): string {
  // 16 random bytes (RFC 5280 allows up to 20 octets); the top bit cleared so the DER
  // INTEGER stays positive without a leading zero byte.
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function validity(issuer: x509.X509Certificate | undefined, now: Date, lifetimeMs: number): { notBefore: Date; notAfter: Date } {
  // A short-lived certificate (a 10 s test TTL) is back-dated by a tenth of its life at most:
  // a full minute would put its 2/3 rotation point before the moment it was issued.
  const notBefore = new Date(now.getTime() - Math.min(CLOCK_SKEW_MS, Math.floor(lifetimeMs / 10)));
  let notAfter = new Date(now.getTime() + lifetimeMs);
  if (issuer && notAfter > issuer.notAfter) notAfter = issuer.notAfter;
  return { notBefore, notAfter };
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new CrossmeshError('CM_ERR_INVALID', `${name} must be a positive number, got ${value}`);
  return value;
}

function checkUsable(ca: CertificateAuthority, now: Date): void {
  if (now > ca.cert.notAfter) {
    throw new CrossmeshError('CM_ERR_CA_INVALID', `CA "${ca.cert.subject}" expired at ${ca.cert.notAfter.toISOString()}; it can't issue certificates`);
  }
}

/** The extensions every CA certificate of the mesh carries (pathLen: 0 for an intermediate). */
async function caExtensions(trustDomain: string, publicKey: CryptoKey, issuer: x509.X509Certificate | undefined, pathLength: number | undefined): Promise<x509.Extension[]> {
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    // The trust domain's own SPIFFE ID, so the trust domain travels with the CA (loadCa reads it back).
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  if (issuer) exts.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey));
  return exts;
}

/** A new self-signed root CA for the mesh (ECDSA P-256, 10 years unless told otherwise). */
export async function generateRootCa(opts: { trustDomain?: string; validityDays?: number; now?: Date } = {}): Promise<CertificateAuthority> {
  const trustDomain = validateTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  const now = opts.now ?? new Date();
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(undefined, now, positive(opts.validityDays ?? ROOT_VALIDITY_DAYS, 'validityDays') * DAY_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [`crossmesh root CA ${trustDomain}`] }, { O: ['crossmesh'] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: EC_P256,
    extensions: await caExtensions(trustDomain, keys.publicKey, undefined, undefined),
  });
  const certPem = cert.toString('pem');
  return { trustDomain, cert, certPem, key: keys.privateKey, keyPem: await privateKeyToPem(keys.privateKey), chainPems: [], rootPem: certPem };
}

/**
 * A CA from PEM: `certPem` is the CA's certificate, optionally followed by its chain up to and
 * including the self-signed root (a member's intermediate as stored on disk); a lone certificate
 * must be a root. Checks it is a CA (basicConstraints cA, keyUsage keyCertSign), the key is its
 * key, every certificate is valid at `now`, and the chain links up by signature. The trust
 * domain comes from the CA's `spiffe://<td>` SAN, else `trustDomain`, else the default.
 */
export async function loadCa(certPem: string, keyPem: string, opts: { trustDomain?: string; now?: Date } = {}): Promise<CertificateAuthority> {
  const now = opts.now ?? new Date();
  const certs = parseCertificateBundle(certPem, 'CM_ERR_CA_INVALID', 'CA certificate');
  const cert = certs[0];
  const name = `CA certificate "${cert.subject}"`;
  if (!isCaCertificate(cert)) throw new CrossmeshError('CM_ERR_CA_INVALID', `${name} is not a CA certificate (basicConstraints has no cA=true)`);
  if (!canSignCertificates(cert)) throw new CrossmeshError('CM_ERR_CA_INVALID', `${name} may not sign certificates (keyUsage lacks keyCertSign)`);
  const key = await importSigningKey(keyPem, 'CM_ERR_CA_INVALID', name);
  // node's checkPrivateKey compares the key pair itself (OpenSSL X509_check_private_key).
  if (!new NodeX509Certificate(cert.toString('pem')).checkPrivateKey(createPrivateKey(keyPem))) {
    throw new CrossmeshError('CM_ERR_CA_INVALID', `${name}: the private key is not this certificate's key`);
  }
  for (const c of certs) {
    if (now < c.notBefore) throw new CrossmeshError('CM_ERR_CA_INVALID', `CA certificate "${c.subject}" is not valid before ${c.notBefore.toISOString()}`);
    if (now > c.notAfter) throw new CrossmeshError('CM_ERR_CA_INVALID', `CA certificate "${c.subject}" expired at ${c.notAfter.toISOString()}`);
  }
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!(await certs[i].verify({ publicKey: certs[i + 1].publicKey, signatureOnly: true }))) {
      throw new CrossmeshError('CM_ERR_CA_INVALID', `CA certificate "${certs[i].subject}" is not signed by the next certificate in the file, "${certs[i + 1].subject}"`);
    }
  }
  const root = certs[certs.length - 1];
  if (!(await root.isSelfSigned())) {
    throw new CrossmeshError('CM_ERR_CA_INVALID', `the last CA certificate in the file, "${root.subject}", is not a self-signed root; append the chain up to the mesh root`);
  }
  const declared = uriSans(cert).find((u) => u.startsWith('spiffe://'));
  let trustDomain: string;
  if (declared !== undefined) {
    const id = parseSpiffeId(declared);
    trustDomain = id.trustDomain;
    if (opts.trustDomain !== undefined && opts.trustDomain !== trustDomain) {
      throw new CrossmeshError('CM_ERR_CA_INVALID', `${name} is for trust domain "${trustDomain}", not the configured "${opts.trustDomain}"`);
    }
  } else {
    trustDomain = validateTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  }
  return {
    trustDomain,
    cert,
    certPem: cert.toString('pem'),
    key,
    keyPem: await privateKeyToPem(key),
    chainPems: certs.slice(0, -1).map((c) => c.toString('pem')),
    rootPem: root.toString('pem'),
  };
}

/**
 * An intermediate CA for member cluster `clusterName`, signed by `root` (1 year unless told
 * otherwise). pathLen 0: it can sign leaves, not further CAs.
 */
export async function issueIntermediate(root: CertificateAuthority, opts: { clusterName: string; validityDays?: number; now?: Date }): Promise<CertificateAuthority> {
  const now = opts.now ?? new Date();
  checkUsable(root, now);
  checkClusterName(opts.clusterName);
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(root.cert, now, positive(opts.validityDays ?? INTERMEDIATE_VALIDITY_DAYS, 'validityDays') * DAY_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [intermediateCommonName(opts.clusterName)] }, { O: ['crossmesh'] }],
    issuer: root.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: root.key,
    signingAlgorithm: EC_P256,
    extensions: await caExtensions(root.trustDomain, keys.publicKey, root.cert, 0),
  });
  return {
    trustDomain: root.trustDomain,
    cert,
    certPem: cert.toString('pem'),
    key: keys.privateKey,
    keyPem: await privateKeyToPem(keys.privateKey),
    chainPems: [cert.toString('pem'), ...root.chainPems],
    rootPem: root.rootPem,
  };
}

function refused(message: string, cause?: unknown): CrossmeshError {
  return new CrossmeshError('CM_ERR_CSR_REFUSED', `certificate request refused: ${message}`, cause === undefined ? {} : { cause });
}

async function leafExtensions(ca: CertificateAuthority, publicKey: x509.PublicKey | CryptoKey, names: x509.JsonGeneralNames, usages: x509.ExtendedKeyUsage[]): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // ECDHE-ECDSA (all TLS 1.3 with an EC key) needs digitalSignature only.
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    new x509.SubjectAlternativeNameExtension(names, false),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
  ];
}

function chainOf(ca: CertificateAuthority, leaf: x509.X509Certificate): IssuedCertificate {
  const certPem = leaf.toString('pem');
  return { certPem, chainPem: [certPem, ...ca.chainPems].join('\n'), notBefore: leaf.notBefore, notAfter: leaf.notAfter };
}

/** The workload ID `spiffeId` checked to be in `ca`'s trust domain, in its canonical form. */
function entitledId(ca: CertificateAuthority, spiffeId: string): string {
  const entitled = parseWorkloadId(spiffeId);
  if (entitled.trustDomain !== ca.trustDomain) {
    throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', `identity ${spiffeId} is not in this CA's trust domain "${ca.trustDomain}"`);
  }
  return formatWorkloadId(entitled);
}

function workloadLifetimeMs(opts: { ttlHours?: number; ttlSeconds?: number }): number {
  if (opts.ttlSeconds !== undefined) return positive(opts.ttlSeconds, 'ttlSeconds') * 1000;
  return positive(opts.ttlHours ?? WORKLOAD_TTL_HOURS, 'ttlHours') * HOUR_MS;
}

/** Signs the workload leaf for `publicKey` (already checked: P-256, held by the requester). */
async function signWorkloadLeaf(ca: CertificateAuthority, publicKey: CryptoKey, spiffeId: string, lifetimeMs: number, now: Date): Promise<IssuedCertificate> {
  const { notBefore, notAfter } = validity(ca.cert, now, lifetimeMs);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    // The identity is the URI SAN; the subject is fixed (a CN holds at most 64 characters,
    // less than an ID can be), so nothing reads identity from it.
    subject: [{ O: ['crossmesh'] }, { OU: ['workload'] }],
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_P256,
    extensions: await leafExtensions(ca, publicKey, [{ type: 'url', value: spiffeId }], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
  });
  return chainOf(ca, leaf);
}

/** A CSR read and checked: its signature verifies under its own key (proof of possession), the key is P-256. */
async function checkedCsr(csrPem: string): Promise<{ csr: x509.Pkcs10CertificateRequest; requested: { type: string; value: string }[]; publicKey: CryptoKey }> {
  let csr: x509.Pkcs10CertificateRequest;
  let requested: { type: string; value: string }[];
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
    requested = sanNames(csr);
  } catch (err) {
    throw refused('not a readable PKCS #10 CSR', err);
  }
  let signatureOk = false;
  try {
    signatureOk = await csr.verify();
  } catch (err) {
    throw refused('its signature could not be checked (unsupported key or algorithm; crossmesh needs ECDSA P-256)', err);
  }
  if (!signatureOk) throw refused('its signature does not verify with its public key');
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw refused(`its key is ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''}, crossmesh needs ECDSA P-256`);
  return { csr, requested, publicKey: await csr.publicKey.export() };
}

/**
 * A workload certificate for `spiffeId` (the identity the caller has decided the requester is
 * entitled to: the CA never takes the identity from the request) from the sidecar's CSR. The
 * CSR must verify under its own key (proof that the requester holds the private key), be
 * ECDSA P-256, and name nothing, or exactly `spiffeId` as its one URI SAN. The certificate
 * is for both TLS client and server use (a sidecar is both). Lifetime: `ttlSeconds`, else
 * `ttlHours`, else 24 h.
 */
export async function issueWorkloadCert(ca: CertificateAuthority, opts: { csrPem: string; spiffeId: string; ttlHours?: number; ttlSeconds?: number; now?: Date }): Promise<IssuedCertificate> {
  const now = opts.now ?? new Date();
  checkUsable(ca, now);
  const wanted = entitledId(ca, opts.spiffeId);
  const { requested, publicKey } = await checkedCsr(opts.csrPem);
  for (const n of requested) {
    if (n.type !== 'url' || n.value !== wanted) {
      throw refused(`it asks for ${n.type === 'url' ? n.value : `${n.type} name ${JSON.stringify(n.value)}`}, but the requester is entitled to ${wanted} only`);
    }
  }
  return signWorkloadLeaf(ca, publicKey, wanted, workloadLifetimeMs(opts), now);
}

/**
 * A workload certificate for `spiffeId` and a bare public key (SPKI PEM, ECDSA P-256): the form a
 * sidecar sends when it makes its key with node:crypto and no CSR (it does not load the X.509
 * library). The caller must have checked that the requester holds the private key (the signed
 * proof of `pop.ts`) and is entitled to `spiffeId`; same lifetime and extensions as from a CSR.
 */
export async function issueWorkloadCertForKey(ca: CertificateAuthority, opts: { publicKeyPem: string; spiffeId: string; ttlHours?: number; ttlSeconds?: number; now?: Date }): Promise<IssuedCertificate> {
  const now = opts.now ?? new Date();
  checkUsable(ca, now);
  const wanted = entitledId(ca, opts.spiffeId);
  const publicKey = await importP256PublicKey(opts.publicKeyPem);
  return signWorkloadLeaf(ca, publicKey, wanted, workloadLifetimeMs(opts), now);
}

/** An SPKI PEM public key as a WebCrypto ECDSA P-256 key; anything else is a refused request. */
async function importP256PublicKey(pem: string): Promise<CryptoKey> {
  let key;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw refused('publicKey is not a readable PEM public key (SPKI, "BEGIN PUBLIC KEY")', err);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve}` : String(key.asymmetricKeyType);
    throw refused(`its key is ${kind}, crossmesh needs ECDSA P-256`);
  }
  const der = key.export({ type: 'spki', format: 'der' });
  return webcrypto.subtle.importKey('spki', der, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']) as Promise<CryptoKey>;
}

/** The subject CN of cluster `name`'s intermediate CA (the data path reads the cluster from it). */
export function intermediateCommonName(clusterName: string): string {
  return `crossmesh cluster ${clusterName} CA`;
}

function checkClusterName(name: string): void {
  if (!/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(name)) {
    throw new CrossmeshError('CM_ERR_INVALID', `cluster name "${name}" is not a DNS name of at most 63 characters`);
  }
}

/** A member's request for an intermediate CA: a new P-256 key (it stays with the member) and its CSR. */
export async function createIntermediateCsr(opts: { clusterName: string; trustDomain: string; keyPem?: string }): Promise<{ keyPem: string; csrPem: string }> {
  checkClusterName(opts.clusterName);
  const trustDomain = validateTrustDomain(opts.trustDomain);
  let keys: CryptoKeyPair;
  if (opts.keyPem) {
    const privateKey = await importSigningKey(opts.keyPem, 'CM_ERR_CA_INVALID', 'pending intermediate key');
    const spki = createPublicKey(opts.keyPem).export({ type: 'spki', format: 'der' });
    const publicKey = (await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify'])) as CryptoKey;
    keys = { privateKey, publicKey };
  } else {
    keys = await generateKeyPair();
  }
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [intermediateCommonName(opts.clusterName)] }, { O: ['crossmesh'] }],
    keys,
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }])],
  });
  return { keyPem: opts.keyPem ?? (await privateKeyToPem(keys.privateKey)), csrPem: csr.toString('pem') };
}

/** A CA certificate issued for a key held elsewhere: the certificate and its chain, no key. */
export interface IssuedCaCertificate {
  cert: x509.X509Certificate;
  certPem: string;
  /** This certificate, then the issuer's chain up to (not including) the root. */
  chainPems: string[];
  rootPem: string;
  notAfter: Date;
}

/**
 * The control plane's side of a member's join: an intermediate CA for member `clusterName`
 * from the member's CSR (the member generated the key and keeps it). Same certificate as
 * `issueIntermediate`: 1 year, pathLen 0, CN "crossmesh cluster <name> CA", the root's trust
 * domain, never outliving `root`. The CSR must verify under its own P-256 key; it may name the
 * root's trust domain and nothing else (the subject and names are the CA's to decide).
 */
export async function issueIntermediateFromCsr(root: CertificateAuthority, opts: { csrPem: string; clusterName: string; validityDays?: number; now?: Date }): Promise<IssuedCaCertificate> {
  const now = opts.now ?? new Date();
  checkUsable(root, now);
  checkClusterName(opts.clusterName);
  const { requested, publicKey } = await checkedCsr(opts.csrPem);
  const mine = trustDomainId(root.trustDomain);
  for (const n of requested) {
    if (n.type !== 'url' || n.value !== mine) {
      throw refused(`it asks for ${n.type === 'url' ? n.value : `${n.type} name ${JSON.stringify(n.value)}`}, but this mesh's intermediates are for trust domain ${mine} only`);
    }
  }
  const { notBefore, notAfter } = validity(root.cert, now, positive(opts.validityDays ?? INTERMEDIATE_VALIDITY_DAYS, 'validityDays') * DAY_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [intermediateCommonName(opts.clusterName)] }, { O: ['crossmesh'] }],
    issuer: root.cert.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: root.key,
    signingAlgorithm: EC_P256,
    extensions: await caExtensions(root.trustDomain, publicKey, root.cert, 0),
  });
  const certPem = cert.toString('pem');
  return { cert, certPem, chainPems: [certPem, ...root.chainPems], rootPem: root.rootPem, notAfter: cert.notAfter };
}

/**
 * A TLS serving certificate (server use only) for a cluster API's host names and IP addresses,
 * with a key generated here: the cluster process that holds the CA is the one that serves.
 */
export async function issueServingCert(ca: CertificateAuthority, opts: { dnsNames?: string[]; ips?: string[]; ttlDays?: number; now?: Date }): Promise<IssuedServingCertificate> {
  const now = opts.now ?? new Date();
  checkUsable(ca, now);
  const names: x509.JsonGeneralNames = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length === 0) throw new CrossmeshError('CM_ERR_INVALID', 'a serving certificate needs at least one DNS name or IP address');
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(ca.cert, now, positive(opts.ttlDays ?? SERVING_TTL_DAYS, 'ttlDays') * DAY_MS);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [(opts.dnsNames?.[0] ?? opts.ips?.[0] ?? 'crossmesh').slice(0, 64)] }, { O: ['crossmesh'] }],
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_P256,
    extensions: await leafExtensions(ca, keys.publicKey, names, [x509.ExtendedKeyUsage.serverAuth]),
  });
  return { ...chainOf(ca, leaf), keyPem: await privateKeyToPem(keys.privateKey) };
}
