/**
 * A Downstream (src/proxy/h1/types.ts) whose request is already in memory and whose response is
 * collected in memory: the gRPC API's InvokeService hands the mesh router one of these, so the
 * invocation takes the same path (GlobalTrafficPolicy, tunnels, pools) as an HTTP one, and the
 * answer (status, headers, body) becomes an InvokeResponse.
 */
import { Framing, type BodySink, type Downstream, type DownstreamObserver } from '../../proxy/h1/types.js';

export interface BufferedResponse {
  status: number;
  /** Flat [name, value, ...] as the upstream sent them. */
  headers: string[];
  body: Buffer;
}

export class BufferedDownstream implements Downstream {
  readonly rawHeaders: readonly string[];
  readonly proto = 'http' as const;
  readonly hasBody: boolean;
  readonly chunked = false;
  bodyConsumed = false;
  responseStarted = false;
  gone = false;
  private observer: DownstreamObserver | null = null;
  private status = 0;
  private headers: string[] = [];
  private readonly chunks: Buffer[] = [];
  private state: 'open' | 'ended' | 'destroyed' = 'open';
  private settle: (() => void) | undefined;
  private readonly settled: Promise<void>;

  /** `headers` flat, without framing headers (Content-Length is set here from the body). */
  constructor(readonly method: string, headers: readonly string[], private readonly body: Buffer, readonly clientIp = '127.0.0.1') {
    this.hasBody = body.length > 0;
    this.rawHeaders = this.hasBody ? [...headers, 'content-length', String(body.length)] : headers;
    this.settled = new Promise((r) => (this.settle = r));
  }

  setObserver(o: DownstreamObserver | null): void {
    this.observer = o;
  }

  attachBody(sink: BodySink): void {
    this.bodyConsumed = true;
    if (this.body.length > 0) sink.onRequestBody(this.body);
    sink.onRequestEnd(undefined);
  }

  pauseBody(): void {}
  resumeBody(): void {}
  detachBody(): void {}
  writeInformational(): void {}
  cork(): void {}
  uncork(): void {}

  writeHead(status: number, _reason: string, headers: readonly string[], _framing: Framing): void {
    this.responseStarted = true;
    this.status = status;
    this.headers = headers.slice();
  }

  writeBody(chunk: Buffer): boolean {
    if (this.state === 'open') this.chunks.push(Buffer.from(chunk));
    return true;
  }

  endBody(): void {
    if (this.state !== 'open') return;
    this.state = 'ended';
    this.settle?.();
  }

  destroy(): void {
    if (this.state !== 'open') return;
    this.state = 'destroyed';
    this.settle?.();
  }

  /** The caller went away (its gRPC call was cancelled): the exchange stops. */
  cancel(): void {
    if (this.gone) return;
    this.gone = true;
    const o = this.observer;
    this.observer = null;
    o?.onDownstreamGone();
    this.destroy();
  }

  /** True once the response is complete or cut off. */
  get finished(): boolean {
    return this.state !== 'open';
  }

  /** The response once complete; rejects when it was cut off after its head. */
  async response(): Promise<BufferedResponse> {
    await this.settled;
    if (this.state === 'destroyed') throw new Error(this.responseStarted ? `the response was cut off after ${this.chunks.reduce((n, c) => n + c.length, 0)} body bytes` : 'the call was cancelled');
    return { status: this.status, headers: this.headers, body: Buffer.concat(this.chunks) };
  }
}
