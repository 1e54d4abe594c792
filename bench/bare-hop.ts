/**
 * A reference hop for the benchmark, not part of crossmesh: the bare designs of
 * ../shared/reference/perf-baseline.md ("Hop designs") rebuilt so that every `npm run bench` run
 * measures, on the machine it runs on, what a Node process per hop costs with no product
 * feature at all. The chain `l7 → l4 → l7 → app` is the mesh path's shape (client sidecar, gateway
 * tunnel, app sidecar) stripped to forwarding; the bench puts its req/s next to nginx's and
 * crossmesh's, so the gap between crossmesh and nginx splits into what the process-per-hop
 * design costs here and what crossmesh's own work costs.
 *
 *   node dist/bench/bare-hop.js l7|l4 LISTEN_PORT UPSTREAM_PORT [tls-in] [tls-up]
 *
 * l7: `net` sockets, a minimal head scan (requests and responses delimited by Content-Length
 * only, which is all the bench sends), pooled keep-alive upstream connections, bodies written
 * on as they arrive, heads forwarded unchanged. l4: a byte pipe per connection. Prints
 * "listening <port>" once it listens. `tls-in` / `tls-up` (l7 only): accept / open mutual TLS 1.3
 * (node:tls, the certificate and key in $BARE_TLS_DIR/{cert,key}.pem, which is also the only CA),
 * the mesh's shape of a TLS session from the client sidecar to the app sidecar through the pipe.
 */
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type SecureContextOptions } from 'node:tls';

const [mode, listenArg, upstreamArg, ...flags] = process.argv.slice(2);
const TLS_DIR = process.env.BARE_TLS_DIR;
const tls: SecureContextOptions | undefined = TLS_DIR
  ? { cert: readFileSync(`${TLS_DIR}/cert.pem`), key: readFileSync(`${TLS_DIR}/key.pem`), ca: readFileSync(`${TLS_DIR}/cert.pem`), minVersion: 'TLSv1.3', ...(process.env.BARE_TLS_CIPHERS ? { ciphers: process.env.BARE_TLS_CIPHERS } : {}) }
  : undefined;
const TLS_IN = flags.includes('tls-in');
const TLS_UP = flags.includes('tls-up');
if ((TLS_IN || TLS_UP) && !tls) {
  process.stderr.write('tls-in / tls-up need BARE_TLS_DIR with cert.pem and key.pem\n');
  process.exit(2);
}

function connect(opts: { port: number; host: string; noDelay: boolean }): Socket {
  return TLS_UP ? tlsConnect({ ...opts, ...tls!, checkServerIdentity: () => undefined }) : tcpConnect(opts);
}
function createServer(onConnection: (c: Socket) => void) {
  return TLS_IN ? createTlsServer({ ...tls!, requestCert: true, rejectUnauthorized: true }, onConnection) : createTcpServer(onConnection);
}
const UPSTREAM = Number(upstreamArg);
if ((mode !== 'l7' && mode !== 'l4') || !Number.isInteger(UPSTREAM)) {
  process.stderr.write('usage: bare-hop.js l7|l4 LISTEN_PORT UPSTREAM_PORT\n');
  process.exit(2);
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const MAX_HEAD = 16 * 1024;

/** Bytes of a message (head + Content-Length body) at the start of `buf`, 0 = incomplete, -1 = unusable. */
function messageLength(buf: Buffer): number {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) return buf.length > MAX_HEAD ? -1 : 0;
  const head = buf.toString('latin1', 0, end);
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  return end + 4 + (m ? Number(m[1]) : 0);
}

class Upstream {
  readonly socket: Socket;
  client: Client | null = null;
  private buf: Buffer | null = null;
  private remaining = -1;

  constructor() {
    this.socket = connect({ port: UPSTREAM, host: '127.0.0.1', noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => this.socket.destroy());
    this.socket.on('close', () => {
      const i = idle.indexOf(this);
      if (i >= 0) idle.splice(i, 1);
      this.client?.socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    const client = this.client;
    if (!client) return void this.socket.destroy();
    if (this.remaining < 0) {
      const buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
      const len = messageLength(buf);
      if (len < 0) return void this.socket.destroy();
      if (len === 0) return void (this.buf = buf);
      this.buf = null;
      this.remaining = len;
      chunk = buf;
    }
    client.socket.write(chunk);
    this.remaining -= chunk.length;
    if (this.remaining <= 0) {
      this.remaining = -1;
      this.client = null;
      idle.push(this);
      client.responseDone();
    }
  }
}

const idle: Upstream[] = [];

class Client {
  private buf: Buffer | null = null;
  private busy = false;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
      this.next();
    });
    socket.on('error', () => socket.destroy());
  }

  /** Forwards the next complete request, one at a time per connection. */
  private next(): void {
    if (this.busy || !this.buf) return;
    const len = messageLength(this.buf);
    if (len < 0) return void this.socket.destroy();
    if (len === 0 || this.buf.length < len) return;
    const request = this.buf.subarray(0, len);
    this.buf = this.buf.length > len ? this.buf.subarray(len) : null;
    this.busy = true;
    const up = idle.pop() ?? new Upstream();
    up.client = this;
    up.socket.write(request);
  }

  responseDone(): void {
    this.busy = false;
    this.next();
  }
}

const server =
  mode === 'l4'
    ? createTcpServer((c) => {
        c.setNoDelay(true);
        const u = tcpConnect({ port: UPSTREAM, host: '127.0.0.1', noDelay: true });
        c.pipe(u).pipe(c);
        c.on('error', () => u.destroy());
        u.on('error', () => c.destroy());
        c.on('close', () => u.destroy());
        u.on('close', () => c.destroy());
      })
    : createServer((c) => void new Client(c));
server.listen(Number(listenArg) || 0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
