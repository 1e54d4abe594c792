/**
 * The gateway's mesh port: L4 tunnels from other clusters' sidecars to this cluster's exported
 * services. A sidecar sends one `CONNECT <service>.<namespace>:<port> HTTP/1.1`; the gateway
 * checks that this service port is exported and served here, picks one of its local endpoints
 * (the app sidecars' inbound listeners) by the export's load balancer, connects, answers 200
 * and from then on only splices bytes both ways. It never parses what the tunnel carries, so
 * the two sidecars can run TLS end to end inside it; per request it costs nothing but the copy.
 *
 * `OPTIONS * HTTP/1.1` is a liveness ping, answered 204 on the same connection (any number).
 *
 * Refusals are a JSON `{"errorCode","message"}` answer and a close: 400 for anything but a
 * CONNECT, 404 for a service port not exported here, 503 with no ready endpoint, 502 when the
 * chosen endpoint refuses the connection.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import { CrossmeshError } from '../errors.js';
import { H1Parser, isParseError, METHODS, REQUEST, type ParserEvents } from '../proxy/h1/llhttp.js';
import { parseHostPort } from '../proxy/h1/upstream.js';
import { SOURCE_CLUSTER_HEADER } from '../metrics/requests.js';
import { pick, type EndpointState } from './balancer.js';
import type { RouteTable } from './routes.js';

/** A tunnel that has not sent its CONNECT head within this long is closed. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5000;
/** Read buffer of a tunnel's endpoint side. */
const SPLICE_BUFFER = 64 * 1024;

export interface TunnelListenerOptions {
  clusterName: string;
  host: string;
  port: number;
  /** The gateway's current route table (swapped whole on change). */
  table: () => RouteTable;
  /** Registry for the tunnel metrics (the gateway's). */
  registry?: Registry;
}

interface TunnelMetrics {
  opened: Counter<'source_cluster' | 'result'>;
  active: Gauge;
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

function refusal(status: number, code: string, message: string): string {
  const body = JSON.stringify({ errorCode: code, message });
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
/**
 * The answer to a liveness ping (`OPTIONS * HTTP/1.1`, RFC 9110's request about the server
 * itself): sidecars keep one connection per remote gateway and ping it a few times a second, so
 * a gateway whose packets stopped is known dead within about a second (gateway-liveness.ts).
 */
const PONG = 'HTTP/1.1 204 No Content\r\n\r\n';

/** One client connection, from its CONNECT head to the end of the splice. */
class Tunnel implements ParserEvents {
  private readonly parser: H1Parser;
  private method = '';
  private authority = '';
  private source = 'unknown';
  private headDone = false;
  private upstream: Socket | undefined;
  private endpoint: EndpointState | undefined;

  constructor(private readonly client: Socket, private readonly owner: TunnelListener) {
    this.parser = new H1Parser(REQUEST, this);
    client.setNoDelay(true);
    client.setTimeout(HANDSHAKE_TIMEOUT_MS);
    client.on('timeout', () => client.destroy());
    client.on('error', () => undefined);
    client.on('data', this.onHandshakeData);
    client.once('close', () => this.closed());
  }

  private readonly onHandshakeData = (d: Buffer): void => {
    const r = this.parser.execute(d);
    if (isParseError(r)) return this.refuse(400, 'CM_ERR_BAD_REQUEST', `malformed tunnel request (${r.code}); send CONNECT <service>.<namespace>:<port> HTTP/1.1`);
    if (!this.headDone) return;
    this.client.off('data', this.onHandshakeData);
    this.client.pause();
    this.open(r < d.length ? d.subarray(r) : undefined);
  };

  onHead(_minor: number, headers: string[], method: number, url: string): number {
    if (url === '*' && METHODS[method] === 'OPTIONS') {
      // A liveness ping: answered at once; the connection stays for the next one (not counted as a tunnel).
      this.client.write(PONG, 'latin1');
      this.owner.pinging(this.client);
      return 0;
    }
    this.method = METHODS[method] ?? '';
    this.authority = url;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i].length === SOURCE_CLUSTER_HEADER.length && headers[i].toLowerCase() === SOURCE_CLUSTER_HEADER) this.source = headers[i + 1];
    }
    this.headDone = true;
    return 0;
  }

  onBody(): void {}
  onComplete(): void {}

  private open(early: Buffer | undefined): void {
    const o = this.owner;
    if (this.method !== 'CONNECT') {
      return this.refuse(400, 'CM_ERR_BAD_REQUEST', `the mesh port of cluster ${o.clusterName} only opens tunnels: send CONNECT <service>.<namespace>:<port> HTTP/1.1 (HTTP requests go to the gateway's HTTP port)`);
    }
    const backend = o.table().tunnel(this.authority.toLowerCase());
    if (backend === undefined) {
      return this.refuse(404, 'CM_ERR_NOT_FOUND', `cluster ${o.clusterName} does not export "${this.authority.slice(0, 200)}"; a tunnel names a served ServiceExport's service port as <service>.<namespace>:<port>`);
    }
    if (backend.endpoints.length === 0) return this.refuse(503, 'CM_ERR_UNAVAILABLE', backend.unavailable);
    const ep = pick(backend, this.client.remoteAddress ?? '');
    this.endpoint = ep;
    ep.inflight++;
    const { host, port } = parseHostPort(ep.id);
    // The endpoint side reads into a reusable buffer (no Readable, no Buffer per read); a write
    // to the client that could not finish at once keeps that memory, so the next read gets a new one.
    const client = this.client;
    let buf = Buffer.allocUnsafe(SPLICE_BUFFER);
    const up = connect({
      host, port, noDelay: true, allowHalfOpen: true,
      onread: {
        buffer: () => buf,
        callback: (n: number, b: Uint8Array) => {
          client.write((b as Buffer).subarray(0, n));
          if (client.writableLength === 0) return true;
          buf = Buffer.allocUnsafe(SPLICE_BUFFER);
          return !client.writableNeedDrain;
        },
      },
    });
    this.upstream = up;
    up.setTimeout(CONNECT_TIMEOUT_MS);
    up.once('timeout', () => {
      if (up.connecting) this.refuse(504, 'CM_ERR_TIMEOUT', `endpoint ${ep.id} of ${backend.ref} did not accept the connection in time`);
      else up.destroy();
    });
    up.once('error', (err: Error & { code?: string }) => {
      if (up.connecting || !this.spliced) this.refuse(502, 'CM_ERR_BAD_GATEWAY', `endpoint ${ep.id} of ${backend.ref} cannot be reached (${err.code ?? err.message})`);
      else this.client.destroy();
    });
    up.once('connect', () => {
      up.setTimeout(0);
      this.client.setTimeout(0);
      this.spliced = true;
      o.count(this.source, 'established');
      this.client.write(ESTABLISHED, 'latin1');
      if (early !== undefined) up.write(early);
      // Splice by hand (cheaper than pipe()): backpressure both ways, an end is passed on, either
      // side closing closes the other.
      client.on('data', (d: Buffer) => {
        if (!up.write(d)) client.pause();
      });
      up.on('drain', () => client.resume());
      client.on('drain', () => up.resume());
      client.on('end', () => up.end());
      up.on('end', () => client.end());
      client.resume();
      up.once('close', () => client.destroy());
    });
  }

  private spliced = false;

  private refuse(status: number, code: string, message: string): void {
    this.owner.count(this.source, String(status));
    this.upstream?.destroy();
    if (!this.client.destroyed) this.client.end(refusal(status, code, message), 'latin1');
  }

  private closed(): void {
    this.parser.close();
    this.upstream?.destroy();
    if (this.endpoint !== undefined) this.endpoint.inflight--;
    this.endpoint = undefined;
    this.owner.forget(this.client);
  }
}

export class TunnelListener {
  private readonly server: Server;
  /** Tunnel connections (from accept until they turn out to be liveness pings). */
  private readonly sockets = new Set<Socket>();
  /** Connections that carry liveness pings (closed with the listener, not counted as tunnels). */
  private readonly pingers = new Set<Socket>();
  private readonly metrics?: TunnelMetrics;
  readonly clusterName: string;
  readonly table: () => RouteTable;
  private _port = 0;

  constructor(private readonly opts: TunnelListenerOptions) {
    this.clusterName = opts.clusterName;
    this.table = opts.table;
    if (opts.registry !== undefined) {
      const sockets = this.sockets;
      this.metrics = {
        opened: new Counter({ name: 'crossmesh_gateway_tunnels_total', help: 'Mesh tunnels asked for, by source cluster and result (established or the refusal status)', labelNames: ['source_cluster', 'result'], registers: [opts.registry] }),
        // Read at scrape time.
        active: new Gauge({ name: 'crossmesh_gateway_tunnels_active', help: 'Mesh tunnels open now', registers: [opts.registry], collect() { this.set(sockets.size); } }),
      };
    }
    // Half-open both ways: a FIN from one side is passed on, the other direction stays open.
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      this.sockets.add(socket);
      new Tunnel(socket, this);
    });
  }

  get port(): number {
    return this._port;
  }

  get active(): number {
    return this.sockets.size;
  }

  count(source: string, result: string): void {
    this.metrics?.opened.labels(source.slice(0, 64), result).inc();
  }

  forget(s: Socket): void {
    this.sockets.delete(s);
    this.pingers.delete(s);
  }

  pinging(s: Socket): void {
    if (this.sockets.delete(s)) this.pingers.add(s);
  }

  async listen(): Promise<void> {
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new CrossmeshError('CM_ERR_CONFIG', `mesh port of cluster ${this.opts.clusterName} cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}; pick another with --mesh-port`));
      server.once('error', onError);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this._port = (server.address() as { port: number }).port;
  }

  /** Stops accepting and cuts the open tunnels (their sidecars reconnect or fail over). */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const done = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    for (const s of this.pingers) s.destroy();
    await done;
  }
}
