/**
 * The shared HTTP proxy core (h1/: the lean listener, upstream pools, the exchange): `forward()` one request to one
 * upstream origin over pooled keep-alive connections, with header hygiene and clear upstream
 * errors. Balancing, retries and outlier detection sit around it, in the caller.
 */
export { forward, sendError, defaultPools, type ForwardOptions, type ForwardResult } from './forward.js';
export { UpstreamRegistry, UpstreamPool, parseHostPort, type UpstreamTarget } from './h1/upstream.js';
export { H1Server, InboundRequest } from './h1/server.js';
export { proxy, type Upstream, type ProxyOptions } from './h1/proxy.js';
export { HOP_BY_HOP, connectionTokens, buildRequestHead, type RequestHeaderInput, type RequestHeadInput } from './headers.js';
export { isSafePath } from './paths.js';
export { refuseConnect } from './guards.js';
export { ensureTraceparent, newTraceparent, isValidTraceparent } from './trace.js';
