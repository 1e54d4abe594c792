/**
 * Authorization at the exporting side's inbound: who from another cluster may call this app.
 *
 * A caller is identified by its verified mesh certificate: its SPIFFE ID (namespace and service
 * account) and the cluster whose CA issued it (the intermediate's name; only the control plane
 * signs member intermediates, so the name is as trustworthy as the chain). Callers of this
 * app's own cluster are not governed by a ServiceExport (an export is about other clusters) and
 * pass. A caller of another cluster passes only when the app's service is exported (the
 * ServiceExport named like the service, in its namespace) and the export's
 * `serviceAccountName` admits it: `*` any identity, `sa` that service account in any namespace,
 * `ns/sa` exactly that one.
 *
 * The rule is compiled when the export changes; a decision is cached per connection (its peer
 * object) and generation of the rules, so a request pays a WeakMap lookup.
 */
import type { KubeObject } from '../api/types.js';

/** What the TLS layer verified about a connection's peer. */
export interface PeerIdentity {
  spiffeId: string;
  namespace: string;
  serviceAccount: string;
  /** The cluster whose CA issued the peer's certificate. */
  cluster: string;
}

export interface Refusal {
  /** For the refusal metric's label. */
  reason: 'not_exported' | 'service_account';
  code: string;
  status: number;
  message: string;
}

type Rule =
  | { kind: 'none' }
  | { kind: 'any'; exportName: string }
  | { kind: 'sa'; exportName: string; serviceAccount: string; namespace?: string; text: string };

/** Compiles the rule from the export of the app's service (undefined = not exported). */
export function compileRule(exp: KubeObject | undefined): Rule {
  if (!exp || exp.metadata.deletionTimestamp) return { kind: 'none' };
  const exportName = `${exp.metadata.namespace}/${exp.metadata.name}`;
  const text = (exp.spec?.serviceAccountName as string | undefined) ?? '*';
  if (text === '*') return { kind: 'any', exportName };
  const slash = text.indexOf('/');
  return slash < 0
    ? { kind: 'sa', exportName, serviceAccount: text, text }
    : { kind: 'sa', exportName, namespace: text.slice(0, slash), serviceAccount: text.slice(slash + 1), text };
}

export class InboundAuthorizer {
  private rule: Rule = { kind: 'none' };
  private generation = 0;
  private readonly decisions = new WeakMap<PeerIdentity, { generation: number; refusal: Refusal | undefined }>();
  /** Requests refused, by reason (scraped as a metric). */
  readonly refused = { not_exported: 0, service_account: 0 };

  constructor(private readonly ownCluster: string, private readonly service: string) {}

  /** The app's ServiceExport changed (or went away). */
  update(exp: KubeObject | undefined): void {
    this.rule = compileRule(exp);
    this.generation++;
  }

  /** undefined = allowed; else the 403 to answer. */
  check(peer: PeerIdentity): Refusal | undefined {
    if (peer.cluster === this.ownCluster) return undefined;
    const cached = this.decisions.get(peer);
    if (cached !== undefined && cached.generation === this.generation) {
      if (cached.refusal !== undefined) this.count(cached.refusal);
      return cached.refusal;
    }
    const refusal = this.decide(peer);
    this.decisions.set(peer, { generation: this.generation, refusal });
    if (refusal !== undefined) this.count(refusal);
    return refusal;
  }

  private count(r: Refusal): void {
    this.refused[r.reason]++;
  }

  private decide(peer: PeerIdentity): Refusal | undefined {
    const r = this.rule;
    if (r.kind === 'any') return undefined;
    if (r.kind === 'none') {
      return forbidden('not_exported', `caller ${peer.spiffeId} of cluster ${peer.cluster} refused: service ${this.service} is not exported from cluster ${this.ownCluster} (create a ServiceExport for it to admit callers of other clusters)`);
    }
    if (peer.serviceAccount === r.serviceAccount && (r.namespace === undefined || peer.namespace === r.namespace)) return undefined;
    return forbidden('service_account', `caller ${peer.spiffeId} of cluster ${peer.cluster} refused: ServiceExport ${r.exportName} admits only service account "${r.text}" (spec.serviceAccountName)`);
  }
}

function forbidden(reason: Refusal['reason'], message: string): Refusal {
  return { reason, code: 'CM_ERR_FORBIDDEN', status: 403, message };
}
