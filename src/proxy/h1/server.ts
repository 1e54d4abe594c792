/**
 * The lean HTTP/1.1 listener every L7 hop of the mesh runs on (sidecar outbound and inbound):
 * `net` sockets and Node's llhttp (llhttp.ts), no node:http. Per connection one parser and one
 * set of socket listeners; per request one InboundRequest, which is the Downstream an exchange
 * writes to. Requests are served one at a time per connection, in order: a pipelined request
 * waits (with its body buffered, the socket paused) until the one before it is answered.
 *
 * Hygiene is node:http's: the same strict parser and 16 KiB head limit (400 / 431 and close),
 * a Host header required on HTTP/1.1, CONNECT and protocol upgrades are not served. A request
 * is handed to the handler only after the bytes read with it were parsed, so a head followed by
 * a malformed body in one read never reaches an upstream.
 *
 * With `tls` the listener is a mesh mTLS endpoint (node:tls, TLS 1.3): a connection becomes a
 * ServerConnection only after its handshake verified the client's chain and its SPIFFE ID was
 * read (once per connection: InboundRequest.peer); every refusal before that (no, foreign or
 * expired certificate, plaintext, a handshake that stalls past `handshakeTimeoutMs`) closes
 * the connection without reading a request and is reported to `onRefused`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { CrossmeshError } from '../../errors.js';
import { peerIdentity, tlsError, trustDomainOf, type PeerIdentity } from '../../identity/mesh-tls.js';
import { H1Parser, isParseError, METHODS, REQUEST, type ParseError, type ParserEvents } from './llhttp.js';
import { answerError, reasonPhrase } from './exchange.js';
import { Framing, type BodySink, type Downstream, type DownstreamObserver } from './types.js';
import { WriteBatch } from './batch.js';
import { prefaceMatch, H2_PREFACE, type H2Front } from '../h2/server.js';

export interface H1ServerOptions {
  /** Called with each request when it is its connection's turn. */
  onRequest(req: InboundRequest): void;
  /** Called once per request when its response ended or the client went away (metrics). */
  onFinish?(req: InboundRequest): void;
  /** Idle keep-alive connections are closed after this long (node:http's default: 5 s). */
  keepAliveTimeoutMs?: number;
  /** Answer for CONNECT and Upgrade requests (status 405, JSON body); a default says the listener does not tunnel. */
  refuseTunnel?: { code: string; status: number; message: string };
  /** Require a Host header on HTTP/1.1 requests (node:http's rule). Default true. */
  requireHost?: boolean;
  /** Serve mTLS instead of plaintext. */
  tls?: H1ServerTls;
  /**
   * Serve HTTP/2 on the same listener: a plaintext connection that opens with the h2c preface,
   * an mTLS one that negotiated ALPN `h2`, goes to this front instead of the HTTP/1.1 parser.
   */
  h2?: H2Front;
  /**
   * With `h2`: accept `CONNECT authority` (a gRPC client's proxy tunnel, e.g. grpc-js with
   * `http_proxy` set): return the refusal for an authority that is not served, else undefined;
   * the tunnel's bytes must then be HTTP/2, whose streams are routed to that authority.
   */
  tunnel?(authority: string): CrossmeshError | undefined;
}

export interface H1ServerTls {
  /** Server TLS options: `mtlsServerOptions(creds)` (TLS 1.3, the trust bundle as `ca`, a client certificate required). */
  options: TlsOptions;
  /** The trust domain a client's SPIFFE ID must be of; default: the one the first `ca` root declares. */
  trustDomain?: string;
  /** A connection whose TLS handshake has not completed after this long is closed and reported (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * A connection refused before any request was read: `reason` says why (CM_ERR_CERT_INVALID for
   * a certificate refusal, CM_ERR_TIMEOUT for a stalled handshake, CM_ERR_UNAVAILABLE for
   * plaintext and other TLS failures); `remote` is the client's `address:port`.
   */
  onRefused?(reason: CrossmeshError, remote: string): void;
}

/** node:tls's default is 120 s: long enough for one slowloris client to hold a socket for minutes. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** Body bytes a waiting (pipelined or not yet forwarded) request may buffer before the socket is paused. */
const MAX_BUFFERED = 64 * 1024;
/** Body bytes read and dropped after an early answer before the connection is closed instead. */
const MAX_DISCARD = 1024 * 1024;

export class InboundRequest implements Downstream {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly versionMinor: number;
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** The client's verified mesh identity on an mTLS listener (undefined on a plaintext one). */
  readonly peer: PeerIdentity | undefined;
  hasBody = false;
  chunked = false;
  /** The Host header value ('' when absent). */
  host = '';
  expectContinue = false;
  /** performance.now() when the head was parsed. */
  readonly startedAt: number;
  /** Status of the response written ('aborted' shows as 0). */
  status = 0;
  /** Free slots for the listener's owner (metrics labels of this request). */
  source = '';
  destination = '';

  closeAfter: boolean;
  bodyDone = false;
  private trailers: string[] | undefined;
  private chunks: Buffer[] | null = null;
  /** Body bytes held until the request is forwarded. */
  buffered = 0;
  private sink: BodySink | null = null;
  bodyConsumed = false;
  /** The upstream is slow: the client's socket stays paused for this request. */
  paused = false;
  private discarded = 0;
  responseStarted = false;
  responseDone = false;
  private framing = Framing.None;
  private observer: DownstreamObserver | null = null;
  gone = false;
  finished = false;

  constructor(readonly conn: ServerConnection, method: string, url: string, headers: string[], versionMinor: number, keepAlive: boolean, startedAt: number) {
    this.method = method;
    this.url = url;
    this.rawHeaders = headers;
    this.versionMinor = versionMinor;
    this.closeAfter = !keepAlive;
    this.clientIp = conn.remoteAddress;
    this.peer = conn.peer;
    this.proto = conn.peer === undefined ? 'http' : 'https';
    this.startedAt = startedAt;
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i];
      const len = n.length;
      if (len === 4) {
        if (n.toLowerCase() === 'host') this.host = headers[i + 1];
      } else if (len === 14) {
        if (n.toLowerCase() === 'content-length' && headers[i + 1] !== '0') this.hasBody = true;
      } else if (len === 17) {
        if (n.toLowerCase() === 'transfer-encoding') {
          this.hasBody = true;
          this.chunked = true;
        }
      } else if (len === 6) {
        if (n.toLowerCase() === 'expect' && headers[i + 1].toLowerCase() === '100-continue') this.expectContinue = true;
      }
    }
    if (!this.hasBody) this.bodyDone = true;
  }

  /** The first value of a header (name lowercase), undefined when absent. */
  header(name: string): string | undefined {
    const h = this.rawHeaders;
    for (let i = 0; i < h.length; i += 2) if (h[i].length === name.length && h[i].toLowerCase() === name) return h[i + 1];
    return undefined;
  }

  // --- body (called by the connection's parser) ---------------------------------------------

  pushBody(chunk: Buffer): void {
    if (this.sink !== null) {
      this.bodyConsumed = true;
      this.sink.onRequestBody(chunk);
      return;
    }
    if (this.responseDone) {
      this.discarded += chunk.length;
      if (this.discarded > MAX_DISCARD) this.conn.destroy();
      return;
    }
    (this.chunks ??= []).push(chunk);
    this.buffered += chunk.length;
    if (this.buffered > MAX_BUFFERED) this.conn.updateReading();
  }

  endBody_(trailers: string[] | undefined): void {
    this.bodyDone = true;
    this.trailers = trailers;
    if (this.sink !== null) this.sink.onRequestEnd(trailers);
    if (this.responseDone) this.conn.requestFinished(this);
  }

  abortBody(): void {
    const s = this.sink;
    this.sink = null;
    s?.onRequestAbort();
  }

  // --- Downstream ----------------------------------------------------------------------------

  setObserver(o: DownstreamObserver | null): void {
    this.observer = o;
  }

  attachBody(sink: BodySink): void {
    this.sink = sink;
    const chunks = this.chunks;
    if (chunks !== null) {
      this.chunks = null;
      this.buffered = 0;
      this.bodyConsumed = true;
      for (let i = 0; i < chunks.length; i++) sink.onRequestBody(chunks[i]);
      this.conn.updateReading();
    }
    if (this.bodyDone) sink.onRequestEnd(this.trailers);
    else if (this.expectContinue && !this.responseStarted) {
      this.expectContinue = false;
      this.conn.out.write(CONTINUE);
    }
  }

  detachBody(): void {
    this.sink = null;
  }

  pauseBody(): void {
    if (!this.paused) {
      this.paused = true;
      this.conn.updateReading();
    }
  }

  resumeBody(): void {
    if (this.paused) {
      this.paused = false;
      this.conn.updateReading();
    }
  }

  writeInformational(status: number, reason: string, headers: readonly string[]): void {
    if (this.gone || this.responseStarted || this.versionMinor === 0) return;
    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.conn.out.write(head + '\r\n');
  }

  writeHead(status: number, reason: string, headers: readonly string[], framing: Framing): void {
    if (this.gone) return;
    this.responseStarted = true;
    this.status = status;
    // A body we did not read to the end cannot be skipped on a kept-alive connection cheaply if large;
    // small leftovers are read and dropped (pushBody), so only say close when we will.
    if (this.versionMinor === 0 && framing === Framing.Chunked) framing = Framing.UntilClose;
    if (framing === Framing.UntilClose) {
      if (this.versionMinor === 1) framing = Framing.Chunked;
      else this.closeAfter = true;
    }
    this.framing = framing;
    let head = `HTTP/1.1 ${status} ${reason || reasonPhrase(status)}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    if (framing === Framing.Chunked) head += 'transfer-encoding: chunked\r\n';
    if (this.closeAfter || this.conn.closing) {
      this.closeAfter = true;
      head += 'connection: close\r\n';
    } else if (this.versionMinor === 0) head += 'connection: keep-alive\r\n';
    this.conn.out.write(head + '\r\n');
  }

  writeBody(chunk: Buffer): boolean {
    if (this.gone) return true;
    const out = this.conn.out;
    if (this.framing === Framing.Chunked) {
      if (chunk.length === 0) return true;
      out.hold();
      out.write(chunk.length.toString(16) + '\r\n');
      out.write(chunk);
      const ok = out.write('\r\n');
      out.release();
      return ok;
    }
    return out.write(chunk);
  }

  endBody(trailers?: readonly string[]): void {
    if (this.gone || this.responseDone) return;
    if (this.framing === Framing.Chunked) {
      let t = '0\r\n';
      if (trailers !== undefined) for (let i = 0; i < trailers.length; i += 2) t += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
      this.conn.out.write(t + '\r\n');
    }
    this.responseDone = true;
    this.conn.responseFinished(this);
  }

  cork(): void {
    this.conn.out.hold();
  }

  uncork(): void {
    this.conn.out.release();
  }

  destroy(): void {
    this.conn.destroy();
  }

  /** The connection closed under this request. */
  lost(): void {
    if (this.gone) return;
    this.gone = true;
    const o = this.observer;
    this.observer = null;
    o?.onDownstreamGone();
    this.abortBody();
  }

  notifyDrain(): void {
    this.observer?.onDownstreamDrain();
  }

  /** Answers with a JSON error body (the shape of every crossmesh error). */
  fail(error: { code: string; status: number; message: string }, extraHeaders?: readonly string[]): void {
    answerError(this, error, extraHeaders);
  }
}

export class ServerConnection implements ParserEvents {
  readonly socket: Socket;
  readonly out: WriteBatch;
  readonly remoteAddress: string;
  private readonly parser: H1Parser;
  /** Requests parsed and not yet finished, oldest (the one being served) first. */
  private readonly queue: InboundRequest[] = [];
  /** The request whose body the parser is reading. */
  private parsing: InboundRequest | null = null;
  private activeStarted = false;
  private readPaused = false;
  /** Nothing more is read from this client (after CONNECT, an upgrade or Connection: close). */
  private stopReading = false;
  closing = false;
  private dead = false;
  private parseError: ParseError | null = null;

  constructor(socket: Socket, private readonly server: H1Server, readonly peer?: PeerIdentity) {
    this.socket = socket;
    this.out = new WriteBatch(socket);
    this.remoteAddress = socket.remoteAddress ?? '';
    socket.setNoDelay(true);
    this.parser = new H1Parser(REQUEST, this);
    socket.setTimeout(server.keepAliveTimeoutMs);
    socket.on('drain', this.onDrainEvent);
    socket.on('timeout', this.onTimeoutEvent);
    socket.on('error', noop);
    socket.on('close', this.onCloseEvent);
    socket.on('end', this.onEndEvent);
    // A plaintext listener that also serves h2c looks at the first bytes before choosing a
    // parser: they are read as a 'data' event once per connection, then llhttp takes the handle.
    if (server.h2 !== undefined && peer === undefined) {
      socket.on('data', this.onFirstData);
      return;
    }
    this.startParsing();
  }

  private readonly onDrainEvent = (): void => this.queue[0]?.notifyDrain();
  private readonly onTimeoutEvent = (): void => this.onTimeout();
  private readonly onCloseEvent = (): void => this.onClose();
  private readonly onEndEvent = (): void => this.onEnd();
  /** The first bytes of a sniffed connection, while they are a prefix of the h2c preface. */
  private sniffed: Buffer | undefined;

  private readonly onFirstData = (d: Buffer): void => {
    const head = this.sniffed === undefined ? d : Buffer.concat([this.sniffed, d]);
    const m = prefaceMatch(head);
    if (m >= 0 && m < H2_PREFACE.length) {
      // Too short to tell (a preface split over reads): wait for more.
      this.sniffed = head;
      return;
    }
    this.socket.off('data', this.onFirstData);
    this.sniffed = undefined;
    if (m === H2_PREFACE.length) {
      this.release();
      this.socket.pause();
      this.server.h2!.accept(this.socket, undefined, head);
      return;
    }
    this.startParsing();
    this.onData(head);
  };

  /**
   * Hands the socket over (to the HTTP/2 front): this connection stops listening to it and is
   * forgotten; the socket is left open.
   */
  private release(): void {
    const s = this.socket;
    this.dead = true;
    s.off('drain', this.onDrainEvent);
    s.off('timeout', this.onTimeoutEvent);
    s.off('close', this.onCloseEvent);
    s.off('end', this.onEndEvent);
    s.off('data', this.onData);
    s.setTimeout(0);
    if (this.parser.isConsuming) this.parser.unconsume(s);
    this.parser.close();
    this.server.forget(this);
  }

  private startParsing(): void {
    const socket = this.socket;
    // llhttp reads the handle itself (as node:http does): no Buffer, Readable push and 'data'
    // event per read. EOF and read errors still come through the socket ('end', 'error',
    // 'close'). Before the first pause the handle goes back to the Readable (stopConsuming), so
    // a client that goes away while its socket is paused is still seen (chaos scenario 7).
    if (!this.parser.consume(socket, this.afterRead)) socket.on('data', this.onData);
    else if (socket.readableLength > 0) {
      // Bytes the Readable already holds (a TLS socket decrypts with the handshake's last read)
      // precede what the parser will read from the handle: parse them first, once the server
      // has registered this connection (a request may be served at once).
      queueMicrotask(() => {
        let b: Buffer | null;
        while (!this.dead && (b = socket.read() as Buffer | null) !== null) this.onData(b);
      });
    }
  }

  private readonly onData = (d: Buffer): void => this.afterRead(this.parser.execute(d));

  /**
   * Before the first pause: the handle goes back to the socket's Readable for good. A consumed
   * handle that is paused is readStop()ped and reads nothing, so a client that closes or resets
   * while its answer is pending (a last request, `Connection: close`, waits for a slow upstream;
   * a pipelined request waits its turn; the upstream pushes back) would go unnoticed until the
   * upstream's timeout: the sockets of chaos scenario 7. Paused the net.Socket way (the Readable
   * only), libuv keeps reading into the Readable's buffer up to its high-water mark, so the EOF
   * ('end' is emitted on EOF even while paused) or the reset ('close') is seen and the exchange
   * aborted, as it always was in 'data' mode. Connections that never pause (the common case)
   * keep the consumed reads. Unconsuming from inside a parser callback is safe: the binding
   * only unlinks itself from the stream's listeners, the read's buffer stays valid until its
   * execute returns.
   */
  private stopConsuming(): void {
    this.parser.unconsume(this.socket);
    this.socket.on('data', this.onData);
  }

  /** After each read's bytes were parsed: hand over the next request, or deal with a parse error. */
  private readonly afterRead = (r: number | ParseError): void => {
    if (this.parseError !== null || this.dead) return;
    if (isParseError(r)) {
      this.parseError = r;
      const p = this.parsing;
      this.parsing = null;
      // A body cut by a malformed chunk: whatever was forwarded of it is abandoned; a request
      // not yet handed over never reaches anyone.
      if (p !== null && !p.bodyDone) {
        const active = this.queue[0] === p && this.activeStarted;
        this.queue.splice(this.queue.indexOf(p), 1);
        if (active) {
          this.activeStarted = false;
          p.abortBody();
          if (p.responseStarted) return this.destroy();
        }
        p.status = 400;
        this.finishRequest(p);
      }
      this.onParseError(r);
      return;
    }
    this.startNext();
  };

  onHead(versionMinor: number, headers: string[], method: number, url: string, _status: number, _reason: string, upgrade: boolean, keepAlive: boolean): number {
    const m = METHODS[method] ?? 'GET';
    const req = new InboundRequest(this, m, url, headers, versionMinor, keepAlive && !upgrade, performance.now());
    this.parsing = req;
    this.queue.push(req);
    if (this.queue.length > 1) this.updateReading();
    return 0;
  }

  onBody(chunk: Buffer): void {
    this.parsing?.pushBody(chunk);
  }

  onComplete(): void {
    const p = this.parsing;
    if (p === null) return;
    this.parsing = null;
    if (p.method === 'CONNECT' || p.closeAfter) {
      // Nothing after a CONNECT, an upgrade or a last request is HTTP we mean to read.
      this.stopReading = true;
      this.updateReading();
    }
    p.endBody_(this.parser.takeTrailers());
  }

  /** Hands the oldest request to the handler, once per request. */
  private startNext(): void {
    if (this.activeStarted || this.dead) return;
    const req = this.queue[0];
    if (req === undefined) return;
    this.activeStarted = true;
    const s = this.server;
    if (req.method === 'CONNECT' && s.h2 !== undefined && s.tunnel !== undefined) {
      req.closeAfter = true;
      const refusal = s.tunnel(req.url);
      if (refusal !== undefined) return req.fail(refusal);
      return this.openTunnel(req);
    }
    if (req.method === 'CONNECT' || (req.closeAfter && req.header('upgrade') !== undefined)) {
      req.closeAfter = true;
      return req.fail(s.refuseTunnel);
    }
    if (s.requireHost && req.versionMinor === 1 && req.host === '') {
      return this.answerRaw(400, 'Bad Request');
    }
    s.onRequest(req);
  }

  /**
   * `CONNECT authority` accepted: 200, then the socket belongs to the HTTP/2 front, which
   * routes every stream of the tunnel to `authority`. A client must wait for the 200 before
   * sending tunnel bytes (RFC 9110 §9.3.6; grpc-js does): bytes that came with the CONNECT head
   * are refused rather than guessed at.
   */
  private openTunnel(req: InboundRequest): void {
    const socket = this.socket;
    if (this.queue.length > 1 || socket.readableLength > 0) {
      return req.fail(new CrossmeshError('CM_ERR_BAD_REQUEST', 'crossmesh: bytes were sent after CONNECT before its answer; wait for the 200 before speaking HTTP/2 in the tunnel'));
    }
    this.queue.length = 0;
    this.release();
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.server.h2!.acceptTunnel(socket, req.url, this.peer);
  }

  responseFinished(req: InboundRequest): void {
    if (req.closeAfter) {
      this.finishRequest(req);
      this.closing = true;
      this.out.end();
      return;
    }
    if (req.bodyDone) this.requestFinished(req);
    // else: the rest of the body is read and dropped, then requestFinished
  }

  requestFinished(req: InboundRequest): void {
    this.finishRequest(req);
    if (this.queue[0] === req) this.queue.shift();
    this.activeStarted = false;
    this.updateReading();
    if (this.parseError !== null && this.queue.length === 0) return this.onParseError(this.parseError);
    this.startNext();
  }

  private finishRequest(req: InboundRequest): void {
    if (req.finished) return;
    req.finished = true;
    this.server.onFinish?.(req);
  }

  /** Pauses or resumes reading from the client by what the requests in hand need. */
  updateReading(): void {
    const q = this.queue;
    const head = q[0];
    const p = this.parsing;
    const pause = this.stopReading || q.length > 1 || (head !== undefined && head.paused) || (p !== null && p.buffered > MAX_BUFFERED);
    if (pause === this.readPaused || this.dead) return;
    this.readPaused = pause;
    if (pause && this.parser.isConsuming) this.stopConsuming();
    if (pause) this.socket.pause();
    else this.socket.resume();
  }

  private onParseError(err: ParseError): void {
    // Answered once the requests before it are done (like node:http), then the connection closes.
    if (this.queue.length > 0) return;
    if (err.code === 'HPE_HEADER_OVERFLOW') this.answerRaw(431, 'Request Header Fields Too Large');
    else if (err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') this.answerRaw(413, 'Payload Too Large');
    else this.answerRaw(400, 'Bad Request');
  }

  private answerRaw(status: number, reason: string): void {
    if (this.dead) return;
    this.closing = true;
    this.dead = true;
    this.out.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\n\r\n`);
    this.socket.setTimeout(2000);
  }

  private onTimeout(): void {
    // One timer for the connection's life (no per-request timer work): it fires after the
    // keep-alive timeout without a byte either way. A request waiting on its upstream keeps the
    // connection (the upstream's timeout bounds the wait); re-arm and look again later.
    if (this.queue.length > 0 && this.activeStarted) {
      this.socket.setTimeout(this.server.keepAliveTimeoutMs);
      return;
    }
    this.destroy();
  }

  private onEnd(): void {
    // The client half-closed: finish what it asked for, then close.
    this.closing = true;
    const r = this.parser.finish();
    if (isParseError(r) && this.parsing !== null) this.parsing.abortBody();
    if (this.queue.length === 0) this.out.end();
    else for (const q of this.queue) q.closeAfter = true;
  }

  private onClose(): void {
    this.dead = true;
    this.server.forget(this);
    for (const q of this.queue.splice(0)) {
      q.lost();
      this.finishRequest(q);
    }
    this.parser.close();
  }

  /** Idle: no request parsed or waiting (for graceful close). */
  get idle(): boolean {
    return this.queue.length === 0 && this.parsing === null;
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }
}

export class H1Server {
  readonly net: Server;
  readonly keepAliveTimeoutMs: number;
  readonly requireHost: boolean;
  readonly refuseTunnel: { code: string; status: number; message: string };
  readonly onRequest: (req: InboundRequest) => void;
  readonly onFinish?: (req: InboundRequest) => void;
  readonly h2: H2Front | undefined;
  readonly tunnel: ((authority: string) => CrossmeshError | undefined) | undefined;
  private readonly conns = new Set<ServerConnection>();
  private closing = false;
  /** mTLS: the trust domain of client identities (undefined on a plaintext listener). */
  readonly trustDomain: string | undefined;
  private readonly onRefused: ((reason: CrossmeshError, remote: string) => void) | undefined;
  /** mTLS: TCP connections whose handshake is not done (close() ends them). */
  private readonly handshaking = new Set<Socket>();
  /** mTLS: each TCP connection's client address, read while it is alive (a refused one is destroyed before node reports it). */
  private readonly remotes = new WeakMap<Socket, string>();

  constructor(opts: H1ServerOptions) {
    this.onRequest = opts.onRequest;
    this.onFinish = opts.onFinish;
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 5000;
    this.requireHost = opts.requireHost ?? true;
    this.h2 = opts.h2;
    this.tunnel = opts.tunnel;
    this.refuseTunnel = opts.refuseTunnel ?? { code: 'CM_ERR_METHOD_NOT_ALLOWED', status: 405, message: 'crossmesh: this listener does not tunnel (CONNECT); send plain http:// requests' };
    const t = opts.tls;
    if (t === undefined) {
      this.net = createServer({ noDelay: true }, (socket) => {
        if (this.closing) return void socket.destroy();
        this.conns.add(new ServerConnection(socket, this));
      });
      return;
    }
    this.trustDomain = t.trustDomain ?? trustDomainOf({ keyPem: '', chainPem: '', roots: caPems(t.options.ca) });
    this.onRefused = t.onRefused;
    // ALPN: h2 when this listener serves it; a client offering nothing (the mesh's HTTP/1.1 pools) gets HTTP/1.1.
    const alpn = opts.h2 !== undefined ? { ALPNProtocols: ['h2', 'http/1.1'] } : {};
    const server = createTlsServer({ ...t.options, ...alpn, noDelay: true, handshakeTimeout: t.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS }, (socket: TLSSocket) => this.onSecure(socket));
    // Before node's own listener wraps the TCP socket: a refused handshake destroys it, and a
    // destroyed socket no longer knows its peer's address.
    server.prependListener('connection', (raw: Socket) => {
      this.remotes.set(raw, remoteOf(raw));
      this.handshaking.add(raw);
      raw.once('close', () => this.handshaking.delete(raw));
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const raw = tcpOf(socket);
      const remote = (raw && this.remotes.get(raw)) ?? remoteOf(socket);
      // node leaves a timed-out handshake's socket open (and the others are closed already).
      socket.destroy();
      this.onRefused?.(tlsError(err, socket), remote);
    });
    this.net = server;
  }

  /** A TLS handshake completed (node verified the chain): read the client's identity once, or refuse it. */
  private onSecure(socket: TLSSocket): void {
    const raw = tcpOf(socket);
    const remote = (raw && this.remotes.get(raw)) ?? remoteOf(socket);
    if (raw !== undefined) this.handshaking.delete(raw);
    if (this.closing) return void socket.destroy();
    let peer: PeerIdentity;
    try {
      peer = peerIdentity(socket, this.trustDomain!);
    } catch (err) {
      socket.destroy();
      this.onRefused?.(err instanceof CrossmeshError ? err : tlsError(err, socket), remote);
      return;
    }
    if (this.h2 !== undefined && socket.alpnProtocol === 'h2') return this.h2.accept(socket, peer);
    this.conns.add(new ServerConnection(socket, this, peer));
  }

  /** True when this listener serves mTLS. */
  get tls(): boolean {
    return this.trustDomain !== undefined;
  }

  /**
   * Certificate rotation (or a new trust bundle): connections accepted from now on use these
   * credentials (`mtlsServerOptions(newCreds)`); established ones keep theirs until they close.
   */
  setSecureContext(options: SecureContextOptions): void {
    if (!this.tls) throw new CrossmeshError('CM_ERR_CONFIG', 'setSecureContext on a plaintext listener: create the H1Server with the `tls` option');
    (this.net as TlsServer).setSecureContext(options);
  }

  forget(c: ServerConnection): void {
    this.conns.delete(c);
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        resolve((this.net.address() as { port: number }).port);
      });
    });
  }

  get listening(): boolean {
    return this.net.listening;
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Stops accepting; idle connections close now, busy ones when done or after `drainMs`. */
  async close(drainMs = 2000): Promise<void> {
    this.closing = true;
    const done = new Promise<void>((r) => this.net.close(() => r()));
    // Handshakes in progress hold no request: nothing to drain.
    for (const raw of this.handshaking) raw.destroy();
    for (const c of this.conns) {
      c.closing = true;
      if (c.idle) c.destroy();
    }
    const t = setTimeout(() => { for (const c of this.conns) c.destroy(); }, drainMs);
    t.unref();
    const poll = setInterval(() => {
      for (const c of this.conns) if (c.idle) c.destroy();
    }, 25);
    poll.unref();
    // Sockets handed to the HTTP/2 front are still this server's connections: close() waits for them too.
    const h2 = this.h2?.close(drainMs);
    await Promise.all([done, h2]);
    clearTimeout(t);
    clearInterval(poll);
  }
}

/** The TCP socket under a server-side TLSSocket (node keeps it as `_parent`), when there is one. */
function tcpOf(socket: TLSSocket): Socket | undefined {
  const p = (socket as unknown as { _parent?: unknown })._parent;
  return p !== null && typeof p === 'object' ? (p as Socket) : undefined;
}

function remoteOf(socket: Socket): string {
  const a = socket.remoteAddress;
  if (a === undefined) return 'unknown';
  return `${a.includes(':') ? `[${a}]` : a}:${socket.remotePort ?? ''}`;
}

/** The PEM roots of a TLS `ca` option. */
function caPems(ca: TlsOptions['ca']): string[] {
  if (ca === undefined) return [];
  return (Array.isArray(ca) ? ca : [ca]).map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('latin1')));
}

function noop(): void { /* socket errors end in 'close' */ }
