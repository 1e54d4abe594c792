/** Time formats of the API that need no schema (the sidecar renews its Lease with this). */

/** `Date` → Kubernetes MicroTime (micro-second precision, UTC). */
export function toMicroTime(d: Date = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
