/**
 * The one adapter to Node's bundled llhttp binding (`HTTPParser` of the internal module
 * `_http_common`, the parser node:http itself runs). We use it instead of a parser of our own:
 * it is strict (CL+TE, duplicate Content-Length, obs-fold, bare LF, bad chunk sizes are errors),
 * parses a head in ~1 µs, and is the exact parser the old node:http listeners used, so request
 * hygiene is unchanged. The binding is internal API: everything we rely on is checked here at
 * load time (and by llhttp.test.ts), so a Node upgrade that changes it fails loudly, not subtly.
 */
import { createRequire } from 'node:module';

export interface NativeParser {
  initialize(kind: number, resource: object, maxHeaderSize: number, lenient: number): void;
  consume(handle: unknown): void;
  unconsume(): void;
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  close(): void;
  free(): void;
  [key: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  reason?: string;
  bytesParsed: number;
}

interface HttpCommon {
  HTTPParser: {
    new (): NativeParser;
    REQUEST: number;
    RESPONSE: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
    kLenientNone: number;
  };
  methods: string[];
}

const common = createRequire(import.meta.url)('_http_common') as HttpCommon;

function check(): void {
  const P = common.HTTPParser;
  const numbers = ['REQUEST', 'RESPONSE', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kLenientNone'] as const;
  const bad = typeof P !== 'function' || !Array.isArray(common.methods) || numbers.some((k) => typeof P[k] !== 'number')
    || typeof P.prototype.execute !== 'function' || typeof P.prototype.initialize !== 'function';
  if (bad) {
    throw new Error(`crossmesh: Node ${process.version} changed its internal HTTP parser binding (_http_common.HTTPParser); the proxy core (src/proxy/h1/llhttp.ts) must be adapted`);
  }
}
check();

export const HTTPParser = common.HTTPParser;
/** llhttp method index → name. */
export const METHODS: readonly string[] = common.methods;
export const REQUEST = HTTPParser.REQUEST;
export const RESPONSE = HTTPParser.RESPONSE;
export const K_ON_HEADERS = HTTPParser.kOnHeaders;
export const K_ON_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete;
export const K_ON_BODY = HTTPParser.kOnBody;
export const K_ON_MESSAGE_COMPLETE = HTTPParser.kOnMessageComplete;
export const K_ON_EXECUTE = HTTPParser.kOnExecute;
/** Strict parsing: no lenient flags (the node:http default without --insecure-http-parser). */
export const STRICT = HTTPParser.kLenientNone;
/** node:http's default limit on the size of a head (bytes). */
export const MAX_HEADER_SIZE = 16 * 1024;

/**
 * Callbacks of one parse. `onHeadersComplete`: the head is complete (headers flat, as on the
 * wire); return 1 to skip the body (a response to HEAD), 0 otherwise.
 */
export interface ParserEvents {
  onHead(versionMinor: number, headers: string[], method: number, url: string, status: number, reason: string, upgrade: boolean, keepAlive: boolean): number;
  onBody(chunk: Buffer): void;
  onComplete(): void;
}

/**
 * A parser bound to one event sink for its life (one per connection): callbacks are installed
 * once, so parsing a message allocates no closures. Headers that llhttp flushes early (more than
 * 32 of them, or trailers) are collected here and handed over whole.
 */
export class H1Parser {
  readonly native: NativeParser;
  private headers: string[] = [];
  private url = '';

  constructor(kind: number, sink: ParserEvents) {
    const p = new HTTPParser();
    this.native = p;
    p.initialize(kind, {}, MAX_HEADER_SIZE, STRICT);
    p[K_ON_HEADERS] = (headers: string[], url: string) => {
      for (let i = 0; i < headers.length; i++) this.headers.push(headers[i]);
      if (url) this.url += url;
    };
    p[K_ON_HEADERS_COMPLETE] = (_maj: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, status: number, reason: string, upgrade: boolean, keepAlive: boolean) => {
      let h = headers;
      if (h === undefined) {
        h = this.headers;
        this.headers = [];
      } else if (this.headers.length) {
        h = this.headers.concat(h);
        this.headers = [];
      }
      let u = url;
      if (u === undefined) {
        u = this.url;
        this.url = '';
      }
      return sink.onHead(minor, h, method, u, status, reason, upgrade, keepAlive);
    };
    p[K_ON_BODY] = (chunk: Buffer) => sink.onBody(chunk);
    p[K_ON_MESSAGE_COMPLETE] = () => sink.onComplete();
  }

  /** Trailers seen since the last head (flat), taken once. */
  takeTrailers(): string[] | undefined {
    if (this.headers.length === 0) return undefined;
    const t = this.headers;
    this.headers = [];
    this.url = '';
    return t;
  }

  /**
   * Lets the parser read the socket's handle directly, as node:http does for its server
   * sockets: the bytes go from libuv into llhttp without a JS Buffer, a Readable push and a
   * 'data' event per read. `afterRead` runs after each read's bytes were parsed (with the
   * bytes parsed, or the parse error). Pausing the socket stops the handle's reads. Returns
   * false (nothing changed) when the socket has no such handle; use execute() then.
   */
  consume(socket: import('node:net').Socket, afterRead: (ret: number | ParseError) => void): boolean {
    const handle = (socket as unknown as { _handle?: { isStreamBase?: boolean; _consumed?: boolean; reading?: boolean; readStop(): void; readStart(): void } })._handle;
    if (handle === undefined || handle === null || handle.isStreamBase !== true || handle._consumed === true || typeof this.native.consume !== 'function') return false;
    this.native[K_ON_EXECUTE] = afterRead;
    handle._consumed = true;
    this.native.consume(handle);
    this.consumed = handle;
    socket.on('pause', onSocketPause);
    socket.on('resume', onSocketResume);
    // The Readable itself must flow, or the end of input (which still comes through it) is
    // never emitted and a peer's FIN would go unnoticed.
    socket.resume();
    return true;
  }

  private consumed: object | undefined;

  get isConsuming(): boolean {
    return this.consumed !== undefined;
  }

  /**
   * Gives the handle back to the socket's Readable (node:http does this before an upgrade):
   * from here on bytes come as 'data' events again, and a paused socket is paused the way
   * net.Socket pauses, the Readable only: libuv keeps reading into the Readable's buffer (up to
   * its high-water mark), so a FIN still ends the socket ('end' is emitted on EOF even while
   * paused) and a reset still destroys it. A consumed handle that is paused is readStop()ped
   * and would see neither until resumed.
   */
  unconsume(socket: import('node:net').Socket): void {
    if (this.consumed === undefined) return;
    this.consumed = undefined;
    this.native.unconsume();
    socket.off('pause', onSocketPause);
    socket.off('resume', onSocketResume);
    const h = (socket as unknown as { _handle?: { reading?: boolean; _consumed?: boolean; readStart(): void } | null })._handle;
    if (h) {
      h._consumed = false;
      if (!h.reading) {
        h.reading = true;
        h.readStart();
      }
    }
  }

  execute(data: Buffer): number | ParseError {
    return this.native.execute(data);
  }

  /** Ends the input: completes a read-until-close body; an error when a message was cut off. */
  finish(): number | ParseError | undefined {
    return this.native.finish();
  }

  /** Starts over (e.g. after a CONNECT tunnel was set up, the same bytes carry responses). */
  reset(kind: number): void {
    this.headers = [];
    this.url = '';
    this.native.initialize(kind, {}, MAX_HEADER_SIZE, STRICT);
  }

  close(): void {
    if (this.consumed !== undefined) {
      this.consumed = undefined;
      this.native.unconsume();
    }
    this.native.close();
  }
}

// A consumed handle is read by the parser, not by the Readable: pause/resume must stop/start it.
function onSocketPause(this: { _handle?: { reading?: boolean; readStop(): void } | null }): void {
  const h = this._handle;
  if (h && h.reading) {
    h.reading = false;
    h.readStop();
  }
}

function onSocketResume(this: { isPaused(): boolean; _handle?: { reading?: boolean; readStart(): void } | null }): void {
  const h = this._handle;
  if (h && !h.reading && !this.isPaused()) {
    h.reading = true;
    h.readStart();
  }
}

export function isParseError(r: unknown): r is ParseError {
  return r instanceof Error;
}
