/**
 * crossmesh's resource model, the light part: types, the kind registry, names, durations. Loads
 * neither zod nor yaml, so the sidecar and the CLI's read commands can use it. Validation
 * (the zod schemas, validateObject) and manifest parsing (yaml) are in validation.ts, which
 * re-exports everything here too: import from there when you validate or parse.
 */
export type { KubeObject, ObjectMeta, Condition, WatchEvent, WatchEventType } from './types.js';
export { KINDS, kindFor, kindForResource, resolveKindName, type KindInfo } from './kinds.js';
export { parseGoDuration } from './duration.js';
export { isValidDnsLabel, isValidDnsSubdomain, isClusterKey } from './names.js';
export { clusterKeyOf } from './names.js';
export { toMicroTime } from './time.js';
export type { LeaseSpec, LeaseObject } from './coordination.js';
export type {
  ServicePort,
  ServiceSpec,
  EndpointsSubset,
  ServiceObject,
  EndpointsObject,
  SecretObject,
  NamespaceObject,
  ServiceAccountObject,
} from './core.js';
export type {
  ClusterSpec,
  ClusterObject,
  ServiceExportRule,
  ServiceExportSpec,
  ServiceExportObject,
  ServiceImportPort,
  ServiceImportSpec,
  ServiceImportObject,
  GtpTarget,
  GlobalTrafficPolicySpec,
  GlobalTrafficPolicyObject,
} from './flomesh.js';
export type {
  ComponentMetadataItem,
  ComponentSpec,
  ComponentObject,
  RetryPolicy,
  CircuitBreakerPolicy,
  ResiliencySpec,
  ResiliencyObject,
} from './dapr.js';
