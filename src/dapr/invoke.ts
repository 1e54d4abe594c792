import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { CrossmeshError } from '../errors.js';
import { NodeDownstream } from '../proxy/h1/node-downstream.js';
import type { Downstream } from '../proxy/h1/types.js';
import { BufferedDownstream, type BufferedResponse } from './grpc/buffered-downstream.js';
import type { DispatchOptions, H2Done, MeshOutboundRouter } from '../sidecar/outbound.js';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { H2StreamContext } from '../proxy/h2/server.js';
import { answerH2Error, grpcCodeOf } from '../proxy/h2/grpc-status.js';
import type { SidecarIdentity } from '../sidecar/types.js';
import { defaultIsPermanent, type Policy } from './resiliency.js';
import { daprError, sendDaprError } from './respond.js';

/** Headers a caller may not pass to the target: Dapr routing/auth, and Dapr's own caller headers (no spoofing). */
const DROP_HEADERS: ReadonlySet<string> = new Set(['dapr-app-id', 'dapr-api-token', 'dapr-caller-app-id', 'dapr-caller-namespace', 'dapr-callee-app-id']);
const DROP_WITH_AUTH: ReadonlySet<string> = new Set([...DROP_HEADERS, 'authorization']);
/** A proxied gRPC call keeps `dapr-app-id` (daprd's proxy forwards the call's metadata as is). */
const DROP_HEADERS_PROXIED: ReadonlySet<string> = new Set(['dapr-api-token', 'dapr-caller-app-id', 'dapr-caller-namespace', 'dapr-callee-app-id']);
const NO_STREAM_CONTEXT: H2StreamContext = { peer: undefined, tunnelAuthority: undefined, remoteAddress: '127.0.0.1' };
// NUL, C0 controls, DEL, and the URL delimiters Dapr refuses in a method name.
const BAD_METHOD = /[\u0000-\u001f\u007f#?]/;

export interface InvokeTarget {
  appId: string;
  namespace: string;
}

/** `nodeapp.dapr-test` → app nodeapp in namespace dapr-test; one part → the caller's namespace. */
export function parseAppId(id: string, callerNamespace: string): InvokeTarget {
  const parts = id.split('.');
  if (parts.length > 2 || parts.some((p) => p === '')) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'invalid app id');
  return { appId: parts[0], namespace: parts[1] ?? callerNamespace };
}

/**
 * Dapr's method normalisation: the method is percent-decoded, refused when it holds `#`, `?`,
 * NUL or control characters, and cleaned as a path (`a/../b` → `b`; leading `../` can't climb
 * above the app's root). Returns the origin-form path to send, re-encoded.
 */
export function normalizeMethod(raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `method "${raw.slice(0, 100)}" has malformed percent-encoding`);
  }
  if (BAD_METHOD.test(decoded)) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `method "${raw.slice(0, 100)}" contains a forbidden character (#, ?, NUL or a control character)`);
  const cleaned = posix.normalize('/' + decoded);
  return encodeURI(cleaned.length > 1 && cleaned.endsWith('/') && !decoded.endsWith('/') ? cleaned.slice(0, -1) : cleaned);
}

/**
 * Dapr service invocation: resolves an app id to the mesh service of that name in that
 * namespace and sends the call along the mesh route, so the caller cluster's
 * GlobalTrafficPolicy decides where it lands. Status, headers and body of the target pass
 * through, streamed. Failures answer in Dapr's shape: 500 ERR_DIRECT_INVOKE
 * "failed to invoke, id: <id>, err: <err>".
 */
export class DaprInvoker {
  private readonly callerHeaders: string[];

  constructor(
    private readonly router: MeshOutboundRouter,
    private readonly identity: SidecarIdentity,
    private readonly opts: { timeoutMs?: number; appPolicy?: (appId: string) => Policy | undefined } = {},
  ) {
    this.callerHeaders = ['dapr-caller-app-id', identity.appId, 'dapr-caller-namespace', identity.namespace];
  }

  /**
   * Dapr's gRPC proxying (grpc/app-proxy.ts): a call with `dapr-app-id` on DAPR_GRPC_PORT goes
   * to that app through the mesh as an HTTP/2 stream, the caller headers set as for HTTP
   * invocation (incoming ones dropped: not spoofable), the caller's token never passed on. No
   * Resiliency policy wraps it: a proxied stream is not replayable by the sidecar.
   */
  proxyStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, appId: string, done?: H2Done): void {
    let target: InvokeTarget;
    try {
      target = parseAppId(appId, this.identity.namespace);
    } catch {
      const err = new CrossmeshError('CM_ERR_BAD_REQUEST', `failed to proxy request: invalid app id "${appId.slice(0, 100)}" in dapr-app-id (expected APP or APP.NAMESPACE)`);
      answerH2Error(stream, err, true);
      done?.('', 200, grpcCodeOf(err), performance.now());
      return;
    }
    this.router.handleStream(stream, headers, NO_STREAM_CONTEXT, done, {
      namespace: target.namespace,
      name: target.appId,
      extraHeaders: { 'dapr-caller-app-id': this.identity.appId, 'dapr-caller-namespace': this.identity.namespace, 'dapr-callee-app-id': target.appId },
      dropHeaders: DROP_HEADERS_PROXIED,
    });
  }

  /**
   * `appId` from the URL, the `dapr-app-id` header or basic auth (undefined when none);
   * `method` as it appears in the URL (still percent-encoded, without the query).
   */
  handle(req: IncomingMessage, res: ServerResponse, appId: string | undefined, method: string): void {
    if (!appId) {
      sendDaprError(res, daprError('ERR_DIRECT_INVOKE:no-app-id'));
      return;
    }
    this.invoke(req, res, appId, method).catch((err) => {
      const msg = err instanceof Error ? err.message : String(err);
      sendDaprError(res, daprError('ERR_DIRECT_INVOKE', { appId, error: msg }, { cause: err }));
    });
  }

  private async invoke(req: IncomingMessage, res: ServerResponse, appId: string, method: string): Promise<void> {
    // node:http hands the request over while its parser is still reading the same bytes: let it
    // finish them first, so a head followed by a malformed body is never sent on.
    await Promise.resolve();
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const down = new NodeDownstream(req, res);
    // dispatch() throws only before anything reached the client, so a Resiliency retry is safe
    // when the request has no body to replay; a request with a body is tried once (its stream is consumed).
    const replayable = req.headers['content-length'] === undefined || req.headers['content-length'] === '0' ? req.headers['transfer-encoding'] === undefined : false;
    await this.send(() => down, appId, method, q >= 0 ? url.slice(q) : '', {
      client: req.socket.remoteAddress ?? '', host: req.headers.host ?? '',
      dropHeaders: req.headers.authorization?.startsWith('Basic ') ? DROP_WITH_AUTH : DROP_HEADERS,
      replayable,
    });
  }

  /**
   * An invocation whose request is in memory and whose answer is collected (the gRPC API's
   * InvokeService): the same app id and method rules, headers, mesh route and Resiliency policy
   * as the HTTP form. Each attempt gets a fresh copy of the request, so retries replay the body
   * (daprd: WithReplay when the policy retries). `query` is the query string without `?`.
   * Rejects with the failure (the caller answers ERR_DIRECT_INVOKE); `signal` cancels the call.
   */
  async invokeBuffered(appId: string, method: string, req: { verb: string; query: string; headers: readonly string[]; body: Buffer; signal?: AbortSignal }): Promise<BufferedResponse> {
    let last: BufferedDownstream | undefined;
    const cancel = () => last?.cancel();
    req.signal?.addEventListener('abort', cancel, { once: true });
    try {
      await this.send(() => (last = new BufferedDownstream(req.verb, req.headers, req.body)), appId, method, req.query ? `?${req.query}` : '', {
        client: '127.0.0.1', host: '', dropHeaders: DROP_HEADERS, replayable: true,
      });
      const down = last!;
      if (!down.finished) down.destroy();
      return await down.response();
    } finally {
      req.signal?.removeEventListener('abort', cancel);
    }
  }

  /** One invocation along the mesh route, inside the app's Resiliency policy; `makeDown` gives each attempt its downstream. */
  private async send(
    makeDown: () => Downstream, appId: string, method: string, search: string,
    o: { client: string; host: string; dropHeaders: ReadonlySet<string>; replayable: boolean },
  ): Promise<void> {
    const target = parseAppId(appId, this.identity.namespace);
    const path = normalizeMethod(method) + search;
    const opts: DispatchOptions = {
      extraHeaders: [
        ...this.callerHeaders,
        'dapr-callee-app-id', target.appId,
        'forwarded', `for=${o.client};by=${this.identity.appId};host=${o.host}`,
      ],
      dropHeaders: o.dropHeaders,
      timeoutMs: this.opts.timeoutMs,
    };
    const name = { namespace: target.namespace, name: target.appId };
    const policy = this.opts.appPolicy?.(target.appId);
    if (!policy) {
      await this.router.dispatch(makeDown(), name, path, opts);
      return;
    }
    // Resiliency (targets.apps.<id>): timeout per attempt, retries, circuit breaker.
    let down: Downstream | undefined;
    await policy.run((signal) => this.router.dispatch(o.replayable ? makeDown() : (down ??= makeDown()), name, path, { ...opts, signal, timeoutMs: policy.timeoutMs ?? opts.timeoutMs }), {
      isPermanent: (err) => !o.replayable || defaultIsPermanent(err),
    });
  }
}

/**
 * The app id of a request that uses the header form (`dapr-app-id: X`) or the basic-auth form
 * (user `dapr-app-id`, password X), or undefined.
 */
export function appIdFromHeaders(req: IncomingMessage): string | undefined {
  const h = req.headers['dapr-app-id'];
  if (typeof h === 'string' && h !== '') return h;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Basic ')) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0 && decoded.slice(0, colon) === 'dapr-app-id') return decoded.slice(colon + 1) || undefined;
  }
  return undefined;
}
