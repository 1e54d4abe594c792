/**
 * The shared HTTP proxy core (gateway now, sidecar next): `forward()` one request to one
 * upstream origin over pooled keep-alive connections, with header hygiene and clear upstream
 * errors. Balancing, retries and outlier detection sit around it, in the caller.
 */
export { forward, sendError, classify, type ForwardOptions, type ForwardResult } from './forward.js';
export { PoolRegistry, defaultPools, originOf, type PoolOptions } from './pool.js';
export { HOP_BY_HOP, connectionTokens, upstreamRequestHeaders, downstreamResponseHeaders, type RequestHeaderInput, type UpstreamHeaders } from './headers.js';
export { isSafePath } from './paths.js';
export { refuseConnect } from './guards.js';
export { ensureTraceparent, newTraceparent, isValidTraceparent } from './trace.js';
