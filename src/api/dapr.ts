/**
 * Dapr kinds (dapr.io/v1alpha1): Component, Resiliency and Configuration, and Subscription
 * (dapr.io/v2alpha1), with the fields Dapr's own operator reads. `auth` and `scopes` sit at the
 * top level beside `spec`, as Dapr writes them.
 */
import { parse as parseCel } from '@bufbuild/cel';
import { z } from 'zod';
import { type Check, duration, isPlainObject, nonEmptyString, objectSchema } from './meta.js';
import type { KubeObject } from './types.js';

const scopes = z.array(nonEmptyString).optional();

// ---- Component -------------------------------------------------------------------------

const COMPONENT_TYPE = /^[a-z]+\.[a-z0-9.-]+$/;

/** Dapr's DynamicValue: YAML numbers and booleans become their string form; objects their JSON. */
const dynamicValue = z.preprocess((v) => {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  if (v === null) return undefined;
  return v;
}, z.string().optional());

export const componentMetadataItemSchema = z
  .object({
    name: nonEmptyString,
    value: dynamicValue,
    // Dapr uses the secret's name as key when `key` is empty.
    secretKeyRef: z.object({ name: nonEmptyString, key: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();

export const componentSpecSchema = z
  .object({
    type: z
      .string()
      .refine((s) => COMPONENT_TYPE.test(s), 'must be a component type like "state.redis", "state.sqlite" or "state.in-memory"'),
    version: z.string().default('v1'),
    metadata: z.array(componentMetadataItemSchema).default([]),
    ignoreErrors: z.boolean().default(false),
    initTimeout: duration.optional(),
  })
  .passthrough();

export const checkComponent: Check = (o, add) => {
  const md = o?.spec?.metadata;
  if (!Array.isArray(md)) return;
  const seen = new Map<string, number>();
  md.forEach((m: any, i: number) => {
    if (!isPlainObject(m)) return;
    if (m.value !== undefined && m.value !== null && m.secretKeyRef !== undefined) {
      add(['spec', 'metadata', i], `"${m.name}" sets both value and secretKeyRef: keep one`);
    }
    if (typeof m.name === 'string') {
      const j = seen.get(m.name);
      if (j !== undefined) add(['spec', 'metadata', i, 'name'], `duplicate metadata item "${m.name}" (also spec.metadata[${j}])`);
      else seen.set(m.name, i);
    }
  });
};

export const componentSchema = objectSchema(
  'subdomain',
  {
    spec: componentSpecSchema,
    auth: z.object({ secretStore: nonEmptyString }).passthrough().optional(),
    scopes,
  },
  checkComponent,
);

// ---- Resiliency ------------------------------------------------------------------------

/** "429,500-599": codes or inclusive ranges, comma-separated (Dapr's matching syntax). */
function statusCodeList(min: number, max: number, what: string) {
  return z.string().superRefine((s, ctx) => {
    for (const raw of s.split(',')) {
      const item = raw.trim();
      const m = /^(\d+)(?:-(\d+))?$/.exec(item);
      const lo = m ? Number(m[1]) : NaN;
      const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
      if (!m || lo < min || hi > max || lo > hi) {
        ctx.addIssue({
          code: 'custom',
          message: `"${item}" is not a ${what} or range ${min}-${max}: write a comma-separated list like "${min === 100 ? '429,500-599' : '2,4,14'}"`,
        });
        return;
      }
    }
  });
}

const TRIP_VARS = ['requests', 'totalSuccesses', 'totalFailures', 'consecutiveSuccesses', 'consecutiveFailures'];
const TRIP_CLAUSE = new RegExp(`^\\s*(${TRIP_VARS.join('|')})\\s*(>=|<=|==|!=|>|<)\\s*\\d+\\s*$`);

/** A circuit breaker trip expression: comparisons of the breaker's counters joined by && / ||. */
const tripExpr = z.string().superRefine((s, ctx) => {
  const clauses = s.split(/&&|\|\|/);
  if (clauses.some((c) => !TRIP_CLAUSE.test(c))) {
    ctx.addIssue({
      code: 'custom',
      message: `"${s}" is not a trip expression: compare ${TRIP_VARS.join(', ')} with a number, e.g. "consecutiveFailures > 5" (clauses may be joined with && or ||)`,
    });
  }
});

export const retryPolicySchema = z
  .object({
    policy: z.enum(['constant', 'exponential']).default('constant'),
    duration: duration.optional(),
    maxInterval: duration.optional(),
    maxRetries: z.number().int().min(-1, 'must be -1 (unlimited) or more').optional(),
    matching: z
      .object({
        httpStatusCodes: statusCodeList(100, 599, 'HTTP status code').optional(),
        gRPCStatusCodes: statusCodeList(0, 16, 'gRPC status code').optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

export const circuitBreakerSchema = z
  .object({
    maxRequests: z.number().int().min(0).optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    trip: tripExpr.optional(),
  })
  .passthrough();

const policyRefs = z
  .object({ timeout: z.string().optional(), retry: z.string().optional(), circuitBreaker: z.string().optional() })
  .passthrough();

export const resiliencySpecSchema = z
  .object({
    policies: z
      .object({
        timeouts: z.record(duration).optional(),
        retries: z.record(retryPolicySchema).optional(),
        circuitBreakers: z.record(circuitBreakerSchema).optional(),
      })
      .passthrough()
      .default({}),
    targets: z
      .object({
        apps: z.record(policyRefs).optional(),
        components: z.record(z.object({ outbound: policyRefs.optional(), inbound: policyRefs.optional() }).passthrough()).optional(),
        actors: z.record(z.unknown()).optional(),
      })
      .passthrough()
      .default({}),
  })
  .passthrough();

const REF_KINDS = [
  ['timeout', 'timeouts', 'timeout'],
  ['retry', 'retries', 'retry'],
  ['circuitBreaker', 'circuitBreakers', 'circuit breaker'],
] as const;

/** Every policy a target names must be defined under spec.policies. */
export const checkResiliency: Check = (o, add) => {
  const spec = o?.spec;
  if (!isPlainObject(spec)) return;
  const policies = isPlainObject(spec.policies) ? spec.policies : {};
  const checkRefs = (refs: unknown, path: (string | number)[]) => {
    if (!isPlainObject(refs)) return;
    for (const [field, section, label] of REF_KINDS) {
      const name = refs[field];
      if (typeof name !== 'string') continue;
      const defined = isPlainObject(policies[section]) ? Object.keys(policies[section]) : [];
      if (!defined.includes(name)) {
        add(
          [...path, field],
          `names ${label} policy "${name}", which is not defined under spec.policies.${section} (${defined.length ? `defined: ${defined.join(', ')}` : 'none are defined'})`,
        );
      }
    }
  };
  const targets = isPlainObject(spec.targets) ? spec.targets : {};
  if (isPlainObject(targets.apps)) {
    for (const [app, refs] of Object.entries(targets.apps)) checkRefs(refs, ['spec', 'targets', 'apps', app]);
  }
  if (isPlainObject(targets.components)) {
    for (const [name, dirs] of Object.entries(targets.components)) {
      if (!isPlainObject(dirs)) continue;
      for (const dir of ['outbound', 'inbound']) checkRefs(dirs[dir], ['spec', 'targets', 'components', name, dir]);
    }
  }
};

export const resiliencySchema = objectSchema('subdomain', { spec: resiliencySpecSchema, scopes }, checkResiliency);

// ---- Configuration ---------------------------------------------------------------------

/**
 * Dapr's Configuration: crossmesh reads `spec.secrets.scopes` (the secrets API's allow/deny lists,
 * src/dapr/secret-scopes.ts) of the one a sidecar is started with (`crossmesh run --config NAME`);
 * the other sections (tracing, features, accessControl, ...) are kept as written and not acted on.
 */
export const secretsScopeSchema = z
  .object({
    storeName: nonEmptyString,
    // daprd compares with strings.EqualFold.
    defaultAccess: z.string().refine((s) => ['allow', 'deny'].includes(s.toLowerCase()), 'must be "allow" or "deny"').optional(),
    allowedSecrets: z.array(z.string()).optional(),
    deniedSecrets: z.array(z.string()).optional(),
  })
  .passthrough();

export const configurationSpecSchema = z
  .object({
    secrets: z.object({ scopes: z.array(secretsScopeSchema).optional() }).passthrough().optional(),
  })
  .passthrough()
  .default({});

export const checkConfiguration: Check = (o, add) => {
  const scopes = o?.spec?.secrets?.scopes;
  if (!Array.isArray(scopes)) return;
  const seen = new Map<string, number>();
  scopes.forEach((s: any, i: number) => {
    if (!isPlainObject(s) || typeof s.storeName !== 'string') return;
    const j = seen.get(s.storeName);
    if (j !== undefined) add(['spec', 'secrets', 'scopes', i, 'storeName'], `secret store "${s.storeName}" is scoped twice (also spec.secrets.scopes[${j}]): keep one entry per store`);
    else seen.set(s.storeName, i);
  });
};

export const configurationSchema = objectSchema('subdomain', { spec: configurationSpecSchema }, checkConfiguration);

// ---- Subscription ----------------------------------------------------------------------

/**
 * Dapr's declarative Subscription, stored as dapr.io/v2alpha1 (spec.routes.rules / default).
 * A dapr.io/v1alpha1 manifest (spec.route) is converted on the way in by crossmesh apply
 * (api/upgrade.ts upgradeSubscription): its route becomes routes.default, nothing else changes. Rule
 * expressions must parse as CEL (src/pubsub/routes.ts evaluates them).
 */
const routeRuleSchema = z.object({ match: nonEmptyString, path: nonEmptyString }).passthrough();
export const subscriptionSpecSchema = z
  .object({
    pubsubname: nonEmptyString,
    topic: nonEmptyString,
    routes: z.object({ rules: z.array(routeRuleSchema).optional(), default: z.string().optional() }).passthrough().optional(),
    deadLetterTopic: z.string().optional(),
    bulkSubscribe: z
      .object({ enabled: z.boolean().default(false), maxMessagesCount: z.number().int().positive().optional(), maxAwaitDurationMs: z.number().int().positive().optional() })
      .passthrough()
      .optional(),
    metadata: z.record(z.string()).optional(),
  })
  .passthrough();

export const checkSubscription: Check = (o, add) => {
  const spec = o?.spec;
  if (!isPlainObject(spec)) return;
  const routes = spec.routes;
  const rules = isPlainObject(routes) && Array.isArray(routes.rules) ? routes.rules : [];
  if (rules.length === 0 && !(isPlainObject(routes) && typeof routes.default === 'string' && routes.default !== '')) {
    add(['spec', 'routes'], 'has no route: give routes.default (the path events are POSTed to) or routes.rules');
  }
  rules.forEach((r: any, i: number) => {
    if (!isPlainObject(r) || typeof r.match !== 'string' || r.match.trim() === '') return;
    try {
      parseCel(r.match);
    } catch (err) {
      add(['spec', 'routes', 'rules', i, 'match'], `is not a CEL expression: ${(err as Error).message} (write e.g. event.type == "widget")`);
    }
  });
};

export const subscriptionSchema = objectSchema('subdomain', { spec: subscriptionSpecSchema, scopes }, checkSubscription);

// ---- types -----------------------------------------------------------------------------

export type ComponentMetadataItem = z.output<typeof componentMetadataItemSchema>;
export type ComponentSpec = z.output<typeof componentSpecSchema>;
export type RetryPolicy = z.output<typeof retryPolicySchema>;
export type CircuitBreakerPolicy = z.output<typeof circuitBreakerSchema>;
export type ResiliencySpec = z.output<typeof resiliencySpecSchema>;
export interface ComponentObject extends KubeObject {
  spec: ComponentSpec;
  auth?: { secretStore: string };
  scopes?: string[];
}
export type ConfigurationSpec = z.output<typeof configurationSpecSchema>;
export interface ConfigurationObject extends KubeObject {
  spec: ConfigurationSpec;
}
export interface ResiliencyObject extends KubeObject {
  spec: ResiliencySpec;
  scopes?: string[];
}
