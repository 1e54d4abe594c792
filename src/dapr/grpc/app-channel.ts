/**
 * The app channel of `crossmesh run --app-protocol grpc` (daprd's pkg/channel/grpc): Dapr
 * service invocations that reach the app's sidecar are delivered by calling the app's
 * `dapr.proto.runtime.v1.AppCallback/OnInvoke` over h2c on APP_PORT, through one pooled
 * grpc-js channel per app. The request and the answer are converted as daprd converts them
 * for an HTTP caller:
 *
 *  - request: InvokeRequest{method, data: Any{value: body}, content_type, http_extension{verb,
 *    querystring}}; the caller's headers become gRPC metadata as daprd's
 *    InternalMetadataToGrpcMetadata(…, httpHeaderConversion=true) makes them (lowercased,
 *    IANA permanent headers prefixed `dapr-`, `-bin` values base64-decoded, traceparent /
 *    tracestate kept and grpc-trace-bin added); APP_API_TOKEN as `dapr-api-token`.
 *  - answer OK: 200, the response header metadata as HTTP headers (InternalMetadataToHTTPHeader:
 *    `-bin` and content-type left out, `grpc-*` prefixed `dapr-`), content type = the
 *    InvokeResponse's (`application/x-protobuf` when data carries a type URL), body = data.value.
 *  - answer error: HTTPStatusFromCode(code) with the status as protojson
 *    (`{"code":5,"message":"…"}`, daprd's directmessaging.go), which Go serves as text/plain.
 *  - both carry the app's gRPC status as x-crossmesh-grpc-status/-message (app-status.ts), so a
 *    gRPC caller gets the app's own code back, as from daprd.
 *
 * Imported by the sidecar only when the app speaks gRPC (grpc-js is not loaded otherwise).
 */
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './server.js';
import { loadDaprProto } from './protos.js';
import { GRPC_MESSAGE_HEADER, GRPC_STATUS_HEADER } from './app-status.js';

export const APP_CALLBACK_SERVICE = 'dapr.proto.runtime.v1.AppCallback';


/** One invocation as the inbound listener received it. */
export interface AppInvocation {
  /** The method, decoded, without the leading `/` (daprd's InvokeRequest.method). */
  method: string;
  /** The HTTP verb of the call. */
  verb: string;
  /** The raw query string without `?` ('' for none). */
  query: string;
  /** Flat [name, value, ...] request headers as they arrived. */
  headers: readonly string[];
  body: Buffer;
  signal?: AbortSignal;
}

export interface AppAnswer {
  status: number;
  /** Flat [name, value, ...]; content-length included. */
  headers: string[];
  body: Buffer;
}

/** common.proto HTTPExtension.Verb. */
const VERBS: Record<string, number> = { GET: 1, HEAD: 2, POST: 3, PUT: 4, DELETE: 5, CONNECT: 6, OPTIONS: 7, TRACE: 8, PATCH: 9 };

/** daprd's isPermanentHTTPHeader (IANA's permanent request headers), lowercased. */
const PERMANENT = new Set([
  'accept', 'accept-charset', 'accept-language', 'accept-ranges', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'upgrade', 'cache-control', 'content-type', 'content-length', 'cookie', 'date', 'expect', 'from', 'host', 'if-match', 'if-modified-since',
  'if-none-match', 'if-schedule-tag-match', 'if-unmodified-since', 'max-forwards', 'origin', 'pragma', 'referer', 'via', 'warning',
]);
/**
 * Headers of the hop, not of the caller's request: daprd never sees them (Go's server keeps Host
 * and Transfer-Encoding out of r.Header; the others describe the sidecar-to-sidecar connection).
 */
const HOP = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade', 'destination-app-id']);

/** daprd's invokev1.HTTPStatusFromCode. */
export function httpStatusFromGrpcCode(code: number): number {
  switch (code) {
    case grpc.status.OK: return 200;
    case grpc.status.CANCELLED: return 408;
    case grpc.status.UNKNOWN: return 500;
    case grpc.status.INVALID_ARGUMENT: return 400;
    case grpc.status.DEADLINE_EXCEEDED: return 504;
    case grpc.status.NOT_FOUND: return 404;
    case grpc.status.ALREADY_EXISTS: return 409;
    case grpc.status.PERMISSION_DENIED: return 403;
    case grpc.status.UNAUTHENTICATED: return 401;
    case grpc.status.RESOURCE_EXHAUSTED: return 429;
    case grpc.status.FAILED_PRECONDITION: return 400;
    case grpc.status.ABORTED: return 409;
    case grpc.status.OUT_OF_RANGE: return 400;
    case grpc.status.UNIMPLEMENTED: return 501;
    case grpc.status.INTERNAL: return 500;
    case grpc.status.UNAVAILABLE: return 503;
    case grpc.status.DATA_LOSS: return 500;
  }
  return 500;
}

/** The OpenCensus binary span context (grpc-trace-bin) of a W3C traceparent, or undefined. */
export function traceBinFromTraceparent(tp: string): Buffer | undefined {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(tp.trim());
  if (!m) return undefined;
  return Buffer.concat([Buffer.from([0, 0]), Buffer.from(m[2], 'hex'), Buffer.from([1]), Buffer.from(m[3], 'hex'), Buffer.from([2]), Buffer.from(m[4], 'hex')]);
}

/** The OnInvoke call's metadata from the caller's headers (daprd's InternalMetadataToGrpcMetadata with HTTP header conversion). */
export function invokeMetadata(headers: readonly string[], appToken?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  let traceparent: string | undefined;
  let tracestate: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    const value = headers[i + 1];
    if (name === 'traceparent') { traceparent ??= value; continue; }
    if (name === 'tracestate') { tracestate ??= value; continue; }
    // grpc-* names are the transport's own (grpc-timeout, grpc-encoding…): never the caller's to set.
    if (HOP.has(name) || name === 'dapr-api-token' || name === 'grpc-trace-bin' || name.startsWith('grpc-')) continue;
    try {
      if (name.endsWith('-bin')) {
        const decoded = Buffer.from(value, 'base64');
        if (decoded.toString('base64').replace(/=+$/, '') === value.trim().replace(/=+$/, '')) md.add(name, decoded);
      } else {
        md.add(PERMANENT.has(name) ? `dapr-${name}` : name, value);
      }
    } catch {
      // A name or value gRPC metadata cannot carry: left out.
    }
  }
  if (traceparent !== undefined) {
    const bin = traceBinFromTraceparent(traceparent);
    if (bin) {
      md.set('traceparent', traceparent);
      if (tracestate) md.set('tracestate', tracestate);
      md.set('grpc-trace-bin', bin);
    }
  }
  if (appToken) md.set('dapr-api-token', appToken);
  return md;
}

/** HTTP headers from the app's response header metadata (daprd's InternalMetadataToHTTPHeader), first value of each. */
export function answerHeaders(md: grpc.Metadata | undefined, traceparent: string | undefined): string[] {
  const out: string[] = [];
  if (md) {
    for (const [key, values] of Object.entries(md.toJSON())) {
      if (values.length === 0 || key.endsWith('-bin') || key === 'content-type' || key === 'traceparent' || key === 'tracestate' || key === 'destination-app-id') continue;
      const v = values[0];
      if (typeof v !== 'string') continue;
      out.push(key.startsWith('grpc-') ? `dapr-${key}` : key, v);
    }
  }
  // daprd answers the trace context of the call (grpc-trace-bin of the app, else the request's span).
  if (traceparent) out.push('traceparent', traceparent);
  return out;
}

/** The status of a failed OnInvoke as daprd's ProtobufToJSON renders the internal Status (code, message; details left out). */
export function statusJson(code: number, message: string): Buffer {
  const o: Record<string, unknown> = {};
  if (code !== 0) o.code = code;
  if (message) o.message = message;
  return Buffer.from(JSON.stringify(o));
}

type OnInvoke = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: any) => void) => grpc.ClientUnaryCall;

export class GrpcAppChannel {
  private readonly client: grpc.Client & { OnInvoke: OnInvoke };
  private readonly maxBytes: number;
  private closed = false;

  constructor(readonly host: string, readonly port: number, private readonly opts: { appToken?: string; maxMessageBytes?: number } = {}) {
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const def = loadDaprProto('dapr/proto/runtime/v1/appcallback.proto');
    const Ctor = grpc.makeGenericClientConstructor(def[APP_CALLBACK_SERVICE] as grpc.ServiceDefinition, APP_CALLBACK_SERVICE);
    this.client = new Ctor(`${host}:${port}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': this.maxBytes,
      'grpc.max_send_message_length': this.maxBytes,
      // Loopback to the app: after it restarts, reconnect within a second, not grpc's 120 s back-off cap.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    }) as unknown as grpc.Client & { OnInvoke: OnInvoke };
  }

  /** True once an HTTP/2 connection to the app is up (within `timeoutMs`); it keeps trying after false. */
  waitForReady(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => this.client.waitForReady(Date.now() + timeoutMs, (err) => resolve(!err)));
  }

  /** Calls OnInvoke and converts the answer to the HTTP response daprd gives an HTTP caller. */
  invoke(inv: AppInvocation): Promise<AppAnswer> {
    const traceparent = headerOf(inv.headers, 'traceparent');
    if (inv.body.length > this.maxBytes) {
      // What grpc-go's client answers daprd for a request over --max-body-size.
      return Promise.resolve(errorAnswer(grpc.status.RESOURCE_EXHAUSTED, `trying to send message larger than max (${inv.body.length} vs. ${this.maxBytes})`, undefined, traceparent));
    }
    const contentType = headerOf(inv.headers, 'content-type') ?? '';
    const request = {
      method: inv.method,
      // google.protobuf.Any comes from protobufjs's bundled descriptors, whose field names are not camelCased.
      data: { type_url: '', value: inv.body },
      contentType,
      httpExtension: { verb: VERBS[inv.verb.toUpperCase()] ?? 0, querystring: inv.query },
    };
    const md = invokeMetadata(inv.headers, this.opts.appToken);
    if (this.closed) return Promise.resolve(errorAnswer(grpc.status.UNAVAILABLE, 'the sidecar is closing its channel to the app', undefined, traceparent));
    return new Promise((resolve) => {
      let header: grpc.Metadata | undefined;
      const call = this.client.OnInvoke(request, md, {}, (err, res) => {
        inv.signal?.removeEventListener('abort', onAbort);
        if (err) return resolve(errorAnswer(err.code, err.details, header, traceparent));
        const data = res?.data as { type_url?: string; value?: Buffer } | null | undefined;
        const body = data?.value ? Buffer.from(data.value) : Buffer.alloc(0);
        const headers = answerHeaders(header, traceparent);
        const ct = data?.type_url ? 'application/x-protobuf' : (res?.contentType as string | undefined) ?? '';
        if (ct) headers.push('content-type', ct);
        headers.push('content-length', String(body.length), GRPC_STATUS_HEADER, '0');
        resolve({ status: 200, headers, body });
      });
      call.on('metadata', (m: grpc.Metadata) => (header = m));
      const onAbort = () => call.cancel();
      inv.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Calls another AppCallback method (ListTopicSubscriptions, OnTopicEvent) with the app token.
   * Rejects with the grpc-js ServiceError the app answered.
   */
  unary<T>(method: string, request: unknown, timeoutMs?: number): Promise<T> {
    if (this.closed) return Promise.reject(Object.assign(new Error('the sidecar is closing its channel to the app'), { code: grpc.status.UNAVAILABLE, details: 'closing' }));
    const md = new grpc.Metadata();
    if (this.opts.appToken) md.set('dapr-api-token', this.opts.appToken);
    const fn = (this.client as unknown as Record<string, OnInvoke>)[method];
    return new Promise((resolve, reject) => {
      fn.call(this.client, request, md, timeoutMs ? { deadline: Date.now() + timeoutMs } : {}, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** Closes the channel (its connection to the app); calls in flight fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }
}

function errorAnswer(code: number, message: string, header: grpc.Metadata | undefined, traceparent: string | undefined): AppAnswer {
  const body = statusJson(code, message);
  const headers = answerHeaders(header, traceparent);
  // daprd sets no content type here; Go's ResponseWriter sniffs the JSON text as text/plain.
  headers.push('content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length), GRPC_STATUS_HEADER, String(code), GRPC_MESSAGE_HEADER, encodeURIComponent(message));
  return { status: httpStatusFromGrpcCode(code), headers, body };
}

function headerOf(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) return headers[i + 1];
  return undefined;
}
