/**
 * crossmesh's resource model: one zod schema per kind (types, validation and defaults),
 * the kind registry, object validation and manifest parsing. Everything else imports the
 * API from here.
 */
export type { KubeObject, ObjectMeta, Condition, WatchEvent, WatchEventType } from './types.js';
export { KINDS, kindFor, kindForResource, resolveKindName, type KindInfo } from './kinds.js';
export { validateObject, formatPath } from './validate.js';
export { parseManifests, type ParsedDocument, type ManifestProblem } from './manifest.js';
export { parseGoDuration } from './duration.js';
export { isValidDnsLabel, isValidDnsSubdomain, isClusterKey } from './names.js';
export { clusterKeyOf } from './flomesh.js';
export { toMicroTime, type LeaseSpec, type LeaseObject } from './coordination.js';
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
