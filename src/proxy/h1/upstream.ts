/**
 * Keep-alive upstream connections: one UpstreamPool per target (an app, an app sidecar's
 * inbound listener, or a tunnel through another cluster's gateway to a service). A connection
 * serves one exchange at a time; its socket listeners and its response parser are set up once
 * and dispatch to whichever exchange holds it, so reusing a connection allocates nothing.
 *
 * A tunnel target is reached by `CONNECT <service>.<namespace>:<port>` to the gateway's mesh port;
 * after its 200 the connection carries HTTP/1.1 to the remote app sidecar, and the gateway only
 * splices bytes: with `tls` the CONNECT is plaintext to the gateway and the TLS handshake with
 * the remote sidecar runs inside the tunnel, so the gateway never holds a key nor sees a byte
 * in the clear.
 *
 * With `tls` (mesh mTLS, TLS 1.3) a connection is ready once its handshake verified the
 * server's chain and SPIFFE ID; it is then kept alive and reused like any other, and a new
 * connection resumes the pool's last TLS session (a ticket from the same server) when its
 * credentials have not changed since, so a handshake costs one signature check at most once
 * per connection, never per request.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { CrossmeshError } from '../../errors.js';
import { meshServerCheck, tlsError } from '../../identity/mesh-tls.js';
import { H1Parser, isParseError, RESPONSE, type ParseError, type ParserEvents } from './llhttp.js';
import { WriteBatch } from './batch.js';

/** How long an unused pooled connection is kept (below node:http's 5 s keep-alive timeout). */
export const IDLE_TIMEOUT_MS = 4000;
/** Default bound on TCP connect (a SYN that vanishes, to a partitioned host, fails over this fast). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 500;
/** Default bound on what follows the TCP connect before the first request: the tunnel's CONNECT answer and the TLS handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** Cap on a tunnel refusal body we read for its message. */
const MAX_REFUSAL_BODY = 4096;

export interface TunnelSpec {
  /** `service.namespace:port`, the CONNECT request target. */
  authority: string;
  /** Extra header lines for the CONNECT request, each `name: value\r\n`. */
  headerLines: string;
}

/** Mesh mTLS to a target (its server is another sidecar's mTLS H1Server). */
export interface UpstreamTls {
  /**
   * The client credentials for the next NEW connection: `mtlsClientContext(creds)`. Asked once
   * per connection, so after a rotation new connections present the new certificate while
   * established ones keep going. Return the same object until the credentials change: a TLS
   * session is resumed only under the context it was obtained with (a session remembers the
   * certificate it authenticated).
   */
  context(): SecureContext;
  /** The trust domain of the server's SPIFFE ID. */
  trustDomain: string;
  /** The server must be exactly this workload (else any workload of the trust domain). */
  expectedServerId?: string;
}

export interface UpstreamTarget {
  host: string;
  port: number;
  tunnel?: TunnelSpec;
  tls?: UpstreamTls;
}

/** What an exchange must implement to use a connection (exchange.ts). */
export interface ConnectionUser extends ParserEvents {
  onConnection(conn: UpstreamConnection): void;
  /** Could not connect (or the tunnel was refused): nothing of the request was sent. */
  onConnectFailed(err: CrossmeshError): void;
  onUpstreamDrain(): void;
  /** The connection closed or failed while held. */
  onUpstreamClosed(err: Error | undefined): void;
  onUpstreamTimeout(): void;
  /** Around each read of response bytes (to batch what it writes to the client). */
  onReadStart(): void;
  onReadEnd(): void;
}

const enum State { Connecting, Handshake, Busy, Idle, Closed }

export class UpstreamConnection implements ParserEvents {
  /** The connection's socket: the TCP socket, or the TLS socket over it once TLS starts (inside the tunnel). */
  socket: Socket;
  out: WriteBatch;
  private readonly parser: H1Parser;
  private state = State.Connecting;
  /** The socket's inactivity timer period (ms): set once per connection, not per request. */
  private period = 0;
  /** The current exchange's response timeout, and the quiet time counted towards it. */
  private limitMs = 0;
  private quietMs = 0;
  user: ConnectionUser | null;
  private error: Error | undefined;
  /** Bytes of a refused tunnel's body (for its message). */
  private refusal: { status: number; body: string } | undefined;
  /** Exchanges served (0 = fresh connection). */
  uses = 0;
  /** TLS: the handshake has begun (failures from here on are TLS failures). */
  private tlsStarted = false;
  /** TLS: the server has shown it accepted us (a session ticket or a response byte arrived). */
  private confirmed = false;
  /** TLS: the context this connection presented (its session tickets belong to it). */
  private context: SecureContext | undefined;
  /** TLS: the handshake resumed a session (no new tickets come then). */
  resumed = false;

  constructor(private readonly pool: UpstreamPool, user: ConnectionUser) {
    this.user = user;
    const t = pool.target;
    this.parser = new H1Parser(RESPONSE, this);
    let s: Socket;
    if (t.tls !== undefined && t.tunnel === undefined) {
      s = tlsConnect({ ...this.tlsOptions(), host: t.host, port: t.port });
      // Applied to the TCP handle when it connects (TLSWrap passes setNoDelay on to it).
      s.setNoDelay(true);
      s.once('connect', () => {
        this.tlsStarted = true;
        s.setTimeout(pool.handshakeTimeoutMs);
      });
      this.listenTls(s as TLSSocket);
    } else {
      s = connect({ host: t.host, port: t.port, noDelay: true });
      s.once('connect', () => this.onConnect());
    }
    this.socket = s;
    this.out = new WriteBatch(s);
    this.listen(s);
    s.setTimeout(pool.connectTimeoutMs);
  }

  private readonly onDrain = (): void => this.user?.onUpstreamDrain();
  private readonly onError = (err: Error): void => { this.error ??= err; };
  private readonly onCloseEvent = (): void => this.onClose();
  private readonly onTimeoutEvent = (): void => this.onTimeout();
  private readonly onEndEvent = (): void => this.onEnd();

  private listen(s: Socket): void {
    s.on('data', this.onData);
    s.on('drain', this.onDrain);
    s.on('end', this.onEndEvent);
    s.on('error', this.onError);
    s.on('close', this.onCloseEvent);
    s.on('timeout', this.onTimeoutEvent);
  }

  private unlisten(s: Socket): void {
    s.off('data', this.onData);
    s.off('drain', this.onDrain);
    s.off('end', this.onEndEvent);
    s.off('error', this.onError);
    s.off('close', this.onCloseEvent);
    s.off('timeout', this.onTimeoutEvent);
  }

  private tlsOptions(): ConnectionOptions {
    const o = this.pool.tlsOptions();
    this.context = o.secureContext;
    return o;
  }

  private listenTls(s: TLSSocket): void {
    s.once('secureConnect', () => {
      this.resumed = s.isSessionReused();
      this.consume();
      this.ready();
    });
    s.on('session', (ticket: Buffer) => {
      this.confirmed = true;
      this.pool.storeSession(this.context!, ticket);
    });
  }

  get fresh(): boolean {
    return this.uses === 0;
  }

  private onConnect(): void {
    const tunnel = this.pool.target.tunnel;
    if (tunnel === undefined) {
      this.consume();
      return this.ready();
    }
    this.state = State.Handshake;
    this.socket.setTimeout(this.pool.handshakeTimeoutMs);
    this.out.write(`CONNECT ${tunnel.authority} HTTP/1.1\r\nhost: ${tunnel.authority}\r\n${tunnel.headerLines}\r\n`);
  }

  /**
   * The tunnel is up: TLS with the remote sidecar starts inside it. The TCP socket's handle goes
   * to the TLS socket, which from here on is the connection's socket (events, writes, timers).
   */
  private startTls(): void {
    const raw = this.socket;
    this.unlisten(raw);
    raw.setTimeout(0);
    // Errors are the TLS socket's from here on; a late one on the TCP socket must not throw.
    raw.on('error', () => undefined);
    const s = tlsConnect({ ...this.tlsOptions(), socket: raw });
    this.tlsStarted = true;
    // The gateway's 200 was no word from the server behind it.
    this.confirmed = false;
    this.socket = s;
    this.out = new WriteBatch(s);
    this.listen(s);
    this.listenTls(s);
    s.setTimeout(this.pool.handshakeTimeoutMs);
  }

  private ready(): void {
    this.state = State.Busy;
    this.period = 0;
    const u = this.user;
    if (u !== null) u.onConnection(this);
    else this.pool.release(this);
  }

  /** Hands a pooled connection to a new user. */
  take(user: ConnectionUser): void {
    this.state = State.Busy;
    this.user = user;
    user.onConnection(this);
  }

  /**
   * An exchange starts: its response must come within `timeoutMs` of quiet. The socket timer
   * runs at a period that divides `timeoutMs` and is at most the idle timeout, so the same timer
   * serves the idle pool; it is set only when the period changes (not per request).
   */
  busy(timeoutMs: number): void {
    this.limitMs = timeoutMs;
    this.quietMs = 0;
    const period = timeoutMs / Math.ceil(timeoutMs / IDLE_TIMEOUT_MS);
    if (period !== this.period) {
      this.period = period;
      this.socket.setTimeout(period);
    }
  }

  /** From here on the parser reads the socket's handle itself (no 'data' events; see H1Parser.consume). */
  private consume(): void {
    if (this.parser.consume(this.socket, this.afterRead)) this.socket.off('data', this.onData);
  }

  /** Until consume(): bytes as 'data' events (the CONNECT handshake always comes this way). */
  private readonly onData = (d: Buffer): void => {
    if (this.state !== State.Handshake && (this.state === State.Idle || this.state === State.Closed || this.user === null)) {
      // Bytes nobody asked for: the connection is out of step; drop it.
      this.destroy();
      return;
    }
    const r = this.parser.execute(d);
    this.afterRead(r);
    if (this.tunnelUp && !isParseError(r)) {
      this.tunnelUp = false;
      this.parser.reset(RESPONSE);
      // Nothing may come through the tunnel before we send a request (or a TLS ClientHello).
      if (r < d.length) return this.failConnect(new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${this.pool.label} sent bytes before any request; the request failed before any byte was sent`));
      if (this.pool.target.tls !== undefined) return this.startTls();
      this.consume();
      this.ready();
    }
  };

  /** The exchange that got callbacks during this read (it batches its writes to the client until the read is done). */
  private reading: ConnectionUser | null = null;

  private enterRead(): void {
    if (this.reading === null && this.user !== null) {
      this.reading = this.user;
      this.reading.onReadStart();
    }
  }

  private readonly afterRead = (r: number | ParseError): void => {
    this.quietMs = 0;
    this.confirmed = true;
    const u = this.reading;
    this.reading = null;
    u?.onReadEnd();
    if (isParseError(r)) {
      this.error = new CrossmeshError('CM_ERR_BAD_GATEWAY', `malformed HTTP response (${r.code}: ${r.reason ?? r.message})`);
      this.destroy();
      return;
    }
    // A response nobody asked for (an upstream talking out of turn): the connection is out of step.
    if (this.outOfStep) this.destroy();
  };

  private outOfStep = false;

  private tunnelUp = false;

  onHead(versionMinor: number, headers: string[], method: number, url: string, status: number, reason: string, upgrade: boolean, keepAlive: boolean): number {
    if (this.state === State.Handshake) {
      if (status === 200) {
        this.tunnelUp = true;
        // 2: no body, the rest of the bytes are the tunnel's.
        return 2;
      }
      this.refusal = { status, body: '' };
      return 0;
    }
    if (this.user === null) {
      this.outOfStep = true;
      return 0;
    }
    this.enterRead();
    return this.user.onHead(versionMinor, headers, method, url, status, reason, upgrade, keepAlive);
  }

  onBody(chunk: Buffer): void {
    if (this.refusal !== undefined) {
      if (this.refusal.body.length < MAX_REFUSAL_BODY) this.refusal.body += chunk.toString('utf8', 0, Math.min(chunk.length, MAX_REFUSAL_BODY));
      return;
    }
    if (this.user === null) return;
    this.enterRead();
    this.user.onBody(chunk);
  }

  onComplete(): void {
    if (this.refusal !== undefined) {
      const r = this.refusal;
      this.refusal = undefined;
      this.failConnect(tunnelRefused(this.pool, r.status, r.body));
      return;
    }
    if (this.user === null) return;
    this.enterRead();
    this.user.onComplete();
  }

  private onEnd(): void {
    // A read-until-close body ends here.
    if (this.state === State.Busy && this.user !== null) {
      const r = this.parser.finish();
      if (isParseError(r)) this.error ??= new CrossmeshError('CM_ERR_BAD_GATEWAY', 'closed the connection in the middle of the response');
    }
  }

  private onTimeout(): void {
    if (this.state === State.Busy && this.user !== null) {
      this.quietMs += this.period;
      if (this.quietMs + 1 >= this.limitMs) return this.user.onUpstreamTimeout();
      // Not yet: the timer does not re-arm by itself without traffic.
      this.socket.setTimeout(this.period);
      return;
    }
    if (this.state === State.Connecting || this.state === State.Handshake) {
      const what = this.tlsStarted ? `did not complete the TLS handshake within ${this.pool.handshakeTimeoutMs} ms` : this.state === State.Handshake ? `did not answer the tunnel request within ${this.pool.handshakeTimeoutMs} ms` : `did not accept the connection within ${this.pool.connectTimeoutMs} ms`;
      return this.failConnect(new CrossmeshError('CM_ERR_TIMEOUT', `upstream ${this.pool.label} ${what}; the request failed before any byte was sent`));
    }
    this.destroy();
  }

  private failConnect(err: CrossmeshError): void {
    const u = this.user;
    this.user = null;
    this.destroy();
    u?.onConnectFailed(err);
  }

  private onClose(): void {
    const before = this.state;
    this.state = State.Closed;
    this.pool.forget(this);
    this.parser.close();
    const u = this.user;
    this.user = null;
    if (u === null) return;
    if (before === State.Connecting || before === State.Handshake) u.onConnectFailed(this.tlsStarted ? tlsConnectError(this.pool, this.error) : connectError(this.pool, this.error));
    else if (before === State.Busy && this.refusedAfterHandshake()) u.onConnectFailed(clientCertRefused(this.pool, this.error));
    else u.onUpstreamClosed(this.error);
  }

  /**
   * TLS 1.3 ends the client's handshake before the server has checked the client's
   * certificate, so a server refusing it just closes the connection our request went out on.
   * A node:tls server (every mesh sidecar's H1Server) refuses in its handshake callback,
   * before the session tickets it writes at the end of every full handshake leave, and before
   * reading a byte of the request. So a fresh, fully handshaken connection closed with no
   * ticket and no response byte was refused, and its request was read by no one.
   */
  private refusedAfterHandshake(): boolean {
    return this.tlsStarted && this.uses === 0 && !this.confirmed && !this.resumed;
  }

  /** Trailers of the response just completed (flat), if it had any. */
  takeTrailers(): string[] | undefined {
    return this.parser.takeTrailers();
  }

  /** Back to the pool (the exchange on it is complete and the upstream keeps it alive). */
  release(): void {
    this.user = null;
    this.uses++;
    this.pool.release(this);
  }

  markIdle(): void {
    this.state = State.Idle;
    // Idle on the same timer: it fires after one period of quiet.
    if (this.period === 0) {
      this.period = IDLE_TIMEOUT_MS;
      this.socket.setTimeout(IDLE_TIMEOUT_MS);
    }
  }

  destroy(): void {
    if (this.state !== State.Closed) this.socket.destroy();
  }

  /** Destroys the connection with `err` as the reason its exchange is told. */
  abort(err: CrossmeshError): void {
    this.error = err;
    this.destroy();
  }
}

const BEFORE_SEND: Record<string, string> = {
  ECONNREFUSED: 'refused the connection',
  ENOTFOUND: 'could not be resolved',
  EAI_AGAIN: 'could not be resolved (temporary DNS failure)',
  EHOSTUNREACH: 'is unreachable (no route to host)',
  ENETUNREACH: 'is unreachable (network unreachable)',
  EADDRNOTAVAIL: 'is unreachable (address not available)',
  ECONNRESET: 'reset the connection while it was being set up',
};

function connectError(pool: UpstreamPool, err: Error | undefined): CrossmeshError {
  return beforeSendError(pool.label, err);
}

/** A failure to reach `label` before any byte of the request went out (also the HTTP/2 connector's). */
export function beforeSendError(label: string, err: unknown): CrossmeshError {
  if (err instanceof CrossmeshError) return err;
  const code = (err as { code?: string } | undefined)?.code ?? '';
  const reason = BEFORE_SEND[code] ?? `closed the connection while it was being set up${code ? ` (${code})` : ''}`;
  return new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${label} ${reason}${code && BEFORE_SEND[code] ? ` (${code})` : ''}; the request failed before any byte was sent`, { cause: err as Error });
}

/** A TLS handshake failure (the server's certificate refused, or the handshake broke off): failed before any byte was sent. */
function tlsConnectError(pool: UpstreamPool, err: Error | undefined): CrossmeshError {
  if (err === undefined) return new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${pool.label} closed the connection during the TLS handshake; the request failed before any byte was sent`);
  const e = tlsError(err);
  // 502, not 401: the caller's request is not unauthorized, the mesh hop failed; the
  // certificate refusal (CM_ERR_CERT_INVALID) is the cause, for logs and metrics.
  return new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${pool.label}: ${e.message}; the request failed before any byte was sent`, { cause: e });
}

function clientCertRefused(pool: UpstreamPool, err: Error | undefined): CrossmeshError {
  const cause = new CrossmeshError('CM_ERR_CERT_INVALID', `upstream ${pool.label} refused this proxy's client certificate (expired, or not from a root it trusts)`, err === undefined ? {} : { cause: err });
  return new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${pool.label} closed the TLS connection right after the handshake: it refused this proxy's client certificate (expired, or not from a root it trusts); the request failed before the server read any byte of it`, { cause });
}

function tunnelRefused(pool: UpstreamPool, status: number, body: string): CrossmeshError {
  return tunnelRefusal(pool.label, status, body);
}

/** The gateway refused `CONNECT` with `status` (its JSON message kept): nothing of the request was sent. */
export function tunnelRefusal(label: string, status: number, body: string): CrossmeshError {
  let message = body.trim();
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch { /* not JSON: keep the text */ }
  const code = status === 504 ? 'CM_ERR_TIMEOUT' : 'CM_ERR_BAD_GATEWAY';
  return new CrossmeshError(code, `upstream ${label} refused the tunnel (${status})${message ? `: ${message.slice(0, 300)}` : ''}; the request failed before any byte was sent`);
}

export class UpstreamPool {
  private readonly idle: UpstreamConnection[] = [];
  private readonly all = new Set<UpstreamConnection>();
  private closed = false;
  /** TLS: the server identity check (one closure per pool, not per connection). */
  private readonly checkServer: ((host: string, cert: PeerCertificate) => Error | undefined) | undefined;
  /** TLS: the latest session ticket, and the context of the connection that received it. */
  private session: Buffer | undefined;
  private sessionContext: SecureContext | undefined;
  /** TLS handshakes this pool has begun (one per new connection, never per request). */
  handshakes = 0;

  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;

  /** `key`: the caller's key for this pool (UpstreamRegistry.retain). */
  constructor(readonly target: UpstreamTarget, readonly label: string, readonly key = '', timeouts: ConnectTimeouts = {}) {
    this.connectTimeoutMs = timeouts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.handshakeTimeoutMs = timeouts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const tls = target.tls;
    if (tls !== undefined) this.checkServer = meshServerCheck(tls.trustDomain, tls.expectedServerId);
  }

  /** node:tls options for a new connection: the current credentials, and the last session if it was obtained with them. */
  tlsOptions(): ConnectionOptions & { secureContext: SecureContext } {
    const secureContext = this.target.tls!.context();
    this.handshakes++;
    return {
      secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: this.checkServer,
      session: secureContext === this.sessionContext ? this.session : undefined,
    };
  }

  /** TLS 1.3 tickets arrive after the handshake; the latest one is offered by the next connection. */
  storeSession(context: SecureContext, ticket: Buffer): void {
    this.session = ticket;
    this.sessionContext = context;
  }

  /**
   * Destroys every connection (idle and busy) with `err` as their error: the target is known
   * dead (a liveness ping went unanswered), so an exchange waiting on it ends now instead of at
   * its timeout, and its caller decides (by method) whether another target may take it.
   */
  destroyAll(err: CrossmeshError): number {
    let n = 0;
    for (const c of [...this.all]) {
      c.abort(err);
      n++;
    }
    return n;
  }

  /** Gives `user` a connection: a pooled one at once (most recently used first), else a new one. */
  acquire(user: ConnectionUser): void {
    if (this.closed) {
      user.onConnectFailed(new CrossmeshError('CM_ERR_SHUTTING_DOWN', `the request to ${this.label} was not sent: this proxy is shutting down (its connection pools are closed); retry it on another instance`));
      return;
    }
    const c = this.idle.pop();
    if (c !== undefined) return c.take(user);
    this.all.add(new UpstreamConnection(this, user));
  }

  /** A new connection, never a pooled one (the retry after a pooled one turned out dead). */
  acquireFresh(user: ConnectionUser): void {
    if (this.closed) return this.acquire(user);
    this.all.add(new UpstreamConnection(this, user));
  }

  release(c: UpstreamConnection): void {
    if (this.closed) return c.destroy();
    c.markIdle();
    this.idle.push(c);
  }

  forget(c: UpstreamConnection): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.all.size === 0 && this.drained !== undefined) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }

  /** Set while close() waits for the last connection to go. */
  private drained: (() => void) | undefined;

  get size(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Closes idle connections now and busy ones as they finish (or after `graceMs`). */
  close(graceMs = 2000): Promise<void> {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
    if (this.all.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        for (const c of this.all) c.destroy();
      }, graceMs);
      this.drained = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

/**
 * The registry's own key of a target under the caller's key: a TLS target's pool never shares
 * connections with a plaintext target's, nor with one expecting another server identity, even
 * if the caller gave both the same key (a connection verified as one identity serves only it).
 */
function registryKey(key: string, target: UpstreamTarget): string {
  const tls = target.tls;
  return tls === undefined ? key : `${key}\u0000mtls:${tls.expectedServerId ?? '*'}`;
}

export interface ConnectTimeouts {
  /** TCP connect (default 500 ms). */
  connectTimeoutMs?: number;
  /** Tunnel answer + TLS handshake after the TCP connect (default 5 s). */
  handshakeTimeoutMs?: number;
}

/** Pools by key (`host:port`, or `host:port>authority` for a tunnel), created on first use. */
export class UpstreamRegistry {
  private readonly pools = new Map<string, UpstreamPool>();
  private closed = false;

  constructor(private readonly timeouts: ConnectTimeouts = {}) {}

  /** Aborts every connection to `host:port` (all pools through that address: a dead gateway's tunnels); returns how many. */
  abortTo(host: string, port: number, err: CrossmeshError): number {
    let n = 0;
    for (const p of this.pools.values()) if (p.target.host === host && p.target.port === port) n += p.destroyAll(err);
    return n;
  }

  get(key: string, target: UpstreamTarget, label: string): UpstreamPool {
    const k = target.tls === undefined ? key : registryKey(key, target);
    let p = this.pools.get(k);
    if (p === undefined) {
      p = new UpstreamPool(target, label, key, this.timeouts);
      if (this.closed) void p.close();
      this.pools.set(k, p);
    }
    return p;
  }

  /** Pools open now. */
  get size(): number {
    return this.pools.size;
  }

  /** The pool `get(key, target)` would return, if it exists (`target` says TLS or not; plaintext by default). */
  peek(key: string, target?: UpstreamTarget): UpstreamPool | undefined {
    return this.pools.get(target === undefined ? key : registryKey(key, target));
  }

  /** Closes the pools whose caller key is not in `keys` (targets that went away). */
  retain(keys: { has(key: string): boolean }): void {
    for (const [k, p] of this.pools) {
      if (!keys.has(p.key)) {
        this.pools.delete(k);
        void p.close();
      }
    }
  }

  async close(graceMs = 2000): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close(graceMs)));
  }
}

/** `host:port` → target (IPv6 hosts in brackets). */
export function parseHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  let host = hostPort.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(hostPort.slice(i + 1)) };
}
