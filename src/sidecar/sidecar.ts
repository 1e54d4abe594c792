/**
 * One sidecar: the listeners an app runs beside, usable in-process (tests start many cheaply)
 * and by the `crossmesh sidecar` process (process.ts), which adds the app itself.
 *
 *   outbound  127.0.0.1:port0  the app's HTTP proxy (http_proxy): the OutboundRouter (outbound.ts)
 *   inbound   127.0.0.1:port0  in front of the app: forward() to 127.0.0.1:APP_PORT; its address
 *                              is the app instance's endpoint in the cluster (with a lease). With
 *                              appProtocol 'grpc' a Dapr invocation is delivered as the app's
 *                              AppCallback/OnInvoke (src/dapr/grpc/app-channel.ts) instead
 *   http      127.0.0.1:port0  DAPR_HTTP_PORT: the Dapr HTTP API (src/dapr/) and /metrics
 *   grpc      127.0.0.1:port0  DAPR_GRPC_PORT: the Dapr gRPC API (src/dapr/grpc/), grpc-js loaded on
 *                              the first connection
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { ApiClient } from '../client/api-client.js';
import type { ApiEndpoint } from '../client/kubeconfig.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { instancePodName } from '../leases/names.js';
import { isSafePath, refuseConnect } from '../proxy/index.js';
import { H1Server, InboundRequest } from '../proxy/h1/server.js';
import { H2Front } from '../proxy/h2/server.js';
import { H2SessionRegistry } from '../proxy/h2/sessions.js';
import { GRPC_CODE_NAMES } from '../proxy/h2/grpc-status.js';
import { BAD_PATH_MESSAGE, inboundStreamHandler } from './inbound-h2.js';
import { proxy, type Upstream } from '../proxy/h1/proxy.js';
import { UpstreamRegistry } from '../proxy/h1/upstream.js';
import { stateDir } from '../util/home.js';
import { ComponentRegistry, createDaprApiHandler, type InvokeHandler } from '../dapr/index.js';
import { DaprInvoker } from '../dapr/invoke.js';
import { DaprGrpcListener } from '../dapr/grpc/listener.js';
import { httpMetadataSource } from '../dapr/grpc/http-metadata.js';
import { PubSubMetrics } from '../dapr/pubsub/metrics.js';
import { Subscriber } from '../dapr/pubsub/subscriber.js';
import { HttpAppSubscriberChannel } from '../dapr/pubsub/app-http.js';
import type { AppSubscriberChannel } from '../dapr/pubsub/app-channel.js';
import { DeclarativeSubscriptions, programmaticSource } from '../dapr/pubsub/sources.js';
import type { BufferedInvoker } from '../dapr/grpc/server.js';
import { log } from '../util/log.js';
import { RequestMetrics, SOURCE_CLUSTER_HEADER } from '../metrics/requests.js';
import { createOutboundRouter, MeshOutboundRouter } from './outbound.js';
import { freeChildPort } from '../util/net.js';
export { freePort } from '../util/net.js';
import { EndpointRegistration } from './registration.js';
import { Informer } from '../client/informer.js';
import { kindFor } from '../api/index.js';
import { mtlsClientContext, mtlsServerOptions } from '../identity/mesh-tls.js';
import type { UpstreamTls } from '../proxy/h1/upstream.js';
import type { SecureContext } from 'node:tls';
import { Backoff, sleep } from '../util/backoff.js';
import { InboundAuthorizer } from './authz.js';
import { WorkloadIdentity, type SidecarCredentials, type TrustBundle } from './workload-identity.js';
import type { DataPlaneSettings, OutboundRouter, OutboundRouterOptions, SidecarIdentity } from './types.js';
import type { GrpcAppChannel } from '../dapr/grpc/app-channel.js';
import { connect } from 'node:net';
import { Framing } from '../proxy/h1/types.js';

export const NO_PROXY = 'localhost,127.0.0.1,::1';

/** `crossmesh run --app-protocol` values (Dapr's grpcs, https and h2c are not supported). */
export type AppProtocol = 'http' | 'grpc';

export interface SidecarOptions {
  identity: Omit<SidecarIdentity, 'instanceId'> & { instanceId?: string };
  /** The app's service account: its mesh identity spiffe://<td>/ns/<namespace>/sa/<name>. Default `default`. */
  serviceAccount?: string;
  /** The cluster API (server + token), or a client the caller owns (then not closed by close()). */
  api: ApiEndpoint | ApiClient;
  /**
   * The service port callers use (`--app-port`). Undefined: a client-only app, with no inbound
   * listener, no APP_PORT and no endpoint registration.
   */
  servicePort?: number;
  /**
   * Port the app listens on (APP_PORT). Given: the app already listens there and the endpoint is
   * registered right away. Not given: a free port is picked and the caller calls register() once
   * the app listens.
   */
  appPort?: number;
  /** How long start waits for the outbound router's caches (a sidecar starts even when the API is away). Default 10 s. */
  routerSyncTimeoutMs?: number;
  /** Collect process metrics (CPU, memory, event loop) too; for a sidecar in its own process. */
  processMetrics?: boolean;
  /** Lease timing (tests). */
  renewIntervalMs?: number;
  leaseDurationSeconds?: number;
  /** Dapr: directory of embedded state stores' files (default $CROSSMESH_HOME/state). */
  daprStateDir?: string;
  /** Dapr: the Configuration (in the app's namespace) whose spec.secrets.scopes apply (`run --config`). */
  daprConfig?: string;
  /** Dapr: required dapr-api-token (default env DAPR_API_TOKEN). */
  daprApiToken?: string;
  /** Dapr: token the sidecar sends to the app as dapr-api-token (default env APP_API_TOKEN). */
  appApiToken?: string;
  /** Dapr: service invocation behind /v1.0/invoke and dapr-app-id (501 when absent). */
  invoke?: InvokeHandler;
  /**
   * Dapr's app-protocol: how the sidecar talks to the app. 'http' (default): requests are
   * proxied over HTTP/1.1. 'grpc': Dapr invocations call the app's AppCallback/OnInvoke over
   * h2c on APP_PORT; other requests are refused (502), a gRPC app does not speak HTTP/1.1.
   */
  appProtocol?: AppProtocol;
  /** Dapr: POST /v1.0/shutdown (default: close this sidecar). */
  onShutdown?: () => void;
  /** Connect timeout and gateway liveness of the outbound side (defaults: 500 ms, pings every 250 ms, dead after 750 ms). */
  dataPlane?: DataPlaneSettings;
  /** Replaces the mesh router (tests of the process side). */
  createRouter?: (opts: OutboundRouterOptions) => OutboundRouter;
}

export interface SidecarPorts {
  outbound: number;
  http: number;
  grpc: number;
  /** Inbound listener (the registered endpoint); only with a service port. */
  inbound?: number;
  /** APP_PORT; only with a service port. */
  app?: number;
  service?: number;
}

export interface RunningSidecar {
  identity: SidecarIdentity;
  ports: SidecarPorts;
  /** The environment the app gets (APP_PORT, DAPR_*_PORT, APP_ID, NAMESPACE, CLUSTER_NAME, proxies). */
  appEnv: Record<string, string>;
  metrics: RequestMetrics;
  router: OutboundRouter;
  /** Dapr components (state stores) of the app's namespace, with their load status. */
  components: ComponentRegistry;
  /** Undefined until register() (and for client-only apps). */
  registration?: EndpointRegistration;
  /** The app's pub/sub subscriptions (apps with an APP_PORT); started by startSubscriptions(). */
  subscriber?: Subscriber;
  /** Reads the app's subscriptions and subscribes (idempotent); call once the app listens. Resolves when subscribed. */
  startSubscriptions(): Promise<void>;
  /** The mesh identity for `status`: mode, SPIFFE ID and certificate expiry. */
  meshIdentity(): { mode: 'mtls' | 'plaintext'; spiffeId?: string; notAfter?: string };
  /**
   * Resolves true once the app can be called in its protocol within `timeoutMs` (gRPC: an
   * HTTP/2 connection to APP_PORT is up; HTTP: APP_PORT accepts a TCP connection).
   */
  appReady(timeoutMs: number): Promise<boolean>;
  /** Called after each certificate rotation. */
  onRotate(cb: () => void): void;
  /** Starts the endpoint registration (idempotent); resolves true once registered, false after timeoutMs (it keeps trying). */
  register(timeoutMs?: number): Promise<boolean>;
  /** Deregisters first, then closes the listeners (draining up to 2 s) and the router. Idempotent. */
  close(): Promise<void>;
}

/** A short lowercase id, unique enough per app on one machine (`k3f9x`). */
export function newInstanceId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(5);
  let id = '';
  for (const b of bytes) id += alphabet[b % alphabet.length];
  return id;
}

function listen(server: Server | NetServer | H1Server, host: string): Promise<number> {
  if (server instanceof H1Server) return server.listen(0, host);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

async function closeServer(server: Server | NetServer | H1Server, drainMs: number): Promise<void> {
  if (server instanceof H1Server) return server.close(drainMs);
  if (!server.listening) return;
  const done = new Promise<void>((r) => server.close(() => r()));
  if ('closeIdleConnections' in server) server.closeIdleConnections();
  const t = setTimeout(() => { if ('closeAllConnections' in server) server.closeAllConnections(); }, drainMs);
  t.unref();
  await done;
  clearTimeout(t);
}

const BAD_INBOUND_PATH = {
  code: 'CM_ERR_BAD_REQUEST',
  status: 400,
  message: BAD_PATH_MESSAGE,
};

function tunnelRefusal(what: string): { code: string; status: number; message: string } {
  return { code: 'CM_ERR_METHOD_NOT_ALLOWED', status: 405, message: `crossmesh: ${what} does not tunnel (CONNECT); send plain http:// requests` };
}

/** Status label of a finished request ('aborted' when nothing was answered); strings made once. */
const STATUS_LABELS = new Map<number, string>();
function statusLabel(status: number): string {
  if (status === 0) return 'aborted';
  let l = STATUS_LABELS.get(status);
  if (l === undefined) STATUS_LABELS.set(status, (l = String(status)));
  return l;
}

function setDestination(req: unknown, cluster: string): void {
  if (req instanceof InboundRequest) req.destination = cluster;
}

export async function startSidecar(opts: SidecarOptions): Promise<RunningSidecar> {
  const host = '127.0.0.1';
  const identity: SidecarIdentity = { ...opts.identity, instanceId: opts.identity.instanceId ?? newInstanceId() };
  const pod = instancePodName(identity.appId, identity.instanceId);
  const ownsClient = !(opts.api instanceof ApiClient);
  const client = opts.api instanceof ApiClient ? opts.api : new ApiClient(opts.api);
  const metrics = new RequestMetrics('crossmesh_sidecar', { cluster: identity.clusterName, namespace: identity.namespace, app_id: identity.appId }, { processMetrics: opts.processMetrics });
  const label = `sidecar ${identity.clusterName}/${identity.namespace}/${pod}`;

  // The mesh identity comes first: the inbound listener and the outbound pools need it.
  const rotateListeners: Array<() => void> = [];
  let inbound: H1Server | undefined;
  let clientContext: SecureContext | undefined;
  const workload = new WorkloadIdentity({
    client,
    tokenClient: (token) => new ApiClient({ ...client.endpoint, token }),
    namespace: identity.namespace,
    serviceAccount: opts.serviceAccount ?? 'default',
    label,
    onRotate: (c: SidecarCredentials) => {
      // New connections get the new certificate; established ones keep their session.
      clientContext = mtlsClientContext(c);
      inbound?.setSecureContext(mtlsServerOptions(c));
      for (const cb of rotateListeners) cb();
    },
  });
  let bundle: TrustBundle;
  try {
    bundle = await startIdentity(workload, opts.routerSyncTimeoutMs ?? 10_000, label);
  } catch (err) {
    await workload.close();
    if (ownsClient) await client.close();
    throw err;
  }
  const mtls = bundle.mode === 'mtls';
  if (mtls) clientContext = mtlsClientContext(workload.current()!);
  const meshTls: UpstreamTls | undefined = mtls ? { context: () => clientContext!, trustDomain: bundle.trustDomain } : undefined;
  metrics.counterFrom('crossmesh_sidecar_certificate_rotations_total', 'Workload certificates renewed after the first', () => workload.rotations);
  metrics.counterFrom('crossmesh_sidecar_certificate_renewal_failures_total', 'Failed workload certificate requests', () => workload.failures);

  const router = (opts.createRouter ?? createOutboundRouter)({ identity, client, onTarget: setDestination, meshTls, ...(opts.dataPlane ? { dataPlane: opts.dataPlane } : {}) });
  if (router instanceof MeshOutboundRouter) {
    const mesh = router;
    metrics.counterFrom('crossmesh_sidecar_retries_total', 'Outbound attempts retried on another endpoint or cluster', () => mesh.stats.retries);
    metrics.counterFrom('crossmesh_sidecar_route_updates_total', 'Outbound route updates (one per burst of Service, Endpoints, ServiceImport or GlobalTrafficPolicy changes)', () => mesh.stats.routeUpdates);
    metrics.counterFrom('crossmesh_sidecar_route_update_seconds_total', 'Time spent in outbound route updates', () => mesh.stats.routeUpdateSeconds);
    metrics.counterFrom('crossmesh_sidecar_ejections_total', 'Outbound targets ejected by outlier detection', () => mesh.outliers.ejectionsTotal);
  }
  const servers: Array<Server | NetServer | H1Server> = [];
  const appPools = new UpstreamRegistry();
  /** h2c sessions to an app that speaks gRPC (HTTP/2 streams from the mesh). */
  const appH2 = new H2SessionRegistry();
  let ready = false;

  const own = identity.clusterName;
  // gRPC status counts, by direction (HTTP/2 streams; the requests metric counts their HTTP status).
  const grpcCounts = { outbound: {} as Record<string, number>, inbound: {} as Record<string, number> };
  const countGrpc = (direction: 'outbound' | 'inbound', grpcStatus: number) => {
    if (grpcStatus < 0) return;
    const k = GRPC_CODE_NAMES[grpcStatus] ?? 'UNKNOWN';
    grpcCounts[direction][k] = (grpcCounts[direction][k] ?? 0) + 1;
  };
  metrics.labelledCounterFrom('crossmesh_sidecar_outbound_grpc_total', 'gRPC calls through the outbound listener, by the gRPC status they ended with', 'grpc_status', () => grpcCounts.outbound);
  metrics.labelledCounterFrom('crossmesh_sidecar_inbound_grpc_total', 'gRPC calls delivered to the app, by the gRPC status they ended with', 'grpc_status', () => grpcCounts.inbound);
  const mesh = router instanceof MeshOutboundRouter ? router : undefined;
  const outboundH2 = mesh === undefined ? undefined : new H2Front({
    label: 'the sidecar (outbound proxy)',
    onStream: (stream, headers, ctx) => mesh.handleStream(stream, headers, ctx, (dest, status, grpcStatus, startedAt) => {
      metrics.record('outbound', own, dest, statusLabel(status), (performance.now() - startedAt) / 1000);
      countGrpc('outbound', grpcStatus);
    }),
  });
  const outbound = new H1Server({
    onRequest: (req) => router.handle(req),
    onFinish: (req) => metrics.record('outbound', own, req.destination, statusLabel(req.status), (performance.now() - req.startedAt) / 1000),
    refuseTunnel: tunnelRefusal('the sidecar (outbound proxy)'),
    h2: outboundH2,
    tunnel: mesh === undefined ? undefined : (authority) => mesh.tunnelCheck(authority),
  });
  servers.push(outbound);

  const appPort = opts.servicePort !== undefined ? (opts.appPort ?? (await freeChildPort(host))) : undefined;
  // Who of other clusters may call this app: its ServiceExport's serviceAccountName (authz.ts).
  const authz = new InboundAuthorizer(own, `${identity.namespace}/${identity.appId}`);
  let exportsInformer: Informer | undefined;
  const tlsRefused: Record<string, number> = {};
  let grpcApp: GrpcAppChannel | undefined;
  if (appPort !== undefined) {
    const responseHeaders = ['x-crossmesh-served-by', `${identity.clusterName}/${pod}`];
    const appLabel = `app ${identity.namespace}/${identity.appId} at ${host}:${appPort}`;
    const app: Upstream = { key: `${host}:${appPort}`, target: { host, port: appPort }, label: appLabel };
    // APP_API_TOKEN: the app can check that calls come through its sidecar (Dapr's app token).
    const appToken = opts.appApiToken ?? process.env.APP_API_TOKEN;
    const appTokenHeader = appToken ? ['dapr-api-token', appToken] : undefined;
    if (mtls) {
      const informer = new Informer(client, kindFor('flomesh.io/v1alpha1', 'ServiceExport'), { namespace: identity.namespace, minBackoffMs: 100, maxBackoffMs: 2000 });
      const onExport = () => authz.update(informer.get(identity.appId, identity.namespace));
      for (const e of ['add', 'update', 'delete', 'synced'] as const) informer.on(e, onExport);
      exportsInformer = informer;
      metrics.labelledCounterFrom('crossmesh_sidecar_inbound_forbidden_total', 'Inbound requests of other clusters refused by the ServiceExport rule (403)', 'reason', () => authz.refused);
      metrics.labelledCounterFrom('crossmesh_sidecar_inbound_tls_refused_total', 'Inbound connections refused in or right after the TLS handshake', 'reason', () => tlsRefused);
    }
    const refusalLog = new RefusalLog(label);
    if (opts.appProtocol === 'grpc') {
      // grpc-js and the protos are loaded only for an app that speaks gRPC.
      const { GrpcAppChannel } = await import('../dapr/grpc/app-channel.js');
      grpcApp = new GrpcAppChannel(host, appPort, { appToken });
    }
    const grpcRefusal = {
      code: 'CM_ERR_BAD_GATEWAY', status: 502,
      message: `${appLabel} speaks gRPC (--app-protocol grpc): only Dapr service invocation reaches it (as AppCallback/OnInvoke); plain HTTP/1.1 requests are not forwarded to it`,
    };
    const inboundH2 = new H2Front({
      label: 'the sidecar inbound listener',
      onStream: inboundStreamHandler({
        ownCluster: own, app: grpcApp !== undefined ? app : undefined, appLabel, authz, sessions: appH2,
        responseHeaders: { [responseHeaders[0]]: responseHeaders[1] },
        appHeaders: appTokenHeader ? { [appTokenHeader[0]]: appTokenHeader[1] } : undefined,
        done: (source, status, grpcStatus, startedAt) => {
          metrics.record('inbound', source || own, own, statusLabel(status), (performance.now() - startedAt) / 1000);
          countGrpc('inbound', grpcStatus);
        },
      }),
    });
    inbound = new H1Server({
      h2: inboundH2,
      tls: mtls ? {
        options: mtlsServerOptions(workload.current()!),
        onRefused: (err, remote) => {
          const reason = refusalReason(err);
          tlsRefused[reason] = (tlsRefused[reason] ?? 0) + 1;
          refusalLog.note(`inbound connection from ${remote} refused: ${err.message}`);
        },
      } : undefined,
      onRequest: (req: InboundRequest) => {
        const peer = req.peer;
        if (peer !== undefined) {
          // The caller's cluster is the one whose CA issued its certificate, not a header it sent.
          req.source = peer.cluster;
          const refusal = authz.check(peer);
          if (refusal !== undefined) return req.fail(refusal, responseHeaders);
        } else {
          req.source = req.header(SOURCE_CLUSTER_HEADER) ?? own;
        }
        let path = req.url;
        if (path.charCodeAt(0) !== 47 /* / */) {
          // Absolute-form (a client that treats us as a proxy): keep path and query only, as sent
          // (no URL parsing: it would resolve dot segments before the check below).
          const m = /^https?:\/\/[^/?#]*/i.exec(path);
          path = m === null ? '' : path.slice(m[0].length);
          if (path === '' || path.charCodeAt(0) === 63 /* ? */) path = '/' + path;
        }
        const q = path.indexOf('?');
        if (!isSafePath(q < 0 ? path : path.slice(0, q))) return req.fail(BAD_INBOUND_PATH, responseHeaders);
        if (grpcApp !== undefined) return void invokeGrpcApp(grpcApp, req, path, q, identity.appId, responseHeaders, grpcRefusal);
        void proxy(req, appPools, app, { path, responseHeaders, extraHeaders: appTokenHeader });
      },
      onFinish: (req) => metrics.record('inbound', req.source || own, own, statusLabel(req.status), (performance.now() - req.startedAt) / 1000),
      refuseTunnel: tunnelRefusal('the sidecar inbound listener'),
    });
    servers.push(inbound);
  }

  // DAPR_HTTP_PORT: the Dapr HTTP API (src/dapr/), /metrics included.
  const components = new ComponentRegistry({
    appId: identity.appId, namespace: identity.namespace, dataDir: opts.daprStateDir ?? stateDir(), client,
    serviceAccount: opts.serviceAccount ?? 'default', ...(opts.daprConfig ? { config: opts.daprConfig } : {}),
  });
  // Pub/sub: publishes through the APIs, deliveries to the app through its channel (HTTP or gRPC).
  const pubsubMetrics = new PubSubMetrics(metrics.registry);
  let subscriber: Subscriber | undefined;
  let declarative: DeclarativeSubscriptions | undefined;
  if (appPort !== undefined) {
    const appToken = opts.appApiToken ?? process.env.APP_API_TOKEN;
    let channel: AppSubscriberChannel;
    let where: string;
    if (grpcApp !== undefined) {
      const { GrpcAppSubscriberChannel } = await import('../dapr/grpc/app-subscriber.js');
      channel = new GrpcAppSubscriberChannel(grpcApp);
      where = 'AppCallback/ListTopicSubscriptions';
    } else {
      channel = new HttpAppSubscriberChannel(host, appPort, { appToken });
      where = 'GET /dapr/subscribe';
    }
    declarative = new DeclarativeSubscriptions(client, identity.namespace, identity.appId, label);
    subscriber = new Subscriber({
      appId: identity.appId, consumer: `${identity.clusterName}/${pod}`, registry: components, channel,
      programmatic: programmaticSource(channel, identity.appId, where, label), declarative, metrics: pubsubMetrics, label,
    });
  }
  // Dapr service invocation goes through the mesh router, so the cluster's policy decides where it lands.
  const invoker = opts.invoke ?? (router instanceof MeshOutboundRouter ? new DaprInvoker(router, identity, { appPolicy: (id) => components.appPolicy(id) }) : undefined);
  const onShutdown = opts.onShutdown ?? (() => void close());
  const admin = createServer(createDaprApiHandler({
    appId: identity.appId, namespace: identity.namespace, components, metrics, appPort, apiToken: opts.daprApiToken,
    invoke: invoker, isReady: () => ready, onShutdown, appProtocol: opts.appProtocol,
    pubsubMetrics, subscriptions: () => subscriber?.status() ?? [],
  }));
  refuseConnect(admin, 'the Dapr HTTP API');
  servers.push(admin);

  // DAPR_GRPC_PORT: the Dapr gRPC API (src/dapr/grpc/), grpc-js imported on the first connection.
  // Its metadata is the HTTP API's (one `extended` map for both), read over loopback.
  const daprToken = opts.daprApiToken ?? process.env.DAPR_API_TOKEN ?? '';
  const grpc = new DaprGrpcListener(() => ({
    appId: identity.appId, components, apiToken: daprToken, onShutdown, pubsubMetrics,
    invoke: invoker && 'invokeBuffered' in invoker ? (invoker as BufferedInvoker) : undefined,
    metadata: httpMetadataSource(httpPort, daprToken),
    // Dapr's gRPC proxying (dapr-app-id on a call to another service) goes through the mesh router.
    proxy: invoker instanceof DaprInvoker ? (stream, headers, appId) => invoker.proxyStream(stream, headers, appId, (dest, status, grpcStatus, startedAt) => {
      metrics.record('outbound', own, dest, statusLabel(status), (performance.now() - startedAt) / 1000);
      countGrpc('outbound', grpcStatus);
    }) : undefined,
  }), `${label}: dapr gRPC API`);
  let httpPort = 0;

  let closing: Promise<void> | undefined;
  let registration: EndpointRegistration | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      ready = false;
      await registration?.close(true);
      await Promise.all([...servers.map((s) => closeServer(s, 2000)), grpc.close(2000)]);
      // Subscriptions stop before the components close: messages in the app finish and are acknowledged.
      await subscriber?.close();
      declarative?.stop();
      await Promise.all([appPools.close(500), appH2.close(500)]);
      grpcApp?.close();
      await components.close();
      exportsInformer?.stop();
      await workload.close();
      await router.close().catch((err) => log.warn(`${pod}: closing the outbound router: ${toCrossmeshError(err).message}`));
      if (ownsClient) await client.close();
    })();
    return closing;
  };

  try {
    const ports: SidecarPorts = {
      outbound: await listen(outbound, host),
      http: await listen(admin, host),
      grpc: await grpc.listen(0, host),
    };
    httpPort = ports.http;
    if (inbound) {
      ports.inbound = await listen(inbound, host);
      ports.app = appPort;
      ports.service = opts.servicePort;
    }
    const proxy = `http://${host}:${ports.outbound}`;
    const appEnv: Record<string, string> = {
      ...(ports.app !== undefined ? { APP_PORT: String(ports.app) } : {}),
      DAPR_HTTP_PORT: String(ports.http),
      DAPR_GRPC_PORT: String(ports.grpc),
      APP_ID: identity.appId,
      NAMESPACE: identity.namespace,
      CLUSTER_NAME: identity.clusterName,
      CROSSMESH_INSTANCE_ID: identity.instanceId,
      http_proxy: proxy,
      HTTP_PROXY: proxy,
      NO_PROXY,
      no_proxy: NO_PROXY,
      // The app's Dapr client must send the sidecar's token; the app may check its own.
      ...((opts.daprApiToken ?? process.env.DAPR_API_TOKEN) ? { DAPR_API_TOKEN: (opts.daprApiToken ?? process.env.DAPR_API_TOKEN)! } : {}),
      ...((opts.appApiToken ?? process.env.APP_API_TOKEN) ? { APP_API_TOKEN: (opts.appApiToken ?? process.env.APP_API_TOKEN)! } : {}),
    };
    const syncMs = opts.routerSyncTimeoutMs ?? 10_000;
    await Promise.all([
      Promise.race([
        router.start().catch((err) => log.warn(`${pod}: outbound routes not synced yet (${toCrossmeshError(err).message}); the router keeps trying`)),
        new Promise((r) => setTimeout(r, syncMs).unref()),
      ]),
      components.start(syncMs),
      exportsInformer?.start().waitForSync(syncMs).catch((err) => log.warn(`${pod}: ServiceExports not synced yet (${toCrossmeshError(err).message}); callers of other clusters are refused until they are`)),
      declarative?.start(syncMs),
    ]);
    ready = true;

    const running: RunningSidecar = {
      identity,
      ports,
      appEnv,
      metrics,
      router,
      components,
      get registration() { return registration; },
      subscriber,
      startSubscriptions() {
        if (!subscriber || closing) return Promise.resolve();
        return subscriber.start();
      },
      meshIdentity() {
        const c = workload.current();
        return { mode: bundle.mode, spiffeId: c?.spiffeId, notAfter: c?.notAfter.toISOString() };
      },
      appReady(timeoutMs) {
        if (ports.app === undefined) return Promise.resolve(false);
        if (grpcApp) return grpcApp.waitForReady(timeoutMs);
        return canConnect(ports.app, host);
      },
      onRotate(cb) { rotateListeners.push(cb); },
      register(timeoutMs = 10_000) {
        if (ports.inbound === undefined) return Promise.resolve(false);
        if (closing) return Promise.resolve(false);
        registration ??= new EndpointRegistration({
          client, namespace: identity.namespace, appId: identity.appId, instanceId: identity.instanceId, port: ports.inbound,
          renewIntervalMs: opts.renewIntervalMs, leaseDurationSeconds: opts.leaseDurationSeconds,
          label: `sidecar ${identity.clusterName}/${identity.namespace}/${pod}`,
        }).start();
        return registration.whenRegistered(timeoutMs);
      },
      close,
    };
    if (opts.appPort !== undefined && ports.inbound !== undefined) {
      await running.register();
      // The app already listens: subscribe in the background (the app answers GET /dapr/subscribe).
      void running.startSubscriptions();
    }
    return running;
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The first trust bundle and certificate, retried with back-off for up to `timeoutMs` (the
 * cluster process may be starting); then the sidecar does not start: it cannot serve the mesh
 * without an identity, and says why.
 */
async function startIdentity(workload: WorkloadIdentity, timeoutMs: number, label: string): Promise<TrustBundle> {
  const deadline = Date.now() + timeoutMs;
  const backoff = new Backoff({ initialMs: 100, maxMs: 2000, jitter: 0.2 });
  for (;;) {
    try {
      return await workload.start();
    } catch (err) {
      const e = toCrossmeshError(err);
      // A refusal (bad service account, forbidden, invalid) will not change by retrying.
      if (e.status < 500 || Date.now() + 100 > deadline) {
        throw new CrossmeshError(e.status < 500 ? e.code : 'CM_ERR_UNAVAILABLE', `${label}: cannot get its mesh identity from the cluster: ${e.message}`, { cause: err });
      }
      await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())));
    }
  }
}

/** Metric label of a refused inbound connection. */
function refusalReason(err: CrossmeshError): string {
  if (err.code === 'CM_ERR_CERT_INVALID') return 'certificate';
  if (err.code === 'CM_ERR_TIMEOUT') return 'handshake_timeout';
  return 'handshake';
}

/** Logs refusals, each distinct message at most once per 10 s (a scan or a flood must not flood the log). */
class RefusalLog {
  private readonly last = new Map<string, number>();
  constructor(private readonly label: string) {}
  note(message: string): void {
    const key = message.replace(/from \S+ /, '');
    const now = Date.now();
    const t = this.last.get(key);
    if (t !== undefined && now - t < 10_000) return;
    if (this.last.size > 100) this.last.clear();
    this.last.set(key, now);
    log.warn(`${this.label}: ${message}`);
  }
}

function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Body bytes collected for OnInvoke beyond the 4 MB message limit before the request is refused (the rest is read and dropped). */
const GRPC_BODY_SLACK = 64 << 10;

/**
 * An inbound request for an app that speaks gRPC: a Dapr invocation of this app (the caller's
 * sidecar set dapr-callee-app-id, src/dapr/invoke.ts) becomes an OnInvoke call, and its answer
 * the HTTP response daprd gives; anything else is refused with `refusal` (502).
 */
function invokeGrpcApp(
  channel: GrpcAppChannel, req: InboundRequest, path: string, q: number, appId: string,
  responseHeaders: readonly string[], refusal: { code: string; status: number; message: string },
): void {
  if (req.header('dapr-callee-app-id') !== appId) return req.fail(refusal, responseHeaders);
  const raw = q < 0 ? path.slice(1) : path.slice(1, q);
  let method: string;
  try {
    method = decodeURIComponent(raw);
  } catch {
    method = raw;
  }
  const ac = new AbortController();
  req.setObserver({ onDownstreamDrain() {}, onDownstreamGone: () => ac.abort() });
  const chunks: Buffer[] = [];
  let size = 0;
  const limit = (4 << 20) + GRPC_BODY_SLACK;
  const send = () => {
    if (req.gone) return;
    const body = Buffer.concat(chunks);
    void channel.invoke({ method, verb: req.method, query: q < 0 ? '' : path.slice(q + 1), headers: req.rawHeaders, body, signal: ac.signal }).then((answer) => {
      req.setObserver(null);
      if (req.gone) return;
      req.writeHead(answer.status, '', [...answer.headers, ...responseHeaders], answer.body.length > 0 || req.method !== 'HEAD' ? Framing.Length : Framing.None);
      if (answer.body.length > 0 && req.method !== 'HEAD') req.writeBody(answer.body);
      req.endBody();
    });
  };
  if (!req.hasBody) return send();
  req.attachBody({
    onRequestBody(chunk) {
      size += chunk.length;
      if (size <= limit) chunks.push(Buffer.from(chunk));
    },
    onRequestEnd() {
      req.detachBody();
      send();
    },
    onRequestAbort() {
      ac.abort();
    },
  });
}
