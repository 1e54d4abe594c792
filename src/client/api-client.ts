import { Pool } from 'undici';
import type { KindInfo } from '../api/index.js';
import type { KubeObject, WatchEvent } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { errorFromStatus, resourcePath } from '../api/wire.js';
import type { ApiEndpoint } from './kubeconfig.js';

export interface ListResponse {
  items: KubeObject[];
  resourceVersion: string;
}

export interface WatchOptions {
  namespace?: string;
  resourceVersion: string;
  labelSelector?: string;
  /** Aborts the watch (the promise from watch() then resolves). */
  signal: AbortSignal;
  onEvent: (ev: WatchEvent) => void;
  /** Called once the server accepted the watch (the stream is open). */
  onOpen?: () => void;
}

/**
 * Client of a crossmesh (Kubernetes-style) API: one keep-alive connection pool per server.
 * Every failure is a CrossmeshError: API refusals carry the server's code, and transport
 * failures are CM_ERR_UNAVAILABLE naming the server, so callers can tell "refused" from "away".
 */
export class ApiClient {
  private readonly pool: Pool;
  private readonly auth: string;

  constructor(readonly endpoint: ApiEndpoint, opts: { connectTimeoutMs?: number } = {}) {
    this.pool = new Pool(endpoint.server, {
      connections: 8,
      connectTimeout: opts.connectTimeoutMs ?? 3000,
      keepAliveTimeout: 30_000,
      // Watches stay open for a long time with idle gaps between events.
      bodyTimeout: 0,
      headersTimeout: 30_000,
    });
    this.auth = `Bearer ${endpoint.token}`;
  }

  async get(kind: KindInfo, name: string, namespace?: string): Promise<KubeObject | undefined> {
    try {
      return (await this.call('GET', resourcePath(kind, namespace, name))) as KubeObject;
    } catch (err) {
      if (err instanceof CrossmeshError && err.code === 'CM_ERR_NOT_FOUND') return undefined;
      throw err;
    }
  }

  async list(kind: KindInfo, namespace?: string, labelSelector?: string): Promise<ListResponse> {
    const qs = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const body = (await this.call('GET', resourcePath(kind, namespace) + qs)) as { items: KubeObject[]; metadata: { resourceVersion: string } };
    return { items: body.items, resourceVersion: body.metadata.resourceVersion };
  }

  create(kind: KindInfo, obj: KubeObject): Promise<KubeObject> {
    return this.call('POST', resourcePath(kind, obj.metadata.namespace), obj) as Promise<KubeObject>;
  }

  replace(kind: KindInfo, obj: KubeObject): Promise<KubeObject> {
    return this.call('PUT', resourcePath(kind, obj.metadata.namespace, obj.metadata.name), obj) as Promise<KubeObject>;
  }

  /** Create-or-update (server-side apply); the stored status is kept. */
  apply(kind: KindInfo, obj: KubeObject): Promise<KubeObject> {
    return this.call('PATCH', resourcePath(kind, obj.metadata.namespace, obj.metadata.name) + '?fieldManager=crossmesh', obj, 'application/apply-patch+yaml') as Promise<KubeObject>;
  }

  replaceStatus(kind: KindInfo, obj: KubeObject): Promise<KubeObject> {
    return this.call('PUT', resourcePath(kind, obj.metadata.namespace, obj.metadata.name, 'status'), obj) as Promise<KubeObject>;
  }

  /** Merge-patches the status only (no resourceVersion check): for controllers reporting conditions. */
  patchStatus(kind: KindInfo, name: string, namespace: string | undefined, status: unknown): Promise<KubeObject> {
    return this.call('PATCH', resourcePath(kind, namespace, name, 'status'), { status }, 'application/merge-patch+json') as Promise<KubeObject>;
  }

  mergePatch(kind: KindInfo, name: string, namespace: string | undefined, patch: unknown): Promise<KubeObject> {
    return this.call('PATCH', resourcePath(kind, namespace, name), patch, 'application/merge-patch+json') as Promise<KubeObject>;
  }

  /** Deletes; resolves to undefined when the object was already gone. */
  async delete(kind: KindInfo, name: string, namespace?: string): Promise<KubeObject | undefined> {
    try {
      return (await this.call('DELETE', resourcePath(kind, namespace, name))) as KubeObject;
    } catch (err) {
      if (err instanceof CrossmeshError && err.code === 'CM_ERR_NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** GET on any path (discovery, /version); JSON body. */
  raw(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    return this.call(method, path, body, contentType);
  }

  /**
   * Streams watch events until the server ends the stream, the signal aborts, or the
   * connection fails (then it rejects with CM_ERR_UNAVAILABLE). An ERROR event (e.g. 410
   * Gone) rejects with the error it carries.
   */
  async watch(kind: KindInfo, opts: WatchOptions): Promise<void> {
    let path = `${resourcePath(kind, opts.namespace)}?watch=true&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(opts.resourceVersion)}`;
    if (opts.labelSelector) path += `&labelSelector=${encodeURIComponent(opts.labelSelector)}`;
    let res;
    try {
      res = await this.pool.request({ method: 'GET', path, headers: { authorization: this.auth }, signal: opts.signal });
    } catch (err) {
      if (opts.signal.aborted) return;
      throw this.transportError(err);
    }
    if (res.statusCode !== 200) {
      const body = await res.body.json().catch(() => undefined);
      throw errorFromStatus(res.statusCode, body);
    }
    opts.onOpen?.();
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += chunk.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line) as WatchEvent;
          if (ev.type === 'ERROR') {
            const status = ev.object as unknown as { code?: number };
            throw errorFromStatus(status.code ?? 500, ev.object);
          }
          opts.onEvent(ev);
        }
      }
    } catch (err) {
      if (opts.signal.aborted) return;
      if (err instanceof CrossmeshError) throw err;
      throw this.transportError(err);
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }

  private async call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    let res;
    try {
      res = await this.pool.request({
        method: method as 'GET',
        path,
        headers: body === undefined ? { authorization: this.auth, accept: 'application/json' } : { authorization: this.auth, accept: 'application/json', 'content-type': contentType },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw this.transportError(err);
    }
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.statusCode >= 400) throw errorFromStatus(res.statusCode, parsed ?? { message: text || `HTTP ${res.statusCode}` });
    return parsed;
  }

  private transportError(err: unknown): CrossmeshError {
    const msg = err instanceof Error ? `${(err as NodeJS.ErrnoException).code ?? err.name}: ${err.message}` : String(err);
    return new CrossmeshError('CM_ERR_UNAVAILABLE', `cluster API ${this.endpoint.name} at ${this.endpoint.server} is unreachable (${msg})`);
  }
}
