/**
 * FSM multi-cluster kinds (flomesh.io/v1alpha1, also served as multicluster.flomesh.io):
 * Cluster, ServiceExport, ServiceImport, GlobalTrafficPolicy. Fields and defaults as in
 * fsm-classic; see shared/reference/fsm-multicluster.md.
 */
import safeRegex from 'safe-regex2';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CLUSTER_KEY_RULE, isClusterKey, isHostName, isIpAddress, isServiceAccountRule, SERVICE_ACCOUNT_RULE } from './names.js';
import { type Check, isPlainObject, nonEmptyString, objectSchema, portNumber, protocol } from './meta.js';
import type { KubeObject } from './types.js';

const clusterKey = z.string().refine(isClusterKey, CLUSTER_KEY_RULE);

// ---- Cluster ---------------------------------------------------------------------------

/** Only checks it looks like a kubeconfig; the controller reports connection problems in status. */
const kubeconfig = nonEmptyString.superRefine((s, ctx) => {
  let doc: unknown;
  try {
    doc = parseYaml(s);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: `is not a valid YAML document: ${(err as Error).message.split('\n')[0]}; paste the member's kubeconfig (\`crossmesh kubeconfig get NAME\`) as a block string (kubeconfig: |)`,
    });
    return;
  }
  if (!isPlainObject(doc) || !('clusters' in doc)) {
    ctx.addIssue({
      code: 'custom',
      message:
        "must be a kubeconfig document (a YAML mapping with clusters, users and contexts) reaching the member's API; get one with `crossmesh kubeconfig get NAME` and paste it as a block string (kubeconfig: |)",
    });
  }
});

export const clusterSpecSchema = z
  .object({
    region: z.string().default('default').describe('Region of the member cluster; the first part of its cluster key region/zone/group/name.'),
    zone: z.string().default('default').describe('Zone of the member cluster; the second part of its cluster key.'),
    group: z.string().default('default').describe('Group of the member cluster; the third part of its cluster key.'),
    gatewayHost: z.string().refine(isHostName, 'must be an IPv4 address or a DNS name the other clusters can reach').describe("Address (IPv4 or DNS name) at which the other clusters reach this member's gateway."),
    gatewayPort: portNumber.default(80).describe("Port of the member's gateway for HTTP ingress (exported paths)."),
    /**
     * crossmesh: the member gateway's mesh (tunnel) port, for sidecar-to-sidecar traffic. Absent:
     * other clusters' sidecars reach this one through its HTTP gateway port (L7).
     */
    meshPort: portNumber.optional().describe("Port of the member gateway's mesh tunnel (sidecar-to-sidecar traffic, mTLS end to end); absent: through gatewayPort."),
    kubeconfig: kubeconfig.describe("A kubeconfig document reaching the member's API; the control plane claims and watches the member with it."),
  })
  .passthrough();

export const clusterSchema = objectSchema('subdomain', { spec: clusterSpecSchema });

// clusterKeyOf lives in names.ts (no zod), re-exported here.
export { clusterKeyOf } from './names.js';

// ---- ServiceExport ---------------------------------------------------------------------

export const serviceExportRuleSchema = z
  .object({
    portNumber: portNumber.describe('A port of the Service named like this export whose traffic the rule exports.'),
    path: z.string().refine((p) => p.startsWith('/'), 'must start with "/", e.g. "/nodeapp"').describe("Path on the exporting cluster's gateway that reaches the port, e.g. /nodeapp."),
    pathType: z.enum(['Exact', 'Prefix']).default('Prefix').describe('How path matches a request path: Exact or Prefix (segment-wise).'),
  })
  .passthrough();

/** Longest pathRewrite.from accepted (a rewrite is a prefix pattern, not a program). */
const MAX_REGEX_LENGTH = 1024;

/**
 * A regex the gateway runs on every request path: it must compile, and it must not be able to
 * backtrack catastrophically (nested quantifiers such as `^(a+)+$` take exponential time on a
 * crafted path and would stall the gateway's event loop). safe-regex2 refuses star height > 1
 * and more than 25 repetitions.
 */
const regexSource = z.string().superRefine((s, ctx) => {
  try {
    new RegExp(s);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: `/${s}/ is not a valid regular expression: ${(err as Error).message}`,
    });
    return;
  }
  if (s.length > MAX_REGEX_LENGTH) {
    ctx.addIssue({ code: 'custom', message: `is ${s.length} characters long; at most ${MAX_REGEX_LENGTH} are allowed (a rewrite matches a path prefix such as "^/nodeapp/?")` });
  } else if (!safeRegex(s)) {
    ctx.addIssue({
      code: 'custom',
      message: `/${s}/ can backtrack catastrophically (a quantifier inside a repeated group, or more than 25 repetitions), which would let one crafted request path stall the gateway; rewrite it without nested repetition, e.g. "^(a+)+$" as "^a+$", or match the prefix only, e.g. "^/nodeapp/?"`,
    });
  }
});

export const serviceExportSpecSchema = z
  .object({
    rules: z.array(serviceExportRuleSchema).min(1, 'must list at least one rule {portNumber, path, pathType}').describe('The ports of the Service this cluster exports, each at a path of its gateway.'),
    pathRewrite: z
      .object({ from: regexSource.describe('Regular expression matched against the request path (compiled when applied; catastrophic backtracking refused).'), to: z.string().describe('Replacement for the match.') })
      .passthrough()
      .optional()
      .describe('Rewrites the request path before it reaches the Service, e.g. from ^/nodeapp/? to /.'),
    sessionSticky: z.boolean().default(false).describe('Keep a client on one endpoint with a cookie.'),
    loadBalancer: z
      .enum(['RoundRobinLoadBalancer', 'HashingLoadBalancer', 'LeastWorkLoadBalancer'])
      .default('RoundRobinLoadBalancer')
      .describe("How the gateway spreads requests over the Service's endpoints."),
    targetClusters: z.array(clusterKey).optional().describe('Cluster keys (region/zone/group/name) that may import this export; empty or absent: every member.'),
    serviceAccountName: z.string().refine(isServiceAccountRule, SERVICE_ACCOUNT_RULE).default('*').describe('Service account of the callers allowed; * allows any.'),
  })
  .passthrough();

export const checkServiceExport: Check = (o, add) => {
  const rules = o?.spec?.rules;
  if (!Array.isArray(rules)) return;
  const seen = new Map<string, number>();
  rules.forEach((r: any, i: number) => {
    if (!isPlainObject(r) || typeof r.path !== 'string') return;
    const key = `${r.pathType ?? 'Prefix'} ${r.path}`;
    const j = seen.get(key);
    if (j !== undefined) add(['spec', 'rules', i, 'path'], `duplicate rule: ${key} is already spec.rules[${j}]`);
    else seen.set(key, i);
  });
};

export const serviceExportSchema = objectSchema('subdomain', { spec: serviceExportSpecSchema }, checkServiceExport);

// ---- ServiceImport ---------------------------------------------------------------------

const importEndpointSchema = z
  .object({
    clusterKey,
    target: z
      .object({
        host: nonEmptyString,
        ip: z.string().refine((s) => s === '' || isIpAddress(s), 'must be an IPv4 or IPv6 address').optional(),
        port: portNumber,
        path: z.string().refine((p) => p.startsWith('/'), 'must start with "/"'),
        /** crossmesh: the exporting gateway's mesh (tunnel) port, when it has one. */
        meshPort: portNumber.optional(),
      })
      .passthrough(),
  })
  .passthrough();

export const serviceImportPortSchema = z
  .object({
    name: z.string().optional(),
    protocol,
    port: portNumber,
    endpoints: z.array(importEndpointSchema).default([]),
  })
  .passthrough();

export const serviceImportSpecSchema = z
  .object({
    type: z.enum(['ClusterSetIP', 'Headless']).default('ClusterSetIP').describe('ClusterSetIP or Headless, as the exporting Service.'),
    serviceAccountName: z.string().optional().describe("The exporter's allowed caller service account."),
    ports: z.array(serviceImportPortSchema).default([]).describe('Ports of the service across the cluster set, with the endpoints (exporting gateways) that serve each; written by the control plane.'),
  })
  .passthrough();

export const serviceImportSchema = objectSchema('subdomain', { spec: serviceImportSpecSchema.default({}) });

// ---- GlobalTrafficPolicy ---------------------------------------------------------------

export const gtpTargetSchema = z
  .object({
    clusterKey: clusterKey.describe('Cluster key (region/zone/group/name) of an exporting cluster.'),
    // Left undefined when not given: unset means 100 to the data plane, an explicit 0 stays 0.
    weight: z.number().int().min(0, 'must be 0 or more').optional().describe('ActiveActive: share of requests for this cluster (unset: 100; local endpoints weigh 100).'),
  })
  .passthrough();

export const globalTrafficPolicySpecSchema = z
  .object({
    lbType: z
      .enum(['Locality', 'FailOver', 'ActiveActive'])
      .default('Locality')
      .describe('Locality: local endpoints only; FailOver: local endpoints, the targets only when no local endpoint works; ActiveActive: local endpoints (weight 100) and the targets by weight (no targets: every exporter).'),
    targets: z.array(gtpTargetSchema).default([]).describe('Exporting clusters this policy may send to, by cluster key.'),
  })
  .passthrough();

export const checkGtp: Check = (o, add) => {
  const spec = o?.spec;
  if (!isPlainObject(spec)) return;
  const lbType = spec.lbType ?? 'Locality';
  const targets = spec.targets;
  const n = Array.isArray(targets) ? targets.length : targets === undefined ? 0 : -1;
  if (n < 0) return;
  if (lbType === 'Locality' && n > 1) {
    add(['spec', 'targets'], `lbType Locality allows at most 1 target (got ${n}); use lbType ActiveActive to spread calls over clusters or FailOver to fall back to them`);
  }
  if (lbType === 'FailOver' && n < 1) {
    add(['spec', 'targets'], 'lbType FailOver needs at least 1 target to fail over to, e.g. [{clusterKey: default/default/default/cluster-1}]');
  }
  if (Array.isArray(targets)) {
    const seen = new Map<string, number>();
    targets.forEach((t: any, i: number) => {
      if (!isPlainObject(t) || typeof t.clusterKey !== 'string') return;
      const j = seen.get(t.clusterKey);
      if (j !== undefined) add(['spec', 'targets', i, 'clusterKey'], `duplicate target "${t.clusterKey}" (also spec.targets[${j}])`);
      else seen.set(t.clusterKey, i);
    });
  }
};

export const globalTrafficPolicySchema = objectSchema('subdomain', { spec: globalTrafficPolicySpecSchema.default({}) }, checkGtp);

// ---- types -----------------------------------------------------------------------------

export type ClusterSpec = z.output<typeof clusterSpecSchema>;
export type ServiceExportRule = z.output<typeof serviceExportRuleSchema>;
export type ServiceExportSpec = z.output<typeof serviceExportSpecSchema>;
export type ServiceImportPort = z.output<typeof serviceImportPortSchema>;
export type ServiceImportSpec = z.output<typeof serviceImportSpecSchema>;
export type GtpTarget = z.output<typeof gtpTargetSchema>;
export type GlobalTrafficPolicySpec = z.output<typeof globalTrafficPolicySpecSchema>;
export interface ClusterObject extends KubeObject {
  spec: ClusterSpec;
}
export interface ServiceExportObject extends KubeObject {
  spec: ServiceExportSpec;
}
export interface ServiceImportObject extends KubeObject {
  spec: ServiceImportSpec;
}
export interface GlobalTrafficPolicyObject extends KubeObject {
  spec: GlobalTrafficPolicySpec;
}
