import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { createRequire } from 'node:module';
import type { KindInfo } from '../api/index.js';
import type { KubeObject, WatchEvent } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { errorFromStatus, resourcePath } from '../api/wire.js';
import type { ApiEndpoint } from './kubeconfig.js';
import {
  INTERMEDIATE_CSR_PATH, INTERMEDIATE_PATH, TRUST_BUNDLE_PATH, WORKLOAD_CERTIFICATES_PATH, tokenRequestPath,
  type IntermediateInfo, type TokenRequest, type TrustBundle, type WorkloadCertificateRequest, type WorkloadCertificateResponse,
} from '../identity/api.js';
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
 * Most sockets one client keeps open for requests. Watches do not count: each holds its socket
 * for as long as it runs, so they use an agent of their own without a cap (a sidecar runs eight
 * informers; sharing the capped pool left its lease renewals queued behind them forever).
 */
const MAX_SOCKETS = 8;
const HEADERS_TIMEOUT_MS = 30_000;
/** Idle keep-alive sockets are closed after this, or 1 s before the server's `Keep-Alive: timeout=` hint. */
const IDLE_SOCKET_MS = 30_000;

/** OpenSSL / node:tls verification failures: the server answered, but can't be trusted. */
const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED', 'CERT_REJECTED',
]);

type Requester = (options: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest;

/**
 * Client of a crossmesh (Kubernetes-style) API: one keep-alive connection pool per server
 * (node:http's Agent, at most 8 sockets; node:http is loaded by every process anyway, undici
 * would add ~20 MB and ~100 ms of module loading and a WASM parser compile to each). An
 * https:// server is verified against the endpoint's `ca` (the cluster's root) when it has one.
 * Every failure is a CrossmeshError: API refusals carry the server's code, and transport
 * failures are CM_ERR_UNAVAILABLE naming the server, so callers can tell "refused" from "away".
 */
export class ApiClient {
  private readonly agent: Agent;
  /** Watches only: one socket each, no cap, not kept alive after the stream ends. */
  private readonly watchAgent: Agent;
  /** Liveness pings only: one kept-alive socket, apart from the requests a partition may hold up. */
  private readonly pingAgent: Agent;
  private readonly auth: string;
  /** Sent as User-Agent when given (the API counts the control plane's requests by it). */
  private readonly userAgent: string | undefined;
  private readonly host: string;
  private readonly port: number;
  private readonly send: Requester;
  private readonly connectTimeoutMs: number;
  private readonly inflight = new Set<ClientRequest>();
  private closed = false;

  constructor(readonly endpoint: ApiEndpoint, opts: { connectTimeoutMs?: number; userAgent?: string } = {}) {
    let url: URL;
    try {
      url = new URL(endpoint.server);
    } catch (err) {
      throw new CrossmeshError('CM_ERR_CONFIG', `cluster API ${endpoint.name}: server "${endpoint.server}" is not a URL`, { cause: err });
    }
    const tls = url.protocol === 'https:';
    if (!tls && url.protocol !== 'http:') throw new CrossmeshError('CM_ERR_CONFIG', `cluster API ${endpoint.name}: server "${endpoint.server}" is neither http:// nor https://`);
    // https only when asked for: node:https pulls in TLS.
    const mod = tls ? (createRequire(import.meta.url)('node:https') as typeof import('node:https')) : undefined;
    const agentOpts = { keepAlive: true, maxSockets: MAX_SOCKETS, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
    // The cluster's CA (kubeconfig certificate-authority[-data]) is the only trust anchor when given;
    // without one, the system's roots apply (a cluster API behind a publicly trusted certificate).
    this.agent = mod ? new mod.Agent({ ...agentOpts, ...(endpoint.ca ? { ca: endpoint.ca } : {}) }) : new Agent(agentOpts);
    const watchOpts = { keepAlive: false, ...(endpoint.ca ? { ca: endpoint.ca } : {}) };
    this.watchAgent = mod ? new mod.Agent(watchOpts) : new Agent({ keepAlive: false });
    const pingOpts = { keepAlive: true, maxSockets: 1, timeout: IDLE_SOCKET_MS };
    this.pingAgent = mod ? new mod.Agent({ ...pingOpts, ...(endpoint.ca ? { ca: endpoint.ca } : {}) }) : new Agent(pingOpts);
    this.send = mod ? mod.request : httpRequest;
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port) || (tls ? 443 : 80);
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
    this.auth = `Bearer ${endpoint.token}`;
    this.userAgent = opts.userAgent;
  }

  /** `headers` with the User-Agent added when this client has one. */
  private ua<H extends Record<string, string | number>>(headers: H): H {
    if (this.userAgent !== undefined) (headers as Record<string, string | number>)['user-agent'] = this.userAgent;
    return headers;
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

  /**
   * Create-or-update (server-side apply as field manager `crossmesh`, forced: the object becomes
   * what crossmesh declares even where another manager changed a field, e.g. a lease renewal's
   * merge patch or a `kubectl edit`); the stored status is kept.
   */
  apply(kind: KindInfo, obj: KubeObject): Promise<KubeObject> {
    return this.call('PATCH', resourcePath(kind, obj.metadata.namespace, obj.metadata.name) + '?fieldManager=crossmesh&force=true', obj, 'application/apply-patch+yaml') as Promise<KubeObject>;
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

  /** Kubernetes TokenRequest for a ServiceAccount (admin token): the token and when it expires. */
  async requestToken(namespace: string, serviceAccount: string, spec: { audiences?: string[]; expirationSeconds?: number } = {}): Promise<{ token: string; expirationTimestamp: string }> {
    const res = (await this.call('POST', tokenRequestPath(namespace, serviceAccount), { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec })) as TokenRequest;
    return res.status!;
  }

  /** GET the cluster's trust bundle (admin or service account token). */
  trustBundle(): Promise<TrustBundle> {
    return this.call('GET', TRUST_BUNDLE_PATH) as Promise<TrustBundle>;
  }

  /** POST a workload certificate request (service account token only). */
  requestWorkloadCertificate(body: WorkloadCertificateRequest): Promise<WorkloadCertificateResponse> {
    return this.call('POST', WORKLOAD_CERTIFICATES_PATH, body) as Promise<WorkloadCertificateResponse>;
  }

  /** The cluster's mesh CA (admin): issuer, expiry, root fingerprint, whether it is due for renewal. */
  intermediateInfo(): Promise<IntermediateInfo> {
    return this.call('GET', INTERMEDIATE_PATH) as Promise<IntermediateInfo>;
  }

  /** Asks the cluster for an intermediate CSR for `trustDomain` (admin); it keeps the key. */
  async intermediateCsr(trustDomain: string): Promise<string> {
    return ((await this.call('POST', INTERMEDIATE_CSR_PATH, { trustDomain })) as { csr: string }).csr;
  }

  /** Installs a signed intermediate ([intermediate, ..., root] PEMs) as the cluster's mesh CA (admin). */
  installIntermediate(certificateChain: string[]): Promise<IntermediateInfo> {
    return this.call('PUT', INTERMEDIATE_PATH, { certificateChain }) as Promise<IntermediateInfo>;
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
    if (opts.signal.aborted) return;
    let res: IncomingMessage;
    try {
      res = await this.open('GET', path, this.ua({ authorization: this.auth }), undefined, opts.signal, this.watchAgent);
    } catch (err) {
      if (opts.signal.aborted) return;
      throw this.transportError(err);
    }
    if (res.statusCode !== 200) {
      const text = await readText(res).catch(() => '');
      throw errorFromStatus(res.statusCode ?? 500, parseJson(text));
    }
    opts.onOpen?.();
    let buffered = '';
    res.setEncoding('utf8');
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        buffered += chunk;
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
      // A stream cut in the middle (server gone) ends like a normal end on node:http: tell them apart.
      if (!res.complete && !opts.signal.aborted) throw new Error('the watch stream was cut off');
    } catch (err) {
      if (opts.signal.aborted) return;
      if (err instanceof CrossmeshError) throw err;
      throw this.transportError(err);
    } finally {
      if (!res.complete) res.destroy();
    }
  }

  /**
   * GET /readyz on a connection of its own, answered within `timeoutMs` (liveness: requests a
   * partition holds up cannot delay it; a timed-out ping destroys its socket, so the next one
   * connects afresh). `fresh`: on a new connection of its own even while another ping waits
   * (pings of a member known to be away overlap, so one sent just after a heal is not queued
   * behind one whose SYN vanished). Rejects CM_ERR_UNAVAILABLE saying why.
   */
  ping(timeoutMs: number, fresh = false): Promise<void> {
    if (this.closed) return Promise.reject(new CrossmeshError('CM_ERR_UNAVAILABLE', 'the client was closed'));
    return new Promise((resolve, reject) => {
      const req = this.send({ agent: fresh ? this.watchAgent : this.pingAgent, host: this.host, port: this.port, method: 'GET', path: '/readyz', headers: { authorization: this.auth } }, (res) => {
        clearTimeout(t);
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else reject(new CrossmeshError('CM_ERR_UNAVAILABLE', `cluster API ${this.endpoint.name} at ${this.endpoint.server} is not ready (/readyz answered ${status})`));
      });
      const t = setTimeout(() => req.destroy(Object.assign(new Error(`no answer to /readyz within ${timeoutMs} ms`), { code: 'PING_TIMEOUT' })), timeoutMs);
      req.once('error', (err) => {
        clearTimeout(t);
        reject(this.transportError(err));
      });
      req.end();
    });
  }

  /**
   * Cuts every request in flight (watches too) and every kept-alive socket: the API is known
   * unreachable, so callers get CM_ERR_UNAVAILABLE now rather than at their timeouts. The client
   * stays usable; the next request opens a new connection.
   */
  interrupt(reason: string): void {
    for (const req of this.inflight) req.destroy(Object.assign(new Error(reason), { code: 'INTERRUPTED' }));
    this.inflight.clear();
    this.agent.destroy();
  }

  /** Closes every connection; requests in flight fail with CM_ERR_UNAVAILABLE. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const req of this.inflight) req.destroy(new Error('the client was closed'));
    this.inflight.clear();
    this.agent.destroy();
    this.watchAgent.destroy();
    this.pingAgent.destroy();
  }

  private async call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = payload === undefined
      ? this.ua({ authorization: this.auth, accept: 'application/json' })
      : this.ua({ authorization: this.auth, accept: 'application/json', 'content-type': contentType, 'content-length': payload.length });
    let res: IncomingMessage;
    let text: string;
    try {
      try {
        res = await this.open(method, path, headers, payload);
      } catch (err) {
        // A kept-alive socket the server closed just as we reused it: one retry for a read.
        if (method !== 'GET' || !(err as { reusedSocket?: boolean }).reusedSocket || (err as NodeJS.ErrnoException).code !== 'ECONNRESET') throw err;
        res = await this.open(method, path, headers, payload);
      }
      text = await readText(res);
    } catch (err) {
      throw this.transportError(err);
    }
    const parsed = parseJson(text);
    const status = res.statusCode ?? 500;
    if (status >= 400) throw errorFromStatus(status, parsed ?? { message: text || `HTTP ${status}` });
    return parsed;
  }

  /** Sends one request; resolves with the response head (connect and header timeouts applied). */
  private open(method: string, path: string, headers: Record<string, string | number>, payload?: Buffer, signal?: AbortSignal, agent: Agent = this.agent): Promise<IncomingMessage> {
    if (this.closed) return Promise.reject(new Error('the client was closed'));
    return new Promise((resolve, reject) => {
      const req = this.send({ agent, host: this.host, port: this.port, method, path, headers, signal }, (res) => {
        clearTimeout(headersTimer);
        res.once('close', () => this.inflight.delete(req));
        resolve(res);
      });
      this.inflight.add(req);
      let settled = false;
      const headersTimer = setTimeout(() => req.destroy(Object.assign(new Error(`no response headers within ${HEADERS_TIMEOUT_MS} ms`), { code: 'HEADERS_TIMEOUT' })), HEADERS_TIMEOUT_MS);
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const t = setTimeout(() => req.destroy(Object.assign(new Error(`connect timeout after ${this.connectTimeoutMs} ms`), { code: 'CONNECT_TIMEOUT' })), this.connectTimeoutMs);
        socket.once('connect', () => clearTimeout(t));
        socket.once('close', () => clearTimeout(t));
      });
      req.on('error', (err) => {
        clearTimeout(headersTimer);
        this.inflight.delete(req);
        if (settled) return;
        settled = true;
        reject(Object.assign(err, { reusedSocket: req.reusedSocket }));
      });
      req.once('response', () => { settled = true; });
      req.end(payload);
    });
  }

  private transportError(err: unknown): CrossmeshError {
    const code = (err as NodeJS.ErrnoException)?.code;
    const msg = err instanceof Error ? `${code ?? err.name}: ${err.message}` : String(err);
    if (code && TLS_VERIFY_CODES.has(code)) {
      return new CrossmeshError('CM_ERR_UNAVAILABLE', `cluster API ${this.endpoint.name} at ${this.endpoint.server}: its TLS certificate is not trusted (${msg}); ${this.endpoint.ca ? 'the CA given for it (kubeconfig certificate-authority-data) did not issue it' : 'no CA was given for it (kubeconfig certificate-authority-data, as `crossmesh kubeconfig get NAME` prints)'}`, { cause: err });
    }
    return new CrossmeshError('CM_ERR_UNAVAILABLE', `cluster API ${this.endpoint.name} at ${this.endpoint.server} is unreachable (${msg})`);
  }
}

function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('end', () => (res.complete ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error('the response was cut off'))));
    res.once('error', reject);
    res.once('aborted', () => reject(Object.assign(new Error('the response was cut off'), { code: 'ECONNRESET' })));
    // Destroyed without 'end' or 'error' (interrupt() of a request whose body was being read).
    res.once('close', () => { if (!res.complete) reject(Object.assign(new Error('the response was cut off'), { code: 'ECONNRESET' })); });
  });
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}
