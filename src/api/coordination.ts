/**
 * coordination.k8s.io/v1 Lease: a holder's heartbeat. crossmesh sidecars hold one Lease per app
 * instance (named `<appId>-<instanceId>`, label `crossmesh.io/endpoints=<appId>`) and renew it
 * every second; the cluster's lease controller (src/leases/) removes the instance's endpoint
 * when the Lease is not renewed within leaseDurationSeconds. Fields follow Kubernetes.
 */
import { z } from 'zod';
import { objectSchema } from './meta.js';
import type { KubeObject } from './types.js';

// Kubernetes MicroTime: RFC 3339 with (up to micro-second) fractional seconds, e.g. 2024-05-01T10:00:00.123456Z.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const MICRO_TIME_RULE = 'must be an RFC 3339 time like "2024-05-01T10:00:00.000000Z"';

export const microTime = z.string().refine((s) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)), MICRO_TIME_RULE);

export const leaseSpecSchema = z
  .object({
    holderIdentity: z.string().optional(),
    leaseDurationSeconds: z.number().int().min(1, 'must be at least 1 (seconds)').optional(),
    acquireTime: microTime.optional(),
    renewTime: microTime.optional(),
    leaseTransitions: z.number().int().min(0, 'must not be negative').optional(),
  })
  .passthrough();

export const leaseSchema = objectSchema('subdomain', { spec: leaseSpecSchema.default({}) });

export type LeaseSpec = z.output<typeof leaseSpecSchema>;
export interface LeaseObject extends KubeObject {
  spec: LeaseSpec;
}

// toMicroTime lives in time.ts (no zod), re-exported here.
export { toMicroTime } from './time.js';
