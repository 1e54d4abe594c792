/**
 * What `crossmesh run` writes for a sidecar process (config.json) and what the sidecar writes
 * back once ready (sidecar.json), or on a failed detached app (exit.json). Types and names
 * only: `status`, `exec` and `stop` read these without loading the sidecar's modules.
 */
import type { SidecarPorts } from './sidecar.js';

export interface SidecarProcessConfig {
  cluster: string;
  namespace: string;
  appId: string;
  instanceId: string;
  /** --app-port: the service port; undefined = client-only app. */
  servicePort?: number;
  /** --service-account: the app's mesh identity (`spiffe://<td>/ns/<namespace>/sa/<name>`); default `default`. */
  serviceAccount?: string;
  /** --config: the Dapr Configuration whose secrets scopes apply. */
  daprConfig?: string;
  /** --app-protocol: 'http' (default) or 'grpc' (Dapr invocations call the app's AppCallback/OnInvoke). */
  appProtocol?: 'http' | 'grpc';
  /** --connect-timeout (ms): TCP connect bound of the sidecar's outbound (default 500). */
  connectTimeoutMs?: number;
  /** The app's argv. */
  command: string[];
  /** Instance dir ($CROSSMESH_HOME/apps/<cluster>/<ns>/<appId>/<instanceId>): sidecar.json goes there. */
  dir: string;
  /** File for the app's stdout+stderr (detached); undefined = the app inherits this process's stdio. */
  appLog?: string;
  sidecarLog?: string;
  /** How long the app may take to listen on APP_PORT. Default 30 s. */
  appStartTimeoutMs?: number;
}

/** The ready file: what `status`, `exec` and `stop` read. */
export interface SidecarRecord {
  cluster: string;
  namespace: string;
  appId: string;
  instanceId: string;
  pid: number;
  appPid: number;
  ports: SidecarPorts;
  /** The app's sidecar environment (`crossmesh exec` runs commands with it). */
  env: Record<string, string>;
  command: string[];
  detached: boolean;
  logs?: { app?: string; sidecar?: string };
  startedAt: string;
  /** The mesh identity: mode, SPIFFE ID and certificate expiry (rewritten at each rotation). */
  identity?: { mode: 'mtls' | 'plaintext'; spiffeId?: string; notAfter?: string };
}

export const RECORD_FILE = 'sidecar.json';
/** Written instead when a detached app failed (its logs are kept). */
export const EXIT_FILE = 'exit.json';
