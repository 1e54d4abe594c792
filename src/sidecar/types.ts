import type { UpstreamTls } from '../proxy/h1/upstream.js';
import type { ApiClient } from '../client/api-client.js';
import type { InboundRequest } from '../proxy/h1/server.js';
import type { Downstream } from '../proxy/h1/types.js';

/** Who a sidecar serves: fixed for the sidecar's life. */
export interface SidecarIdentity {
  /** Name of the cluster the app runs in (CLUSTER_NAME). */
  clusterName: string;
  namespace: string;
  appId: string;
  /** Unique per running instance (several instances of one app may run). */
  instanceId: string;
}

/**
 * The outbound side of a sidecar (the app's HTTP proxy): resolves mesh names and routes by
 * GlobalTrafficPolicy. Owned by src/sidecar/outbound.ts; the sidecar process only mounts it.
 */
export interface OutboundRouter {
  /** Starts following the cluster API; resolves once the caches synced (or rejects after a timeout). */
  start(): Promise<void>;
  /** Handles one request that reached the outbound listener (absolute-form or Host routing). */
  handle(req: InboundRequest): void;
  close(): Promise<void>;
}

export interface OutboundRouterOptions {
  identity: SidecarIdentity;
  /** Client of the sidecar's own cluster API. */
  client: ApiClient;
  /** Told which cluster each attempt goes to (metrics: destination cluster). */
  onTarget?: (req: Downstream, cluster: string) => void;
  /** Mesh mTLS towards sidecars and tunnels (undefined: the cluster runs --insecure-plaintext). */
  meshTls?: UpstreamTls;
  dataPlane?: DataPlaneSettings;
}

/** How fast the outbound side gives up on a target (sidecar config `dataPlane`, `crossmesh run --connect-timeout`). */
export interface DataPlaneSettings {
  /** TCP connect bound to endpoints and gateways (default 500 ms): a vanished host fails over this fast. */
  connectTimeoutMs?: number;
  /** Liveness ping period per remote gateway (default 250 ms). */
  pingIntervalMs?: number;
  /** An unanswered ping makes its gateway dead after this (default 750 ms). */
  deadAfterMs?: number;
}
