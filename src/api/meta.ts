/**
 * Building blocks every kind's schema is made of: metadata, ports, maps, durations, and the
 * envelope (`apiVersion`, `kind`, `metadata`, passthrough of everything else).
 *
 * Cross-field rules ("externalName required iff type is ExternalName") are written as a
 * `Check` over the raw object instead of inside zod, because zod stops refining an object
 * as soon as one of its fields has the wrong type, and we want to report EVERY problem at
 * once. The envelope runs the check as a refinement too, so a kind's `schema` alone is
 * complete; validate.ts also runs it on the raw input when zod gave up early.
 */
import { z } from 'zod';
import { parseGoDuration } from './duration.js';
import {
  DNS_LABEL_RULE,
  DNS_SUBDOMAIN_RULE,
  isLabelValue,
  isQualifiedName,
  isValidDnsLabel,
  isValidDnsSubdomain,
} from './names.js';

export type PathSeg = string | number;
export type AddProblem = (path: PathSeg[], message: string) => void;
/** A cross-field rule over the raw (possibly ill-typed) object: must be defensive about types. */
export type Check = (obj: any, add: AddProblem) => void;

export function isPlainObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const PORT_RULE = 'must be a port number from 1 to 65535';
export const portNumber = z.number().int().min(1, PORT_RULE).max(65535, PORT_RULE);
export const protocol = z.enum(['TCP', 'UDP', 'SCTP']).default('TCP');

/** A string → string map (labels, selectors, annotations, stringData). */
export const stringMap = z.record(z.string());

/** A Go duration string, kept as written (consumers call parseGoDuration). */
export const duration = z.string().superRefine((s, ctx) => {
  let ms: number;
  try {
    ms = parseGoDuration(s);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a duration like "5s", "1m30s", "500ms" or "1h": ${(err as Error).message}`,
    });
    return;
  }
  if (ms < 0) ctx.addIssue({ code: 'custom', message: `must not be negative (got "${s}")` });
});

export const nonEmptyString = z.string().min(1, 'must not be empty');

const labelMap = stringMap.superRefine((m, ctx) => {
  for (const [k, v] of Object.entries(m)) {
    if (!isQualifiedName(k)) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: `key "${k}" is not valid: must be [prefix/]name, name at most 63 characters of letters, digits, '-', '_', '.', starting and ending with a letter or digit; prefix a DNS subdomain`,
      });
    } else if (!isLabelValue(v)) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: `value "${v}" is not a valid label value: at most 63 characters of letters, digits, '-', '_', '.', starting and ending with a letter or digit (or empty)`,
      });
    }
  }
});

const annotationMap = stringMap.superRefine((m, ctx) => {
  for (const k of Object.keys(m)) {
    if (!isQualifiedName(k)) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: `key "${k}" is not valid: must be [prefix/]name, name at most 63 characters of letters, digits, '-', '_', '.'; prefix a DNS subdomain`,
      });
    }
  }
});

export type NameRule = 'label' | 'subdomain';

/** ObjectMeta. System fields are accepted and kept: the store sets them, clients echo them back. */
export function metadataSchema(nameRule: NameRule) {
  const name = z.string().superRefine((s, ctx) => {
    const ok = nameRule === 'label' ? isValidDnsLabel(s) : isValidDnsSubdomain(s);
    if (!ok) {
      ctx.addIssue({
        code: 'custom',
        message: `"${s}" is not a valid name: ${nameRule === 'label' ? DNS_LABEL_RULE : DNS_SUBDOMAIN_RULE}`,
      });
    }
  });
  return z
    .object({
      name,
      namespace: z
        .string()
        .superRefine((s, ctx) => {
          if (!isValidDnsLabel(s)) {
            ctx.addIssue({ code: 'custom', message: `"${s}" is not a valid namespace: ${DNS_LABEL_RULE}` });
          }
        })
        .optional(),
      labels: labelMap.optional(),
      annotations: annotationMap.optional(),
      resourceVersion: z.string().optional(),
      uid: z.string().optional(),
      // Go clients send the zero time as null (kubectl create: `creationTimestamp: null`).
      creationTimestamp: z.string().nullable().optional(),
      generation: z.number().int().min(0).optional(),
      deletionTimestamp: z.string().nullable().optional(),
      // The rest of Kubernetes' ObjectMeta: accepted as clients send them (the server keeps
      // managedFields itself, see apiserver/managed-fields.ts).
      generateName: z.string().optional(),
      selfLink: z.string().optional(),
      deletionGracePeriodSeconds: z.number().int().nullable().optional(),
      finalizers: z.array(z.string()).optional(),
      ownerReferences: z.array(z.object({}).passthrough()).optional(),
      managedFields: z.array(z.object({}).passthrough()).nullable().optional(),
    })
    .passthrough();
}

/**
 * The whole object: envelope + the kind's own top-level fields (`spec`, `data`, `subsets`...).
 * Unknown top-level fields are kept (passthrough); `status` is kept as is.
 */
export function objectSchema(nameRule: NameRule, shape: z.ZodRawShape, check?: Check): z.ZodTypeAny {
  const base = z
    .object({
      apiVersion: z.string(),
      kind: z.string(),
      metadata: metadataSchema(nameRule),
      ...shape,
      status: z.unknown().optional(),
    })
    .passthrough();
  if (!check) return base;
  return base.superRefine((obj, ctx) => check(obj, (path, message) => ctx.addIssue({ code: 'custom', path, message })));
}
