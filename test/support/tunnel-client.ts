/** Test helpers of the mesh-tunnel tests: a raw TCP client that reads HTTP/1.1 answers byte-exactly. */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  /** Lowercased header names. */
  headers: Record<string, string>;
  body: Buffer;
  /** The whole response as it came off the wire (head + body). */
  raw: Buffer;
}

/**
 * One client connection: everything received is kept in `buf`; `readResponse()` takes one
 * response off the front (Content-Length framing, or none for a 200 to CONNECT).
 */
export class RawConn {
  buf = Buffer.alloc(0);
  /** True once the peer ended or the socket closed. */
  ended = false;
  closedAt = 0;
  readonly closed: Promise<void>;
  private waiters = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.ended = true;
      this.closedAt = Date.now();
      this.wake();
      resolve();
    }));
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawConn(s));
      });
      s.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** Waits until `take(buf)` returns a byte count; removes and returns those bytes. */
  async until(take: (buf: Buffer, ended: boolean) => number | undefined, what: string, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = take(this.buf, this.ended);
      if (n !== undefined) {
        const out = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return Buffer.from(out);
      }
      if (this.ended) throw new Error(`connection closed while waiting for ${what}; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.waiters.add(done);
      }).finally(() => this.waiters.clear());
    }
  }

  /** One response: head, then a Content-Length body (no body without Content-Length). */
  async readResponse(what = 'a response', timeoutMs = 3000): Promise<RawResponse> {
    const raw = await this.until((b) => {
      const end = b.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(b.subarray(0, end).toString('latin1'));
      const total = end + 4 + (cl ? Number(cl[1]) : 0);
      return b.length >= total ? total : undefined;
    }, what, timeoutMs);
    const end = raw.indexOf('\r\n\r\n');
    const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    return { status, headers, body: raw.subarray(end + 4), raw };
  }

  /** Resolves true once the socket closed, false after `timeoutMs`. */
  async waitClosed(timeoutMs = 3000): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((resolve) => { t = setTimeout(() => resolve(false), timeoutMs); })]);
    clearTimeout(t);
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The CONNECT head a sidecar sends (as src/proxy/h1/upstream.ts writes it). */
export function connectHead(authority: string, sourceCluster?: string): string {
  return `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n${sourceCluster !== undefined ? `x-crossmesh-source-cluster: ${sourceCluster}\r\n` : ''}\r\n`;
}

/** Opens a connection to `port` and sends a CONNECT for `authority` (plus `early` bytes in the same write); reads the answer. */
export async function openTunnel(port: number, authority: string, opts: { source?: string; early?: string } = {}): Promise<{ conn: RawConn; answer: RawResponse }> {
  const conn = await RawConn.open(port);
  conn.write(connectHead(authority, opts.source) + (opts.early ?? ''));
  const answer = await conn.readResponse(`the answer to CONNECT ${authority}`);
  return { conn, answer };
}
