/**
 * How the mesh answers an HTTP/2 request it could not deliver: gRPC calls get a trailers-only
 * response (`:status 200`, `grpc-status`, `grpc-message`) so every gRPC client reports a
 * status code rather than a protocol error; other HTTP/2 requests get the HTTP status and the
 * JSON error body H1 listeners answer. `x-crossmesh-error` carries the stable CM_ERR_* code
 * either way.
 */
import type { ServerHttp2Stream } from 'node:http2';
import type { CrossmeshError } from '../../errors.js';

/** gRPC status codes used by the mesh (grpc/doc/statuscodes.md). */
export const GRPC = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16,
} as const;

/** Metric label of each gRPC code. */
export const GRPC_CODE_NAMES: readonly string[] = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/**
 * The gRPC code of a mesh error: the HTTP→gRPC mapping of gRPC's http-grpc-status-mapping.md
 * (404 UNIMPLEMENTED, 401, 403, 429/502/503/504 UNAVAILABLE), plus the cases where the mesh
 * knows better than an HTTP status: a timeout is DEADLINE_EXCEEDED, a bad request (a path the
 * mesh refuses) INVALID_ARGUMENT, a body over a limit RESOURCE_EXHAUSTED.
 */
export function grpcCodeOf(err: CrossmeshError): number {
  if (err.code === 'CM_ERR_TIMEOUT') return GRPC.DEADLINE_EXCEEDED;
  switch (err.status) {
    case 400: return GRPC.INVALID_ARGUMENT;
    case 401: return GRPC.UNAUTHENTICATED;
    case 403: return GRPC.PERMISSION_DENIED;
    case 404: return GRPC.UNIMPLEMENTED;
    case 413: return GRPC.RESOURCE_EXHAUSTED;
    case 429: case 502: case 503: case 504: return GRPC.UNAVAILABLE;
    default: return err.status >= 500 ? GRPC.UNAVAILABLE : GRPC.UNKNOWN;
  }
}

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself (PROTOCOL-HTTP2.md). */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) { plain = false; break; }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** True for a gRPC request (content-type application/grpc, application/grpc+proto, ...). */
export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

/** Answers `err` on a stream that has sent nothing yet (does nothing if it has, or is gone). */
export function answerH2Error(stream: ServerHttp2Stream, err: CrossmeshError, grpc: boolean, extra?: Record<string, string>): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  try {
    if (grpc) {
      stream.respond({
        ':status': 200, 'content-type': 'application/grpc',
        'grpc-status': String(grpcCodeOf(err)), 'grpc-message': encodeGrpcMessage(err.message), 'x-crossmesh-error': err.code, ...extra,
      }, { endStream: true });
      return;
    }
    stream.respond({ ':status': err.status, 'content-type': 'application/json', 'x-crossmesh-error': err.code, ...extra });
    stream.end(JSON.stringify({ code: err.code, message: err.message }));
  } catch {
    // The session went away between the check and the write: nobody to answer.
  }
}
