import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ResourceStore } from '../store/types.js';
import { CrossmeshError } from '../errors.js';
import { makeTokenCheck } from './auth.js';
import { buildDiscovery } from './discovery.js';
import { handleResource, NAMESPACES_KEY, type HandlerContext } from './handlers.js';
import { parseResourcePath } from '../api/wire.js';
import { sendError, sendJson } from './status.js';
import { refuseConnect } from '../proxy/guards.js';
import { VERSION } from '../version.js';

export interface ApiServerOptions {
  store: ResourceStore;
  token: string;
  clusterName: string;
  host?: string;
  port?: number;
  /** Largest accepted request body; Kubernetes' own limit is about 3 MiB. */
  maxBodyBytes?: number;
  bookmarkIntervalMs?: number;
  /** Prometheus exposition for GET /metrics (bearer token required, as on Kubernetes). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}

/**
 * The cluster's Kubernetes-style REST API over a ResourceStore: resource CRUD, status
 * subresource, list/watch, discovery, bearer-token auth (only /healthz, /readyz, /livez and
 * /version are open).
 */
export class ApiServer {
  private readonly server: Server;
  private readonly ctx: HandlerContext;
  private readonly checkToken: (req: IncomingMessage) => void;
  private readonly discovery = buildDiscovery();
  private closed = false;

  constructor(private readonly opts: ApiServerOptions) {
    this.ctx = {
      store: opts.store,
      maxBodyBytes: opts.maxBodyBytes ?? 3 * 1024 * 1024,
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000,
    };
    this.checkToken = makeTokenCheck(opts.token);
    ensureNamespace(opts.store, 'default');
    this.server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.handle(req, res).catch((err) => sendError(res, err));
    });
    refuseConnect(this.server, `the API of cluster ${opts.clusterName}`);
    // Watches are long-lived; the default 5 s keep-alive only concerns idle sockets.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 30_000;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  /** Stops accepting, ends open watches, waits for in-flight requests. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // Watch streams never finish on their own: end them so close() can complete.
      setTimeout(() => this.server.closeAllConnections(), 200).unref();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/healthz' || path === '/readyz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (path === '/version') {
      return sendJson(res, 200, { major: '1', minor: '28', gitVersion: `v1.28.0-crossmesh.${VERSION}`, platform: `${process.platform}/${process.arch}`, crossmesh: VERSION, cluster: this.opts.clusterName });
    }
    this.checkToken(req);
    if (path === '/metrics' && this.opts.metrics) {
      const m = await this.opts.metrics();
      res.writeHead(200, { 'content-type': m.contentType });
      res.end(m.body);
      return;
    }
    const discovered = this.discovery.get(path.replace(/\/$/, ''));
    if (discovered) {
      if (req.method !== 'GET') throw new CrossmeshError('CM_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`);
      return sendJson(res, 200, discovered);
    }
    const resourcePath = parseResourcePath(path);
    if (!resourcePath) throw new CrossmeshError('CM_ERR_NOT_FOUND', `the server could not find the requested resource (${path})`);
    await handleResource(this.ctx, req, res, url, resourcePath);
  }
}

function ensureNamespace(store: ResourceStore, name: string): void {
  if (store.get({ storageKey: NAMESPACES_KEY, name })) return;
  store.create({ storageKey: NAMESPACES_KEY, name }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name }, spec: {}, status: { phase: 'Active' } });
}
