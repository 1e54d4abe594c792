/**
 * The gateway's own mesh identity, for its HTTP ingress: a non-mesh client (the reference's curl
 * to the gateway port) reaches an exported service whose endpoints are app sidecars, and those
 * accept mTLS only. The gateway is a workload of its own cluster
 * (`spiffe://<td>/ns/crossmesh-system/sa/crossmesh-gateway`), its key made in the cluster process
 * and its certificate issued by the cluster's mesh CA in-process, renewed at 2/3 of its life and
 * whenever the cluster's CA or trust bundle changes (a join to a control plane).
 *
 * The mesh tunnel does not use it: a tunnel carries the calling sidecar's own TLS session to the
 * app sidecar, and the gateway never holds a key for it.
 */
import type { SecureContext } from 'node:tls';
import { mtlsClientContext, type WorkloadCredentials } from '../identity/mesh-tls.js';
import type { UpstreamTls } from '../proxy/h1/upstream.js';
import { toCrossmeshError } from '../errors.js';
import { log } from '../util/log.js';

export const GATEWAY_NAMESPACE = 'crossmesh-system';
export const GATEWAY_SERVICE_ACCOUNT = 'crossmesh-gateway';

/** What the gateway needs of the cluster's PKI (src/identity/cluster-pki.ts ClusterPki). */
export interface GatewayPki {
  readonly trustDomain: string;
  localWorkload(spiffeId: string): Promise<WorkloadCredentials & { notAfter: Date }>;
  onChange(cb: () => void): () => void;
}

export class GatewayIdentity {
  private context!: SecureContext;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private unsubscribe: (() => void) | undefined;
  readonly spiffeId: string;
  /** For the gateway's upstream targets: the current context for each new connection. */
  readonly tls: UpstreamTls;

  private constructor(private readonly pki: GatewayPki, private readonly label: string) {
    this.spiffeId = `spiffe://${pki.trustDomain}/ns/${GATEWAY_NAMESPACE}/sa/${GATEWAY_SERVICE_ACCOUNT}`;
    this.tls = { context: () => this.context, trustDomain: pki.trustDomain };
  }

  static async start(pki: GatewayPki, clusterName: string): Promise<GatewayIdentity> {
    const id = new GatewayIdentity(pki, `gateway ${clusterName}`);
    await id.renew();
    id.unsubscribe = pki.onChange(() => void id.renewSafely('the cluster CA changed'));
    return id;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.unsubscribe?.();
  }

  private async renew(): Promise<void> {
    const creds = await this.pki.localWorkload(this.spiffeId);
    this.context = mtlsClientContext({ ...creds, trustDomain: this.pki.trustDomain });
    const now = Date.now();
    this.schedule((2 / 3) * Math.max(0, creds.notAfter.getTime() - now));
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => void this.renewSafely('rotation'), Math.min(ms, 2 ** 31 - 1));
    this.timer.unref();
  }

  private async renewSafely(why: string): Promise<void> {
    if (this.closed) return;
    try {
      await this.renew();
      log.info(`${this.label}: mesh certificate renewed (${why})`);
    } catch (err) {
      log.warn(`${this.label}: renewing its mesh certificate failed (${why}): ${toCrossmeshError(err).message}; retrying in 5 s`);
      this.schedule(5000);
    }
  }
}
