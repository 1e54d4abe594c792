/**
 * DAPR_GRPC_PORT's listener: a plain TCP server that imports the Dapr gRPC API (server.ts, with
 * @grpc/grpc-js and the protos) when the first connection arrives and hands every connection to
 * it. A sidecar whose app never speaks gRPC never loads grpc-js (test/lean.test.ts); the first
 * connection waits for the import (tens of milliseconds), the ones after it do not.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { formatError } from '../../errors.js';
import { log } from '../../util/log.js';
import type { DaprGrpcOptions, DaprGrpcServer } from './server.js';

export class DaprGrpcListener {
  private readonly net: Server;
  private api: DaprGrpcServer | undefined;
  private loading: Promise<DaprGrpcServer> | undefined;
  private readonly waiting = new Set<Socket>();
  private closing: Promise<void> | undefined;

  /** `options` is asked for once, when the API is first needed. */
  constructor(private readonly options: () => DaprGrpcOptions, private readonly label = 'dapr gRPC API') {
    this.net = createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
  }

  get loaded(): boolean {
    return this.api !== undefined;
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        this.net.on('error', (err) => log.warn(`${this.label}: ${formatError(err)}`));
        resolve((this.net.address() as { port: number }).port);
      });
    });
  }

  private accept(socket: Socket): void {
    // A client that resets its connection (while the API loads, or one HTTP/2 does not take) must not take the sidecar down.
    socket.on('error', () => socket.destroy());
    if (this.closing) return void socket.destroy();
    if (this.api) return this.inject(this.api, socket);
    this.waiting.add(socket);
    socket.once('close', () => this.waiting.delete(socket));
    this.loading ??= import('./server.js').then((m) => (this.api = m.createDaprGrpcServer(this.options())));
    this.loading.then(
      (api) => {
        if (!this.waiting.delete(socket)) return;
        if (this.closing) return void socket.destroy();
        this.inject(api, socket);
      },
      (err) => {
        log.error(`${this.label}: cannot start: ${formatError(err)}`);
        this.loading = undefined;
        socket.destroy();
      },
    );
  }

  private inject(api: DaprGrpcServer, socket: Socket): void {
    api.injectConnection(socket);
    socket.resume();
  }

  /** Stops listening, ends the calls in flight (cut after `graceMs`) and every connection. */
  close(graceMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((r) => this.net.close(() => r()));
      for (const s of this.waiting) s.destroy();
      this.waiting.clear();
      const api = this.api ?? (this.loading ? await this.loading.catch(() => undefined) : undefined);
      await api?.close(graceMs);
      await stopped;
    })();
    return this.closing;
  }
}

/** A standalone Dapr gRPC API listener (tests, tools): 127.0.0.1, port 0 unless given. */
export async function startDaprGrpcListener(opts: DaprGrpcOptions & { host?: string; port?: number }): Promise<{ listener: DaprGrpcListener; port: number; close(): Promise<void> }> {
  const listener = new DaprGrpcListener(() => opts);
  const port = await listener.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  return { listener, port, close: () => listener.close() };
}
