/**
 * forward(): one proxy hop for one request. Streams the request body to the upstream and the
 * response body back (never buffers), with keep-alive pools per origin, header hygiene, and
 * upstream failures mapped to 502/504 with a short JSON body naming what failed.
 *
 * Built on undici's `stream()` with `opaque` and a module-level factory, so the response is
 * written straight into the ServerResponse: no intermediate Readable, no per-request closure.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { CrossmeshError, type ErrorCode } from '../errors.js';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { defaultPools, type PoolRegistry } from './pool.js';

export interface ForwardOptions {
  /** Upstream origin, `http://host:port`. */
  origin: string;
  /** Origin-form request target sent upstream (path and query), e.g. `/ports?x=1`. */
  path: string;
  /** Flat [name, value, ...] request headers to set upstream (lowercase names; replace incoming ones). */
  extraHeaders?: readonly string[];
  /** Incoming request headers (lowercase) not passed upstream. */
  dropHeaders?: ReadonlySet<string>;
  /** Flat [name, value, ...] headers added to the response (also to error responses). */
  responseHeaders?: readonly string[];
  /** Time allowed for the upstream's response headers, and between body chunks. Default 30 s. */
  timeoutMs?: number;
  /** What the upstream is, for error messages (default: the origin), e.g. `dapr-test/nodeapp endpoint 10.0.0.1:3000`. */
  label?: string;
  /**
   * When false, a failure that happens before anything was written to `res` is NOT answered:
   * the result carries the error and the caller may retry elsewhere (see `failedBeforeSend`)
   * or answer with `sendError()`. Default true.
   */
  respondOnError?: boolean;
  pools?: PoolRegistry;
  /**
   * Upstream statuses that are NOT passed to the client: the response body is discarded and the
   * result has `discarded: true`, so the caller can retry elsewhere (e.g. 502/503 from a gateway
   * whose endpoints are gone). Give it only when another attempt is possible.
   */
  retryStatuses?: ReadonlySet<number>;
  /** Aborts the upstream request (e.g. a resiliency timeout that fired first). */
  signal?: AbortSignal;
}

export interface ForwardResult {
  /** Status sent to the client (or that sendError() would send when respondOnError is false). */
  status: number;
  /** The upstream's status, when it answered. */
  upstreamStatus?: number;
  /** Set when the hop failed (upstream error, timeout, refused request). */
  error?: CrossmeshError;
  /**
   * True when the request failed before any byte of it reached the upstream (connection
   * refused, unresolvable, unreachable, connect timeout): the upstream cannot have acted on it,
   * so retrying on another endpoint is safe even for non-idempotent methods (if the request has
   * no body or the caller kept it).
   */
  failedBeforeSend: boolean;
  /** True once anything was written to `res` (then only this forward() can answer the client). */
  responseStarted: boolean;
  /** The upstream answered with one of `retryStatuses`; nothing was written to `res`. */
  discarded?: boolean;
  /**
   * The client closed its connection before the response was complete: the upstream request was
   * aborted (its socket let go at once instead of waiting for the upstream's answer) and nothing
   * is to be answered or retried. Not the upstream's fault: callers must not count it against it.
   */
  clientGone?: boolean;
}

interface Ctx {
  res: ServerResponse;
  responseHeaders: readonly string[] | undefined;
  upstreamStatus: number;
  started: boolean;
  retryStatuses: ReadonlySet<number> | undefined;
  discarded: boolean;
}

function factory(data: Dispatcher.StreamFactoryData<Ctx>): Writable {
  const ctx = data.opaque;
  ctx.upstreamStatus = data.statusCode;
  if (ctx.retryStatuses !== undefined && ctx.retryStatuses.has(data.statusCode)) {
    ctx.discarded = true;
    return new Writable({ write: discardChunk });
  }
  ctx.started = true;
  ctx.res.writeHead(data.statusCode, downstreamResponseHeaders(data.headers as Record<string, string | string[]>, ctx.responseHeaders));
  return ctx.res;
}

function discardChunk(_chunk: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
  cb();
}

const DEFAULT_TIMEOUT_MS = 30_000;

export async function forward(req: IncomingMessage, res: ServerResponse, opts: ForwardOptions): Promise<ForwardResult> {
  const socket = req.socket;
  let upstream;
  try {
    upstream = upstreamRequestHeaders({
      rawHeaders: req.rawHeaders,
      clientIp: socket.remoteAddress ?? '',
      proto: (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
      extra: opts.extraHeaders,
      drop: opts.dropHeaders,
    });
  } catch (err) {
    return fail(res, opts, err as CrossmeshError, false, false);
  }
  const ctx: Ctx = { res, responseHeaders: opts.responseHeaders, upstreamStatus: 0, started: false, retryStatuses: opts.retryStatuses, discarded: false };
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (res.destroyed) return { status: 499, error: CLIENT_GONE, failedBeforeSend: true, responseStarted: false, clientGone: true };
  // A client that goes away aborts the upstream request: without this, a slow upstream kept a
  // socket (and the request's memory) on every hop until it answered or the timeout fired.
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort(CLIENT_GONE);
  };
  res.once('close', onClose);
  const outer = opts.signal;
  const onOuterAbort = () => abort.abort(outer!.reason);
  if (outer !== undefined) {
    if (outer.aborted) abort.abort(outer.reason);
    else outer.addEventListener('abort', onOuterAbort, { once: true });
  }
  try {
    await (opts.pools ?? defaultPools).get(opts.origin).stream<Ctx>(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: opts.path,
        headers: upstream.headers,
        body: upstream.hasBody ? req : undefined,
        opaque: ctx,
        signal: abort.signal,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      },
      factory,
    );
    if (ctx.discarded) return { status: ctx.upstreamStatus, upstreamStatus: ctx.upstreamStatus, failedBeforeSend: false, responseStarted: false, discarded: true };
    return { status: ctx.upstreamStatus, upstreamStatus: ctx.upstreamStatus, failedBeforeSend: false, responseStarted: true };
  } catch (err) {
    if (abort.signal.aborted) (opts.pools ?? defaultPools).recycleSoon(opts.origin);
    if (err === CLIENT_GONE || (abort.signal.reason === CLIENT_GONE && outer?.aborted !== true)) {
      if (!res.destroyed) res.destroy();
      return { status: 499, upstreamStatus: ctx.upstreamStatus || undefined, error: CLIENT_GONE, failedBeforeSend: false, responseStarted: ctx.started, clientGone: true };
    }
    const { error, beforeSend } = classify(err, opts, timeout);
    if (ctx.started || res.headersSent) {
      // Mid-body failure: the status line is gone; the client sees a cut-off response.
      if (!res.destroyed) res.destroy(error);
      return { status: ctx.upstreamStatus, upstreamStatus: ctx.upstreamStatus, error, failedBeforeSend: false, responseStarted: true };
    }
    return fail(res, opts, error, beforeSend, false);
  } finally {
    res.off('close', onClose);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}

/** The reason given to the upstream request when the client closed its connection first. */
const CLIENT_GONE = new CrossmeshError('CM_ERR_BAD_REQUEST', 'the client closed the connection before the response was complete');

function fail(res: ServerResponse, opts: ForwardOptions, error: CrossmeshError, beforeSend: boolean, started: boolean): ForwardResult {
  const result: ForwardResult = { status: error.status, error, failedBeforeSend: beforeSend, responseStarted: started };
  if (opts.respondOnError !== false) {
    sendError(res, error, opts.responseHeaders);
    result.responseStarted = true;
  }
  return result;
}

/** Answers with `{"errorCode": ..., "message": ...}` and the error's HTTP status (if the socket is still writable). */
export function sendError(res: ServerResponse, error: { code: string; status: number; message: string }, extraHeaders?: readonly string[]): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = JSON.stringify({ errorCode: error.code, message: error.message });
  const headers: string[] = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))];
  if (extraHeaders !== undefined) for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]);
  res.writeHead(error.status, headers);
  res.end(body);
}

const BEFORE_SEND: Record<string, string> = {
  ECONNREFUSED: 'refused the connection',
  ENOTFOUND: 'could not be resolved',
  EAI_AGAIN: 'could not be resolved (temporary DNS failure)',
  EHOSTUNREACH: 'is unreachable (no route to host)',
  ENETUNREACH: 'is unreachable (network unreachable)',
  EADDRNOTAVAIL: 'is unreachable (address not available)',
};

function errCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code ?? e?.cause?.code ?? '';
}

/** Maps an undici / socket error to the catalogue, and tells whether nothing reached the upstream. */
export function classify(err: unknown, opts: { origin: string; label?: string }, timeoutMs: number): { error: CrossmeshError; beforeSend: boolean } {
  if (err instanceof CrossmeshError) return { error: err, beforeSend: false };
  const what = `upstream ${opts.label ?? opts.origin}`;
  const code = errCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  const mk = (c: ErrorCode, msg: string, beforeSend: boolean) => ({ error: new CrossmeshError(c, msg, { cause: err }), beforeSend });
  const reason = BEFORE_SEND[code];
  if (reason !== undefined) return mk('CM_ERR_BAD_GATEWAY', `${what} ${reason} (${code}); the request failed before any byte was sent`, true);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return mk('CM_ERR_TIMEOUT', `${what} did not accept the connection in time (${code}); the request failed before any byte was sent`, true);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return mk('CM_ERR_TIMEOUT', `${what} did not answer within ${timeoutMs} ms`, false);
    case 'UND_ERR_BODY_TIMEOUT':
      return mk('CM_ERR_TIMEOUT', `${what} stalled for ${timeoutMs} ms while sending the response body`, false);
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return mk('CM_ERR_BAD_GATEWAY', `${what} closed the connection before responding (${code})`, false);
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return mk('CM_ERR_BAD_REQUEST', `the request cannot be forwarded: ${detail}`, true);
    case 'UND_ERR_ABORTED':
      return mk('CM_ERR_BAD_GATEWAY', `request to ${what} was aborted (the client went away?)`, false);
    default:
      return mk('CM_ERR_BAD_GATEWAY', `${what} failed: ${code ? `${code}: ` : ''}${detail}`, false);
  }
}
