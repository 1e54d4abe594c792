/**
 * proxy(): one hop for one request, whatever listener it came from. Header hygiene
 * (headers.ts: hop-by-hop removal, X-Forwarded-*, traceparent, the caller's extra headers) on
 * the raw header list, then an Exchange over a pooled connection of the target.
 */
import { CrossmeshError } from '../../errors.js';
import { buildRequestHead } from '../headers.js';
import { answerError, Exchange, type ForwardResult } from './exchange.js';
import type { Downstream } from './types.js';
import type { UpstreamRegistry, UpstreamTarget } from './upstream.js';

export interface Upstream {
  /** Pool key: one pool per distinct key. */
  key: string;
  target: UpstreamTarget;
  /** What it is, for error messages. */
  label: string;
}

export interface ProxyOptions {
  /** Origin-form request target sent upstream. */
  path: string;
  /** Flat headers set upstream (lowercase names; replace incoming ones). */
  extraHeaders?: readonly string[];
  /** Incoming headers (lowercase) not passed upstream. */
  dropHeaders?: ReadonlySet<string>;
  /** Flat headers added to the response (error answers too). */
  responseHeaders?: readonly string[];
  /** Default 30 s. */
  timeoutMs?: number;
  /** Default true: failures before the response are answered here. */
  respondOnError?: boolean;
  retryStatuses?: ReadonlySet<number>;
  signal?: AbortSignal;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

export function proxy(down: Downstream, registry: UpstreamRegistry, up: Upstream, opts: ProxyOptions): Promise<ForwardResult> {
  let head: string;
  try {
    head = buildRequestHead({
      method: down.method,
      path: opts.path,
      rawHeaders: down.rawHeaders as string[],
      clientIp: down.clientIp,
      proto: down.proto,
      extra: opts.extraHeaders,
      drop: opts.dropHeaders,
      defaultHost: up.target,
      chunked: down.hasBody && down.chunked,
    });
  } catch (err) {
    const error = err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_BAD_REQUEST', String(err), { cause: err });
    if (opts.respondOnError !== false) answerError(down, error, opts.responseHeaders);
    return Promise.resolve({ status: error.status, error, failedBeforeSend: true, responseStarted: opts.respondOnError !== false });
  }
  const ex = new Exchange(down, { method: down.method, head }, {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    label: up.label,
    responseHeaders: opts.responseHeaders,
    retryStatuses: opts.retryStatuses,
    respondOnError: opts.respondOnError,
    signal: opts.signal,
  });
  return ex.start(registry.get(up.key, up.target, up.label));
}
