/** The cluster gateway: routes from served ServiceExports, rewrite, balancing, proxying via src/proxy. */
export { Gateway, type GatewayOptions } from './gateway.js';
export { RouteTable, buildRouteTable, endpointAddresses, type Route, type Backend, type BuildInput } from './routes.js';
export { pick, lbOf, fnv1a, stickyValue, STICKY_COOKIE, Lb, type EndpointState } from './balancer.js';
export { isSafePath } from './paths.js';
