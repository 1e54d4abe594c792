/**
 * One cluster process's PKI (issue 14). It owns:
 * - the cluster root (ECDSA P-256, 10 y): generated on first start, or supplied
 *   (`--ca-cert/--ca-key`, checked with `loadCa`). It signs the API's serving certificate and,
 *   while the cluster has not joined a control plane, the cluster's own mesh CA. A control
 *   plane's root is the mesh root: it signs its members' mesh CAs (`signIntermediateCsr`).
 * - the mesh CA (an intermediate, pathLen 0): its own, or, once a control plane installed one
 *   (`createIntermediateCsr` → control plane signs → `installIntermediate`), the control plane's.
 *   It issues the workload certificates of the cluster's sidecars (`issueWorkload*`).
 * - the trust bundle: the mesh root ∪ the cluster's own root (the own root is kept so sidecars
 *   issued before a join keep talking in-cluster).
 * - the API serving certificate (SANs 127.0.0.1, ::1, localhost and the --host), renewed at 2/3
 *   of its 30 days.
 *
 * Persisted under `<dataDir>/pki` (directory 0700, keys 0600, every file written to a temporary
 * name and renamed); `dir` null keeps everything in memory (tests). The settings it was first
 * started with are kept (`pki-settings.ts`); a later start given other ones is refused.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CrossmeshError, formatError } from '../errors.js';
import { log } from '../util/log.js';
import type { IntermediateInfo, MeshMode, TrustBundle, WorkloadCertificateRequest } from './api.js';
import {
  createIntermediateCsr,
  generateRootCa,
  issueIntermediate,
  issueIntermediateFromCsr,
  issueServingCert,
  issueWorkloadCert,
  issueWorkloadCertForKey,
  loadCa,
  SERVING_TTL_DAYS,
  WORKLOAD_TTL_HOURS,
  type CertificateAuthority,
  type IssuedCertificate,
} from './ca.js';
import { createWorkloadCsr } from './csr.js';
import { checkPkiSettings, fingerprintOf, PKI_FILES, readPkiSettings, type PkiSettings } from './pki-settings.js';
import { verifyProof } from './pop.js';
import { DEFAULT_TRUST_DOMAIN, validateTrustDomain } from './spiffe.js';
import { isCaCertificate, parseCertificateBundle, x509 } from './x509.js';

export { fingerprintOf };
export type { IntermediateInfo, MeshMode, TrustBundle };

export const DEFAULT_WORKLOAD_TTL_SECONDS = WORKLOAD_TTL_HOURS * 3600;
/** setTimeout's longest delay (~24.8 days); longer waits are done in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ClusterPkiOptions {
  clusterName: string;
  /** Default crossmesh.local (or the supplied CA's); a restart must give the same or none. */
  trustDomain?: string;
  /** A supplied cluster root (PEM certificate [+ chain to its root]) and its key. */
  caCertPem?: string;
  caKeyPem?: string;
  /** Default 'mtls'. */
  mode?: MeshMode;
  /** Lifetime of workload certificates, default 24 h. */
  workloadTtlSeconds?: number;
  /** Host names / addresses for the API serving certificate besides 127.0.0.1, ::1 and localhost. */
  hosts?: string[];
  /** Lifetime of the serving certificate (default 30 days; short in rotation tests). */
  servingTtlSeconds?: number;
}

/** A workload certificate as the API answers it. */
export interface IssuedWorkload {
  spiffeId: string;
  /** Leaf then intermediate(s), one PEM string (node:tls `cert`). */
  chainPem: string;
  certificateChain: string[];
  roots: string[];
  notAfter: Date;
}

/** An identity for a process of the cluster itself (the gateway): key made here, in memory. */
export interface LocalWorkload extends IssuedWorkload {
  keyPem: string;
}

export interface ServingCredentials {
  keyPem: string;
  /** The serving certificate then its chain up to (not including) the root. */
  certPem: string;
  notAfter: Date;
}

const pemBlocks = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
const caInvalid = (msg: string, cause?: unknown) => new CrossmeshError('CM_ERR_CA_INVALID', msg, cause === undefined ? {} : { cause });

export class ClusterPki {
  private meshCa!: CertificateAuthority;
  private serving!: ServingCredentials;
  private servingDueAt = 0;
  private readonly changeListeners = new Set<() => void>();
  private readonly servingListeners = new Set<(c: ServingCredentials) => void>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Serializes the operations that replace the mesh CA or the pending key. */
  private queue: Promise<unknown> = Promise.resolve();
  private pendingKeyPem: string | undefined;

  private constructor(
    readonly dir: string | null,
    readonly clusterName: string,
    readonly trustDomain: string,
    readonly mode: MeshMode,
    readonly workloadTtlSeconds: number,
    private readonly root: CertificateAuthority,
    private readonly hosts: string[],
    private readonly servingTtlSeconds: number,
  ) {}

  /**
   * Opens (or, the first time, creates) the PKI in `dir`. Refused with CM_ERR_CA_INVALID for a
   * supplied CA that can't be used, CM_ERR_CONFIG for settings other than the persisted ones;
   * nothing is written then.
   */
  static async open(dir: string | null, opts: ClusterPkiOptions): Promise<ClusterPki> {
    if ((opts.caCertPem === undefined) !== (opts.caKeyPem === undefined)) {
      throw new CrossmeshError('CM_ERR_CONFIG', 'a supplied CA needs both its certificate (--ca-cert) and its key (--ca-key)');
    }
    if (opts.trustDomain !== undefined) validateTrustDomain(opts.trustDomain);
    if (opts.workloadTtlSeconds !== undefined && !(Number.isFinite(opts.workloadTtlSeconds) && opts.workloadTtlSeconds >= 1)) {
      throw new CrossmeshError('CM_ERR_CONFIG', `the workload certificate lifetime must be at least 1s, got ${opts.workloadTtlSeconds}s`);
    }
    const persisted = dir ? readPkiSettings(dir) : undefined;
    if (persisted) {
      checkPkiSettings(opts.clusterName, persisted, { trustDomain: opts.trustDomain, mode: opts.mode, workloadCertTtlSeconds: opts.workloadTtlSeconds, caCertPem: opts.caCertPem });
    }
    // The cluster root: persisted, supplied, or new.
    let root: CertificateAuthority;
    let rootKind: PkiSettings['root'];
    const rootFiles = dir ? { cert: join(dir, PKI_FILES.rootCert), key: join(dir, PKI_FILES.rootKey) } : undefined;
    if (persisted && rootFiles && existsSync(rootFiles.cert) && existsSync(rootFiles.key)) {
      root = await loadCa(readFileSync(rootFiles.cert, 'utf8'), readFileSync(rootFiles.key, 'utf8'), { trustDomain: persisted.trustDomain }).catch((err) => {
        throw caInvalid(`cluster ${opts.clusterName}: its root CA in ${rootFiles.cert} can't be used: ${(err as Error).message}`, err);
      });
      rootKind = persisted.root;
    } else if (opts.caCertPem !== undefined) {
      root = await loadSuppliedCa(opts.caCertPem, opts.caKeyPem!, opts.trustDomain);
      rootKind = 'supplied';
    } else {
      if (persisted?.root === 'supplied') {
        throw new CrossmeshError('CM_ERR_CONFIG', `cluster ${opts.clusterName} was started with a supplied root CA whose files are gone from ${dir}; start it with --ca-cert/--ca-key again`);
      }
      root = await generateRootCa({ trustDomain: opts.trustDomain ?? persisted?.trustDomain ?? DEFAULT_TRUST_DOMAIN });
      rootKind = 'generated';
    }
    const settings: PkiSettings = {
      trustDomain: root.trustDomain,
      mode: opts.mode ?? persisted?.mode ?? 'mtls',
      workloadCertTtlSeconds: opts.workloadTtlSeconds ?? persisted?.workloadCertTtlSeconds ?? DEFAULT_WORKLOAD_TTL_SECONDS,
      root: rootKind,
      rootFingerprint: fingerprintOf(root.certPem),
    };
    const hosts = servingHosts(opts.hosts ?? []);
    const pki = new ClusterPki(dir, opts.clusterName, settings.trustDomain, settings.mode, settings.workloadCertTtlSeconds, root, hosts, opts.servingTtlSeconds ?? SERVING_TTL_DAYS * 86400);
    if (dir) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
      if (!persisted || !existsSync(rootFiles!.cert) || !existsSync(rootFiles!.key)) {
        writePrivate(rootFiles!.key, root.keyPem);
        writeAtomic(rootFiles!.cert, chainText(root), 0o644);
      }
      writeAtomic(join(dir, PKI_FILES.ca), root.rootPem, 0o644);
      writeAtomic(join(dir, PKI_FILES.settings), JSON.stringify(settings, null, 2) + '\n', 0o644);
      const pending = join(dir, PKI_FILES.pendingKey);
      if (existsSync(pending)) pki.pendingKeyPem = readFileSync(pending, 'utf8');
    }
    await pki.loadMeshCa();
    await pki.issueServing();
    pki.schedule();
    return pki;
  }

  /** The cluster's own root (PEM): what API clients trust (kubeconfig certificate-authority-data). */
  get rootPem(): string {
    return this.root.rootPem;
  }

  /** SHA-256 fingerprint of the cluster's own root. */
  get rootFingerprint(): string {
    return fingerprintOf(this.root.rootPem);
  }

  /** The mesh root: the control plane's once joined, else the cluster's own. */
  get meshRootPem(): string {
    return this.meshCa.rootPem;
  }

  /** The trust bundle: the mesh root first, then the cluster's own root (once, if they are the same). */
  roots(): string[] {
    const mesh = this.meshCa.rootPem.trim() + '\n';
    const own = this.root.rootPem.trim() + '\n';
    return mesh === own ? [mesh] : [mesh, own];
  }

  /** A hash of `roots()`: changes exactly when the trust bundle does. */
  generation(): string {
    return createHash('sha256').update(this.roots().join('')).digest('hex').slice(0, 32);
  }

  trustBundle(): TrustBundle {
    return { trustDomain: this.trustDomain, mode: this.mode, roots: this.roots(), generation: this.generation(), workloadCertTtlSeconds: this.workloadTtlSeconds };
  }

  /** The API's current serving key and certificate (renewed at 2/3 of life; see `onServingChange`). */
  servingCredentials(): ServingCredentials {
    return this.serving;
  }

  /** A workload certificate for `spiffeId` (the identity the caller proved) from a PKCS #10 CSR. */
  async issueWorkload(csrPem: string, spiffeId: string): Promise<IssuedWorkload> {
    return this.answer(await issueWorkloadCert(this.meshCa, { csrPem, spiffeId, ttlSeconds: this.workloadTtlSeconds }), spiffeId);
  }

  /**
   * A workload certificate from the node:crypto form: the request must name exactly `spiffeId`
   * (the identity the caller proved) and carry a valid proof of possession of its key
   * (`pop.ts`), else CM_ERR_CSR_REFUSED.
   */
  async issueWorkloadForKey(req: { publicKey: string; spiffeId: string; proof: string }, spiffeId: string): Promise<IssuedWorkload> {
    if (req.spiffeId !== spiffeId) {
      throw new CrossmeshError('CM_ERR_CSR_REFUSED', `certificate request refused: it asks for ${req.spiffeId}, but the requester is entitled to ${spiffeId} only`);
    }
    if (!verifyProof(req.spiffeId, req.publicKey, req.proof)) {
      throw new CrossmeshError('CM_ERR_CSR_REFUSED', 'certificate request refused: proof is not a signature of the request text by the private key of publicKey (sign `crossmesh-workload-csr\\n<spiffeId>\\n<publicKey>` with SHA-256, base64)');
    }
    return this.answer(await issueWorkloadCertForKey(this.meshCa, { publicKeyPem: req.publicKey, spiffeId, ttlSeconds: this.workloadTtlSeconds }), spiffeId);
  }

  /** Either request form (the workloadcertificates body), checked for shape first. */
  async issueWorkloadFromRequest(body: unknown, spiffeId: string): Promise<IssuedWorkload> {
    const b = (body ?? {}) as Partial<Record<'csr' | 'publicKey' | 'spiffeId' | 'proof', unknown>>;
    if (typeof b.csr === 'string') return this.issueWorkload(b.csr, spiffeId);
    if (typeof b.publicKey === 'string' && typeof b.spiffeId === 'string' && typeof b.proof === 'string') {
      return this.issueWorkloadForKey({ publicKey: b.publicKey, spiffeId: b.spiffeId, proof: b.proof }, spiffeId);
    }
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'a workload certificate request is {"csr": "<PKCS #10 PEM>"} or {"publicKey": "<SPKI PEM>", "spiffeId": "...", "proof": "<base64 signature>"}');
  }

  /** A key and certificate for one of the cluster's own processes (the gateway), issued by the mesh CA. */
  async localWorkload(spiffeId: string): Promise<LocalWorkload> {
    const { keyPem, csrPem } = await createWorkloadCsr(spiffeId);
    return { ...(await this.issueWorkload(csrPem, spiffeId)), keyPem };
  }

  /**
   * Member side of a join, step 1: a CSR for a new mesh CA of `trustDomain` (which must be this
   * cluster's). Its key is kept as pending (persisted 0600) until `installIntermediate`; asked
   * again before that, the same key is used, so a retried exchange still matches.
   */
  createIntermediateCsr(trustDomain: string): Promise<string> {
    return this.serialized(async () => {
      if (trustDomain !== this.trustDomain) {
        throw caInvalid(`cluster ${this.clusterName} is in trust domain "${this.trustDomain}", the CSR was asked for "${trustDomain}"; start both clusters with the same --trust-domain`);
      }
      const { keyPem, csrPem } = await createIntermediateCsr({ clusterName: this.clusterName, trustDomain, keyPem: this.pendingKeyPem });
      if (this.pendingKeyPem === undefined) {
        if (this.dir) writePrivate(join(this.dir, PKI_FILES.pendingKey), keyPem);
        this.pendingKeyPem = keyPem;
      }
      return csrPem;
    });
  }

  /**
   * Member side of a join, step 2: installs `chainPems` ([intermediate, ..., root]) as the mesh
   * CA. Refused with CM_ERR_CA_INVALID, nothing changed, unless the intermediate is a CA for the
   * pending key, signed (through the chain) by the self-signed root at the chain's end, valid
   * now, and of this cluster's trust domain.
   */
  installIntermediate(chainPems: string[]): Promise<IntermediateInfo> {
    return this.serialized(async () => {
      if (!Array.isArray(chainPems) || chainPems.length < 2 || chainPems.some((p) => typeof p !== 'string')) {
        throw caInvalid('certificateChain must be [intermediate PEM, ..., root PEM]: at least the intermediate and the root it chains to');
      }
      const pending = this.pendingKeyPem;
      if (pending === undefined) {
        throw caInvalid(`cluster ${this.clusterName} has no pending intermediate key: ask for a CSR first (POST .../intermediate/csr), sign it, then install the certificate`);
      }
      const certs = parseCertificateBundle(chainPems.join('\n'), 'CM_ERR_CA_INVALID', 'certificateChain');
      if (!isCaCertificate(certs[0])) throw caInvalid(`certificateChain: "${certs[0].subject}" is not a CA certificate`);
      if (!(await certs[certs.length - 1].isSelfSigned())) {
        throw caInvalid(`certificateChain: its last certificate, "${certs[certs.length - 1].subject}", is not a self-signed root`);
      }
      let ca: CertificateAuthority;
      try {
        ca = await loadCa(chainPems.join('\n'), pending, { trustDomain: this.trustDomain });
      } catch (err) {
        const msg = (err as Error).message;
        throw caInvalid(/not this certificate's key/.test(msg)
          ? `certificateChain: "${certs[0].subject}" is not for the key of this cluster's pending CSR; ask for a new CSR and sign that`
          : `certificateChain refused: ${msg}`, err);
      }
      const pathLen = ca.cert.getExtension(x509.BasicConstraintsExtension)?.pathLength;
      if (pathLen !== 0) throw caInvalid(`certificateChain: "${ca.cert.subject}" must be an intermediate with pathLen 0 (it signs workload certificates only)`);
      if (this.dir) {
        writeAtomic(join(this.dir, PKI_FILES.meshCaCert), chainText(ca), 0o644);
        writePrivate(join(this.dir, PKI_FILES.meshCaKey), pending);
        rmSync(join(this.dir, PKI_FILES.pendingKey), { force: true });
      }
      this.pendingKeyPem = undefined;
      this.meshCa = ca;
      log.info(`cluster ${this.clusterName}: mesh CA installed: "${ca.cert.subject}" issued by "${ca.cert.issuer}" (root ${fingerprintOf(ca.rootPem)}), valid until ${ca.cert.notAfter.toISOString()}`);
      this.schedule();
      this.emitChange();
      return this.intermediateInfo();
    });
  }

  /** The mesh CA now: who issued it, until when, its root, whether it is due for renewal. */
  intermediateInfo(now = new Date()): IntermediateInfo {
    const c = this.meshCa.cert;
    const start = c.notBefore.getTime();
    const due = now.getTime() >= start + ((c.notAfter.getTime() - start) * 2) / 3;
    return {
      issuer: c.issuer,
      subject: c.subject,
      trustDomain: this.meshCa.trustDomain,
      notAfter: c.notAfter.toISOString(),
      rootFingerprint: fingerprintOf(this.meshCa.rootPem),
      rotationDue: due,
      joined: this.isJoined(),
    };
  }

  /**
   * Control-plane side of a join: signs member `clusterName`'s intermediate CSR with this
   * cluster's root (the mesh root). Returns the chain to install: [intermediate, ..., root].
   */
  async signIntermediateCsr(csrPem: string, clusterName: string): Promise<string[]> {
    const issued = await issueIntermediateFromCsr(this.root, { csrPem, clusterName });
    log.info(`cluster ${this.clusterName}: signed the mesh CA of member ${clusterName}, valid until ${issued.notAfter.toISOString()}`);
    return [...issued.chainPems, this.root.rootPem];
  }

  /** Called when the mesh CA or the trust bundle changed. Returns the unsubscribe. */
  onChange(cb: () => void): () => void {
    this.changeListeners.add(cb);
    return () => this.changeListeners.delete(cb);
  }

  /** Called with the new serving credentials after a renewal. Returns the unsubscribe. */
  onServingChange(cb: (c: ServingCredentials) => void): () => void {
    this.servingListeners.add(cb);
    return () => this.servingListeners.delete(cb);
  }

  /** Stops the renewal timer. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private isJoined(): boolean {
    return fingerprintOf(this.meshCa.rootPem) !== fingerprintOf(this.root.rootPem);
  }

  private answer(issued: IssuedCertificate, spiffeId: string): IssuedWorkload {
    const certificateChain = pemBlocks(issued.chainPem).map((p) => p + '\n');
    return { spiffeId, chainPem: issued.chainPem, certificateChain, roots: this.roots(), notAfter: issued.notAfter };
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private emitChange(): void {
    for (const cb of this.changeListeners) {
      try {
        cb();
      } catch (err) {
        log.warn(`cluster ${this.clusterName}: a mesh CA change listener failed: ${formatError(err)}`);
      }
    }
  }

  /** Loads the persisted mesh CA; issues an own one when there is none, or it can no longer be used. */
  private async loadMeshCa(): Promise<void> {
    const files = this.dir ? { cert: join(this.dir, PKI_FILES.meshCaCert), key: join(this.dir, PKI_FILES.meshCaKey) } : undefined;
    if (files && existsSync(files.cert) && existsSync(files.key)) {
      try {
        const ca = await loadCa(readFileSync(files.cert, 'utf8'), readFileSync(files.key, 'utf8'), { trustDomain: this.trustDomain });
        const own = fingerprintOf(ca.rootPem) === fingerprintOf(this.root.rootPem);
        // An own mesh CA due for renewal is renewed now; a control plane's is the control plane's to renew.
        if (!(own && this.dueAt(ca.cert) <= Date.now())) {
          this.meshCa = ca;
          return;
        }
      } catch (err) {
        log.warn(`cluster ${this.clusterName}: the mesh CA in ${files.cert} can't be used (${formatError(err)}); issuing the cluster's own`);
      }
    }
    await this.issueOwnMeshCa();
  }

  private async issueOwnMeshCa(): Promise<void> {
    const ca = await issueIntermediate(this.root, { clusterName: this.clusterName });
    if (this.dir) {
      writeAtomic(join(this.dir, PKI_FILES.meshCaCert), chainText(ca), 0o644);
      writePrivate(join(this.dir, PKI_FILES.meshCaKey), ca.keyPem);
    }
    this.meshCa = ca;
  }

  private async issueServing(): Promise<void> {
    const dnsNames = this.hosts.filter((h) => isIP(h) === 0);
    const ips = this.hosts.filter((h) => isIP(h) !== 0);
    const s = await issueServingCert(this.root, { dnsNames, ips, ttlDays: this.servingTtlSeconds / 86400 });
    this.serving = { keyPem: s.keyPem, certPem: s.chainPem, notAfter: s.notAfter };
    this.servingDueAt = this.dueAt(s);
  }

  private dueAt(cert: { notBefore: Date; notAfter: Date }): number {
    const start = cert.notBefore.getTime();
    return start + ((cert.notAfter.getTime() - start) * 2) / 3;
  }

  /** One timer for the renewals this process does itself: the serving certificate, and its own mesh CA. */
  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    let next = this.servingDueAt;
    if (!this.isJoined()) next = Math.min(next, this.dueAt(this.meshCa.cert));
    const delay = Math.min(MAX_TIMER_MS, Math.max(1000, next - Date.now()));
    this.timer = setTimeout(() => void this.renew(), delay);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    try {
      const now = Date.now();
      if (this.servingDueAt <= now) {
        await this.issueServing();
        log.info(`cluster ${this.clusterName}: API serving certificate renewed, valid until ${this.serving.notAfter.toISOString()}`);
        for (const cb of this.servingListeners) cb(this.serving);
      }
      if (!this.isJoined() && this.dueAt(this.meshCa.cert) <= now) {
        await this.serialized(async () => {
          if (this.isJoined()) return;
          await this.issueOwnMeshCa();
          log.info(`cluster ${this.clusterName}: own mesh CA renewed, valid until ${this.meshCa.cert.notAfter.toISOString()}`);
          this.emitChange();
        });
      }
    } catch (err) {
      log.error(`cluster ${this.clusterName}: certificate renewal failed (${formatError(err)}); retrying in 1 minute`);
      if (!this.closed) {
        this.timer = setTimeout(() => void this.renew(), 60_000);
        this.timer.unref();
      }
      return;
    }
    this.schedule();
  }
}

/**
 * A supplied cluster root, checked: readable certificate and key, a CA that may sign an
 * intermediate below it, key matches, valid now, trust domain as configured. Errors name the
 * part that is wrong; `validateSuppliedCaFiles` adds the file names.
 */
export async function loadSuppliedCa(certPem: string, keyPem: string, trustDomain?: string): Promise<CertificateAuthority> {
  const ca = await loadCa(certPem, keyPem, { trustDomain });
  const pathLen = ca.cert.getExtension(x509.BasicConstraintsExtension)?.pathLength;
  if (pathLen === 0) {
    throw caInvalid(`CA certificate "${ca.cert.subject}" has pathLen 0: it can't sign the cluster's intermediate (mesh) CA; give a root, or a CA without a path length limit of 0`);
  }
  return ca;
}

/**
 * `--ca-cert CERT --ca-key KEY` checked before anything starts: each problem names the file it
 * is in (or both, for a key that is not the certificate's). Returns the PEM texts.
 */
export async function validateSuppliedCaFiles(certFile: string, keyFile: string, trustDomain?: string): Promise<{ certPem: string; keyPem: string; trustDomain: string; fingerprint: string }> {
  const read = (file: string, flag: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw caInvalid(`${flag} ${file}: can't read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
    }
  };
  const certPem = read(certFile, '--ca-cert');
  const keyPem = read(keyFile, '--ca-key');
  try {
    parseCertificateBundle(certPem, 'CM_ERR_CA_INVALID', 'CA certificate');
  } catch (err) {
    throw caInvalid(`--ca-cert ${certFile}: ${(err as Error).message}; expected the PEM certificate of a CA ("BEGIN CERTIFICATE")`, err);
  }
  try {
    const { createPrivateKey } = await import('node:crypto');
    createPrivateKey(keyPem);
  } catch (err) {
    throw caInvalid(`--ca-key ${keyFile}: not a readable PEM private key; expected an unencrypted PKCS #8 ("BEGIN PRIVATE KEY") or SEC1 ("BEGIN EC PRIVATE KEY") ECDSA P-256 key`, err);
  }
  try {
    const ca = await loadSuppliedCa(certPem, keyPem, trustDomain);
    return { certPem, keyPem, trustDomain: ca.trustDomain, fingerprint: fingerprintOf(certPem) };
  } catch (err) {
    const msg = (err as Error).message;
    const where = /private key/.test(msg) && !/not this certificate's key/.test(msg) ? `--ca-key ${keyFile}` : /not this certificate's key/.test(msg) ? `--ca-cert ${certFile} and --ca-key ${keyFile}` : `--ca-cert ${certFile}`;
    throw caInvalid(`${where}: ${msg}`, err);
  }
}

/** 127.0.0.1, ::1, localhost and the given hosts (a wildcard listen address adds this machine's name). */
function servingHosts(extra: string[]): string[] {
  const out = ['127.0.0.1', '::1', 'localhost'];
  for (const h of extra) {
    const host = h.replace(/^\[|\]$/g, '');
    if (host === '') continue;
    if (host === '0.0.0.0' || host === '::') {
      out.push(hostname().toLowerCase());
      continue;
    }
    out.push(isIP(host) ? host : host.toLowerCase());
  }
  return [...new Set(out)];
}

/** A CA's certificate, its chain and its root, as `loadCa` reads it back. */
function chainText(ca: CertificateAuthority): string {
  const certs = [ca.certPem, ...ca.chainPems.slice(1), ca.rootPem].map((p) => p.trim());
  return [...new Set(certs)].join('\n') + '\n';
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

function writePrivate(file: string, text: string): void {
  writeAtomic(file, text, 0o600);
}
