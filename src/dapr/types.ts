/**
 * Contracts of the Dapr HTTP API (src/dapr/): what the sidecar plugs into it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Service invocation, provided by src/dapr/invoke.ts. The API server calls it for
 *   - `/v1.0/invoke/<appId>/method/<method...>` (any verb): appId = the URL's app id
 *     (percent-decoded), method = the rest of the path as sent (no query; read req.url for it);
 *     `/v1.0/invoke/...` without `/method/`: appId undefined, method '' (the handler answers
 *     the "no app id" 404);
 *   - any path that is no Dapr API route, with header `dapr-app-id` (or basic auth user
 *     `dapr-app-id`, password = app id): appId from there, method = the path without its
 *     leading `/` (no query). The header is still on req (the handler removes it when forwarding).
 * The API token (if any) was checked already. The handler owns `res` from then on.
 */
export interface InvokeHandler {
  handle(req: IncomingMessage, res: ServerResponse, appId: string | undefined, method: string): void;
}

/** Load state of one Dapr Component, for `/v1.0/metadata` and `crossmesh status`. */
export interface ComponentStatus {
  name: string;
  type: string;
  version: string;
  /** loading: init in progress; loaded: serving; failed: see error. */
  state: 'loading' | 'loaded' | 'failed';
  /** "<component name>: <message>" when failed. */
  error?: string;
  /** Dapr capability names as daprd reports them (ETAG, TRANSACTIONAL, TTL, ACTOR) once loaded. */
  capabilities: string[];
}

export interface MetricsSource {
  render(): Promise<{ contentType: string; body: string }>;
}
