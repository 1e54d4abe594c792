/**
 * The two sides of one proxied request, as the exchange (exchange.ts) sees them. A Downstream is
 * the client's request and the response we owe it: the lean listener's InboundRequest
 * (server.ts), or a node:http request/response pair (node-downstream.ts, for the Dapr API).
 */

/** How a message body is delimited on the wire. */
export const enum Framing {
  /** No body (HEAD responses, 204, 304, 1xx; bodyless requests). */
  None = 0,
  /** Content-Length. */
  Length = 1,
  /** Transfer-Encoding: chunked. */
  Chunked = 2,
  /** Read until the connection closes (responses only). */
  UntilClose = 3,
}

/** Receives a request body as it arrives. */
export interface BodySink {
  onRequestBody(chunk: Buffer): void;
  /** The body is complete; `trailers` (flat) when the chunked body had any. */
  onRequestEnd(trailers: string[] | undefined): void;
  /** The body cannot be completed (malformed chunk, client gone). */
  onRequestAbort(): void;
}

/** Notified of what happens on the client's side while an exchange is running. */
export interface DownstreamObserver {
  /** The client can take more response bytes. */
  onDownstreamDrain(): void;
  /** The client went away before the response was complete. */
  onDownstreamGone(): void;
}

export interface Downstream {
  readonly method: string;
  /** Flat [name, value, ...] as received (names in their original case). */
  readonly rawHeaders: readonly string[];
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** The request has a body (Content-Length > 0 or chunked). */
  readonly hasBody: boolean;
  readonly chunked: boolean;
  /** True once any body byte was handed to a sink (a retry elsewhere could not resend it). */
  readonly bodyConsumed: boolean;
  /** True once a response head was written. */
  readonly responseStarted: boolean;
  /** The client is gone (its connection closed). */
  readonly gone: boolean;
  setObserver(o: DownstreamObserver | null): void;
  /** Starts delivering the body to `sink` (chunks that already arrived are delivered at once). */
  attachBody(sink: BodySink): void;
  pauseBody(): void;
  resumeBody(): void;
  /** An informational (1xx) response. */
  writeInformational(status: number, reason: string, headers: readonly string[]): void;
  /**
   * The response head. `headers` flat, without framing headers of our own choosing (a
   * Content-Length the upstream sent is in `headers` with `framing` Length).
   */
  writeHead(status: number, reason: string, headers: readonly string[], framing: Framing): void;
  /** False when the client is slow (then onDownstreamDrain follows). */
  writeBody(chunk: Buffer): boolean;
  endBody(trailers?: readonly string[]): void;
  /** Batches the writes of one upstream read into one syscall. */
  cork(): void;
  uncork(): void;
  /** The exchange is over: body bytes still to come are not for it. */
  detachBody(): void;
  /** Cuts the response off (after a mid-body failure) or drops the client. */
  destroy(): void;
}
