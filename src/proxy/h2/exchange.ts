/**
 * One HTTP/2 request (a gRPC call, or any h2 request) proxied from a downstream stream to an
 * upstream session, over one or more attempts. Bodies stream both ways with back-pressure;
 * response headers, data and trailers (grpc-status, grpc-message, ...) pass through as sent,
 * a trailers-only answer stays trailers-only.
 *
 * Retries are the router's decision; this class says when one is safe (`retryable`): the
 * attempt never reached a server that could have acted on it (no session could be opened, the
 * stream was refused with REFUSED_STREAM or cut by a GOAWAY that did not cover it), or the
 * request is an idempotent method with no body. A call in flight when its server dies is not
 * retryable: it may have run. To replay a refused stream the request body is kept while it is
 * at most `REPLAY_LIMIT` bytes (a unary gRPC call usually is); a longer one is forwarded
 * without a copy and is not retried.
 */
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { H2 } from './http2.js';
import { CrossmeshError } from '../../errors.js';
import { answerH2Error, encodeGrpcMessage, GRPC, grpcCodeOf, isGrpc } from './grpc-status.js';

/** Request body bytes kept for replaying a refused stream on another target. */
export const REPLAY_LIMIT = 64 * 1024;
/** Body bytes read from the client before there is an upstream to write them to, before pausing it. */
const MAX_WAITING = 64 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface H2ExchangeOptions {
  /** Request headers set on every attempt (lowercase names; replace incoming ones). */
  extraHeaders?: Readonly<Record<string, string>>;
  /** Incoming request headers (lowercase) not passed on. */
  dropHeaders?: ReadonlySet<string>;
  /** Headers added to the response (and to error answers). */
  responseHeaders?: Readonly<Record<string, string>>;
  /** A non-gRPC request must get its response headers within this (ms). gRPC calls run until their own deadline. */
  timeoutMs?: number;
}

export interface H2AttemptResult {
  /** HTTP status of the response (0: none came). */
  status: number;
  /** gRPC status of the response (-1: none, or not gRPC). */
  grpcStatus: number;
  error?: CrossmeshError;
  /** The attempt reached no server that could have acted on it (safe to send elsewhere). */
  retryable: boolean;
  /** The upstream refused the stream (or its session was gone before it was sent): nobody processed it. */
  refused: boolean;
  /** Response headers went to the client: nothing else can be answered. */
  responseStarted: boolean;
  /** The client cancelled or went away. */
  clientGone: boolean;
}

export class H2Exchange {
  readonly grpc: boolean;
  readonly method: string;
  private readonly headers: OutgoingHttpHeaders;
  /** Body chunks kept for a replay (while `replayable`). */
  private readonly sent: Buffer[] = [];
  private sentBytes = 0;
  private replayable = true;
  /** Body chunks read while no attempt is attached. */
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  private downEnded: boolean;
  private up: ClientHttp2Stream | undefined;
  private clientGone = false;
  private settle: ((r: H2AttemptResult) => void) | undefined;
  private status = 0;
  private grpcStatus = -1;
  private responseStarted = false;
  private trailers: IncomingHttpHeaders | undefined;

  constructor(readonly down: ServerHttp2Stream, incoming: IncomingHttpHeaders, private readonly opts: H2ExchangeOptions = {}) {
    this.method = String(incoming[':method'] ?? 'GET');
    this.grpc = isGrpc(incoming['content-type']);
    this.downEnded = down.readableEnded || (down as unknown as { endAfterHeaders?: boolean }).endAfterHeaders === true;
    const h: OutgoingHttpHeaders = {};
    const drop = opts.dropHeaders;
    for (const name in incoming) {
      if (drop !== undefined && drop.has(name)) continue;
      h[name] = incoming[name];
    }
    const extra = opts.extraHeaders;
    if (extra !== undefined) for (const name in extra) h[name] = extra[name];
    this.headers = h;
    down.on('data', this.onDownData);
    down.on('end', this.onDownEnd);
    down.on('close', this.onDownClose);
    down.on('error', noop);
  }

  /** Headers added to the response of the next attempt (they name the target that answered). */
  setResponseHeaders(h: Readonly<Record<string, string>> | undefined): void {
    this.responseHeaders = h;
  }

  private responseHeaders: Readonly<Record<string, string>> | undefined;

  /** Idempotent and bodyless: an attempt lost in flight may be retried. */
  get idempotent(): boolean {
    return this.downEnded && this.sentBytes === 0 && this.waitingBytes === 0 && IDEMPOTENT.has(this.method);
  }

  get gone(): boolean {
    return this.clientGone;
  }

  private readonly onDownData = (chunk: Buffer): void => {
    const up = this.up;
    if (up === undefined) {
      this.waiting.push(chunk);
      this.waitingBytes += chunk.length;
      if (this.waitingBytes > MAX_WAITING) this.down.pause();
      return;
    }
    this.keep(chunk);
    if (!up.write(chunk)) {
      this.down.pause();
      up.once('drain', this.resumeDown);
    }
  };

  private readonly resumeDown = (): void => {
    if (!this.down.destroyed) this.down.resume();
  };

  private keep(chunk: Buffer): void {
    if (!this.replayable) return;
    this.sentBytes += chunk.length;
    if (this.sentBytes > REPLAY_LIMIT) {
      this.replayable = false;
      this.sent.length = 0;
      return;
    }
    this.sent.push(chunk);
  }

  private readonly onDownEnd = (): void => {
    this.downEnded = true;
    this.up?.end();
  };

  private readonly onDownClose = (): void => {
    // Closed before we answered it completely: the client cancelled (RST_STREAM) or left.
    if (this.settle === undefined && this.responseStarted) return;
    this.clientGone = true;
    const up = this.up;
    if (up !== undefined && !up.destroyed) up.close(H2.CANCEL);
    this.finish({ error: undefined, retryable: false });
  };

  /** May this request go to another target after a failure that reached no server? */
  get canReplay(): boolean {
    return this.replayable && !this.clientGone;
  }

  /** Sends the request on `session` and resolves when the attempt is over. */
  attempt(session: ClientHttp2Session): Promise<H2AttemptResult> {
    if (this.clientGone) return Promise.resolve(this.result(undefined, false));
    return new Promise<H2AttemptResult>((resolve) => {
      this.settle = resolve;
      this.status = 0;
      this.grpcStatus = -1;
      this.trailers = undefined;
      const nothingYet = this.sentBytes === 0 && this.waitingBytes === 0;
      let up: ClientHttp2Stream;
      try {
        up = session.request(this.headers, { endStream: this.downEnded && nothingYet });
      } catch (err) {
        // The session closed under us (GOAWAY, destroyed): this stream never existed.
        return this.finish({ error: new CrossmeshError('CM_ERR_BAD_GATEWAY', `the upstream connection closed before the request was sent (${(err as Error).message})`, { cause: err }), retryable: true, refused: true });
      }
      this.up = up;
      if (this.replayable) for (const c of this.sent) up.write(c);
      const waiting = this.waiting;
      if (waiting.length) {
        this.waiting = [];
        this.waitingBytes = 0;
        for (const c of waiting) {
          this.keep(c);
          up.write(c);
        }
      }
      // Paused while waiting for an upstream, or by the back-pressure of a failed attempt's stream.
      if (this.down.isPaused()) this.down.resume();
      if (this.downEnded && !nothingYet) up.end();
      up.on('response', this.onResponse);
      up.on('trailers', this.onTrailers);
      up.on('data', this.onUpData);
      up.on('end', this.onUpEnd);
      up.on('error', noop);
      up.on('close', this.onUpClose);
      if (!this.grpc && this.opts.timeoutMs !== undefined) up.setTimeout(this.opts.timeoutMs, this.onUpTimeout);
    });
  }

  private readonly onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    const status = Number(headers[':status']);
    // 1xx informational answers are not the response.
    if (status < 200) return;
    this.status = status;
    this.responseStarted = true;
    const down = this.down;
    if (down.destroyed || down.closed) return;
    const out: OutgoingHttpHeaders = {};
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* : */ && name !== ':status') continue;
      out[name] = headers[name];
    }
    const extra = this.responseHeaders ?? this.opts.responseHeaders;
    if (extra !== undefined) for (const name in extra) out[name] = extra[name];
    // END_STREAM on the headers: a trailers-only answer (a gRPC error) stays one.
    if ((flags & H2.FLAG_END_STREAM) !== 0) {
      const gs = headers['grpc-status'];
      if (gs !== undefined) this.grpcStatus = Number(gs);
      try {
        down.respond(out, { endStream: true });
      } catch { /* the client went away meanwhile */ }
      return;
    }
    try {
      down.respond(out, { waitForTrailers: true });
    } catch {
      return;
    }
    down.on('wantTrailers', this.onWantTrailers);
  };

  private readonly onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.trailers = trailers;
    const gs = trailers['grpc-status'];
    if (gs !== undefined) this.grpcStatus = Number(gs);
  };

  private readonly onWantTrailers = (): void => {
    const t = this.trailers;
    const out: OutgoingHttpHeaders = {};
    if (t !== undefined) for (const name in t) if (name.charCodeAt(0) !== 58) out[name] = t[name];
    if (this.grpc && out['grpc-status'] === undefined) {
      // The upstream was cut after its headers, or ended without a status (its server died): a
      // gRPC client still gets a status, not a protocol error.
      const lost = this.lostMidResponse ?? new CrossmeshError('CM_ERR_BAD_GATEWAY', 'the upstream ended the response without a gRPC status; the call may have been processed');
      out['grpc-status'] = String(GRPC.UNAVAILABLE);
      out['grpc-message'] = encodeGrpcMessage(lost.message);
      out['x-crossmesh-error'] = lost.code;
      this.grpcStatus = GRPC.UNAVAILABLE;
    }
    try {
      this.down.sendTrailers(out);
    } catch { /* gone */ }
  };

  /**
   * The latest response chunk, held until the end of the tick: when the upstream's end comes in
   * the same read (a unary answer: headers, message and trailers in one TLS record), the chunk
   * leaves with `end(chunk)`. Writing it and then calling `end()` separately in one tick lets
   * node 20 send the last DATA frame with END_STREAM before it asks for the trailers, now and
   * then (~0.5 % of calls under concurrent load over mTLS): the client gets no grpc-status
   * (grpc-js "Received RST_STREAM with code 0"). A streamed answer is not delayed: the held
   * chunk goes out on the next check phase.
   */
  private held: Buffer | undefined;
  private flushScheduled = false;
  private readonly flushHeld = (): void => {
    this.flushScheduled = false;
    const chunk = this.held;
    if (chunk === undefined) return;
    this.held = undefined;
    this.writeDown(chunk);
  };

  private readonly onUpData = (chunk: Buffer): void => {
    if (!this.down.writable) return;
    const prev = this.held;
    this.held = chunk;
    if (prev !== undefined) this.writeDown(prev);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushHeld);
    }
  };

  private writeDown(chunk: Buffer): void {
    const down = this.down;
    if (!down.writable) return;
    if (!down.write(chunk)) {
      this.up?.pause();
      down.once('drain', this.resumeUp);
    }
  }

  private readonly resumeUp = (): void => {
    const up = this.up;
    if (up !== undefined && !up.destroyed) up.resume();
  };

  private readonly onUpEnd = (): void => {
    if (this.responseStarted) this.endDown();
  };

  /** Ends the client's stream, with the held chunk if there is one. */
  private endDown(): void {
    const down = this.down;
    const last = this.held;
    this.held = undefined;
    if (!down.writable) return;
    if (last !== undefined) down.end(last);
    else down.end();
  }

  private lostMidResponse: CrossmeshError | undefined;

  private readonly onUpTimeout = (): void => {
    const up = this.up;
    if (this.responseStarted || up === undefined) return;
    up.close(H2.CANCEL);
    this.finish({ error: new CrossmeshError('CM_ERR_TIMEOUT', `no response within ${this.opts.timeoutMs} ms`), retryable: false });
  };

  private readonly onUpClose = (): void => {
    const up = this.up!;
    this.up = undefined;
    if (this.settle === undefined) return;
    const code = up.rstCode ?? H2.NO_ERROR;
    if (this.responseStarted) {
      // Complete already (its trailers came): the session going away after it is no loss.
      if (code !== H2.NO_ERROR && this.trailers === undefined && !this.down.closed) {
        // Cut mid-response: a gRPC client gets a status in the trailers (onWantTrailers; also when
        // the client's stream is already ended and waits for them), anything else the same reset.
        this.lostMidResponse = new CrossmeshError('CM_ERR_BAD_GATEWAY', `the upstream reset the stream in the middle of the response (HTTP/2 error ${code})`);
        if (this.grpc) this.endDown();
        else this.down.close(code === H2.CANCEL ? H2.CANCEL : H2.INTERNAL_ERROR);
        return this.finish({ error: this.lostMidResponse, retryable: false });
      }
      return this.finish({ error: undefined, retryable: false });
    }
    // No response: refused (REFUSED_STREAM, also what nghttp2 reports for a stream a GOAWAY did
    // not cover: the server did not process it) or lost in flight.
    if (code === H2.REFUSED_STREAM) {
      return this.finish({ error: new CrossmeshError('CM_ERR_UNAVAILABLE', 'the upstream refused the stream (REFUSED_STREAM): it did not process the request'), retryable: true, refused: true });
    }
    return this.finish({
      error: new CrossmeshError('CM_ERR_BAD_GATEWAY', code === H2.NO_ERROR
        ? 'the upstream closed the stream without a response'
        : `the upstream reset the stream before it answered (HTTP/2 error ${code}); the request may have been processed`),
      retryable: this.idempotent,
    });
  };

  private result(error: CrossmeshError | undefined, retryable: boolean, refused = false): H2AttemptResult {
    return { status: this.status, grpcStatus: this.grpcStatus, error, retryable, refused, responseStarted: this.responseStarted, clientGone: this.clientGone };
  }

  private finish(r: { error: CrossmeshError | undefined; retryable: boolean; refused?: boolean }): void {
    const settle = this.settle;
    if (settle === undefined) return;
    this.settle = undefined;
    const up = this.up;
    if (up !== undefined) {
      up.off('drain', this.resumeDown);
      if (r.error !== undefined && !this.responseStarted && !up.destroyed) up.close(H2.CANCEL);
      this.up = undefined;
    }
    settle(this.result(r.error, r.retryable && this.canReplay, r.refused === true));
  }

  /** No attempt can be made or succeeded: answer the client with `err` (gRPC status or HTTP status). */
  fail(err: CrossmeshError): void {
    if (this.clientGone) return;
    this.status = this.grpc ? 200 : err.status;
    if (this.grpc) this.grpcStatus = grpcCodeOf(err);
    answerH2Error(this.down, err, this.grpc, this.opts.responseHeaders as Record<string, string> | undefined);
  }

  /** The status to count once the exchange is over. */
  get finalStatus(): { status: number; grpcStatus: number } {
    return { status: this.status, grpcStatus: this.grpcStatus };
  }
}

function noop(): void { /* errors are read from rstCode and 'close' */ }
