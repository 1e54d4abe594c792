/**
 * The gRPC app's status (code, and percent-encoded message on errors) on every answer of the
 * gRPC app channel (app-channel.ts). daprd carries it between sidecars in InternalInvokeResponse.status; the mesh carries
 * HTTP, so it rides as these headers: a gRPC caller's sidecar (InvokeService) answers the app's own
 * code from them (daprd's ErrorFromInternalStatus) instead of CodeFromHTTPStatus of the HTTP status.
 */
export const GRPC_STATUS_HEADER = 'x-crossmesh-grpc-status';
export const GRPC_MESSAGE_HEADER = 'x-crossmesh-grpc-message';
