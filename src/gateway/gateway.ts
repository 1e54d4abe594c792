/**
 * The cluster's gateway: the `--gateway-port` HTTP listener through which other clusters reach
 * this cluster's exported services. Serves exactly the rules of served exports (Valid=True,
 * Conflict not True); everything else is 404 with a body that reveals nothing.
 *
 * Per request: one path check (a precompiled regex), one route lookup (Map probes), at most one
 * rewrite (regex compiled at table build), one balancer pick, then proxy/forward(). No JSON, no
 * logging, no URL parsing on the hot path; error bodies are prebuilt.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeObject } from '../api/index.js';
import type { ResourceCache } from '../client/cache.js';
import { RequestMetrics, SOURCE_CLUSTER_HEADER } from '../metrics/requests.js';
import { CrossmeshError } from '../errors.js';
import { forward, UpstreamRegistry, refuseConnect, sendError } from '../proxy/index.js';
import type { Upstream } from '../proxy/h1/proxy.js';
import { parseHostPort, type UpstreamTls } from '../proxy/h1/upstream.js';
import { TunnelListener } from './tunnel.js';
import { log } from '../util/log.js';
import { pick, STICKY_COOKIE, stickyValue, type EndpointState } from './balancer.js';
import { isSafePath } from './paths.js';
import { buildRouteTable, RouteTable, type Route } from './routes.js';
import { Coalescer } from '../util/coalesce.js';

export interface GatewayOptions {
  clusterName: string;
  /** Served exports, their Services and Endpoints (StoreCache in a cluster process; any ResourceCache works). */
  exports: ResourceCache;
  services: ResourceCache;
  endpoints: ResourceCache;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Upstream response-headers / body-idle timeout (default 60 s). */
  upstreamTimeoutMs?: number;
  pools?: UpstreamRegistry;
  /** The mesh (tunnel) port, for other clusters' sidecars (0 = any free port; undefined = none). */
  meshPort?: number;
  /**
   * The gateway's own mesh identity for its HTTP ingress (identity.ts): endpoints registered by
   * a sidecar are reached over mTLS with it. Undefined: the cluster runs --insecure-plaintext.
   */
  meshTls?: UpstreamTls;
}

function fixedBody(code: string, message: string): { status: number; headers: string[]; body: string } {
  const err = new CrossmeshError(code as 'CM_ERR_NOT_FOUND', message);
  const body = JSON.stringify({ errorCode: err.code, message });
  return { status: err.status, headers: ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))], body };
}

const NOT_FOUND = fixedBody('CM_ERR_NOT_FOUND', 'not found');
const BAD_TARGET = fixedBody('CM_ERR_BAD_REQUEST', 'request target must be an origin-form path (/...), not an absolute URL');
const BAD_PATH = fixedBody(
  'CM_ERR_BAD_REQUEST',
  "request path refused: dot segments, empty segments, encoded '.', '/', '\\' and control characters are not allowed",
);
const BAD_REWRITE = fixedBody('CM_ERR_BAD_REQUEST', 'request path refused: the rewritten path would leave the exported service');

interface EndpointStrings {
  readonly headers: readonly string[];
  readonly label: string;
  readonly done: () => void;
  /** The pool key and target (mTLS for a mesh workload), built once. */
  readonly upstream: Upstream;
}

function reply(res: ServerResponse, r: { status: number; headers: string[]; body: string }): void {
  res.writeHead(r.status, r.headers);
  res.end(r.body);
}

export class Gateway {
  private table: RouteTable = RouteTable.EMPTY;
  private readonly states = new Map<string, EndpointState>();
  private readonly server: Server;
  private readonly pools: UpstreamRegistry;
  private readonly tunnels: TunnelListener | undefined;
  private readonly ownPools: boolean;
  private readonly timeoutMs: number;
  private readonly clusterHeader: string;
  /** One rebuild per burst of changes, spaced by its own cost (util/coalesce.ts). */
  private readonly rebuilds = new Coalescer(() => this.rebuild());
  private closed?: Promise<void>;
  private readonly onChange = () => this.schedule();
  private readonly problems = new Set<string>();
  /** Per-endpoint strings of the current table's backends (a rebuilt table starts a new map). */
  private strings = new WeakMap<Route['backend'], Map<EndpointState, EndpointStrings>>();
  private _port = 0;
  /** Prometheus metrics of this gateway (served by the cluster API's /metrics). */
  readonly metrics: RequestMetrics;

  constructor(private readonly opts: GatewayOptions) {
    this.pools = opts.pools ?? new UpstreamRegistry();
    this.ownPools = opts.pools === undefined;
    this.timeoutMs = opts.upstreamTimeoutMs ?? 60_000;
    this.clusterHeader = opts.clusterName;
    this.metrics = new RequestMetrics('crossmesh_gateway', { cluster: opts.clusterName });
    this.server = createServer({ requireHostHeader: false }, (req, res) => this.handle(req, res));
    this.tunnels = opts.meshPort === undefined ? undefined : new TunnelListener({
      clusterName: opts.clusterName, host: opts.host ?? '127.0.0.1', port: opts.meshPort, table: () => this.table, registry: this.metrics.registry,
    });
    refuseConnect(this.server, `the gateway of cluster ${opts.clusterName}`);
    for (const c of [opts.exports, opts.services, opts.endpoints]) {
      c.on('add', this.onChange);
      c.on('update', this.onChange);
      c.on('delete', this.onChange);
    }
    this.rebuild();
  }

  get port(): number {
    return this._port;
  }

  /** The mesh (tunnel) port, once listening; undefined when this gateway has none. */
  get meshPort(): number | undefined {
    return this.tunnels?.port;
  }

  /** Mesh tunnels open now (0 without a mesh port). */
  get activeTunnels(): number {
    return this.tunnels?.active ?? 0;
  }

  /** The current (immutable) route table. */
  get routes(): RouteTable {
    return this.table;
  }

  async listen(): Promise<void> {
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new CrossmeshError('CM_ERR_CONFIG', `gateway of cluster ${this.opts.clusterName} cannot listen on ${this.opts.host ?? '127.0.0.1'}:${this.opts.port ?? 0}: ${err.message}`, { cause: err }));
      server.once('error', onError);
      server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        server.off('error', onError);
        resolve();
      });
    });
    this._port = (server.address() as AddressInfo).port;
    if (this.tunnels !== undefined) {
      try {
        await this.tunnels.listen();
      } catch (err) {
        await new Promise((r) => server.close(r));
        throw err;
      }
    }
  }

  private schedule(): void {
    if (!this.closed) this.rebuilds.trigger();
  }

  /** Compiles a new table from the caches and swaps it in (requests in flight keep theirs). */
  rebuild(): void {
    const { exports, services, endpoints } = this.opts;
    this.table = buildRouteTable({
      exports: exports.list(),
      service: (ns, name) => services.get(name, ns),
      endpoints: (ns, name) => endpoints.get(name, ns),
      states: this.states,
      onProblem: (ref, message) => {
        const key = `${ref} ${message}`;
        if (this.problems.has(key)) return;
        this.problems.add(key);
        log.warn(`gateway ${this.opts.clusterName}: ServiceExport ${ref} is not routed: ${message}`);
      },
    });
    const keep = new Set<string>();
    for (const origin of this.states.keys()) {
      keep.add(origin.slice(7));
      keep.add(`${origin.slice(7)}+mtls`);
    }
    this.pools.retain(keep);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const source = req.headers[SOURCE_CLUSTER_HEADER];
    this.metrics.track(res, 'inbound', typeof source === 'string' ? source : 'unknown', this.clusterHeader);
    const url = req.url ?? '';
    if (url.charCodeAt(0) !== 47) return reply(res, BAD_TARGET);
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (!isSafePath(path)) return reply(res, BAD_PATH);
    const route = this.table.lookup(path);
    if (route === undefined) return reply(res, NOT_FOUND);
    if (route.forbidden !== undefined) {
      res.writeHead(403, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(route.forbidden))]);
      res.end(route.forbidden);
      return;
    }
    let target = path;
    if (route.rewriteFrom !== undefined) {
      target = path.replace(route.rewriteFrom, route.rewriteTo);
      if (target === '') target = '/';
      if (!isSafePath(target)) return reply(res, BAD_REWRITE);
    }
    if (q >= 0) target += url.slice(q);
    const backend = route.backend;
    if (backend.endpoints.length === 0) {
      return sendError(res, { code: 'CM_ERR_UNAVAILABLE', status: 503, message: backend.unavailable }, ['x-crossmesh-cluster', this.clusterHeader]);
    }
    let ep: EndpointState | undefined;
    let setCookie = false;
    if (backend.sticky) {
      const id = stickyValue(req.headers.cookie);
      if (id !== undefined) ep = backend.byId.get(id);
      if (ep === undefined) setCookie = true;
    }
    if (ep === undefined) {
      const hashed = backend.hashHeader !== undefined ? req.headers[backend.hashHeader] : undefined;
      ep = pick(backend, typeof hashed === 'string' ? hashed : req.socket.remoteAddress ?? '');
    }
    const fixed = this.endpointStrings(backend, ep);
    let headers = fixed.headers;
    if (setCookie) headers = [...headers, 'set-cookie', `${STICKY_COOKIE}=${ep.id}${route.cookieSuffix}`];
    ep.inflight++;
    const done = fixed.done;
    void forward(req, res, {
      origin: ep.origin,
      path: target,
      responseHeaders: headers,
      timeoutMs: this.timeoutMs,
      label: fixed.label,
      upstream: fixed.upstream,
      pools: this.pools,
    }).then(done, done);
  }

  /** Response headers, error label and completion callback of an endpoint, built once per (table, backend, endpoint). */
  private endpointStrings(backend: Route['backend'], ep: EndpointState): EndpointStrings {
    let byEp = this.strings.get(backend);
    if (byEp === undefined) {
      byEp = new Map();
      this.strings.set(backend, byEp);
    }
    let s = byEp.get(ep);
    if (s === undefined) {
      const label = `${backend.ref} endpoint ${ep.id}`;
      const tls = ep.mesh ? this.opts.meshTls : undefined;
      const target = parseHostPort(ep.id);
      s = {
        headers: ['x-crossmesh-cluster', this.clusterHeader, 'x-crossmesh-endpoint', ep.id],
        label,
        done: () => void ep.inflight--,
        // Pool keys are the endpoint id (pools.retain keeps them), +mtls for a TLS pool.
        upstream: { key: tls === undefined ? ep.id : `${ep.id}+mtls`, target: { ...target, tls }, label },
      };
      byEp.set(ep, s);
    }
    return s;
  }

  /** Stops accepting, lets requests in flight finish (up to `graceMs`), then closes pools. Idempotent. */
  close(graceMs = 5000): Promise<void> {
    this.closed ??= (async () => {
      this.rebuilds.stop();
      for (const c of [this.opts.exports, this.opts.services, this.opts.endpoints]) {
        c.off('add', this.onChange);
        c.off('update', this.onChange);
        c.off('delete', this.onChange);
      }
      await this.tunnels?.close();
      const server = this.server;
      if (server.listening) {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        });
        await Promise.race([done, grace]);
        clearTimeout(timer);
        server.closeAllConnections();
        await done;
      }
      if (this.ownPools) await this.pools.close(graceMs);
    })();
    return this.closed;
  }
}

export type { Route };
