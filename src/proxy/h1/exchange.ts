/**
 * One request forwarded over one upstream connection: the request head written from the
 * already-cleaned header list, the body streamed as it arrives (re-chunked when chunked), the
 * response head filtered of hop-by-hop headers and the body streamed back with backpressure
 * both ways. The exchange is the object every callback lands on (connection, parser, body,
 * client), so a request costs one object and one promise, no closures.
 */
import { CrossmeshError } from '../../errors.js';
import { connectionTokens, HOP_BY_HOP } from '../headers.js';
import { Framing, type BodySink, type Downstream, type DownstreamObserver } from './types.js';
import type { ConnectionUser, UpstreamConnection, UpstreamPool } from './upstream.js';

export interface ForwardResult {
  /** Status sent to the client (or that an error answer would carry when respondOnError is false). */
  status: number;
  upstreamStatus?: number;
  error?: CrossmeshError;
  /** Nothing of the request reached the upstream: a retry elsewhere is safe for any method. */
  failedBeforeSend: boolean;
  /** Something was written to the client (then only this exchange could answer it). */
  responseStarted: boolean;
  /** The upstream answered one of `retryStatuses`; nothing was written to the client. */
  discarded?: boolean;
  /** The client went away first; the upstream request was cut off. Not the upstream's fault. */
  clientGone?: boolean;
}

export interface ExchangeRequest {
  method: string;
  /** The whole upstream request head (buildRequestHead: cleaned headers, framing, blank line). */
  head: string;
}

export interface ExchangeOptions {
  /** Time allowed for the response head, and between body bytes. */
  timeoutMs: number;
  /** What the upstream is, for error messages. */
  label: string;
  /** Flat headers added to the response (error answers too). */
  responseHeaders?: readonly string[];
  /** Statuses whose answer is swallowed so the caller can retry elsewhere. */
  retryStatuses?: ReadonlySet<number>;
  /** When false, a failure before any response byte is not answered (the caller retries or answers). Default true. */
  respondOnError?: boolean;
  /** Aborts the exchange (a resiliency timeout). */
  signal?: AbortSignal;
}

const CRLF = '\r\n';
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const LAST_CHUNK = '0\r\n\r\n';
const CLIENT_GONE = new CrossmeshError('CM_ERR_BAD_REQUEST', 'the client closed the connection before the response was complete');

/** Lengths of the names the response filter must look at (hop-by-hop, content-length, transfer-encoding). */
const WATCHED_LENGTHS = new Set<number>([...HOP_BY_HOP].map((n) => n.length).concat([14]));

export class Exchange implements ConnectionUser, BodySink, DownstreamObserver {
  private conn: UpstreamConnection | null = null;
  private done = false;
  private requestDone = false;
  private responseHead = false;
  private discard = false;
  private upstreamKeepAlive = false;
  private upstreamStatus = 0;
  private chunkedBody = false;
  /** Some of the request body (or its end) was handed to us. */
  private bodySeen = false;
  /**
   * The upstream connection's write batch is held from the head until the first body bytes:
   * node:http (the Dapr API's listener) hands a body over only after the request event, and
   * head and body sent apart cost two writes: two TLS records and two syscalls per request.
   */
  private headHeld = false;
  private resolve!: (r: ForwardResult) => void;
  readonly result: Promise<ForwardResult>;

  constructor(
    private readonly down: Downstream,
    private readonly req: ExchangeRequest,
    private readonly opts: ExchangeOptions,
  ) {
    this.result = new Promise((r) => { this.resolve = r; });
  }

  private pool: UpstreamPool | undefined;
  /** A reused connection that turned out dead was replaced once already. */
  private replacedStale = false;

  start(pool: UpstreamPool): Promise<ForwardResult> {
    this.pool = pool;
    const down = this.down;
    if (down.gone) {
      this.finish({ status: 499, error: CLIENT_GONE, failedBeforeSend: true, responseStarted: false, clientGone: true });
      return this.result;
    }
    down.setObserver(this);
    const signal = this.opts.signal;
    if (signal !== undefined) {
      if (signal.aborted) {
        this.handleEvent();
        return this.result;
      }
      signal.addEventListener('abort', this);
    }
    pool.acquire(this);
    return this.result;
  }

  // --- upstream connection -------------------------------------------------------------------

  onConnection(conn: UpstreamConnection): void {
    if (this.done) return conn.release();
    this.conn = conn;
    conn.busy(this.opts.timeoutMs);
    const down = this.down;
    const out = conn.out;
    out.hold();
    out.write(this.req.head);
    if (down.hasBody) {
      this.chunkedBody = down.chunked;
      // Delivers, synchronously, what of the body has already arrived.
      down.attachBody(this);
      if (!this.bodySeen && this.conn === conn && !this.done) {
        this.headHeld = true;
        return;
      }
    } else {
      this.requestDone = true;
    }
    out.release();
  }

  onConnectFailed(err: CrossmeshError): void {
    if (this.done) return;
    this.finish({ status: err.status, error: err, failedBeforeSend: true, responseStarted: false });
  }

  onUpstreamDrain(): void {
    this.down.resumeBody();
  }

  onUpstreamClosed(err: Error | undefined): void {
    if (this.done) return;
    const stale = this.conn !== null && !this.conn.fresh;
    this.conn = null;
    // A pooled connection the upstream had closed (a keep-alive race, a restarted gateway): an
    // idempotent bodyless request that got no answer byte is sent once more on a fresh one.
    // Not when the pool aborted it (a CrossmeshError: its target is known dead, another target should take it).
    if (stale && !(err instanceof CrossmeshError) && !this.replacedStale && !this.responseHead && this.upstreamStatus === 0 && !this.down.hasBody && IDEMPOTENT.has(this.req.method) && this.pool !== undefined) {
      this.replacedStale = true;
      this.pool.acquireFresh(this);
      return;
    }
    const what = `upstream ${this.opts.label}`;
    if (this.responseHead) return this.cutOff(new CrossmeshError('CM_ERR_BAD_GATEWAY', `${what} closed the connection in the middle of the response`, { cause: err }));
    const code = (err as { code?: string } | undefined)?.code;
    this.fail(err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_BAD_GATEWAY', `${what} closed the connection before responding${code ? ` (${code})` : ''}`, { cause: err }));
  }

  onUpstreamTimeout(): void {
    if (this.done) return;
    const ms = this.opts.timeoutMs;
    const what = `upstream ${this.opts.label}`;
    this.dropConnection();
    if (this.responseHead) return this.cutOff(new CrossmeshError('CM_ERR_TIMEOUT', `${what} stalled for ${ms} ms while sending the response body`));
    this.fail(new CrossmeshError('CM_ERR_TIMEOUT', `${what} did not answer within ${ms} ms`));
  }

  onReadStart(): void {
    this.down.cork();
  }

  onReadEnd(): void {
    this.down.uncork();
  }

  // --- upstream response (parser events) -----------------------------------------------------

  onHead(versionMinor: number, headers: string[], _method: number, _url: string, status: number, reason: string, _upgrade: boolean, keepAlive: boolean): number {
    if (this.done) return 0;
    if (status < 200) {
      // 100 was answered to the client already (it is hop-by-hop); 101 we never ask for.
      if (status !== 100 && status !== 101) this.down.writeInformational(status, reason, filterResponseHeaders(headers, undefined).headers);
      return 0;
    }
    this.upstreamStatus = status;
    this.upstreamKeepAlive = keepAlive;
    const isHead = this.req.method === 'HEAD';
    if (this.opts.retryStatuses !== undefined && this.opts.retryStatuses.has(status)) {
      this.discard = true;
      return isHead ? 1 : 0;
    }
    this.responseHead = true;
    const f = filterResponseHeaders(headers, this.opts.responseHeaders);
    let framing: Framing;
    if (isHead || status === 204 || status === 304) framing = Framing.None;
    else if (f.contentLength) framing = Framing.Length;
    else if (f.chunked) framing = Framing.Chunked;
    else framing = versionMinor === 0 || !keepAlive ? Framing.UntilClose : Framing.Length;
    // A 1.1 answer without length or chunking has an empty body (llhttp says so via keepAlive).
    if (framing === Framing.Length && !f.contentLength) f.headers.push('content-length', '0');
    this.down.writeHead(status, reason, f.headers, framing);
    return isHead ? 1 : 0;
  }

  onBody(chunk: Buffer): void {
    if (this.discard || this.done) return;
    if (!this.down.writeBody(chunk)) this.conn?.socket.pause();
  }

  onComplete(): void {
    // The end of a 1xx answer: the final one follows on the same connection.
    if (this.done || this.upstreamStatus === 0) return;
    const conn = this.conn;
    const trailers = conn?.takeTrailers();
    if (!this.discard) this.down.endBody(trailers);
    this.conn = null;
    if (conn !== null) {
      if (this.upstreamKeepAlive && this.requestDone) conn.release();
      else conn.destroy();
    }
    const status = this.upstreamStatus;
    if (this.discard) this.finish({ status, upstreamStatus: status, failedBeforeSend: false, responseStarted: false, discarded: true });
    else this.finish({ status, upstreamStatus: status, failedBeforeSend: false, responseStarted: true });
  }

  // --- request body (from the client) --------------------------------------------------------

  onRequestBody(chunk: Buffer): void {
    const conn = this.conn;
    if (conn === null || this.done) return;
    this.bodySeen = true;
    const out = conn.out;
    let ok: boolean;
    if (this.chunkedBody) {
      if (chunk.length === 0) return this.releaseHead(conn);
      out.hold();
      out.write(chunk.length.toString(16) + CRLF);
      out.write(chunk);
      ok = out.write(CRLF);
      out.release();
    } else {
      ok = out.write(chunk);
    }
    this.releaseHead(conn);
    if (!ok) this.down.pauseBody();
  }

  /** Sends the head held back for the first body bytes (see headHeld), with what followed it. */
  private releaseHead(conn: UpstreamConnection): void {
    if (!this.headHeld) return;
    this.headHeld = false;
    conn.out.release();
  }

  onRequestEnd(trailers: string[] | undefined): void {
    const conn = this.conn;
    if (conn === null || this.done) return;
    this.bodySeen = true;
    if (this.chunkedBody) {
      if (trailers === undefined) conn.out.write(LAST_CHUNK);
      else {
        let t = '0\r\n';
        for (let i = 0; i < trailers.length; i += 2) t += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
        conn.out.write(t + CRLF);
      }
    }
    this.requestDone = true;
    this.releaseHead(conn);
  }

  onRequestAbort(): void {
    if (this.done) return;
    this.dropConnection();
    this.finish({ status: 499, error: CLIENT_GONE, failedBeforeSend: false, responseStarted: this.down.responseStarted, clientGone: true });
  }

  // --- client side ---------------------------------------------------------------------------

  onDownstreamDrain(): void {
    this.conn?.socket.resume();
  }

  onDownstreamGone(): void {
    if (this.done) return;
    this.dropConnection();
    this.finish({ status: 499, upstreamStatus: this.upstreamStatus || undefined, error: CLIENT_GONE, failedBeforeSend: false, responseStarted: this.responseHead, clientGone: true });
  }

  /** The abort signal fired (resiliency timeout or the caller gave up). */
  handleEvent(): void {
    if (this.done) return;
    const reason = this.opts.signal?.reason;
    this.dropConnection();
    const err = reason instanceof CrossmeshError ? reason : new CrossmeshError('CM_ERR_BAD_GATEWAY', `request to upstream ${this.opts.label} was aborted`, { cause: reason });
    if (this.responseHead) return this.cutOff(err);
    this.fail(err);
  }

  // --- endings -------------------------------------------------------------------------------

  private dropConnection(): void {
    const c = this.conn;
    this.conn = null;
    this.headHeld = false;
    if (c !== null) {
      c.user = null;
      c.destroy();
    }
  }

  /** Failure before any response byte: answered here unless the caller asked to answer itself. */
  private fail(error: CrossmeshError): void {
    this.finish({ status: error.status, error, failedBeforeSend: false, responseStarted: false });
  }

  /** Failure after the response started: the client sees a cut-off response. */
  private cutOff(error: CrossmeshError): void {
    this.dropConnection();
    this.down.destroy();
    this.finish({ status: this.upstreamStatus, upstreamStatus: this.upstreamStatus, error, failedBeforeSend: false, responseStarted: true });
  }

  private finish(result: ForwardResult): void {
    this.done = true;
    const down = this.down;
    down.setObserver(null);
    down.detachBody();
    this.opts.signal?.removeEventListener('abort', this);
    if (result.error !== undefined && !result.responseStarted && !result.clientGone && this.opts.respondOnError !== false) {
      answerError(down, result.error, this.opts.responseHeaders);
      result.responseStarted = true;
    }
    this.resolve(result);
  }
}

interface FilteredHead {
  headers: string[];
  contentLength: boolean;
  chunked: boolean;
}

/** Response headers minus hop-by-hop ones (and those the upstream's Connection names), plus `extra`. */
export function filterResponseHeaders(raw: readonly string[], extra: readonly string[] | undefined): FilteredHead {
  const out: string[] = [];
  let named: Set<string> | undefined;
  let contentLength = false;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 10 && n.toLowerCase() === 'connection') named = connectionTokens(raw[i + 1]) ?? named;
  }
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (WATCHED_LENGTHS.has(n.length) || named !== undefined) {
      const lower = n.toLowerCase();
      if (lower === 'content-length') contentLength = true;
      else if (lower === 'transfer-encoding') {
        chunked = true;
        continue;
      }
      if (HOP_BY_HOP.has(lower) || (named !== undefined && named.has(lower))) continue;
    }
    out.push(n, raw[i + 1]);
  }
  if (extra !== undefined) for (let i = 0; i < extra.length; i++) out.push(extra[i]);
  return { headers: out, contentLength, chunked };
}

/** Answers `{"errorCode","message"}` with the error's status, or cuts the client off when a response already started. */
export function answerError(down: Downstream, error: { code: string; status: number; message: string }, extra?: readonly string[]): void {
  if (down.gone) return;
  if (down.responseStarted) return down.destroy();
  const body = Buffer.from(JSON.stringify({ errorCode: error.code, message: error.message }));
  const headers: string[] = ['content-type', 'application/json', 'content-length', String(body.length)];
  if (extra !== undefined) for (let i = 0; i < extra.length; i++) headers.push(extra[i]);
  down.writeHead(error.status, reasonPhrase(error.status), headers, Framing.Length);
  down.writeBody(body);
  down.endBody();
}

const REASONS: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}
