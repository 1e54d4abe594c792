/**
 * User-Agents crossmesh's own clients send where the API tells them apart: the multicluster
 * control plane on its members' APIs (their `/metrics` count its requests and watch events apart,
 * apiserver/traffic.ts).
 */
export const CONTROL_PLANE_USER_AGENT = 'crossmesh-control-plane';
