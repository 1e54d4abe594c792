/**
 * The Dapr HTTP API of a sidecar (the DAPR_HTTP_PORT listener): one request handler with a
 * hand-written route switch over the path's segments (no regex per request).
 *
 *   GET  /v1.0/healthz, /v1.0/healthz/outbound       (no API token needed)
 *   GET  /v1.0/metadata, PUT /v1.0/metadata/{key}, POST /v1.0/shutdown
 *   *    /v1.0/state/...  and  /v1.0-alpha1/state/{store}/query      (state-api.ts)
 *   GET  /v1.0/secrets/{store}/{key}, /v1.0/secrets/{store}/bulk     (secrets-api.ts)
 *   POST /v1.0-alpha1/lock/{store}, /v1.0-alpha1/unlock/{store}       (lock-api.ts)
 *   POST /v1.0/publish/{pubsub}/{topic}, /v1.0-alpha1/publish/bulk/{pubsub}/{topic}
 *        (and /v1.0/publish/bulk/...)                                  (pubsub/publish-api.ts)
 *   *    /v1.0/invoke/...  and unmatched routes with dapr-app-id       → InvokeHandler
 *   GET  /metrics                                      (Prometheus; no API token needed)
 *
 *   *    /v1.0/bindings, configuration, actors, /v1.0-alpha1/configuration, crypto,
 *        subtlecrypto, workflows, jobs, conversation
 *                                                   → 501: not implemented yet (UNBUILT_BLOCKS)
 *
 * Everything else: Dapr's fallback, 404 ERR_DIRECT_INVOKE (no app id).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { formatError, isCrossmeshError, toCrossmeshError } from '../errors.js';
import { readBody } from '../util/http.js';
import { log } from '../util/log.js';
import { appIdFromHeaders } from './invoke.js';
import { DaprError, daprError, sendDaprError } from './respond.js';
import type { DaprErrorId } from '../errors.js';
import { bulkGetState, deleteState, getState, queryState, saveState, transactState, type StateStores } from './state-api.js';
import { bulkGetSecret, getSecret, type SecretStores } from './secrets-api.js';
import { tryLock, unlock, type LockStores } from './lock-api.js';
import { bulkPublishHttp, publishHttp } from './pubsub/publish-api.js';
import type { PubSubs, PublishContext } from './pubsub/publish.js';
import type { PubSubMetrics } from './pubsub/metrics.js';
import type { SubscriptionStatus } from './pubsub/subscriber.js';
import type { ComponentStatus, InvokeHandler, MetricsSource } from './types.js';

/** Dapr's default max request body (4 MB). */
export const DEFAULT_MAX_BODY_BYTES = 4 << 20;
export const DEFAULT_RUNTIME_VERSION = 'crossmesh-0.1.0';

export interface DaprComponents extends StateStores, SecretStores, LockStores, PubSubs {
  status(): ComponentStatus[];
}

export interface DaprApiOptions {
  appId: string;
  namespace?: string;
  /** The state, secret and lock stores (a ComponentRegistry). Absent: no store configured. */
  components?: DaprComponents;
  /** Service invocation; absent → 501 ERR_DIRECT_INVOKE "service invocation is not configured". */
  invoke?: InvokeHandler;
  /** Required `dapr-api-token`; default process.env.DAPR_API_TOKEN; '' = none. */
  apiToken?: string;
  /** /v1.0/healthz: 204 when true, else 500 ERR_HEALTH_NOT_READY. Default: always ready. */
  isReady?: () => boolean;
  /** /v1.0/healthz/outbound. Default: isReady. */
  isOutboundReady?: () => boolean;
  /** Served at GET /metrics. */
  metrics?: MetricsSource;
  /** POST /v1.0/shutdown: called once the 204 went out. */
  onShutdown?: () => void;
  /** APP_PORT, reported in /v1.0/metadata appConnectionProperties. */
  appPort?: number;
  /** `appConnectionProperties.protocol` of the metadata: the app's protocol (`run --app-protocol`), default 'http'. */
  appProtocol?: string;
  runtimeVersion?: string;
  /** Default 4 MB; larger bodies → 413. */
  maxBodyBytes?: number;
  /** Publish counters (the sidecar's /metrics). */
  pubsubMetrics?: PubSubMetrics;
  /** Subscriptions for /v1.0/metadata (the sidecar's subscriber). */
  subscriptions?: () => SubscriptionStatus[];
}

/** The components of an API given none (tests, a sidecar without a registry): every store absent. */
export function noComponents(appId: string): DaprComponents {
  return {
    getStateStore: () => undefined, hasStateStores: () => false,
    getSecretStore: () => undefined, hasSecretStores: () => false, isSecretAllowed: () => true,
    getLockStore: () => undefined, hasLockStores: () => false, appId,
    getPubSub: () => undefined, hasPubSubs: () => false,
    status: () => [],
  };
}

export type DaprRequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

function tokenMatches(given: string | string[] | undefined, expected: Buffer): boolean {
  if (typeof given !== 'string') return false;
  const b = Buffer.from(given);
  return b.length === expected.length && timingSafeEqual(b, expected);
}

function answerError(res: ServerResponse, err: unknown): void {
  if (err instanceof DaprError) return sendDaprError(res, err);
  if (isCrossmeshError(err) && err.code === 'CM_ERR_TOO_LARGE') {
    return sendDaprError(res, daprError('ERR_BODY_READ', { error: err.message }, { cause: err }), { connection: 'close' });
  }
  sendDaprError(res, daprError('ERR_INTERNAL', { error: toCrossmeshError(err).message }, { cause: err }));
}

/** The request handler of the Dapr HTTP API. */
export function createDaprApiHandler(opts: DaprApiOptions): DaprRequestHandler {
  const rawToken = opts.apiToken ?? process.env.DAPR_API_TOKEN ?? '';
  const token = rawToken ? Buffer.from(rawToken) : undefined;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const isReady = opts.isReady ?? (() => true);
  const isOutboundReady = opts.isOutboundReady ?? isReady;
  const stores: DaprComponents = opts.components ?? noComponents(opts.appId);
  const extended: Record<string, string> = {};
  let shuttingDown = false;
  const publishCtx: PublishContext = { appId: opts.appId, pubsubs: stores, metrics: opts.pubsubMetrics };

  const metadataBody = (): string => {
    const status = opts.components?.status() ?? [];
    const subs = opts.subscriptions?.() ?? [];
    const conn: Record<string, unknown> = {};
    if (opts.appPort !== undefined) conn.port = opts.appPort;
    conn.protocol = opts.appProtocol ?? 'http';
    conn.channelAddress = '127.0.0.1';
    return JSON.stringify({
      id: opts.appId,
      runtimeVersion: opts.runtimeVersion ?? DEFAULT_RUNTIME_VERSION,
      enabledFeatures: [],
      actors: [],
      components: status.filter((c) => c.state === 'loaded').map((c) => ({ name: c.name, type: c.type, version: c.version, capabilities: c.capabilities })),
      extended,
      // daprd's protojson shape; crossmesh's load state of each is in crossmesh.subscriptions.
      subscriptions: subs.map((x) => ({ pubsubname: x.pubsubname, topic: x.topic, metadata: x.metadata, rules: { rules: x.rules }, deadLetterTopic: x.deadLetterTopic, type: x.type })),
      appConnectionProperties: conn,
      actorRuntime: { runtimeStatus: 'DISABLED', hostReady: false },
      // Not in Dapr: every component's load state, failures included (crossmesh status reads it).
      crossmesh: { namespace: opts.namespace, components: status, subscriptions: subs },
    });
  };

  const invoke = (req: IncomingMessage, res: ServerResponse, appId: string | undefined, method: string): void => {
    if (!opts.invoke) return sendDaprError(res, daprError('ERR_DIRECT_INVOKE:not-configured'));
    opts.invoke.handle(req, res, appId, method);
  };

  /** Unmatched route: header / basic-auth invocation, else Dapr's 404. */
  const fallback = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    const appId = appIdFromHeaders(req);
    if (appId === undefined) return sendDaprError(res, daprError('ERR_DIRECT_INVOKE:no-app-id'));
    invoke(req, res, appId, path.slice(1));
  };

  const withBody = (req: IncomingMessage, res: ServerResponse, fn: (body: Buffer) => Promise<void>): void => {
    readBody(req, maxBody).then(fn).catch((err) => answerError(res, err));
  };

  const guard = (res: ServerResponse, p: Promise<void>): void => {
    p.catch((err) => answerError(res, err));
  };

  return (req, res) => {
    const url = req.url ?? '/';
    const qi = url.indexOf('?');
    const path = qi < 0 ? url : url.slice(0, qi);
    const query = qi < 0 ? '' : url.slice(qi + 1);
    const method = req.method ?? 'GET';

    if (token !== undefined && !tokenMatches(req.headers['dapr-api-token'], token)) {
      const exempt = method === 'GET' && (path === '/v1.0/healthz' || path === '/v1.0/healthz/outbound' || path === '/metrics');
      if (!exempt) {
        // daprd answers this one in plain text (http.Error).
        res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end('invalid api token\n');
        return;
      }
    }

    // Clean path: empty segments dropped (// and a trailing /), as daprd's router does.
    const seg = path.split('/');
    let n = 0;
    for (let i = 0; i < seg.length; i++) if (seg[i] !== '') seg[n++] = seg[i];
    seg.length = n;
    const v = seg[0];

    if (v === 'v1.0') {
      const area = seg[1];
      if (area === 'state' && n >= 3) {
        const store = decode(seg[2]);
        if (n === 3) {
          if (method === 'POST' || method === 'PUT') return withBody(req, res, (b) => saveState(stores, store, query, b, res));
        } else if (n === 4) {
          const last = seg[3];
          if ((method === 'POST' || method === 'PUT') && last === 'bulk') return withBody(req, res, (b) => bulkGetState(stores, store, b, res));
          if ((method === 'POST' || method === 'PUT') && last === 'transaction') return withBody(req, res, (b) => transactState(stores, store, query, b, res));
          if (method === 'GET') return guard(res, getState(stores, store, decode(last), query, res));
          if (method === 'DELETE') return guard(res, deleteState(stores, store, decode(last), query, req, res));
        }
      } else if (area === 'secrets' && n === 4 && method === 'GET') {
        // daprd's routes: secrets/{store}/bulk before secrets/{store}/{key}.
        const store = decode(seg[2]);
        if (seg[3] === 'bulk') return guard(res, bulkGetSecret(stores, store, query, res));
        return guard(res, getSecret(stores, store, decode(seg[3]), query, res));
      } else if (area === 'publish' && n >= 3 && (method === 'POST' || method === 'PUT')) {
        if (seg[2] === 'bulk' && n >= 4) {
          const pubsub = decode(seg[3]);
          return withBody(req, res, (b) => bulkPublishHttp(publishCtx, pubsub, topicOf(seg, 4), query, req, b, res));
        }
        const pubsub = decode(seg[2]);
        return withBody(req, res, (b) => publishHttp(publishCtx, pubsub, topicOf(seg, 3), query, req, b, res));
      } else if (area === 'invoke') {
        const at = path.indexOf('/invoke/');
        const rest = at < 0 ? '' : path.slice(at + 8);
        const m = rest.indexOf('/method/');
        if (m > 0) return invoke(req, res, decode(rest.slice(0, m)), rest.slice(m + 8));
        return invoke(req, res, undefined, '');
      } else if (area === 'healthz') {
        if (method === 'GET' && n === 2) {
          if (isReady()) res.writeHead(204).end();
          else sendDaprError(res, daprError('ERR_HEALTH_NOT_READY'));
          return;
        }
        if (method === 'GET' && n === 3 && seg[2] === 'outbound') {
          if (isOutboundReady()) res.writeHead(204).end();
          else sendDaprError(res, daprError('ERR_OUTBOUND_HEALTH_NOT_READY'));
          return;
        }
      } else if (area === 'metadata') {
        if (method === 'GET' && n === 2) {
          const body = metadataBody();
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
          return;
        }
        if (method === 'PUT' && n === 3) {
          const key = decode(seg[2]);
          return withBody(req, res, async (b) => {
            extended[key] = b.toString('utf8');
            res.writeHead(204).end();
          });
        }
      } else if (area === 'shutdown' && n === 2 && method === 'POST') {
        res.writeHead(204).end();
        if (!shuttingDown && opts.onShutdown) {
          shuttingDown = true;
          const cb = opts.onShutdown;
          res.once('finish', () => setImmediate(() => {
            try {
              cb();
            } catch (err) {
              log.error(`dapr shutdown callback failed: ${formatError(err)}`);
            }
          }));
        }
        return;
      }
    } else if (v === 'v1.0-alpha1') {
      if (n >= 4 && seg[1] === 'publish' && seg[2] === 'bulk' && (method === 'POST' || method === 'PUT')) {
        const pubsub = decode(seg[3]);
        return withBody(req, res, (b) => bulkPublishHttp(publishCtx, pubsub, topicOf(seg, 4), query, req, b, res));
      }
      if (n === 4 && seg[1] === 'state' && seg[3] === 'query' && (method === 'POST' || method === 'PUT')) {
        const store = decode(seg[2]);
        return withBody(req, res, (b) => queryState(stores, store, b, res));
      }
      if (n === 3 && method === 'POST' && (seg[1] === 'lock' || seg[1] === 'unlock')) {
        const store = decode(seg[2]);
        if (seg[1] === 'lock') return withBody(req, res, (b) => tryLock(stores, store, b, res));
        return withBody(req, res, (b) => unlock(stores, store, b, res));
      }
    } else if (v === 'metrics' && n === 1 && method === 'GET' && opts.metrics) {
      opts.metrics.render().then(
        (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body),
        (err) => answerError(res, err),
      );
      return;
    }
    const unbuilt = n >= 2 ? UNBUILT_BLOCKS.get(`${v}/${seg[1]}`) : undefined;
    if (unbuilt) {
      if (unbuilt === 'ERR_API_UNIMPLEMENTED:not-implemented') return sendDaprError(res, daprError(unbuilt, { block: BLOCK_NAMES[seg[1]] ?? seg[1], method, path }));
      return sendDaprError(res, daprError(unbuilt, { method, path }));
    }
    fallback(req, res, path);
  };
}

/**
 * Dapr APIs crossmesh does not implement yet, by `<version>/<area>` of daprd's routes: each answers
 * 501 with the block's "not configured" code, never falls through to the invocation fallback
 * (daprd's router matches these paths before it looks for an app id).
 */
type UnbuiltBlockError = Extract<DaprErrorId, `${string}:not-implemented`>;
const UNBUILT_BLOCKS: ReadonlyMap<string, UnbuiltBlockError> = new Map<string, UnbuiltBlockError>([
  ['v1.0/bindings', 'ERR_INVOKE_OUTPUT_BINDING:not-implemented'],
  ['v1.0/configuration', 'ERR_CONFIGURATION_STORE_NOT_CONFIGURED:not-implemented'],
  ['v1.0-alpha1/configuration', 'ERR_CONFIGURATION_STORE_NOT_CONFIGURED:not-implemented'],
  ['v1.0/actors', 'ERR_ACTOR_RUNTIME_NOT_FOUND:not-implemented'],
  ['v1.0-alpha1/crypto', 'ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED:not-implemented'],
  ['v1.0-alpha1/subtlecrypto', 'ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED:not-implemented'],
  ['v1.0-beta1/workflows', 'ERR_API_UNIMPLEMENTED:not-implemented'],
  ['v1.0-alpha1/workflows', 'ERR_API_UNIMPLEMENTED:not-implemented'],
  ['v1.0-alpha1/jobs', 'ERR_API_UNIMPLEMENTED:not-implemented'],
  ['v1.0-alpha1/conversation', 'ERR_API_UNIMPLEMENTED:not-implemented'],
]);

/** The building block named in ERR_API_UNIMPLEMENTED's message, by area. */
const BLOCK_NAMES: Readonly<Record<string, string>> = { workflows: 'workflow', jobs: 'jobs', conversation: 'conversation' };

/** The topic of a publish path: every segment from `from` on (daprd's `{topic:*}`), each decoded. */
function topicOf(seg: string[], from: number): string {
  if (seg.length <= from) return '';
  if (seg.length === from + 1) return decode(seg[from]);
  return seg.slice(from).map(decode).join('/');
}

/** Percent-decodes a path segment (as daprd unescapes route parameters); left as is when malformed. */
function decode(s: string): string {
  if (s.indexOf('%') < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export interface RunningDaprApi {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** A standalone Dapr API listener (tests, tools): 127.0.0.1, port 0 unless given. */
export async function startDaprApiServer(opts: DaprApiOptions & { host?: string; port?: number }): Promise<RunningDaprApi> {
  const server = createServer(createDaprApiHandler(opts));
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
