/**
 * A node:http request/response pair as a Downstream, so listeners that stay on node:http (the
 * Dapr HTTP API, the gateway's HTTP ingress) forward over the same upstream pools and exchange
 * as the lean listeners. Listeners are added per request here; those paths are not the mesh's
 * hot path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Framing, type BodySink, type Downstream, type DownstreamObserver } from './types.js';

export class NodeDownstream implements Downstream {
  readonly method: string;
  readonly rawHeaders: readonly string[];
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  readonly hasBody: boolean;
  readonly chunked: boolean;
  bodyConsumed = false;
  private sink: BodySink | null = null;
  private observer: DownstreamObserver | null = null;
  private ended = false;

  constructor(private readonly req: IncomingMessage, private readonly res: ServerResponse) {
    this.method = req.method ?? 'GET';
    this.rawHeaders = req.rawHeaders;
    this.clientIp = req.socket.remoteAddress ?? '';
    this.proto = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const h = req.headers;
    this.chunked = h['transfer-encoding'] !== undefined;
    this.hasBody = this.chunked || (h['content-length'] !== undefined && h['content-length'] !== '0');
    res.once('close', this.onClose);
    res.on('drain', this.onDrain);
  }

  private readonly onClose = (): void => {
    if (this.res.writableFinished) return;
    const o = this.observer;
    this.observer = null;
    o?.onDownstreamGone();
    const s = this.sink;
    this.sink = null;
    s?.onRequestAbort();
  };

  private readonly onDrain = (): void => this.observer?.onDownstreamDrain();
  private readonly onData = (chunk: Buffer): void => this.sink?.onRequestBody(chunk);
  private readonly onEnd = (): void => {
    this.ended = true;
    const t = this.req.rawTrailers;
    this.sink?.onRequestEnd(t.length > 0 ? t : undefined);
  };
  private readonly onAborted = (): void => {
    const s = this.sink;
    this.sink = null;
    s?.onRequestAbort();
  };

  get responseStarted(): boolean {
    return this.res.headersSent;
  }

  get gone(): boolean {
    return this.res.destroyed || this.req.socket.destroyed;
  }

  setObserver(o: DownstreamObserver | null): void {
    this.observer = o;
  }

  attachBody(sink: BodySink): void {
    this.sink = sink;
    this.bodyConsumed = true;
    if (this.ended || this.req.readableEnded) {
      sink.onRequestEnd(undefined);
      return;
    }
    this.req.on('data', this.onData);
    this.req.once('end', this.onEnd);
    this.req.once('error', this.onAborted);
  }

  detachBody(): void {
    this.sink = null;
    this.req.off('data', this.onData);
    this.req.off('end', this.onEnd);
    this.req.off('error', this.onAborted);
    // Drop what is left of a body nobody reads any more, so the connection can be reused.
    if (!this.req.readableEnded) this.req.resume();
  }

  pauseBody(): void {
    this.req.pause();
  }

  resumeBody(): void {
    this.req.resume();
  }

  writeInformational(): void {
    // node:http answered 100-continue itself; other 1xx are not passed through this path.
  }

  writeHead(status: number, reason: string, headers: readonly string[], framing: Framing): void {
    if (this.res.destroyed) return;
    this.res.writeHead(status, reason, headers as string[]);
    if (framing === Framing.None) this.res.flushHeaders();
  }

  writeBody(chunk: Buffer): boolean {
    if (this.res.destroyed) return true;
    return this.res.write(chunk);
  }

  endBody(trailers?: readonly string[]): void {
    if (this.res.destroyed) return;
    if (trailers !== undefined && trailers.length > 0) {
      const t: Record<string, string> = {};
      for (let i = 0; i < trailers.length; i += 2) t[trailers[i]] = trailers[i + 1];
      this.res.addTrailers(t);
    }
    this.res.end();
  }

  cork(): void {
    this.res.cork();
  }

  uncork(): void {
    this.res.uncork();
  }

  destroy(): void {
    if (!this.res.destroyed) this.res.destroy();
  }
}
