/**
 * forward(): one proxy hop for a request that arrived on a node:http listener (the gateway's
 * HTTP ingress, tests), over the same keep-alive upstream pools and exchange as the lean
 * listeners (h1/). Bodies are streamed both ways, never buffered; upstream failures map to
 * 502/504 with a JSON body naming what failed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { NodeDownstream } from './h1/node-downstream.js';
import { proxy, type ProxyOptions, type Upstream } from './h1/proxy.js';
import { parseHostPort, UpstreamRegistry } from './h1/upstream.js';
import type { ForwardResult } from './h1/exchange.js';

export type { ForwardResult } from './h1/exchange.js';

export interface ForwardOptions extends ProxyOptions {
  /** Upstream origin, `http://host:port`. */
  origin: string;
  /** The upstream, built once by the caller (then `origin` is not parsed per request). */
  upstream?: Upstream;
  /** What the upstream is, for error messages (default: the origin). */
  label?: string;
  pools?: UpstreamRegistry;
}

/** Pools of callers that bring none (tests, one-off hops). */
export const defaultPools = new UpstreamRegistry();

export async function forward(req: IncomingMessage, res: ServerResponse, opts: ForwardOptions): Promise<ForwardResult> {
  let upstream = opts.upstream;
  if (upstream === undefined) {
    const hostPort = opts.origin.startsWith('http://') ? opts.origin.slice(7) : opts.origin;
    upstream = { key: hostPort, target: parseHostPort(hostPort), label: opts.label ?? opts.origin };
  }
  // node:http hands the request over while its parser is still reading the same bytes: wait for
  // it to finish them, so a head followed by a malformed body (the parser then destroys the
  // socket) is never sent upstream.
  await Promise.resolve();
  return proxy(new NodeDownstream(req, res), opts.pools ?? defaultPools, upstream, opts);
}

/** Answers with `{"errorCode": ..., "message": ...}` and the error's HTTP status (if the socket is still writable). */
export function sendError(res: ServerResponse, error: { code: string; status: number; message: string }, extraHeaders?: readonly string[]): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = JSON.stringify({ errorCode: error.code, message: error.message });
  const headers: string[] = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))];
  if (extraHeaders !== undefined) for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]);
  res.writeHead(error.status, headers);
  res.end(body);
}
