/**
 * The sidecar's mesh identity: its workload certificate, obtained from and renewed with its own
 * cluster process, and the cluster's trust bundle.
 *
 *   1. a ServiceAccount token for `<namespace>/<serviceAccount>` (Kubernetes TokenRequest, asked
 *      with the sidecar's cluster credentials; the ServiceAccount is created when missing, as
 *      `crossmesh run --service-account` promises);
 *   2. the trust bundle (`GET .../trustbundle`): the mesh mode (mtls | plaintext), the trust
 *      domain and the roots;
 *   3. a fresh P-256 key made here with node:crypto, and a CSR-style request authenticated by the
 *      token: the public key, the SPIFFE ID it asks for and a signature proving it holds the key.
 *      The private key never leaves this process. (node:crypto only: the X.509 library costs a
 *      process ~21 MB and ~190 ms to load, and a sidecar needs none of it.)
 *
 * The certificate is renewed at 2/3 of its life with a new key; a renewal that fails is retried
 * with back-off while the current certificate is still valid (new connections keep using it).
 * The trust bundle is polled; a changed generation (a join to a control plane, a new root)
 * re-issues at once so the chain matches the new roots. Credentials are swapped whole: listeners
 * and pools read `current()` for each new connection, existing connections keep their session.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import type { ApiClient } from '../client/api-client.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { kindFor } from '../api/index.js';
import { proofText } from '../identity/pop.js';
import type { WorkloadCredentials } from '../identity/mesh-tls.js';
import { Backoff, sleep } from '../util/backoff.js';
import { log } from '../util/log.js';

export const IDENTITY_API = '/apis/identity.crossmesh.io/v1';
/** Trust bundle poll period: how soon a join or a new root reaches running sidecars. */
const BUNDLE_POLL_MS = 5000;

export type MeshMode = 'mtls' | 'plaintext';

export interface TrustBundle {
  trustDomain: string;
  mode: MeshMode;
  roots: string[];
  generation: string;
}

/** What a sidecar presents and trusts, plus what `status` shows. */
export interface SidecarCredentials extends WorkloadCredentials {
  spiffeId: string;
  notAfter: Date;
  /** When this sidecar received it: renewal is due at 2/3 of notAfter - issuedAt. */
  issuedAt: Date;
}

interface IssuedResponse {
  spiffeId: string;
  certificateChain: string[];
  roots: string[];
  notAfter: string;
}

interface TokenRequestResponse {
  status?: { token?: string };
}

export interface WorkloadIdentityOptions {
  /** The sidecar's cluster API client (cluster credentials: TokenRequest, ServiceAccount). */
  client: ApiClient;
  /** A client for the same API authenticated with a token: made by the caller from the token. */
  tokenClient: (token: string) => ApiClient;
  namespace: string;
  serviceAccount: string;
  /** For log lines (`sidecar cluster-1/default/nodeapp-k3f9x`). */
  label: string;
  /** Called with new credentials after each issuance (not for the first one: start() returns it). */
  onRotate?: (creds: SidecarCredentials) => void;
  bundlePollMs?: number;
}

const SERVICE_ACCOUNT = kindFor('v1', 'ServiceAccount');

export class WorkloadIdentity {
  private creds: SidecarCredentials | undefined;
  private bundle: TrustBundle | undefined;
  private tokenApi: ApiClient | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private renewing: Promise<void> | undefined;
  private failing = false;
  /** Issuances after the first, and failed attempts (scraped as metrics). */
  rotations = 0;
  failures = 0;

  constructor(private readonly opts: WorkloadIdentityOptions) {}

  get mode(): MeshMode | undefined {
    return this.bundle?.mode;
  }

  /** The credentials for new connections (undefined in plaintext mode). */
  current(): SidecarCredentials | undefined {
    return this.creds;
  }

  /**
   * Gets the token, the bundle and (in mtls mode) the first certificate. Throws what went wrong
   * (the sidecar cannot serve the mesh without an identity); the caller decides whether to retry.
   */
  async start(): Promise<TrustBundle> {
    const token = await this.serviceAccountToken();
    this.tokenApi = this.opts.tokenClient(token);
    this.bundle = await this.fetchBundle();
    if (this.bundle.mode === 'mtls') {
      this.creds = await this.issue(this.bundle);
      this.scheduleRenewal();
    }
    this.schedulePoll();
    return this.bundle;
  }

  async close(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.renewTimer);
    clearTimeout(this.pollTimer);
    await this.renewing?.catch(() => undefined);
    await this.tokenApi?.close();
  }

  private async serviceAccountToken(): Promise<string> {
    const { client, namespace, serviceAccount } = this.opts;
    if (!(await client.get(SERVICE_ACCOUNT, serviceAccount, namespace))) {
      // Created on first use, as `crossmesh run --service-account NAME` documents; a race with
      // another instance creating it is harmless (apply is idempotent).
      await client.apply(SERVICE_ACCOUNT, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, namespace } });
    }
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`;
    const res = (await client.raw('POST', path, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} })) as TokenRequestResponse;
    const token = res?.status?.token;
    if (typeof token !== 'string' || token === '') {
      throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', `the cluster answered the token request for service account ${namespace}/${serviceAccount} without a token`);
    }
    return token;
  }

  private async fetchBundle(): Promise<TrustBundle> {
    const b = (await this.tokenApi!.raw('GET', `${IDENTITY_API}/trustbundle`)) as Partial<TrustBundle>;
    if (!b || (b.mode !== 'mtls' && b.mode !== 'plaintext') || typeof b.trustDomain !== 'string' || !Array.isArray(b.roots) || typeof b.generation !== 'string') {
      throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', 'the cluster answered the trust bundle request with an unexpected body (is the cluster process older than this sidecar?)');
    }
    return b as TrustBundle;
  }

  private spiffeId(bundle: TrustBundle): string {
    return `spiffe://${bundle.trustDomain}/ns/${this.opts.namespace}/sa/${this.opts.serviceAccount}`;
  }

  private async issue(bundle: TrustBundle): Promise<SidecarCredentials> {
    const spiffeId = this.spiffeId(bundle);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const proof = sign('sha256', Buffer.from(proofText(spiffeId, publicKeyPem)), privateKey).toString('base64');
    const res = (await this.tokenApi!.raw('POST', `${IDENTITY_API}/workloadcertificates`, { publicKey: publicKeyPem, spiffeId, proof })) as IssuedResponse;
    if (!res || res.spiffeId !== spiffeId || !Array.isArray(res.certificateChain) || res.certificateChain.length === 0 || !Array.isArray(res.roots)) {
      throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', `the cluster answered the certificate request for ${spiffeId} with an unexpected body`);
    }
    const notAfter = new Date(res.notAfter);
    if (Number.isNaN(notAfter.getTime())) throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', `the certificate issued for ${spiffeId} has no valid notAfter ("${res.notAfter}")`);
    return {
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      chainPem: res.certificateChain.join('\n'),
      roots: res.roots,
      trustDomain: bundle.trustDomain,
      spiffeId,
      notAfter,
      issuedAt: new Date(),
    };
  }

  /** At 2/3 of the current certificate's life (as measured from when we got it). */
  private scheduleRenewal(delayMs?: number): void {
    const c = this.creds;
    if (!c || this.abort.signal.aborted) return;
    const issuedAt = c.issuedAt.getTime();
    const at = issuedAt + (2 / 3) * (c.notAfter.getTime() - issuedAt);
    const ms = delayMs ?? Math.max(0, at - Date.now());
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew('rotation'), Math.min(ms, 2 ** 31 - 1));
    this.renewTimer.unref();
  }

  private schedulePoll(): void {
    if (this.abort.signal.aborted) return;
    this.pollTimer = setTimeout(() => void this.poll(), this.opts.bundlePollMs ?? BUNDLE_POLL_MS);
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    try {
      const b = await this.fetchBundle();
      const before = this.bundle!;
      if (b.mode !== before.mode) {
        log.warn(`${this.opts.label}: the cluster's mesh mode changed from ${before.mode} to ${b.mode}; restart this app for it to take effect`);
      } else if (b.generation !== before.generation) {
        log.info(`${this.opts.label}: the cluster's trust bundle changed (generation ${b.generation}); renewing the workload certificate`);
        this.bundle = b;
        if (b.mode === 'mtls') await this.renew('trust bundle change');
      }
      this.bundle = { ...b, mode: before.mode };
    } catch (err) {
      if (!this.abort.signal.aborted) log.debug(`${this.opts.label}: trust bundle poll failed: ${toCrossmeshError(err).message}`);
    } finally {
      this.schedulePoll();
    }
  }

  private renew(why: string): Promise<void> {
    this.renewing ??= (async () => {
      const backoff = new Backoff({ initialMs: 200, maxMs: 10_000, jitter: 0.2 });
      while (!this.abort.signal.aborted) {
        try {
          const creds = await this.issue(this.bundle!);
          this.creds = creds;
          this.rotations++;
          if (this.failing) log.info(`${this.opts.label}: workload certificate renewed again`);
          this.failing = false;
          log.info(`${this.opts.label}: workload certificate ${why}: ${creds.spiffeId} valid until ${creds.notAfter.toISOString()}`);
          this.opts.onRotate?.(creds);
          this.scheduleRenewal();
          return;
        } catch (err) {
          this.failures++;
          if (!this.failing) {
            const left = this.creds ? ` (the current one is valid until ${this.creds.notAfter.toISOString()})` : '';
            log.warn(`${this.opts.label}: renewing the workload certificate failed: ${toCrossmeshError(err).message}; retrying${left}`);
          }
          this.failing = true;
          await sleep(backoff.next(), this.abort.signal).catch(() => undefined);
        }
      }
    })().finally(() => { this.renewing = undefined; });
    return this.renewing;
  }
}
