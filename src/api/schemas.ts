/**
 * Each kind's zod schema (validation and defaults) and cross-field check, by storage key. Kept
 * apart from the kind registry (kinds.ts) so looking a kind up does not load zod and the schemas.
 */
import type { z } from 'zod';
import { checkComponent, checkConfiguration, checkResiliency, checkSubscription, componentSchema, configurationSchema, resiliencySchema, subscriptionSchema } from './dapr.js';
import { leaseSchema } from './coordination.js';
import { checkService, endpointsSchema, namespaceSchema, secretSchema, serviceAccountSchema, serviceSchema } from './core.js';
import { checkGtp, checkServiceExport, clusterSchema, globalTrafficPolicySchema, serviceExportSchema, serviceImportSchema } from './flomesh.js';
import { KINDS, type KindInfo } from './kinds.js';
import type { Check } from './meta.js';

const BY_KIND: Record<string, { schema: z.ZodTypeAny; check?: Check }> = {
  Namespace: { schema: namespaceSchema },
  Service: { schema: serviceSchema, check: checkService },
  Endpoints: { schema: endpointsSchema },
  Secret: { schema: secretSchema },
  ServiceAccount: { schema: serviceAccountSchema },
  Cluster: { schema: clusterSchema },
  ServiceExport: { schema: serviceExportSchema, check: checkServiceExport },
  ServiceImport: { schema: serviceImportSchema },
  GlobalTrafficPolicy: { schema: globalTrafficPolicySchema, check: checkGtp },
  Component: { schema: componentSchema, check: checkComponent },
  Lease: { schema: leaseSchema },
  Resiliency: { schema: resiliencySchema, check: checkResiliency },
  Configuration: { schema: configurationSchema, check: checkConfiguration },
  Subscription: { schema: subscriptionSchema, check: checkSubscription },
};

const SCHEMAS = new Map(KINDS.map((k) => {
  const entry = BY_KIND[k.kind];
  if (!entry) throw new Error(`api/schemas.ts: kind ${k.kind} of the registry has no schema`);
  return [k.storageKey, entry] as const;
}));

/** Validates a whole object of this kind and applies defaults. */
export function schemaFor(info: KindInfo): z.ZodTypeAny {
  return SCHEMAS.get(info.storageKey)!.schema;
}

/** The cross-field check of a kind, if it has one (validate.ts runs it on raw input too). */
export function checkFor(info: KindInfo): Check | undefined {
  return SCHEMAS.get(info.storageKey)?.check;
}
