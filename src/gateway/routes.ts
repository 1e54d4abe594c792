/**
 * The gateway's route table, compiled from the cluster's served exports whenever one of them,
 * a Service or an Endpoints object changes, never per request. A table is immutable once built
 * (only balancer cursors and in-flight counts move); the gateway swaps the whole table, so a
 * request in flight keeps the route and endpoint it picked.
 *
 * Lookup: Exact paths in one Map; Prefix paths (stored without a trailing `/`) in another, probed
 * at the request path's segment boundaries, longest first, so `/nodeapp` matches `/nodeapp`,
 * `/nodeapp/` and `/nodeapp/x` but not `/nodeappx`. Cost: one Map probe per path segment.
 */
import type { EndpointsObject, KubeObject, ServiceExportObject, ServiceObject, ServicePort } from '../api/index.js';
import { byAge, isExportServed, prefixKey, refOf } from '../export/index.js';
import { lbOf, type EndpointState, type Lb, type Pickable } from './balancer.js';

export interface Backend extends Pickable {
  /** `ns/name:port`. */
  readonly ref: string;
  readonly endpoints: readonly EndpointState[];
  readonly byId: ReadonlyMap<string, EndpointState>;
  readonly lb: Lb;
  /** HashingLoadBalancer: hash this request header (lowercase) instead of the client address. */
  readonly hashHeader?: string;
  readonly sticky: boolean;
  rr: number;
  /** Prebuilt 503 message. */
  readonly unavailable: string;
}

export interface Route {
  /** `ns/name` of the export. */
  readonly exportRef: string;
  readonly path: string;
  readonly pathType: 'Exact' | 'Prefix';
  readonly rewriteFrom: RegExp | undefined;
  readonly rewriteTo: string;
  readonly backend: Backend;
  /** `cm-sticky=...; Path=...` attributes suffix for sessionSticky. */
  readonly cookieSuffix: string;
  /**
   * Prebuilt 403 body when the export admits only a service account (serviceAccountName not
   * `*`): the HTTP ingress has no caller identity to check, so it refuses; mesh callers come
   * through the tunnel and are checked by the app's sidecar.
   */
  readonly forbidden: string | undefined;
}

export class RouteTable {
  static readonly EMPTY = new RouteTable(new Map(), new Map(), [], new Map());

  constructor(
    private readonly exact: ReadonlyMap<string, Route>,
    private readonly prefix: ReadonlyMap<string, Route>,
    readonly routes: readonly Route[],
    /** Mesh tunnels: `service.namespace:port` of a served export's rule port → its backend. */
    private readonly tunnels: ReadonlyMap<string, Backend>,
  ) {}

  /** The backend a mesh tunnel to `service.namespace:port` reaches (served exports only). */
  tunnel(authority: string): Backend | undefined {
    return this.tunnels.get(authority);
  }

  lookup(path: string): Route | undefined {
    if (this.exact.size !== 0) {
      const r = this.exact.get(path);
      if (r !== undefined) return r;
    }
    const prefix = this.prefix;
    if (prefix.size === 0) return undefined;
    let end = path.length;
    if (end > 1 && path.charCodeAt(end - 1) === 47) end--;
    while (end > 0) {
      const r = prefix.get(end === path.length ? path : path.slice(0, end));
      if (r !== undefined) return r;
      end = path.lastIndexOf('/', end - 1);
    }
    return prefix.get('/');
  }
}

export interface BuildInput {
  exports: readonly KubeObject[];
  service(namespace: string, name: string): KubeObject | undefined;
  endpoints(namespace: string, name: string): KubeObject | undefined;
  /** Endpoint states by origin, kept across tables so in-flight counts survive a rebuild. */
  states: Map<string, EndpointState>;
  /** Called for an export whose rewrite cannot be compiled (it is then not routed). */
  onProblem?(exportRef: string, message: string): void;
}

/** The endpoint addresses backing Service port `sp`: by port name, else targetPort number, else the only port. */
export function endpointAddresses(sp: ServicePort, eps: EndpointsObject | undefined): { ip: string; port: number; mesh: boolean }[] {
  const out: { ip: string; port: number; mesh: boolean }[] = [];
  const target = typeof sp.targetPort === 'number' ? sp.targetPort : sp.targetPort === undefined ? sp.port : undefined;
  for (const subset of eps?.subsets ?? []) {
    const ports = subset.ports ?? [];
    let port: number | undefined;
    if (sp.name) port = ports.find((p) => p.name === sp.name)?.port;
    if (port === undefined && target !== undefined) port = ports.find((p) => p.port === target)?.port;
    if (port === undefined && ports.length === 1) port = ports[0].port;
    if (port === undefined && ports.length === 0) port = target;
    if (port === undefined) continue;
    // A sidecar registers its instance with targetRef kind Pod: a mesh workload (mTLS only).
    for (const a of subset.addresses ?? []) out.push({ ip: a.ip, port, mesh: (a as { targetRef?: { kind?: string } }).targetRef?.kind === 'Pod' });
  }
  return out;
}

export function buildRouteTable(input: BuildInput): RouteTable {
  const exact = new Map<string, Route>();
  const prefix = new Map<string, Route>();
  const routes: Route[] = [];
  const tunnels = new Map<string, Backend>();
  const used = new Set<string>();
  const served = input.exports.filter(isExportServed).sort(byAge);
  for (const obj of served) {
    const exp = obj as ServiceExportObject;
    const ref = refOf(exp);
    const ns = exp.metadata.namespace ?? '';
    const svc = input.service(ns, exp.metadata.name) as ServiceObject | undefined;
    if (!svc || !Array.isArray(svc.spec?.ports)) continue;
    let rewriteFrom: RegExp | undefined;
    const rw = exp.spec.pathRewrite;
    if (rw && typeof rw.from === 'string') {
      try {
        rewriteFrom = new RegExp(rw.from);
      } catch (err) {
        input.onProblem?.(ref, `spec.pathRewrite.from /${rw.from}/ is not a valid regular expression: ${(err as Error).message}`);
        continue;
      }
    }
    const eps = input.endpoints(ns, exp.metadata.name) as EndpointsObject | undefined;
    const backends = new Map<number, Backend>();
    for (const rule of exp.spec.rules ?? []) {
      const sp = svc.spec.ports.find((p) => p.port === rule.portNumber);
      if (!sp) continue;
      let backend = backends.get(rule.portNumber);
      if (!backend) {
        const endpoints: EndpointState[] = [];
        const byId = new Map<string, EndpointState>();
        for (const a of endpointAddresses(sp, eps)) {
          const origin = originOf(a.ip, a.port);
          if (byId.has(origin.slice(7))) continue;
          let state = input.states.get(origin);
          if (!state) {
            state = { id: origin.slice(7), origin, inflight: 0, mesh: a.mesh };
            input.states.set(origin, state);
          }
          state.mesh = a.mesh;
          used.add(origin);
          endpoints.push(state);
          byId.set(state.id, state);
        }
        backend = {
          ref: `${ref}:${rule.portNumber}`,
          endpoints,
          byId,
          lb: lbOf(exp.spec.loadBalancer),
          hashHeader: hashHeaderOf(exp),
          sticky: exp.spec.sessionSticky === true,
          rr: 0,
          unavailable: `Service ${ref} port ${rule.portNumber} has no ready endpoints in this cluster`,
        };
        backends.set(rule.portNumber, backend);
        const authority = tunnelAuthority(exp.metadata.name, ns, rule.portNumber);
        if (!tunnels.has(authority)) tunnels.set(authority, backend);
      }
      const pathType = rule.pathType === 'Exact' ? 'Exact' : 'Prefix';
      const sa = exp.spec.serviceAccountName ?? '*';
      const route: Route = {
        exportRef: ref,
        path: rule.path,
        pathType,
        rewriteFrom,
        rewriteTo: rw?.to ?? '',
        backend,
        cookieSuffix: `; Path=${pathType === 'Prefix' ? prefixKey(rule.path) : rule.path}; HttpOnly; SameSite=Lax`,
        forbidden: sa === '*' ? undefined : JSON.stringify({
          errorCode: 'CM_ERR_FORBIDDEN',
          message: `ServiceExport ${ref} admits only service account "${sa}" (spec.serviceAccountName); the gateway's HTTP ingress carries no caller identity: call it through the mesh (a sidecar), or set serviceAccountName "*"`,
        }),
      };
      const map = pathType === 'Exact' ? exact : prefix;
      const key = pathType === 'Exact' ? rule.path : prefixKey(rule.path);
      if (map.has(key)) continue; // the export controller refuses the later claim; first (oldest) wins here too
      map.set(key, route);
      routes.push(route);
    }
  }
  for (const origin of input.states.keys()) if (!used.has(origin)) input.states.delete(origin);
  return new RouteTable(exact, prefix, routes, tunnels);
}

/** `http://ip:port` (IPv6 in brackets). */
function originOf(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

/** The CONNECT target naming an exported service port: `service.namespace:port`. */
export function tunnelAuthority(name: string, namespace: string, port: number): string {
  return `${name}.${namespace}:${port}`;
}

/** Annotation naming the request header HashingLoadBalancer hashes (default: the client address). */
export const HASH_HEADER_ANNOTATION = 'crossmesh.io/hash-header';

function hashHeaderOf(exp: KubeObject): string | undefined {
  const h = exp.metadata.annotations?.[HASH_HEADER_ANNOTATION];
  return h ? h.trim().toLowerCase() : undefined;
}
