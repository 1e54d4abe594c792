/**
 * The HTTP/2 side of an L7 mesh listener: H1Server hands it the connections that speak HTTP/2
 * (the h2c preface on a plaintext listener, ALPN `h2` on an mTLS one, or the bytes of a CONNECT
 * tunnel to a mesh name), and it runs them on one node:http2 server that is never bound to a
 * port. Each stream goes to `onStream` with the connection's verified peer and, for a tunnel,
 * the authority the client asked to reach.
 *
 * Hostile clients are node's (nghttp2's) job, with limits set here: at most
 * `MAX_CONCURRENT_STREAMS` open streams per connection (more are refused, and a connection that
 * keeps opening refused streams, or floods resets, settings or pings, is closed with
 * ENHANCE_YOUR_CALM), 16 KiB of headers, malformed frames end the connection with a
 * PROTOCOL_ERROR GOAWAY. None of that touches any other connection.
 */
import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { H2, http2 } from './http2.js';
import { GRPC, isGrpc } from './grpc-status.js';
import type { Socket } from 'node:net';
import type { PeerIdentity } from '../../identity/mesh-tls.js';

export const MAX_CONCURRENT_STREAMS = 256;
/** The HTTP/1.1 listeners' head limit (16 KiB), counted as RFC 9113 §6.5.2 does: name + value + 32 per field. */
export const MAX_HEADER_LIST_SIZE = 16 * 1024;
/** The h2c connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A connection must complete the HTTP/2 handshake (its SETTINGS) within this. */
export const H2_HANDSHAKE_TIMEOUT_MS = 5000;
/** An h2 session with no open stream for this long is closed. */
const IDLE_TIMEOUT_MS = 120_000;

export interface H2StreamContext {
  /** The verified mesh identity of the client (mTLS listeners). */
  peer: PeerIdentity | undefined;
  /** A CONNECT tunnel's target (`service.namespace:port`) when the session came through one. */
  tunnelAuthority: string | undefined;
  /** The client's address. */
  remoteAddress: string;
}

export interface H2FrontOptions {
  onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ctx: H2StreamContext): void;
  /** What the listener is, for the answer to a CONNECT tunnel that does not carry HTTP/2. */
  label: string;
}

/** How many bytes of `d` (from `offset`) match the preface; -1 as soon as one differs. */
export function prefaceMatch(d: Buffer, offset = 0): number {
  const n = Math.min(d.length, H2_PREFACE.length - offset);
  for (let i = 0; i < n; i++) if (d[i] !== H2_PREFACE[offset + i]) return -1;
  return n;
}

export class H2Front {
  private server_: Http2Server | undefined;
  private readonly contexts = new WeakMap<Http2Session, H2StreamContext>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** Sessions that completed the HTTP/2 handshake (their SETTINGS arrived, or a stream did). */
  private readonly started = new WeakSet<Http2Session>();
  private pending: H2StreamContext | undefined;
  private closing = false;
  /** Sessions accepted (tests: one per connection, not per stream). */
  accepted = 0;

  constructor(private readonly opts: H2FrontOptions) {}

  /** The node:http2 server, made (and node:http2 loaded) with the first HTTP/2 connection. */
  private get server(): Http2Server {
    if (this.server_ !== undefined) return this.server_;
    const server = http2().createServer({
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: MAX_HEADER_LIST_SIZE, enablePush: false },
      maxSessionMemory: 32,
      // node's defaults, stated because they are the flood limits this listener relies on.
      maxSessionInvalidFrames: 1000,
      maxSessionRejectedStreams: 100,
      maxHeaderListPairs: 128,
    });
    server.on('session', (session: ServerHttp2Session) => {
      const ctx = this.pending ?? { peer: undefined, tunnelAuthority: undefined, remoteAddress: '' };
      this.pending = undefined;
      this.contexts.set(session, ctx);
      this.sessions.add(session);
      this.accepted++;
      session.on('close', () => this.sessions.delete(session));
      // nghttp2 has sent its GOAWAY (malformed frame, flood): the connection must go now, not at the idle timeout.
      session.on('error', () => session.destroy());
      session.setTimeout(IDLE_TIMEOUT_MS, () => session.close());
      // The HTTP/2 handshake is the preface and the client's SETTINGS. node emits nothing when
      // nghttp2 answers a malformed frame with GOAWAY, and keeps the socket open; a session
      // whose SETTINGS never arrived (garbage, a truncated preface, a slow opener) is destroyed.
      const handshake = setTimeout(() => {
        if (this.started.has(session)) return;
        session.destroy();
      }, H2_HANDSHAKE_TIMEOUT_MS);
      handshake.unref();
      session.once('remoteSettings', () => { this.started.add(session); clearTimeout(handshake); });
      session.once('close', () => clearTimeout(handshake));
      if (this.closing) session.close();
    });
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      stream.on('error', () => undefined);
      // A stream nghttp2 already refused or reset (a flood) has no session left: nothing to serve.
      const session = stream.session;
      if (session === undefined || stream.destroyed) return;
      this.started.add(session);
      // node announces SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce it on what it receives.
      if (headerListSize(rawHeaders) > MAX_HEADER_LIST_SIZE) return refuseHeaders(stream, headers);
      try {
        this.opts.onStream(stream, headers, this.contexts.get(session)!);
      } catch {
        // A bug in a handler must cost one stream, not the process and every other connection.
        if (!stream.destroyed) stream.close(H2.INTERNAL_ERROR);
      }
    });
    // A malformed frame or a flood ends that session only (nghttp2 sends its GOAWAY).
    server.on('sessionError', (_err: Error, session: ServerHttp2Session) => session?.destroy());
    this.server_ = server;
    return server;
  }

  /** A connection that speaks HTTP/2 (its first bytes, if already read, are in `head`). */
  accept(socket: Socket, peer: PeerIdentity | undefined, head?: Buffer, tunnelAuthority?: string): void {
    if (this.closing) return void socket.destroy();
    if (head !== undefined && head.length) socket.unshift(head);
    this.pending = { peer, tunnelAuthority, remoteAddress: socket.remoteAddress ?? '' };
    this.server.emit('connection', socket);
    this.pending = undefined;
  }

  /**
   * The bytes of a CONNECT tunnel (after our 200): HTTP/2 is served, anything else is answered
   * 400 in HTTP/1.1 (what a client that sent HTTP/1.1 through it can read) and closed.
   */
  acceptTunnel(socket: Socket, authority: string, peer: PeerIdentity | undefined): void {
    let head: Buffer | undefined;
    const onData = (d: Buffer) => {
      head = head === undefined ? d : Buffer.concat([head, d]);
      const m = prefaceMatch(head);
      if (m < 0) {
        cleanup();
        const body = JSON.stringify({ code: 'CM_ERR_BAD_REQUEST', message: `crossmesh: a CONNECT tunnel through ${this.opts.label} to a mesh service carries HTTP/2 (gRPC) only; send HTTP/1.1 requests as plain http:// requests to the proxy instead` });
        socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        return;
      }
      if (m < H2_PREFACE.length) return;
      cleanup();
      socket.pause();
      this.accept(socket, peer, head, authority);
    };
    const onGone = () => cleanup();
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onGone);
      socket.off('close', onGone);
    };
    socket.on('data', onData);
    socket.on('end', onGone);
    socket.on('close', onGone);
    socket.resume();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** GOAWAY to every session: streams in flight finish; sessions still open after `drainMs` are destroyed. */
  async close(drainMs = 2000): Promise<void> {
    this.closing = true;
    const open = [...this.sessions];
    for (const s of open) s.close();
    if (open.length === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        for (const s of this.sessions) s.destroy();
        resolve();
      }, drainMs);
      t.unref();
      let left = open.length;
      for (const s of open) {
        if (s.destroyed) { if (--left === 0) { clearTimeout(t); resolve(); } continue; }
        s.once('close', () => { if (--left === 0) { clearTimeout(t); resolve(); } });
      }
    });
  }
}

function headerListSize(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) n += raw[i].length;
  return n + 16 * raw.length;
}

/** 431 (or RESOURCE_EXHAUSTED for gRPC), as the HTTP/1.1 listeners answer an oversized head; nothing is forwarded. */
function refuseHeaders(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  const message = `crossmesh: request headers exceed ${MAX_HEADER_LIST_SIZE} bytes`;
  try {
    if (isGrpc(headers['content-type'])) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(GRPC.RESOURCE_EXHAUSTED), 'grpc-message': message, 'x-crossmesh-error': 'CM_ERR_TOO_LARGE' }, { endStream: true });
    } else {
      stream.respond({ ':status': 431, 'content-type': 'application/json', 'x-crossmesh-error': 'CM_ERR_TOO_LARGE' });
      stream.end(JSON.stringify({ code: 'CM_ERR_TOO_LARGE', message }));
    }
  } catch { /* gone */ }
}
