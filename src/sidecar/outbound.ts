import { kindFor } from '../api/index.js';
import { Informer, routingFields } from '../client/informer.js';
import { CrossmeshError } from '../errors.js';
import { isSafePath } from '../proxy/index.js';
import { proxy, type Upstream } from '../proxy/h1/proxy.js';
import { UpstreamRegistry } from '../proxy/h1/upstream.js';
import type { InboundRequest } from '../proxy/h1/server.js';
import type { Downstream } from '../proxy/h1/types.js';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { H2Exchange } from '../proxy/h2/exchange.js';
import { H2SessionRegistry } from '../proxy/h2/sessions.js';
import type { H2StreamContext } from '../proxy/h2/server.js';
import { GRPC } from '../proxy/h2/grpc-status.js';
import { SOURCE_CLUSTER_HEADER } from '../metrics/requests.js';
import { chooseTarget, hasAlternative, OutlierDetector, WeightedPicker } from './balancer.js';
import { GatewayLiveness, type GatewayState } from './gateway-liveness.js';
import { log } from '../util/log.js';
import { describeRoute, routeKey, type ServiceRoute, type Target } from './routes.js';
import { gatewayKey, RouteTable, type RouteSource } from './route-table.js';
import type { KubeObject } from '../api/types.js';
import type { OutboundRouter, OutboundRouterOptions } from './types.js';

const NO_OPTIONS: DispatchOptions = {};
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Attempts per request (first try + retries on other endpoints/clusters). */
const MAX_ATTEMPTS = 3;
/** Answers that mean "this target could not serve it" (a gateway with no working endpoint). */
const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

export interface OutboundStats {
  requests: number;
  retries: number;
  noRoute: number;
  /** Route updates (one per burst of changes) and the time they took. */
  routeUpdates: number;
  routeUpdateSeconds: number;
}

export interface DispatchOptions {
  /** Headers set on the upstream request (replace same-named incoming ones). */
  extraHeaders?: readonly string[];
  /** Incoming headers not passed on. */
  dropHeaders?: ReadonlySet<string>;
  timeoutMs?: number;
  /** Aborts the attempt in flight (resiliency timeouts). */
  signal?: AbortSignal;
  /** Called after each attempt with the target and the status (for metrics). */
  observe?: (target: Target, status: number) => void;
}

interface ResolvedName {
  namespace: string;
  name: string;
  port: number;
  /** routeKey(namespace, name, port), computed once per distinct Host. */
  key?: string;
}

interface TargetInfo {
  /** Destination cluster name (metrics). */
  cluster: string;
  /** What the target is, for error messages. */
  label: string;
  /** Pool key, connection target and label, built once per target. */
  upstream: Upstream;
  /** x-crossmesh-cluster / -endpoint for answers of local endpoints. */
  responseHeaders: readonly string[] | undefined;
  /** The same, as HTTP/2 headers. */
  h2ResponseHeaders: Readonly<Record<string, string>> | undefined;
}

/** Dapr's gRPC proxying: the app a call names by `dapr-app-id`, and the caller headers to set. */
export interface H2AppTarget {
  namespace: string;
  name: string;
  extraHeaders: Readonly<Record<string, string>>;
  dropHeaders: ReadonlySet<string>;
}

/** How one HTTP/2 request through the outbound listener ended (metrics). */
export type H2Done = (destination: string, status: number, grpcStatus: number, startedAt: number) => void;

/** Distinct Host values remembered by resolve() (cleared when full: a client can't grow it unbounded). */
const RESOLVE_CACHE_MAX = 1024;

/**
 * The app's HTTP proxy. Resolves a mesh name (`svc`, `svc.ns`, `svc.ns.svc`,
 * `svc.ns.svc.cluster.local`; short names are the caller's namespace) to a compiled
 * ServiceRoute, picks a target by the route's policy (balancer.ts), and forwards over pooled
 * keep-alive connections: to a local endpoint, or to a remote cluster's gateway with the
 * export's path prefix. Idempotent requests (and any request that failed before a byte was
 * sent) are retried on another target; failing targets are ejected for a while.
 */
export class MeshOutboundRouter implements OutboundRouter {
  /** Compiled routes, updated per changed service (route-table.ts). */
  private readonly table: RouteTable;
  private readonly routes: ReadonlyMap<string, ServiceRoute>;
  /** Services (`namespace/name`) whose inputs changed since the last update. */
  private readonly dirty = new Set<string>();
  private readonly source: RouteSource;
  private readonly pickers = new Map<string, WeightedPicker>();
  readonly outliers = new OutlierDetector({ probeTimeoutMs: 500 });
  readonly stats: OutboundStats = { requests: 0, retries: 0, noRoute: 0, routeUpdates: 0, routeUpdateSeconds: 0 };
  private readonly informers: Informer[];
  private readonly pools: UpstreamRegistry;
  /** Pings the remote gateways the routes tunnel through (dead or slow ones are held out). */
  readonly liveness: GatewayLiveness;
  /** HTTP/2 sessions (gRPC) per target, beside the HTTP/1.1 pools. */
  readonly h2 = new H2SessionRegistry();
  private compileScheduled = false;
  private readonly ownCluster: string;
  private readonly sourceHeader: readonly string[];
  private readonly callerNamespace: string;
  private readonly timeoutMs: number;
  /** Host header / absolute-form authority → resolved name (or the refusal), so a request does no regex or split. */
  private readonly resolved = new Map<string, ResolvedName | CrossmeshError>();
  /** Per-target strings and arrays built once per target object (targets are rebuilt on compile). */
  private readonly perTarget = new WeakMap<Target, TargetInfo>();
  /** ActiveActive candidates (locals then remotes) per compiled route. */
  private readonly activeActive = new WeakMap<ServiceRoute, readonly Target[]>();

  constructor(private readonly opts: OutboundRouterOptions & { timeoutMs?: number }) {
    this.ownCluster = opts.identity.clusterName;
    this.sourceHeader = [SOURCE_CLUSTER_HEADER, this.ownCluster];
    this.h2SourceHeader = { [SOURCE_CLUSTER_HEADER]: this.ownCluster };
    this.callerNamespace = opts.identity.namespace;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    const dp = opts.dataPlane ?? {};
    this.pools = new UpstreamRegistry({ connectTimeoutMs: dp.connectTimeoutMs });
    this.liveness = new GatewayLiveness({ intervalMs: dp.pingIntervalMs, deadAfterMs: dp.deadAfterMs, connectTimeoutMs: dp.connectTimeoutMs });
    this.liveness.on('change', (gateway, state, reason) => this.onGatewayState(gateway, state, reason));
    // Routes read names, spec and subsets only: the caches keep nothing else.
    const informerOpts = { minBackoffMs: 100, maxBackoffMs: 2000, transform: routingFields };
    this.informers = [
      new Informer(opts.client, kindFor('v1', 'Service'), informerOpts),
      new Informer(opts.client, kindFor('v1', 'Endpoints'), informerOpts),
      new Informer(opts.client, kindFor('flomesh.io/v1alpha1', 'ServiceImport'), informerOpts),
      new Informer(opts.client, kindFor('flomesh.io/v1alpha1', 'GlobalTrafficPolicy'), informerOpts),
    ];
    this.table = new RouteTable(this.ownCluster, opts.meshTls);
    this.routes = this.table.routes;
    const [services, endpoints, imports, policies] = this.informers;
    this.source = {
      service: (ns, name) => services.get(name, ns),
      endpoints: (ns, name) => endpoints.get(name, ns),
      serviceImport: (ns, name) => imports.get(name, ns),
      policy: (ns, name) => policies.get(name, ns),
    };
    // All four kinds are named after the service they route: a change marks that service only.
    const mark = (o: KubeObject) => this.markDirty(`${o.metadata.namespace}/${o.metadata.name}`);
    for (const inf of this.informers) {
      inf.on('add', mark);
      inf.on('update', (_old, o) => mark(o));
      inf.on('delete', mark);
    }
  }

  async start(): Promise<void> {
    for (const inf of this.informers) inf.start();
    await Promise.all(this.informers.map((i) => i.waitForSync(15_000)));
    for (const inf of this.informers) for (const o of inf.list()) this.dirty.add(`${o.metadata.namespace}/${o.metadata.name}`);
    this.compile();
  }

  async close(): Promise<void> {
    this.liveness.close();
    for (const inf of this.informers) inf.stop();
    await Promise.all([this.pools.close(2000), this.h2.close(2000)]);
  }

  /** The compiled route for a name as the app would write it (for `crossmesh route` and tests). */
  explain(host: string): string {
    const resolved = this.resolve(host);
    const route = this.routes.get(routeKey(resolved.namespace, resolved.name, resolved.port));
    if (!route) throw new CrossmeshError('CM_ERR_NOT_FOUND', `no service ${resolved.namespace}/${resolved.name} with port ${resolved.port} in cluster ${this.ownCluster}`);
    return describeRoute(route);
  }

  handle(req: InboundRequest): void {
    this.stats.requests++;
    this.route(req).catch((err) => {
      const e = err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_INTERNAL', String(err), { cause: err });
      req.fail(e);
    });
  }

  private async route(req: InboundRequest): Promise<void> {
    const url = req.url;
    if (url.charCodeAt(0) === 47 /* / */) {
      const host = req.host;
      if (!host) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'crossmesh: request has no Host header; call http://SERVICE.NAMESPACE:PORT/...');
      checkPath(url);
      return this.dispatch(req, this.resolveCached(host), url);
    }
    const { host, path } = this.target(req);
    checkPath(path);
    return this.dispatch(req, this.resolveCached(host), path);
  }

  private resolveCached(host: string): ResolvedName {
    let r = this.resolved.get(host);
    if (r === undefined) {
      try {
        const name = this.resolve(host);
        name.key = routeKey(name.namespace, name.name, name.port);
        r = name;
      } catch (err) {
        if (!(err instanceof CrossmeshError)) throw err;
        r = err;
      }
      if (this.resolved.size >= RESOLVE_CACHE_MAX) this.resolved.clear();
      this.resolved.set(host, r);
    }
    if (r instanceof CrossmeshError) throw r;
    return r;
  }

  private targetInfo(route: ServiceRoute, target: Target): TargetInfo {
    let info = this.perTarget.get(target);
    if (info === undefined) {
      const label = describeTarget(route, target);
      info = {
        cluster: target.kind === 'local' ? this.ownCluster : clusterName(target.cluster),
        label,
        upstream: { key: target.origin, target: target.upstream, label },
        // The answering cluster, as the gateway names it on its HTTP port; the remote app sidecar adds x-crossmesh-served-by.
        responseHeaders: target.kind === 'local' ? ['x-crossmesh-cluster', this.ownCluster, 'x-crossmesh-endpoint', target.address] : target.tunnel !== undefined ? ['x-crossmesh-cluster', clusterName(target.cluster)] : undefined,
        h2ResponseHeaders: undefined,
      };
      const flat = info.responseHeaders;
      if (flat !== undefined) {
        const h: Record<string, string> = {};
        for (let i = 0; i < flat.length; i += 2) h[flat[i]] = flat[i + 1];
        info.h2ResponseHeaders = h;
      }
      this.perTarget.set(target, info);
    }
    return info;
  }

  /**
   * Sends one request to a mesh service (by namespace/name, and port when known) along its
   * compiled route. Used by the proxy listener and by Dapr service invocation. Errors are
   * thrown as CrossmeshError before anything was written; `opts.onError` lets invocation answer
   * them in Dapr's shape instead.
   */
  async dispatch(req: Downstream, name: { namespace: string; name: string; port?: number; key?: string }, path: string, opts: DispatchOptions = NO_OPTIONS): Promise<void> {
    const route = name.port !== undefined ? this.routes.get(name.key ?? routeKey(name.namespace, name.name, name.port)) : this.firstRoute(name.namespace, name.name);
    if (!route) {
      this.stats.noRoute++;
      const port = name.port !== undefined ? ` with port ${name.port}` : '';
      throw new CrossmeshError('CM_ERR_NOT_FOUND', `crossmesh: no service "${name.name}"${port} in namespace "${name.namespace}" of cluster ${this.ownCluster}; see what exists with \`crossmesh --cluster ${this.ownCluster} get svc -n ${name.namespace}\` and \`crossmesh --cluster ${this.ownCluster} get simp -n ${name.namespace}\``);
    }
    const method = req.method;
    const bodyless = !req.hasBody;
    const retryableMethod = bodyless && IDEMPOTENT.has(method);
    const pickerKey = name.port === route.port && name.key !== undefined ? name.key : routeKey(route.namespace, route.name, route.port);
    let picker = this.pickers.get(pickerKey);
    if (!picker) {
      picker = new WeightedPicker();
      this.pickers.set(pickerKey, picker);
    }
    let tried: Set<string> | undefined;
    let lastError: CrossmeshError | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const target = chooseTarget(route, picker, this.outliers, tried, route.lbType === 'ActiveActive' ? this.activeActiveOf(route) : undefined);
      if (!target) break;
      if (attempt > 0) this.stats.retries++;
      const info = this.targetInfo(route, target);
      this.opts.onTarget?.(req, info.cluster);
      const result = await proxy(req, this.pools, info.upstream, {
        path: target.pathPrefix === '' ? path : target.pathPrefix + path,
        timeoutMs: opts.timeoutMs ?? this.timeoutMs,
        respondOnError: false,
        // Remote gateways learn the calling cluster (their metrics' source_cluster).
        extraHeaders: target.kind === 'remote' ? (opts.extraHeaders ? [...opts.extraHeaders, ...this.sourceHeader] : this.sourceHeader) : opts.extraHeaders,
        dropHeaders: opts.dropHeaders,
        signal: opts.signal,
        // Only an idempotent bodyless request, with an attempt and another target left, may have its answer replaced.
        retryStatuses: retryableMethod && attempt < MAX_ATTEMPTS - 1 && hasAlternative(route, target, tried) ? RETRY_STATUSES : undefined,
        responseHeaders: info.responseHeaders,
      });
      // The caller went away: nothing to answer, and not the target's fault.
      if (result.clientGone) return;
      opts.observe?.(target, result.status);
      if (result.discarded) {
        this.outliers.failure(target, 'status');
        (tried ??= new Set()).add(target.id);
        lastError = new CrossmeshError(result.status === 504 ? 'CM_ERR_TIMEOUT' : 'CM_ERR_BAD_GATEWAY', `${describeTarget(route, target)} answered ${result.status}`);
        continue;
      }
      if (!result.error) {
        if (result.status >= 500) this.outliers.failure(target, 'status');
        else this.outliers.success(target);
        return;
      }
      if (result.responseStarted) return;
      const isTimeout = result.error.code === 'CM_ERR_TIMEOUT' && !result.failedBeforeSend;
      this.outliers.failure(target, isTimeout ? 'status' : 'connect');
      lastError = result.error;
      if (!(result.failedBeforeSend && (bodyless || !req.bodyConsumed)) && !(retryableMethod && !isTimeout)) break;
      (tried ??= new Set()).add(target.id);
    }
    if (lastError) throw lastError;
    this.stats.noRoute++;
    throw new CrossmeshError('CM_ERR_UNAVAILABLE', noTargetMessage(route, this.ownCluster));
  }

  /**
   * A CONNECT through the outbound listener (a gRPC client's proxy tunnel): the authority must
   * be a mesh name, else the refusal (the sidecar is not an open proxy).
   */
  tunnelCheck(authority: string): CrossmeshError | undefined {
    try {
      this.resolveCached(authority);
      return undefined;
    } catch (err) {
      const e = err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_BAD_REQUEST', String(err));
      return new CrossmeshError(e.code, `crossmesh: CONNECT ${authority.slice(0, 100)} refused: the outbound proxy opens tunnels (for HTTP/2 and gRPC clients) only to mesh services. ${e.message.replace(/^crossmesh: /, '')}`, { cause: e });
    }
  }

  /**
   * One HTTP/2 stream that reached the outbound listener (h2c, or inside a CONNECT tunnel): a
   * gRPC call or any h2 request to `<service>.<namespace>:<port>` (the tunnel's authority, else
   * `:authority`), routed per stream by the same compiled route and policy as HTTP/1.1.
   */
  handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ctx: H2StreamContext, done?: H2Done, app?: H2AppTarget): void {
    this.stats.requests++;
    const startedAt = performance.now();
    const ex = new H2Exchange(stream, headers, app === undefined
      ? { extraHeaders: this.h2SourceHeader, timeoutMs: this.timeoutMs }
      : { extraHeaders: { ...this.h2SourceHeader, ...app.extraHeaders }, dropHeaders: app.dropHeaders, timeoutMs: this.timeoutMs });
    this.routeStream(ex, headers, ctx, app).then((dest) => {
      const f = ex.finalStatus;
      done?.(dest, f.status, f.grpcStatus, startedAt);
    }, (err: unknown) => {
      ex.fail(err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_INTERNAL', String(err), { cause: err }));
      const f = ex.finalStatus;
      done?.('', f.status, f.grpcStatus, startedAt);
    });
  }

  private readonly h2SourceHeader: Readonly<Record<string, string>>;

  /** Resolves with the destination cluster of the last attempt; rejects with the answer for the client. */
  private async routeStream(ex: H2Exchange, headers: IncomingHttpHeaders, ctx: H2StreamContext, app: H2AppTarget | undefined): Promise<string> {
    const path = String(headers[':path'] ?? '');
    if (path.charCodeAt(0) !== 47 /* / */) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `crossmesh: HTTP/2 request path must start with "/" (got "${path.slice(0, 80)}")`);
    checkPath(path);
    let route: ServiceRoute | undefined;
    let namespace: string;
    let what: string;
    if (app !== undefined) {
      // Dapr's gRPC proxying: the app id names a service, whose lowest port is the app's.
      route = this.firstRoute(app.namespace, app.name);
      namespace = app.namespace;
      what = `no app "${app.name}" (service)`;
    } else {
      const authority = ctx.tunnelAuthority ?? headers[':authority'] ?? headers.host;
      if (!authority) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'crossmesh: HTTP/2 request has no :authority; call SERVICE.NAMESPACE:PORT (grpc-js: the target name, or grpc.default_authority when dialing the sidecar directly)');
      const name = this.resolveCached(authority);
      route = this.routes.get(name.key!);
      namespace = name.namespace;
      what = `no service "${name.name}" with port ${name.port}`;
    }
    if (!route) {
      this.stats.noRoute++;
      throw new CrossmeshError('CM_ERR_NOT_FOUND', `crossmesh: ${what} in namespace "${namespace}" of cluster ${this.ownCluster}; see what exists with \`crossmesh --cluster ${this.ownCluster} get svc -n ${namespace}\` and \`crossmesh --cluster ${this.ownCluster} get simp -n ${namespace}\``);
    }
    const pickerKey = routeKey(route.namespace, route.name, route.port);
    let picker = this.pickers.get(pickerKey);
    if (!picker) this.pickers.set(pickerKey, (picker = new WeightedPicker()));
    let tried: Set<string> | undefined;
    let lastError: CrossmeshError | undefined;
    let dest = '';
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const target = chooseTarget(route, picker, this.outliers, tried, route.lbType === 'ActiveActive' ? this.activeActiveOf(route) : undefined);
      if (!target) break;
      if (attempt > 0) this.stats.retries++;
      (tried ??= new Set()).add(target.id);
      if (target.kind === 'remote' && target.tunnel === undefined) {
        // The gateway's HTTP port is HTTP/1.1 only: HTTP/2 crosses clusters in mesh tunnels.
        lastError = new CrossmeshError('CM_ERR_UNAVAILABLE', `${describeTarget(route, target)}: that cluster's gateway has no mesh port (Cluster.spec.meshPort), and HTTP/2 (gRPC) crosses clusters only through mesh tunnels`);
        continue;
      }
      const info = this.targetInfo(route, target);
      dest = info.cluster;
      let session;
      try {
        const s = this.h2.session(info.upstream);
        session = s instanceof Promise ? await s : s;
      } catch (err) {
        // Nothing was sent: another target may take it.
        this.outliers.failure(target, 'connect');
        lastError = err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_BAD_GATEWAY', String(err), { cause: err });
        if (ex.gone) return dest;
        continue;
      }
      ex.setResponseHeaders(info.h2ResponseHeaders);
      const r = await ex.attempt(session);
      if (r.clientGone) return dest;
      if (r.error === undefined) {
        // An UNAVAILABLE answer (the mesh's when the app behind that sidecar is down, or the app's own) counts against the target.
        if (r.status >= 500 || r.grpcStatus === GRPC.UNAVAILABLE) this.outliers.failure(target, 'status');
        else this.outliers.success(target);
        return dest;
      }
      if (r.responseStarted) return dest;
      this.outliers.failure(target, r.retryable ? 'connect' : 'status');
      lastError = new CrossmeshError(r.error.code, `${info.label}: ${r.error.message}`, { cause: r.error });
      if (!r.retryable) break;
    }
    if (lastError) throw lastError;
    this.stats.noRoute++;
    throw new CrossmeshError('CM_ERR_UNAVAILABLE', noTargetMessage(route, this.ownCluster));
  }

  private activeActiveOf(route: ServiceRoute): readonly Target[] {
    let all = this.activeActive.get(route);
    if (all === undefined) {
      all = route.locals.length ? [...route.locals, ...route.remotes] : route.remotes;
      this.activeActive.set(route, all);
    }
    return all;
  }

  /** The route of a service's lowest port (Dapr invocation addresses an app, not a port). */
  private firstRoute(namespace: string, name: string): ServiceRoute | undefined {
    return this.table.byService.get(`${namespace}/${name}`);
  }

  /** Host and origin-form path from an absolute-form target or the Host header. */
  private target(req: InboundRequest): { host: string; path: string } {
    const url = req.url;
    if (url.startsWith('/')) {
      const host = req.host;
      if (!host) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'crossmesh: request has no Host header; call http://SERVICE.NAMESPACE:PORT/...');
      return { host, path: url };
    }
    if (url.startsWith('http://')) {
      const slash = url.indexOf('/', 7);
      return slash < 0 ? { host: url.slice(7), path: '/' } : { host: url.slice(7, slash), path: url.slice(slash) };
    }
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `crossmesh: the sidecar proxies plain http://SERVICE.NAMESPACE:PORT/... requests only (got "${url.slice(0, 80)}")`);
  }

  private resolve(hostPort: string): ResolvedName {
    const m = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(hostPort);
    if (!m) throw notMesh(hostPort);
    const host = m[1].toLowerCase().replace(/\.$/, '');
    const port = m[2] ? Number(m[2]) : 80;
    const parts = host.split('.');
    let name: string;
    let namespace: string;
    if (parts.length === 1) [name, namespace] = [parts[0], this.callerNamespace];
    else if (parts.length === 2 || (parts.length === 3 && parts[2] === 'svc') || (parts.length === 5 && parts.slice(2).join('.') === 'svc.cluster.local')) [name, namespace] = [parts[0], parts[1]];
    else throw notMesh(hostPort);
    return { namespace, name, port };
  }

  private markDirty(key: string): void {
    this.dirty.add(key);
    if (this.compileScheduled) return;
    this.compileScheduled = true;
    // One update per burst of informer events.
    setImmediate(() => {
      this.compileScheduled = false;
      this.compile();
    });
  }

  /** Recompiles the routes of the services marked dirty, and drops what no route uses any more. */
  private compile(): void {
    const started = performance.now();
    const keys = [...this.dirty];
    this.dirty.clear();
    const added = this.table.update(keys, this.source);
    // Names resolve the same, but the new routes may hold what a cached refusal did not find.
    this.resolved.clear();
    this.outliers.retain(this.table.targetIds);
    this.pools.retain(this.table.poolKeys);
    this.h2.retain(this.table.poolKeys);
    for (const t of added) {
      if (t.kind !== 'remote' || t.tunnel === undefined) continue;
      // A target new in this table, through a gateway already known dead or slow, is held too.
      const key = gatewayKey(t);
      const state = this.liveness.state(key);
      if (state === 'dead' || state === 'slow') this.outliers.hold(t, `gateway ${key} ${state}`);
    }
    if (this.table.gatewaysChanged || keys.length === 0) this.liveness.retain(this.table.gateways());
    this.stats.routeUpdates++;
    this.stats.routeUpdateSeconds += (performance.now() - started) / 1000;
  }

  /**
   * A remote gateway went dead, slow or alive: hold its targets out or let them back, and on
   * death cut the tunnels through it, so requests waiting there end now (an idempotent one is
   * retried on another cluster by dispatch(); any other is answered 502, never sent twice).
   */
  private onGatewayState(gateway: string, state: GatewayState, reason: string): void {
    const targets: Target[] = [];
    for (const r of this.routes.values()) for (const t of r.remotes) if (t.tunnel !== undefined && gatewayKey(t) === gateway) targets.push(t);
    if (state === 'dead') {
      log.warn(`sidecar ${this.ownCluster}/${this.callerNamespace}: gateway ${gateway} is dead (${reason}); its ${targets.length} target(s) are held out and its tunnels cut`);
      for (const t of targets) this.outliers.hold(t, `gateway ${gateway} dead: ${reason}`);
      const [host, port] = [targets[0]?.upstream.host, targets[0]?.upstream.port];
      const err = new CrossmeshError('CM_ERR_BAD_GATEWAY', `the tunnel through gateway ${gateway} went dead (${reason}) while the request waited for its answer`);
      if (host !== undefined && port !== undefined) this.pools.abortTo(host, port, err);
      this.h2.abortTunnelsTo(gateway);
    } else if (state === 'slow') {
      log.info(`sidecar ${this.ownCluster}/${this.callerNamespace}: gateway ${gateway} is slow (${reason}); other clusters are preferred`);
      for (const t of targets) this.outliers.hold(t, `gateway ${gateway} slow: ${reason}`);
    } else {
      log.info(`sidecar ${this.ownCluster}/${this.callerNamespace}: gateway ${gateway} is ${state} (${reason})`);
      for (const t of targets) this.outliers.release(t, true);
    }
  }
}

/** `region/zone/group/name` → `name`. */
function clusterName(clusterKey: string): string {
  return clusterKey.slice(clusterKey.lastIndexOf('/') + 1);
}

function describeTarget(route: ServiceRoute, t: Target): string {
  if (t.kind === 'local') return `${route.namespace}/${route.name} endpoint ${t.address}`;
  return t.tunnel !== undefined ? `${route.namespace}/${route.name} in ${t.cluster} via tunnel through gateway mesh port ${t.address}` : `${route.namespace}/${route.name} in ${t.cluster} via gateway ${t.address}`;
}

/**
 * The gateway's request-target rule on every mesh call, local or remote alike (a remote gateway
 * refuses these anyway; a local endpoint must not see them either): no dot or empty segments,
 * no encoded '.', '/', '\\' or control characters.
 */
function checkPath(pathAndQuery: string): void {
  const q = pathAndQuery.indexOf('?');
  if (!isSafePath(q < 0 ? pathAndQuery : pathAndQuery.slice(0, q))) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', "crossmesh: request path refused: dot segments, empty segments, encoded '.', '/', '\\' and control characters are not allowed");
  }
}

function notMesh(host: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_NOT_FOUND', `crossmesh: "${host.slice(0, 100)}" is not a mesh service; the sidecar routes only SERVICE, SERVICE.NAMESPACE, SERVICE.NAMESPACE.svc[.cluster.local] names (it is not an open proxy)`);
}

function noTargetMessage(route: ServiceRoute, cluster: string): string {
  const svc = `${route.namespace}/${route.name}:${route.port}`;
  if (route.lbType === 'Locality') {
    const hint = route.exporters.length
      ? `; it is exported by ${route.exporters.map((k) => k.split('/').pop()).join(', ')}: apply a GlobalTrafficPolicy named ${route.name} in namespace ${route.namespace} of ${cluster} with lbType FailOver or ActiveActive to use them`
      : '';
    return `crossmesh: no local endpoint of ${svc} in cluster ${cluster} (policy Locality${route.hasPolicy ? '' : ', the default with no GlobalTrafficPolicy'})${hint}`;
  }
  return `crossmesh: no endpoint of ${svc} can take the request in cluster ${cluster} (policy ${route.lbType}: ${route.locals.length} local endpoint(s), ${route.remotes.length} remote target(s) with weight > 0)`;
}

export function createOutboundRouter(opts: OutboundRouterOptions): MeshOutboundRouter {
  return new MeshOutboundRouter(opts);
}
