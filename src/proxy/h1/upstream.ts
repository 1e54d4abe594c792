/**
 * Keep-alive upstream connections: one UpstreamPool per target (an app, an app sidecar's
 * inbound listener, or a tunnel through another cluster's gateway to a service). A connection
 * serves one exchange at a time; its socket listeners and its response parser are set up once
 * and dispatch to whichever exchange holds it, so reusing a connection allocates nothing.
 *
 * A tunnel target is reached by `CONNECT <service>.<namespace>:<port>` to the gateway's mesh port;
 * after its 200 the connection carries plain HTTP/1.1 to the remote app sidecar, and the gateway
 * only splices bytes (it never needs to read them, so TLS between the sidecars can run inside).
 */
import { connect, type Socket } from 'node:net';
import { CrossmeshError } from '../../errors.js';
import { H1Parser, isParseError, RESPONSE, type ParseError, type ParserEvents } from './llhttp.js';
import { WriteBatch } from './batch.js';

/** How long an unused pooled connection is kept (below node:http's 5 s keep-alive timeout). */
export const IDLE_TIMEOUT_MS = 4000;
const CONNECT_TIMEOUT_MS = 10_000;
/** Cap on a tunnel refusal body we read for its message. */
const MAX_REFUSAL_BODY = 4096;

export interface TunnelSpec {
  /** `service.namespace:port`, the CONNECT request target. */
  authority: string;
  /** Extra header lines for the CONNECT request, each `name: value\r\n`. */
  headerLines: string;
}

export interface UpstreamTarget {
  host: string;
  port: number;
  tunnel?: TunnelSpec;
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
  readonly socket: Socket;
  readonly out: WriteBatch;
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

  constructor(private readonly pool: UpstreamPool, user: ConnectionUser) {
    this.user = user;
    const t = pool.target;
    this.parser = new H1Parser(RESPONSE, this);
    const s = connect({ host: t.host, port: t.port, noDelay: true });
    this.socket = s;
    this.out = new WriteBatch(s);
    s.setTimeout(CONNECT_TIMEOUT_MS);
    s.on('connect', () => this.onConnect());
    s.on('data', this.onData);
    s.on('drain', () => this.user?.onUpstreamDrain());
    s.on('end', () => this.onEnd());
    s.on('error', (err) => { this.error ??= err; });
    s.on('close', () => this.onClose());
    s.on('timeout', () => this.onTimeout());
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
    this.out.write(`CONNECT ${tunnel.authority} HTTP/1.1\r\nhost: ${tunnel.authority}\r\n${tunnel.headerLines}\r\n`);
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
      // Nothing may come through the tunnel before we send a request.
      if (r < d.length) return this.failConnect(new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${this.pool.label} sent bytes before any request; the request failed before any byte was sent`));
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
      return this.failConnect(new CrossmeshError('CM_ERR_TIMEOUT', `upstream ${this.pool.label} did not accept the connection in time; the request failed before any byte was sent`));
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
    if (before === State.Connecting || before === State.Handshake) u.onConnectFailed(connectError(this.pool, this.error));
    else u.onUpstreamClosed(this.error);
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
  if (err instanceof CrossmeshError) return err;
  const code = (err as { code?: string } | undefined)?.code ?? '';
  const reason = BEFORE_SEND[code] ?? `closed the connection while it was being set up${code ? ` (${code})` : ''}`;
  return new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${pool.label} ${reason}${code && BEFORE_SEND[code] ? ` (${code})` : ''}; the request failed before any byte was sent`, { cause: err });
}

function tunnelRefused(pool: UpstreamPool, status: number, body: string): CrossmeshError {
  let message = body.trim();
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch { /* not JSON: keep the text */ }
  const code = status === 504 ? 'CM_ERR_TIMEOUT' : 'CM_ERR_BAD_GATEWAY';
  return new CrossmeshError(code, `upstream ${pool.label} refused the tunnel (${status})${message ? `: ${message.slice(0, 300)}` : ''}; the request failed before any byte was sent`);
}

export class UpstreamPool {
  private readonly idle: UpstreamConnection[] = [];
  private readonly all = new Set<UpstreamConnection>();
  private closed = false;

  constructor(readonly target: UpstreamTarget, readonly label: string) {}

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

/** Pools by key (`host:port`, or `host:port>authority` for a tunnel), created on first use. */
export class UpstreamRegistry {
  private readonly pools = new Map<string, UpstreamPool>();
  private closed = false;

  get(key: string, target: UpstreamTarget, label: string): UpstreamPool {
    let p = this.pools.get(key);
    if (p === undefined) {
      p = new UpstreamPool(target, label);
      if (this.closed) void p.close();
      this.pools.set(key, p);
    }
    return p;
  }

  /** Pools open now. */
  get size(): number {
    return this.pools.size;
  }

  peek(key: string): UpstreamPool | undefined {
    return this.pools.get(key);
  }

  /** Closes the pools whose key is not in `keys` (targets that went away). */
  retain(keys: ReadonlySet<string>): void {
    for (const [k, p] of this.pools) {
      if (!keys.has(k)) {
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
