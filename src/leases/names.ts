/**
 * Endpoint leases: how an app instance's endpoint stays registered only while its sidecar lives.
 *
 * A sidecar registers its app instance as one subset of the Endpoints object named after the
 * app id (address 127.0.0.1, `targetRef: {kind: 'Pod', name: <appId>-<instanceId>}`, port = its
 * inbound listener) and holds a Lease of the same name (`<appId>-<instanceId>`, label
 * `crossmesh.io/endpoints=<appId>`) that it renews every second. The cluster's LeaseController
 * removes the subset and the Lease when the Lease is not renewed within leaseDurationSeconds.
 */
import type { EndpointsSubset } from '../api/index.js';

export const ENDPOINTS_LABEL = 'crossmesh.io/endpoints';
export const INSTANCE_LABEL = 'crossmesh.io/instance';
export const LEASES_KEY = 'coordination.k8s.io/leases';
export const ENDPOINTS_KEY = 'core/endpoints';
/** Renew period of a sidecar's lease, and the duration it declares. */
export const RENEW_INTERVAL_MS = 1000;
export const LEASE_DURATION_SECONDS = 3;

/** Lease name = the "pod" name of the instance, used in the Endpoints' targetRef too. */
export function instancePodName(appId: string, instanceId: string): string {
  return `${appId}-${instanceId}`;
}

/** True when the subset belongs to the instance whose pod name is `podName`. */
export function subsetOf(subset: EndpointsSubset, podName: string): boolean {
  const refs = [...(subset.addresses ?? []), ...(subset.notReadyAddresses ?? [])];
  return refs.some((a) => (a.targetRef as { name?: unknown } | undefined)?.name === podName);
}

/** The subsets without those of `podName`; the same array when nothing was removed. */
export function withoutInstance(subsets: EndpointsSubset[] | undefined, podName: string): EndpointsSubset[] | undefined {
  if (!subsets) return subsets;
  const kept = subsets.filter((s) => !subsetOf(s, podName));
  return kept.length === subsets.length ? subsets : kept;
}
