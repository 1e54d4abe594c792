/**
 * The Dapr gRPC API (`dapr.proto.runtime.v1.Dapr`, DAPR_GRPC_PORT) over @grpc/grpc-js, from the
 * .proto files the official SDK package ships (@dapr/dapr/proto). Imported by the sidecar only
 * when the first gRPC connection arrives (listener.ts), so an app that never speaks gRPC never
 * loads grpc-js.
 *
 * Implemented as daprd's pkg/api/grpc and pkg/api/universal answer them: InvokeService, GetState,
 * GetBulkState, SaveState, DeleteState, DeleteBulkState, ExecuteStateTransaction,
 * QueryStateAlpha1, GetMetadata, SetMetadata, Shutdown, GetSecret, GetBulkSecret, TryLockAlpha1,
 * UnlockAlpha1, PublishEvent, BulkPublishEventAlpha1, BulkPublishEvent. The logic is the one the HTTP API runs (state-core.ts, secrets-api.ts,
 * lock-api.ts, invoke.ts, pubsub/publish.ts); errors are the catalogue's (src/errors/dapr.ts) with their gRPC code.
 * Every other method of the service answers UNIMPLEMENTED naming itself, with the building
 * block's code the HTTP API gives for it (pub/sub, bindings, configuration, actors, crypto,
 * workflows, jobs, conversation).
 *
 * `dapr-api-token` as daprd's interceptor: with a token configured, a call without it or with
 * another one is UNAUTHENTICATED "Unauthorized" with an ErrorInfo detail (domain dapr.io,
 * http.code 401, http.error_message "missing api token in request metadata" / "authentication
 * error: api token mismatch"). Messages over the max body size (4 MB, daprd's --max-body-size)
 * are RESOURCE_EXHAUSTED, in both directions.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { formatError, toCrossmeshError } from '../../errors.js';
import type { DaprErrorId } from '../../errors.js';
import { log } from '../../util/log.js';
import { DaprError, daprError } from '../respond.js';
import { noComponents, type DaprComponents } from '../server.js';
import {
  deleteItem, deleteItems, etagOf, getItem, getItems, lookupStateStore, query, saveItems, transact,
  type SaveItem, type TransactionItem,
} from '../state-core.js';
import { readBulkSecrets, readSecret } from '../secrets-api.js';
import { tryLockCore, unlockCore } from '../lock-api.js';
import { bulkPublish, publishEvent, type BulkEntry, type PublishContext } from '../pubsub/publish.js';
import type { PubSubMetrics } from '../pubsub/metrics.js';
import type { BufferedResponse } from './buffered-downstream.js';
import type { MetadataSource } from './http-metadata.js';
import { loadDaprProto } from './protos.js';
import { GRPC_MESSAGE_HEADER, GRPC_STATUS_HEADER } from './app-status.js';
import { installUnknownServiceHandler, type AppStreamProxy } from './app-proxy.js';

/** daprd's default --max-body-size (4 MB): the max gRPC message size, received and sent. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 << 20;

export const DAPR_SERVICE = 'dapr.proto.runtime.v1.Dapr';

/** Service invocation as the gRPC API needs it (src/dapr/invoke.ts DaprInvoker). */
export interface BufferedInvoker {
  invokeBuffered(appId: string, method: string, req: { verb: string; query: string; headers: readonly string[]; body: Buffer; signal?: AbortSignal }): Promise<BufferedResponse>;
}

export type { MetadataSource } from './http-metadata.js';

export interface DaprGrpcOptions {
  appId: string;
  components?: DaprComponents;
  invoke?: BufferedInvoker;
  metadata: MetadataSource;
  /** Required `dapr-api-token`; default process.env.DAPR_API_TOKEN; '' = none. */
  apiToken?: string;
  /** Shutdown: called once the answer went out. */
  onShutdown?: () => void;
  /** Default 4 MB. */
  maxMessageBytes?: number;
  /** Dapr's gRPC proxying: calls with `dapr-app-id` to other services go here (app-proxy.ts). */
  proxy?: AppStreamProxy;
  /** Publish counters (shared with the HTTP API). */
  pubsubMetrics?: PubSubMetrics;
}

export interface DaprGrpcServer {
  /** Serves one accepted connection (a plaintext HTTP/2 socket). */
  injectConnection(socket: Duplex): void;
  /** Ends every call and connection (those still open after `graceMs` are cut). */
  close(graceMs?: number): Promise<void>;
}

// ---- protos -----------------------------------------------------------------------------------

let service: grpc.ServiceDefinition | undefined;

/** The Dapr service definition from @dapr/dapr's dapr.proto (protos.ts; loaded once per process). */
export function daprServiceDefinition(): grpc.ServiceDefinition {
  service ??= loadDaprProto('dapr/proto/runtime/v1/dapr.proto')[DAPR_SERVICE] as grpc.ServiceDefinition;
  return service;
}

// ---- errors -----------------------------------------------------------------------------------

interface GrpcError {
  code: number;
  details: string;
  metadata?: grpc.Metadata;
}

/** google.rpc.ErrorInfo in an Any, as grpc-status-details-bin carries it (google.rpc.Status{code=1, message=2, details=3}). */
function statusDetails(code: number, message: string, info: { reason: string; domain: string; metadata: Record<string, string> }): Buffer {
  const ei = protobuf.Writer.create();
  ei.uint32(10).string(info.reason).uint32(18).string(info.domain);
  for (const [k, v] of Object.entries(info.metadata)) ei.uint32(26).fork().uint32(10).string(k).uint32(18).string(v).ldelim();
  const st = protobuf.Writer.create();
  if (code !== 0) st.uint32(8).int32(code);
  st.uint32(18).string(message);
  st.uint32(26).fork().uint32(10).string('type.googleapis.com/google.rpc.ErrorInfo').uint32(18).bytes(ei.finish()).ldelim();
  return Buffer.from(st.finish());
}

/**
 * daprd's invokev1.ErrorFromHTTPResponseCode: the gRPC code for an HTTP status, the status text
 * as message, and an ErrorInfo with http.code and http.error_message (cut to 63 bytes).
 */
export function errorFromHttpStatus(status: number, detail: string, md = new grpc.Metadata()): GrpcError {
  const code = grpcCodeFromHttp(status);
  const text = STATUS_CODES[status] ?? '';
  const cut = Buffer.from(detail).subarray(0, 63).toString('utf8');
  md.set('grpc-status-details-bin', statusDetails(code, text, { reason: text, domain: 'dapr.io', metadata: { 'http.code': String(status), 'http.error_message': cut } }));
  return { code, details: text, metadata: md };
}

/** daprd's invokev1.CodeFromHTTPStatus. */
export function grpcCodeFromHttp(status: number): number {
  switch (status) {
    case 408: return grpc.status.CANCELLED;
    case 500: return grpc.status.UNKNOWN;
    case 400: return grpc.status.INTERNAL;
    case 504: return grpc.status.DEADLINE_EXCEEDED;
    case 404: return grpc.status.NOT_FOUND;
    case 409: return grpc.status.ALREADY_EXISTS;
    case 403: return grpc.status.PERMISSION_DENIED;
    case 401: return grpc.status.UNAUTHENTICATED;
    case 429: return grpc.status.RESOURCE_EXHAUSTED;
    case 501: return grpc.status.UNIMPLEMENTED;
    case 503: return grpc.status.UNAVAILABLE;
  }
  return status >= 200 && status < 300 ? grpc.status.OK : grpc.status.UNKNOWN;
}

function toGrpcError(err: unknown): GrpcError {
  if (err instanceof DaprError) return { code: err.grpcCode, details: err.message };
  if (err && typeof err === 'object' && typeof (err as GrpcError).code === 'number' && typeof (err as GrpcError).details === 'string') return err as GrpcError;
  return { code: grpc.status.INTERNAL, details: toCrossmeshError(err).message };
}

// ---- unimplemented methods ----------------------------------------------------------------------

type UnbuiltError = Extract<DaprErrorId, `${string}:not-implemented`> | 'ERR_PUBSUB_NOT_CONFIGURED:streaming';

/** The building block of a method crossmesh does not implement, as the HTTP API names it (server.ts UNBUILT_BLOCKS). */
function unbuiltBlock(method: string): { id: UnbuiltError; block?: string } {
  if (/^SubscribeTopicEvents/.test(method)) return { id: 'ERR_PUBSUB_NOT_CONFIGURED:streaming' };
  if (/Binding/.test(method)) return { id: 'ERR_INVOKE_OUTPUT_BINDING:not-implemented' };
  if (/Configuration/.test(method)) return { id: 'ERR_CONFIGURATION_STORE_NOT_CONFIGURED:not-implemented' };
  if (/Actor/.test(method)) return { id: 'ERR_ACTOR_RUNTIME_NOT_FOUND:not-implemented' };
  if (/^(Encrypt|Decrypt|Subtle)/.test(method)) return { id: 'ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED:not-implemented' };
  if (/Workflow/.test(method)) return { id: 'ERR_API_UNIMPLEMENTED:not-implemented', block: 'workflow' };
  if (/Job/.test(method)) return { id: 'ERR_API_UNIMPLEMENTED:not-implemented', block: 'jobs' };
  if (/^Converse/.test(method)) return { id: 'ERR_API_UNIMPLEMENTED:not-implemented', block: 'conversation' };
  return { id: 'ERR_API_UNIMPLEMENTED:not-implemented', block: method };
}

/** The answer of an unimplemented method: UNIMPLEMENTED, the block's errorCode, the method named. */
export function unimplementedError(method: string): DaprError {
  const path = `/${DAPR_SERVICE}/${method}`;
  const { id, block } = unbuiltBlock(method);
  if (id === 'ERR_API_UNIMPLEMENTED:not-implemented') return daprError(id, { block: block ?? method, method: 'gRPC', path });
  return daprError(id, { method: 'gRPC', path });
}

// ---- request pieces ---------------------------------------------------------------------------

const CONCURRENCY = ['', 'first-write', 'last-write'];
const CONSISTENCY = ['', 'eventual', 'strong'];
/** daprd stateConcurrencyToString / stateConsistencyToString: unknown = unspecified. */
const concurrencyName = (n: unknown): string | undefined => CONCURRENCY[Number(n)] || undefined;
const consistencyName = (n: unknown): string | undefined => CONSISTENCY[Number(n)] || undefined;
const VERBS = ['NONE', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

interface StateItemMsg {
  key: string;
  value: Buffer;
  etag: { value: string } | null;
  metadata: Record<string, string>;
  options: { concurrency: number; consistency: number } | null;
}

const metadataOf = (m: Record<string, string> | null | undefined): Record<string, string> | undefined => (m && Object.keys(m).length > 0 ? m : undefined);

/** Request headers for the app from the call's metadata, as daprd's InternalMetadataToHTTPHeader. */
function headersFromMetadata(md: grpc.Metadata): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(md.getMap())) {
    if (k.endsWith('-bin') || k === 'content-type' || k === 'dapr-api-token' || HOP_BY_HOP.has(k) || typeof v !== 'string') continue;
    out.push(k.startsWith('grpc-') ? `dapr-${k}` : k, v);
  }
  return out;
}
const HOP_BY_HOP = new Set(['te', 'connection', 'host', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'proxy-connection']);

/** IANA's permanent HTTP headers that daprd's InternalMetadataToGrpcMetadata sends back prefixed with `dapr-`. */
const PERMANENT = new Set([
  'accept', 'accept-charset', 'accept-language', 'accept-ranges', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'upgrade', 'cache-control', 'content-type', 'content-length', 'cookie', 'date', 'expect', 'from', 'host', 'if-match', 'if-modified-since',
  'if-none-match', 'if-schedule-tag-match', 'if-unmodified-since', 'max-forwards', 'origin', 'pragma', 'referer', 'via', 'warning',
]);

/** The app's response headers as gRPC response metadata, plus dapr-http-status for an HTTP app (daprd InvokeService). */
function responseMetadata(res: BufferedResponse, httpApp: boolean): grpc.Metadata {
  const md = new grpc.Metadata();
  for (let i = 0; i < res.headers.length; i += 2) {
    const name = res.headers[i].toLowerCase();
    if (name === 'traceparent' || name === 'tracestate' || name.endsWith('-bin') || name === GRPC_STATUS_HEADER || name === GRPC_MESSAGE_HEADER) continue;
    try {
      md.add(PERMANENT.has(name) ? `dapr-${name}` : name, res.headers[i + 1]);
    } catch {
      // A header gRPC metadata cannot carry (name or value characters): left out.
    }
  }
  if (httpApp) md.set('dapr-http-status', String(res.status));
  return md;
}

function decodeMessage(v: string | undefined): string {
  if (!v) return '';
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

function headerValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) return headers[i + 1];
  return undefined;
}

/** GetMetadataResponse from the HTTP API's `/v1.0/metadata` JSON (daprd serves the same message as protojson). */
function metadataResponse(j: Record<string, any>): Record<string, unknown> {
  const conn = j.appConnectionProperties ?? {};
  const rt = j.actorRuntime ?? {};
  return {
    id: j.id ?? '',
    activeActorsCount: (j.actors ?? []).map((a: any) => ({ type: a.type, count: a.count })),
    registeredComponents: (j.components ?? []).map((c: any) => ({ name: c.name, type: c.type, version: c.version, capabilities: c.capabilities ?? [] })),
    extendedMetadata: j.extended ?? {},
    subscriptions: [],
    httpEndpoints: [],
    appConnectionProperties: { port: conn.port ?? 0, protocol: conn.protocol ?? '', channelAddress: conn.channelAddress ?? '', maxConcurrency: conn.maxConcurrency ?? 0 },
    runtimeVersion: j.runtimeVersion ?? '',
    enabledFeatures: j.enabledFeatures ?? [],
    actorRuntime: { runtimeStatus: ({ INITIALIZING: 0, DISABLED: 1, RUNNING: 2 } as Record<string, number>)[rt.runtimeStatus] ?? 1, activeActors: [], hostReady: !!rt.hostReady, placement: rt.placement ?? '' },
  };
}

// ---- the server -------------------------------------------------------------------------------

type Unary = (req: any, call: grpc.ServerUnaryCall<any, any>) => Promise<unknown>;

interface BulkPublishMsg {
  pubsubName: string;
  topic: string;
  entries: { entryId: string; event: Buffer; contentType: string; metadata: Record<string, string> }[];
  metadata: Record<string, string>;
}

export function createDaprGrpcServer(opts: DaprGrpcOptions): DaprGrpcServer {
  const rawToken = opts.apiToken ?? process.env.DAPR_API_TOKEN ?? '';
  const maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const stores: DaprComponents = opts.components ?? noComponents(opts.appId);
  let shuttingDown = false;
  const publishCtx: PublishContext = { appId: opts.appId, pubsubs: stores, metrics: opts.pubsubMetrics };
  const traceOf = (call: grpc.ServerUnaryCall<any, any>) => {
    const tp = call.metadata.get('traceparent')[0];
    const ts = call.metadata.get('tracestate')[0];
    return { traceparent: tp === undefined ? undefined : String(tp), tracestate: ts === undefined ? undefined : String(ts) };
  };
  // gRPC bulk publish: failed entries are in the answer (OK), as daprd's gRPC API returns them.
  const bulk = async (r: BulkPublishMsg, call: grpc.ServerUnaryCall<any, any>) => {
    const entries: BulkEntry[] = r.entries.map((e) => ({ entryId: e.entryId, event: e.event ?? Buffer.alloc(0), contentType: e.contentType, ...(e.metadata && Object.keys(e.metadata).length > 0 ? { metadata: e.metadata } : {}) }));
    const { failed } = await bulkPublish(publishCtx, r.pubsubName, r.topic, entries, metadataOf(r.metadata) ?? {}, traceOf(call));
    return { failedEntries: failed };
  };

  /** daprd's API token interceptor (pkg/api/grpc/auth.go). */
  const authError = (md: grpc.Metadata): GrpcError | undefined => {
    if (!rawToken) return undefined;
    const given = md.get('dapr-api-token');
    if (given.length === 0) return errorFromHttpStatus(401, 'missing api token in request metadata');
    if (String(given[0]) !== rawToken) return errorFromHttpStatus(401, 'authentication error: api token mismatch');
    return undefined;
  };

  const unary: Record<string, Unary> = {
    async GetState(r: { storeName: string; key: string; consistency: number; metadata: Record<string, string> }) {
      const s = lookupStateStore(stores, r.storeName);
      const v = await getItem(s, r.storeName, r.key, consistencyName(r.consistency), (m) => daprError('ERR_MALFORMED_REQUEST:option', { detail: m }));
      // A missing key: an empty response (daprd), not an error.
      if (!v) return {};
      return { data: v.data, etag: v.etag, metadata: v.expiresAt !== undefined ? { ttlExpireTime: new Date(v.expiresAt).toISOString() } : {} };
    },

    async GetBulkState(r: { storeName: string; keys: string[]; parallelism: number; metadata: Record<string, string> }) {
      const s = lookupStateStore(stores, r.storeName);
      if (r.keys.length === 0) return { items: [] };
      // parallelism bounds daprd's concurrent Gets; the stores here answer a bulk get in one call.
      const values = await getItems(s, r.storeName, r.keys);
      return { items: r.keys.map((key, i) => (values[i] ? { key, data: values[i]!.data, etag: values[i]!.etag } : { key })) };
    },

    async SaveState(r: { storeName: string; states: StateItemMsg[] }) {
      const s = lookupStateStore(stores, r.storeName);
      if (r.states.length === 0) return {};
      const items: SaveItem[] = r.states.map((st) => {
        if (!st.key) throw daprError('ERR_STATE_SAVE:empty-key');
        return {
          key: st.key, data: st.value, etag: etagOf(st.etag?.value),
          concurrency: concurrencyName(st.options?.concurrency), consistency: consistencyName(st.options?.consistency),
          metadata: metadataOf(st.metadata),
        };
      });
      await saveItems(s, r.storeName, items);
      return {};
    },

    async DeleteState(r: { storeName: string; key: string; etag: { value: string } | null; options: StateItemMsg['options']; metadata: Record<string, string> }) {
      const s = lookupStateStore(stores, r.storeName);
      await deleteItem(s, { key: r.key, etag: etagOf(r.etag?.value), concurrency: concurrencyName(r.options?.concurrency), consistency: consistencyName(r.options?.consistency) });
      return {};
    },

    async DeleteBulkState(r: { storeName: string; states: StateItemMsg[] }) {
      const s = lookupStateStore(stores, r.storeName);
      await deleteItems(s, r.storeName, r.states.map((st) => ({
        key: st.key, etag: etagOf(st.etag?.value), concurrency: concurrencyName(st.options?.concurrency), consistency: consistencyName(st.options?.consistency),
      })));
      return {};
    },

    async ExecuteStateTransaction(r: { storeName: string; operations: { operationType: string; request: StateItemMsg | null }[]; metadata: Record<string, string> }) {
      const s = lookupStateStore(stores, r.storeName);
      const ops: TransactionItem[] = r.operations.map((op) => {
        const q = op.request;
        return {
          operation: op.operationType, key: q?.key ?? '', data: q?.value, etag: etagOf(q?.etag?.value),
          concurrency: concurrencyName(q?.options?.concurrency), consistency: consistencyName(q?.options?.consistency),
          metadata: metadataOf(q?.metadata),
        };
      });
      await transact(s, r.storeName, ops);
      return {};
    },

    async QueryStateAlpha1(r: { storeName: string; query: string; metadata: Record<string, string> }) {
      const s = lookupStateStore(stores, r.storeName);
      const result = await query(s, r.storeName, r.query);
      if (result.results.length === 0) return {};
      return { results: result.results.map((x) => ({ key: x.key, data: x.data, etag: x.etag })), token: result.token ?? '' };
    },

    async GetSecret(r: { storeName: string; key: string; metadata: Record<string, string> }) {
      return { data: await readSecret(stores, r.storeName, r.key, metadataOf(r.metadata)) };
    },

    async GetBulkSecret(r: { storeName: string; metadata: Record<string, string> }) {
      const all = await readBulkSecrets(stores, r.storeName, metadataOf(r.metadata));
      const data: Record<string, { secrets: Record<string, string> }> = {};
      for (const [name, secrets] of Object.entries(all)) data[name] = { secrets };
      return { data };
    },

    async TryLockAlpha1(r: { storeName: string; resourceId: string; lockOwner: string; expiryInSeconds: number }) {
      return { success: await tryLockCore(stores, r.storeName, r) };
    },

    async PublishEvent(r: { pubsubName: string; topic: string; data: Buffer; dataContentType: string; metadata: Record<string, string> }, call) {
      await publishEvent(publishCtx, { pubsubName: r.pubsubName, topic: r.topic, data: r.data ?? Buffer.alloc(0), contentType: r.dataContentType, metadata: metadataOf(r.metadata) ?? {}, ...traceOf(call) });
      return {};
    },

    BulkPublishEventAlpha1: bulk,
    BulkPublishEvent: bulk,

    async UnlockAlpha1(r: { storeName: string; resourceId: string; lockOwner: string }) {
      return { status: await unlockCore(stores, r.storeName, { ...r, expiryInSeconds: 0 }) };
    },

    async GetMetadata() {
      return metadataResponse(await opts.metadata.get());
    },

    async SetMetadata(r: { key: string; value: string }) {
      await opts.metadata.set(r.key, r.value);
      return {};
    },

    async Shutdown() {
      if (!shuttingDown && opts.onShutdown) {
        shuttingDown = true;
        const cb = opts.onShutdown;
        // After the answer is on its way (daprd runs its shutdown after returning); the close
        // shuts the server down gracefully, so the answer is not cut off.
        setImmediate(() => {
          try {
            cb();
          } catch (err) {
            log.error(`dapr shutdown callback failed: ${formatError(err)}`);
          }
        });
      }
      return {};
    },

    async InvokeService(r: { id: string; message: { method: string; data: { type_url?: string; value: Buffer } | null; contentType: string; httpExtension: { verb: number; querystring: string } | null } | null }, call) {
      if (!opts.invoke) throw daprError('ERR_DIRECT_INVOKE:not-configured');
      const m = r.message;
      const fail = (error: string) => daprError('ERR_DIRECT_INVOKE', { appId: r.id, error });
      // What daprd's HTTP app channel answers for these (wrapped in ERR_DIRECT_INVOKE).
      if (!m?.httpExtension) throw fail('rpc error: code = InvalidArgument desc = missing HTTP extension field');
      const verb = VERBS[m.httpExtension.verb];
      if (!verb || verb === 'NONE' || verb === 'CONNECT') throw fail('rpc error: code = InvalidArgument desc = invalid HTTP verb');
      const headers = headersFromMetadata(call.metadata);
      // google.protobuf.Any decodes as protobufjs's built-in type, which keeps the proto's field name type_url.
      const contentType = m.contentType || (m.data?.type_url ? 'application/x-protobuf' : '');
      if (contentType) headers.push('content-type', contentType);
      const ac = new AbortController();
      const onCancel = () => ac.abort();
      call.once('cancelled', onCancel);
      let res: BufferedResponse;
      try {
        res = await opts.invoke.invokeBuffered(r.id, m.method, { verb, query: m.httpExtension.querystring, headers, body: m.data?.value ?? Buffer.alloc(0), signal: ac.signal });
      } catch (err) {
        throw daprError('ERR_DIRECT_INVOKE', { appId: r.id, error: err instanceof Error ? err.message : String(err) }, { cause: err });
      } finally {
        call.off('cancelled', onCancel);
      }
      // The app's headers go out as response headers whatever the status (daprd: grpc.SetHeader, then the error).
      const appCode = headerValue(res.headers, GRPC_STATUS_HEADER);
      call.sendMetadata(responseMetadata(res, appCode === undefined));
      if (appCode !== undefined) {
        // A gRPC app's own status (daprd: ErrorFromInternalStatus for a non-HTTP response).
        const code = Number(appCode);
        if (code !== 0) throw { code: Number.isInteger(code) && code > 0 && code <= 16 ? code : grpc.status.UNKNOWN, details: decodeMessage(headerValue(res.headers, GRPC_MESSAGE_HEADER)) } satisfies GrpcError;
      } else if (res.status < 200 || res.status >= 300) {
        throw errorFromHttpStatus(res.status, res.body.toString('utf8'));
      }
      return { data: { type_url: '', value: res.body }, contentType: headerValue(res.headers, 'content-type') ?? '' };
    },
  };

  const service = daprServiceDefinition();
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, def] of Object.entries(service)) {
    const fn = unary[name];
    if (fn && !def.requestStream && !def.responseStream) {
      impl[name] = ((call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
        const denied = authError(call.metadata);
        if (denied) return callback(denied);
        fn(call.request, call).then((v) => callback(null, v), (err) => {
          if (!(err instanceof DaprError)) log.debug(`dapr gRPC ${name}: ${formatError(err)}`);
          callback(toGrpcError(err));
        });
      }) as grpc.handleUnaryCall<any, any>;
      continue;
    }
    const answer = (md: grpc.Metadata): GrpcError => authError(md) ?? toGrpcError(unimplementedError(name));
    if (!def.requestStream && !def.responseStream) impl[name] = ((call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => cb(answer(call.metadata))) as grpc.handleUnaryCall<any, any>;
    else if (def.requestStream && !def.responseStream) impl[name] = ((call: grpc.ServerReadableStream<any, any>, cb: grpc.sendUnaryData<any>) => cb(answer(call.metadata))) as grpc.handleClientStreamingCall<any, any>;
    else impl[name] = ((call: grpc.ServerWritableStream<any, any> | grpc.ServerDuplexStream<any, any>) => call.emit('error', answer(call.metadata))) as grpc.handleServerStreamingCall<any, any>;
  }

  // channelz (grpc-js's per-call introspection counters, on by default) is off: nothing here reads
  // it, and it is per-call work on the sidecar's request path.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxBytes, 'grpc.max_send_message_length': maxBytes, 'grpc.enable_channelz': 0 });
  server.addService(service, impl);
  if (opts.proxy !== undefined) {
    installUnknownServiceHandler(server, opts.proxy, (headers) => {
      if (!rawToken) return undefined;
      const md = new grpc.Metadata();
      const given = headers['dapr-api-token'];
      if (typeof given === 'string') md.set('dapr-api-token', given);
      return authError(md);
    });
  }
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  let closed: Promise<void> | undefined;
  return {
    injectConnection: (socket) => injector.injectConnection(socket),
    close(graceMs = 2000) {
      closed ??= new Promise<void>((resolve) => {
        const t = setTimeout(() => server.forceShutdown(), graceMs);
        t.unref();
        injector.drain(graceMs);
        injector.destroy();
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      return closed;
    },
  };
}
