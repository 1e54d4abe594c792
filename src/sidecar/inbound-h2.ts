/**
 * HTTP/2 streams reaching an app's sidecar (over mesh mTLS with ALPN h2, or h2c in a plaintext
 * cluster): the same checks as HTTP/1.1 requests (the caller's cluster from its certificate,
 * the ServiceExport's service account rule, the path rule), then forwarded to the app over h2c
 * on one multiplexed session. Only an app that speaks gRPC (`--app-protocol grpc`) gets them;
 * an HTTP/1.1 app's sidecar answers that it does not.
 *
 * If the app does not take the connection (it is down or restarting) the stream is reset with
 * REFUSED_STREAM: nothing was processed, so the caller's sidecar retries it on another target.
 * A call in flight when the app dies is answered UNAVAILABLE: it may have run, so it is not
 * retried by the mesh (a client whose method is idempotent says so in its own retry policy).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { H2 } from '../proxy/h2/http2.js';
import { CrossmeshError } from '../errors.js';
import { isSafePath } from '../proxy/index.js';
import type { Upstream } from '../proxy/h1/proxy.js';
import { H2Exchange } from '../proxy/h2/exchange.js';
import { answerH2Error, grpcCodeOf, isGrpc } from '../proxy/h2/grpc-status.js';
import type { H2SessionRegistry } from '../proxy/h2/sessions.js';
import type { H2StreamContext } from '../proxy/h2/server.js';
import { SOURCE_CLUSTER_HEADER } from '../metrics/requests.js';
import type { InboundAuthorizer } from './authz.js';

/** The answer to a request path the inbound listeners refuse (HTTP/1.1 and HTTP/2 alike). */
export const BAD_PATH_MESSAGE = "request path refused: dot segments, empty segments, encoded '.', '/', '\\' and control characters are not allowed";

export interface InboundH2Options {
  ownCluster: string;
  /** The app's h2c address; undefined: the app speaks HTTP/1.1 and HTTP/2 streams are refused. */
  app: Upstream | undefined;
  appLabel: string;
  authz: InboundAuthorizer;
  sessions: H2SessionRegistry;
  /** Added to every answer (x-crossmesh-served-by). */
  responseHeaders: Readonly<Record<string, string>>;
  /** Sent to the app on every call (APP_API_TOKEN as dapr-api-token). */
  appHeaders?: Readonly<Record<string, string>>;
  /** One stream is over (metrics). */
  done(source: string, status: number, grpcStatus: number, startedAt: number): void;
}

export function inboundStreamHandler(o: InboundH2Options): (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ctx: H2StreamContext) => void {
  const notH2 = new CrossmeshError('CM_ERR_BAD_GATEWAY', `${o.appLabel} speaks HTTP/1.1 (--app-protocol http): HTTP/2 and gRPC calls reach only apps run with --app-protocol grpc`);
  return (stream, headers, ctx) => {
    const startedAt = performance.now();
    const peer = ctx.peer;
    const source = peer !== undefined ? peer.cluster : (typeof headers[SOURCE_CLUSTER_HEADER] === 'string' ? headers[SOURCE_CLUSTER_HEADER] : o.ownCluster);
    const grpc = isGrpc(headers['content-type']);
    const refuse = (err: CrossmeshError) => {
      answerH2Error(stream, err, grpc, o.responseHeaders as Record<string, string>);
      o.done(source, grpc ? 200 : err.status, grpc ? grpcCodeOf(err) : -1, startedAt);
    };
    if (peer !== undefined) {
      const r = o.authz.check(peer);
      if (r !== undefined) return refuse(new CrossmeshError(r.code as 'CM_ERR_FORBIDDEN', r.message));
    }
    const path = String(headers[':path'] ?? '');
    const q = path.indexOf('?');
    if (path.charCodeAt(0) !== 47 || !isSafePath(q < 0 ? path : path.slice(0, q))) {
      return refuse(new CrossmeshError('CM_ERR_BAD_REQUEST', BAD_PATH_MESSAGE));
    }
    const app = o.app;
    if (app === undefined) return refuse(notH2);
    const ex = new H2Exchange(stream, headers, { extraHeaders: o.appHeaders, responseHeaders: o.responseHeaders });
    const forward = async () => {
      let session;
      try {
        const s = o.sessions.session(app);
        session = s instanceof Promise ? await s : s;
      } catch {
        // The app took no connection: it processed nothing, the caller may send it elsewhere.
        if (!stream.destroyed) stream.close(H2.REFUSED_STREAM);
        return o.done(source, 0, -1, startedAt);
      }
      const r = await ex.attempt(session);
      if (r.error !== undefined && !r.responseStarted && !r.clientGone) {
        if (r.refused) {
          // Refused by the app itself (REFUSED_STREAM, a GOAWAY that did not cover it): the caller may retry it.
          if (!stream.destroyed) stream.close(H2.REFUSED_STREAM);
          return o.done(source, 0, -1, startedAt);
        }
        ex.fail(new CrossmeshError('CM_ERR_UNAVAILABLE', `${o.appLabel}: ${r.error.message}`, { cause: r.error }));
      }
      const f = ex.finalStatus;
      o.done(source, f.status, f.grpcStatus, startedAt);
    };
    void forward();
  };
}
