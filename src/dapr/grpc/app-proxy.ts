/**
 * Dapr's gRPC proxying (daprd's `UnknownServiceHandler`): a call on DAPR_GRPC_PORT to a
 * service that is not the Dapr API, carrying `dapr-app-id: <app>[.<namespace>]` metadata, is
 * proxied as is (any method, unary or streaming, the bytes untouched) to that app through the
 * mesh, where the caller cluster's GlobalTrafficPolicy decides which cluster serves it. The
 * API token is checked as for the API's own methods.
 *
 * grpc-js has no public hook for calls to unregistered services, so the server's per-stream
 * handler is wrapped: `installUnknownServiceHandler` checks at run time that grpc-js still has
 * the method it wraps and fails loudly (with what to change) if an upgrade renamed it, rather
 * than silently answering UNIMPLEMENTED for every proxied call (checked by app-proxy.test.ts).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { encodeGrpcMessage } from '../../proxy/h2/grpc-status.js';

/** Where a proxied stream goes: the sidecar's mesh router (undefined: this sidecar has none). */
export type AppStreamProxy = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, appId: string) => void;

const DAPR_API_PREFIX = '/dapr.proto.runtime.v1.Dapr/';

type StreamHandler = (this: unknown, extraInterceptors: unknown, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

/**
 * Wraps `server`'s stream handler (before any connection is injected): streams with
 * `dapr-app-id` for another service go to `proxy`, after `authorize` (the API token); the rest
 * to grpc-js as before.
 */
export function installUnknownServiceHandler(server: grpc.Server, proxy: AppStreamProxy, authorize: (headers: IncomingHttpHeaders) => { code: number; details: string; metadata?: grpc.Metadata } | undefined): void {
  const s = server as unknown as { _streamHandler?: StreamHandler; channelzEnabled?: boolean; handlers?: Map<string, unknown> };
  const base = s._streamHandler;
  const handlers = s.handlers;
  if (typeof base !== 'function' || s.channelzEnabled !== false || !(handlers instanceof Map)) {
    throw new Error('crossmesh: @grpc/grpc-js changed its server internals (Server._streamHandler with channelz off, Server.handlers); Dapr gRPC proxying (src/dapr/grpc/app-proxy.ts) must be adapted');
  }
  s._streamHandler = function (this: unknown, extraInterceptors: unknown, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const appId = headers['dapr-app-id'];
    const path = headers[':path'];
    // Methods this server has (the Dapr API) are its own, whatever metadata they carry.
    if (typeof appId !== 'string' || appId === '' || typeof path !== 'string' || path.startsWith(DAPR_API_PREFIX) || handlers.has(path)) {
      return base.call(this, extraInterceptors, stream, headers);
    }
    stream.on('error', () => undefined);
    const denied = authorize(headers);
    if (denied !== undefined) {
      try {
        stream.respond({ ...denied.metadata?.toHttp2Headers(), ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(denied.code), 'grpc-message': encodeGrpcMessage(denied.details) }, { endStream: true });
      } catch { /* gone */ }
      return;
    }
    proxy(stream, headers, appId);
  };
}
