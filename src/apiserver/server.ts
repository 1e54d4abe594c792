import { STATUS_CODES, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { ResourceStore } from '../store/types.js';
import { CrossmeshError } from '../errors.js';
import { makeAuthenticator, type Principal } from './auth.js';
import { makeDiscovery } from './discovery.js';
import { handleResource, NAMESPACES_KEY, type HandlerContext } from './handlers.js';
import { handleIdentity, handleTokenRequest, IDENTITY_API, matchTokenRequest, serviceAccountScope, serviceAccountVerifier, type IdentityBackend } from './identity-routes.js';
import { parseResourcePath, statusFromError } from '../api/wire.js';
import { sendError, sendJson } from './status.js';
import { refuseConnect } from '../proxy/guards.js';
import { VERSION } from '../version.js';
import { ApiTraffic } from './traffic.js';

/** The API's TLS serving key and certificate chain (PEM). */
export interface ApiTlsCredentials {
  keyPem: string;
  certPem: string;
}

/** How long a connection may take to send its first byte and finish the TLS handshake. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ApiServerOptions {
  store: ResourceStore;
  token: string;
  /** The serving certificate: the API is HTTPS only (`setTlsCredentials` renews it). */
  tls: ApiTlsCredentials;
  /** The identity endpoints and service account tokens (`identity-routes.ts`); without it they answer 404. */
  identity?: IdentityBackend;
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
 * The cluster's Kubernetes-style REST API over a ResourceStore, over HTTPS only: resource CRUD,
 * status subresource, list/watch, discovery, bearer-token auth (only /healthz, /readyz, /livez
 * and /version are open), and the identity endpoints. A plain-HTTP request to the port is
 * answered with a 400 Status saying to use https:// (the first byte tells them apart: a TLS
 * handshake starts with 0x16), not with a TLS alert the client can't explain.
 */
export class ApiServer {
  private readonly server: Server;
  private readonly front: NetServer;
  private readonly ctx: HandlerContext;
  private readonly authenticate: (req: IncomingMessage) => Promise<Principal>;
  private readonly discovery = makeDiscovery();
  private readonly sniffing = new Set<Socket>();
  private closed = false;

  /** Requests and watch events served (appended to `/metrics`). */
  readonly traffic = new ApiTraffic();

  constructor(private readonly opts: ApiServerOptions) {
    this.ctx = {
      store: opts.store,
      maxBodyBytes: opts.maxBodyBytes ?? 3 * 1024 * 1024,
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000,
      traffic: this.traffic,
    };
    this.authenticate = makeAuthenticator({
      token: opts.token,
      verifyServiceAccount: opts.identity ? serviceAccountVerifier(opts.store, opts.identity.tokens) : undefined,
    });
    ensureNamespace(opts.store, 'default');
    this.server = createHttpsServer({
      key: opts.tls.keyPem,
      cert: opts.tls.certPem,
      minVersion: 'TLSv1.2',
      maxHeaderSize: 16 * 1024,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    }, (req, res) => {
      this.handle(req, res).catch((err) => sendError(res, err));
    });
    refuseConnect(this.server as unknown as HttpServer, `the API of cluster ${opts.clusterName}`);
    // A failed handshake (a client that does not trust the CA, a scanner) only ends that connection.
    this.server.on('tlsClientError', (_err, socket) => socket.destroy());
    // A request node:http can't parse gets the status node:http answers over plain TCP (431 for
    // oversized headers, 400 otherwise): its own answer checks `bytesWritten === 0`, which a TLS
    // socket never is after its handshake, so over https it would just close the connection.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Already answered and ending (node:http reports the rest of a bad request again): let it flush.
      if (!socket.writable) return;
      const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (err.code === 'ECONNRESET' || inFlight?.headersSent) {
        socket.destroy();
        return;
      }
      const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      socket.end(`HTTP/1.1 ${code} ${STATUS_CODES[code]}\r\nConnection: close\r\n\r\n`);
    });
    // Watches are long-lived; the default 5 s keep-alive only concerns idle sockets.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 30_000;
    this.front = createNetServer((socket) => this.sniff(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        this.front.off('error', reject);
        resolve();
      });
    });
    // The HTTPS server gets its connections from the front listener and never listens itself;
    // node:http sets up its connection tracking (headersTimeout / requestTimeout checks,
    // closeIdleConnections, closeAllConnections) on 'listening', so it is told it is.
    this.server.emit('listening');
    return this.port;
  }

  get port(): number {
    return (this.front.address() as AddressInfo).port;
  }

  /** https://host:port; a wildcard listen address is reached (and certified) as loopback. */
  get url(): string {
    let host = this.opts.host ?? '127.0.0.1';
    if (host === '0.0.0.0') host = '127.0.0.1';
    if (host === '::') host = '::1';
    return `https://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  /** Serves new connections with renewed credentials; open ones keep theirs. */
  setTlsCredentials(tls: ApiTlsCredentials): void {
    this.server.setSecureContext({ key: tls.keyPem, cert: tls.certPem, minVersion: 'TLSv1.2' });
  }

  /** Stops accepting, ends open watches, waits for in-flight requests. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sniffing) s.destroy();
    await new Promise<void>((resolve) => {
      // The front listener counts every accepted socket, TLS ones included: its close waits for all.
      this.front.close(() => resolve());
      // Stops node:http's connection checks and closes idle keep-alive connections (it reports
      // "not running" because it never listened: nothing to do about that).
      this.server.close(() => undefined);
      // Watch streams never finish on their own: end them so close() can complete.
      setTimeout(() => {
        this.server.closeAllConnections();
        for (const s of this.sniffing) s.destroy();
      }, 200).unref();
    });
  }

  /** Reads a connection's first bytes: a TLS ClientHello goes to the HTTPS server, anything else gets a plain-HTTP 400. */
  private sniff(socket: Socket): void {
    this.sniffing.add(socket);
    socket.on('error', () => undefined);
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy());
    socket.once('close', () => this.sniffing.delete(socket));
    socket.once('data', (chunk: Buffer) => {
      if (chunk[0] === 0x16) {
        socket.pause();
        socket.setTimeout(0);
        this.sniffing.delete(socket);
        // node:tls feeds what the socket already read to the TLS layer first.
        socket.unshift(chunk);
        this.server.emit('connection', socket);
        return;
      }
      // Read on (and drop) the rest so the client's FIN closes the socket; destroyed if it lingers.
      socket.resume();
      const status = statusFromError(new CrossmeshError('CM_ERR_BAD_REQUEST', `the API of cluster ${this.opts.clusterName} serves HTTPS only: use https://<host>:${this.port} and trust the cluster's CA (the kubeconfig from \`crossmesh kubeconfig get ${this.opts.clusterName}\` has both)`));
      const body = JSON.stringify(status);
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const path = url.pathname;
    if (path === '/healthz' || path === '/readyz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (path === '/version') {
      return sendJson(res, 200, { major: '1', minor: '28', gitVersion: `v1.28.0-crossmesh.${VERSION}`, platform: `${process.platform}/${process.arch}`, crossmesh: VERSION, cluster: this.opts.clusterName });
    }
    const principal = await this.authenticate(req);
    const identity = this.opts.identity;
    if (identity) {
      const tokenTarget = matchTokenRequest(path);
      if (tokenTarget) return handleTokenRequest(this.opts.store, identity.tokens, req, res, tokenTarget, principal);
      if (path.startsWith(`${IDENTITY_API}/`) && path !== `${IDENTITY_API}/`) return handleIdentity(identity, req, res, path, principal);
    }
    if (principal.kind !== 'admin') {
      throw new CrossmeshError('CM_ERR_FORBIDDEN', `Forbidden: ${serviceAccountScope(principal)}; ${req.method} ${path} needs the cluster's admin token (a kubeconfig from \`crossmesh kubeconfig get NAME\`)`);
    }
    if (path === '/metrics' && this.opts.metrics) {
      const m = await this.opts.metrics();
      res.writeHead(200, { 'content-type': m.contentType });
      res.end(m.body + this.traffic.render(this.opts.clusterName));
      return;
    }
    if (path === '/openapi/v2' || path === '/openapi/v3' || path.startsWith('/openapi/v3/')) {
      // Loaded on the first request: the documents are built from the zod schemas then.
      const { handleOpenApi } = await import('./openapi.js');
      return handleOpenApi(req, res, path, url);
    }
    if (this.discovery.serve(req, res, path)) return;
    const resourcePath = parseResourcePath(path);
    if (!resourcePath) throw new CrossmeshError('CM_ERR_NOT_FOUND', `the server could not find the requested resource (${path})`);
    this.traffic.request(ApiTraffic.clientOf(req.headers['user-agent']), req.method ?? 'GET', url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1');
    await handleResource(this.ctx, req, res, url, resourcePath);
  }
}

function ensureNamespace(store: ResourceStore, name: string): void {
  if (store.get({ storageKey: NAMESPACES_KEY, name })) return;
  store.create({ storageKey: NAMESPACES_KEY, name }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name }, spec: {}, status: { phase: 'Active' } });
}
