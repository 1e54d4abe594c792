import type { KubeObject } from '../api/types.js';
import type { UpstreamTarget, UpstreamTls } from '../proxy/h1/upstream.js';
import { SOURCE_CLUSTER_HEADER } from '../metrics/requests.js';

/** One place a request can be sent. */
export interface Target {
  /** Stable id for balancing/outlier state: `local:<ip:port>` or `remote:<clusterKey>`. */
  id: string;
  kind: 'local' | 'remote';
  /** Upstream pool key: `ip:port`, or `gateway-ip:mesh-port>service.ns:port` for a tunnel. */
  origin: string;
  /** How to connect (a tunnel through the remote gateway's mesh port, or plain TCP). */
  upstream: UpstreamTarget;
  /** Remote via the gateway's mesh port: the CONNECT target `service.namespace:port`. */
  tunnel?: string;
  /** Prefix added to the request path (remote: the export's path, e.g. `/nodeapp`). */
  pathPrefix: string;
  /** Cluster key of a remote target; the local cluster name for local ones. */
  cluster: string;
  /** host:port, for the response header and errors. */
  address: string;
  weight: number;
  /** Reached over mesh mTLS (a workload with a sidecar, or any tunnel) rather than plaintext. */
  mtls: boolean;
}

export type LbType = 'Locality' | 'FailOver' | 'ActiveActive';

/** Everything needed to route requests for one service port, compiled when resources change. */
export interface ServiceRoute {
  namespace: string;
  name: string;
  port: number;
  lbType: LbType;
  /** Whether a GlobalTrafficPolicy exists (else Locality by default). */
  hasPolicy: boolean;
  locals: Target[];
  /** Remote targets the policy allows, with their weights (FailOver: used only when no local works). */
  remotes: Target[];
  /** Exporting clusters known from the ServiceImport, policy or not (for explanations). */
  exporters: string[];
}

export interface RouteInputs {
  clusterName: string;
  services: KubeObject[];
  endpoints: KubeObject[];
  imports: KubeObject[];
  policies: KubeObject[];
  /**
   * Mesh mTLS (undefined: the cluster runs --insecure-plaintext). Endpoints registered by a
   * sidecar (targetRef kind Pod) and every tunnel are reached with it; an endpoint someone wrote
   * by hand (no targetRef: a workload without a sidecar) stays plaintext, as Istio's auto mTLS.
   */
  meshTls?: UpstreamTls;
}

const key = (ns: string, name: string, port: number) => `${ns}/${name}:${port}`;

interface SvcPort { name?: string; port: number; targetPort?: number | string }
interface EpSubset { addresses?: { ip: string; targetRef?: { kind?: string } }[]; ports?: { name?: string; port: number }[] }
interface ImportPort { port: number; endpoints?: { clusterKey: string; target: { host: string; ip?: string; port: number; path: string; meshPort?: number } }[] }

const bracket = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** The endpoint port a subset offers for a service port: by name, else targetPort, else its only port. */
function endpointPort(sp: SvcPort, ports: { name?: string; port: number }[]): number | undefined {
  if (ports.length === 1) return ports[0].port;
  if (sp.name) {
    const byName = ports.find((p) => p.name === sp.name);
    if (byName) return byName.port;
  }
  const tp = typeof sp.targetPort === 'number' ? sp.targetPort : sp.port;
  return ports.find((p) => p.port === tp)?.port;
}

/**
 * Compiles the outbound route table: one ServiceRoute per (namespace, service, port), from the
 * cluster's Services + Endpoints (local), ServiceImports (remote gateways) and
 * GlobalTrafficPolicies, following the reference's rules (fsm-multicluster.md):
 *   Locality / no policy: locals only. ActiveActive: locals at 100 + targets at their weight
 *   (unset = 100, explicit 0 stays 0; no targets = every exporter). FailOver: targets at their
 *   weight, used only when no local endpoint works.
 * Pure and run at change time, so the request path only does a Map lookup.
 */
export function compileRoutes(inp: RouteInputs): Map<string, ServiceRoute> {
  const routes = new Map<string, ServiceRoute>();
  const epByKey = new Map(inp.endpoints.map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));
  const gtpByKey = new Map(inp.policies.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g]));
  const ensure = (ns: string, name: string, port: number): ServiceRoute => {
    const k = key(ns, name, port);
    let r = routes.get(k);
    if (!r) {
      const gtp = gtpByKey.get(`${ns}/${name}`);
      r = { namespace: ns, name, port, lbType: (gtp?.spec?.lbType as LbType | undefined) ?? 'Locality', hasPolicy: !!gtp, locals: [], remotes: [], exporters: [] };
      routes.set(k, r);
    }
    return r;
  };

  for (const svc of inp.services) {
    const ns = svc.metadata.namespace!;
    const name = svc.metadata.name;
    const ep = epByKey.get(`${ns}/${name}`);
    for (const sp of (svc.spec?.ports ?? []) as SvcPort[]) {
      const r = ensure(ns, name, sp.port);
      for (const subset of ((ep?.subsets as EpSubset[] | undefined) ?? [])) {
        const port = endpointPort(sp, subset.ports ?? []);
        if (port === undefined) continue;
        for (const a of subset.addresses ?? []) {
          const address = `${a.ip}:${port}`;
          const tls = a.targetRef?.kind === 'Pod' ? inp.meshTls : undefined;
          // The pool key says TLS or not: one address never shares connections of both kinds.
          const origin = tls === undefined ? `${bracket(a.ip)}:${port}` : `${bracket(a.ip)}:${port}+mtls`;
          r.locals.push({ id: `local:${address}`, kind: 'local', origin, upstream: { host: a.ip, port, tls }, pathPrefix: '', cluster: inp.clusterName, address, weight: 100, mtls: tls !== undefined });
        }
      }
    }
  }

  for (const imp of inp.imports) {
    const ns = imp.metadata.namespace!;
    const name = imp.metadata.name;
    const gtp = gtpByKey.get(`${ns}/${name}`);
    for (const ip of (imp.spec?.ports ?? []) as ImportPort[]) {
      const r = ensure(ns, name, ip.port);
      const all = ip.endpoints ?? [];
      r.exporters = all.map((e) => e.clusterKey);
      if (!gtp || r.lbType === 'Locality') continue;
      const targets = (gtp.spec?.targets ?? []) as { clusterKey: string; weight?: number }[];
      const weightOf = new Map(targets.map((t) => [t.clusterKey, t.weight ?? 100]));
      for (const e of all) {
        // ActiveActive with no targets = every exporter; otherwise only the listed clusters.
        if (targets.length > 0 && !weightOf.has(e.clusterKey)) continue;
        const host = e.target.ip || e.target.host;
        const weight = weightOf.get(e.clusterKey) ?? 100;
        const meshPort = e.target.meshPort;
        if (meshPort !== undefined) {
          // The L4 tunnel: CONNECT service.ns:port at the gateway's mesh port, then HTTP/1.1 with
          // the remote app sidecar, inside mTLS end to end (the gateway splices bytes it cannot
          // read); the path is the caller's, exactly as for a local call.
          const authority = `${name}.${ns}:${ip.port}`;
          const address = `${bracket(host)}:${meshPort}`;
          const tls = inp.meshTls;
          r.remotes.push({
            id: `remote:${e.clusterKey}`,
            kind: 'remote',
            origin: tls === undefined ? `${address}>${authority}` : `${address}>${authority}+mtls`,
            upstream: { host, port: meshPort, tunnel: { authority, headerLines: `${SOURCE_CLUSTER_HEADER}: ${inp.clusterName}\r\n` }, tls },
            tunnel: authority,
            pathPrefix: '',
            cluster: e.clusterKey,
            address,
            weight,
            mtls: tls !== undefined,
          });
          continue;
        }
        // A member without a mesh port: L7 through its gateway's HTTP port, under the export's path.
        const address = `${bracket(host)}:${e.target.port}`;
        r.remotes.push({
          id: `remote:${e.clusterKey}`,
          kind: 'remote',
          origin: address,
          upstream: { host, port: e.target.port },
          pathPrefix: e.target.path === '/' ? '' : e.target.path.replace(/\/$/, ''),
          cluster: e.clusterKey,
          address,
          weight,
          mtls: false,
        });
      }
    }
  }
  return routes;
}

export function routeKey(ns: string, name: string, port: number): string {
  return key(ns, name, port);
}

/** Human explanation of a route (for `crossmesh route` and 503 bodies). */
export function describeRoute(r: ServiceRoute): string {
  const lines = [
    `service ${r.namespace}/${r.name} port ${r.port}: policy ${r.lbType}${r.hasPolicy ? '' : ' (default: no GlobalTrafficPolicy)'}`,
    `  local endpoints: ${r.locals.length ? r.locals.map((t) => `${t.address} (${t.mtls ? 'mTLS' : 'plaintext'})`).join(', ') : 'none'}`,
    `  remote targets:  ${r.remotes.length ? r.remotes.map((t) => `${t.cluster} ${t.tunnel !== undefined ? `via tunnel to ${t.tunnel} through gateway mesh port ${t.address}` : `via gateway ${t.address}${t.pathPrefix}`} (weight ${t.weight}, ${t.mtls ? 'mTLS end to end' : 'plaintext'})`).join(', ') : 'none'}`,
  ];
  if (r.exporters.length && r.remotes.length === 0) lines.push(`  exported by:     ${r.exporters.join(', ')} (not used under ${r.lbType})`);
  return lines.join('\n');
}
