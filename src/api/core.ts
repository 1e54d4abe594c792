/**
 * Core v1 kinds crossmesh serves: Namespace, Service, Endpoints, Secret, ServiceAccount.
 * Field names, defaults and rules follow the Kubernetes API so manifests written for
 * Kubernetes apply unchanged.
 */
import { z } from 'zod';
import { DNS_SUBDOMAIN_RULE, isIanaSvcName, isIpAddress, isValidDnsLabel, isValidDnsSubdomain } from './names.js';
import { type Check, isPlainObject, objectSchema, portNumber, protocol, PORT_RULE, stringMap } from './meta.js';
import type { KubeObject } from './types.js';

// ---- Namespace -------------------------------------------------------------------------

export const namespaceSchema = objectSchema('label', { spec: z.object({}).passthrough().optional() });

// ---- Service ---------------------------------------------------------------------------

const TARGET_PORT_RULE = `${PORT_RULE}, or the name of a port of the app (at most 15 lowercase letters, digits and '-', with at least one letter)`;

export const servicePortSchema = z
  .object({
    name: z
      .string()
      .refine(isValidDnsLabel, 'must be a lowercase RFC 1123 label (lowercase letters, digits and \'-\', at most 63)')
      .optional(),
    protocol,
    port: portNumber,
    // int-or-string, like Kubernetes' IntOrString.
    targetPort: z
      .union([portNumber, z.string().refine(isIanaSvcName, TARGET_PORT_RULE)], {
        errorMap: () => ({ message: TARGET_PORT_RULE }),
      })
      .optional(),
    nodePort: portNumber.optional(),
    appProtocol: z.string().optional(),
  })
  .passthrough()
  // Kubernetes defaults targetPort to port on write; consumers can rely on it being set.
  .transform((p) => ({ ...p, targetPort: p.targetPort ?? p.port }));

export const serviceSpecSchema = z
  .object({
    type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).default('ClusterIP'),
    ports: z.array(servicePortSchema).optional(),
    selector: stringMap.optional(),
    clusterIP: z.string().optional(),
    externalName: z.string().optional(),
  })
  .passthrough();

export const checkService: Check = (o, add) => {
  const spec = o?.spec;
  if (!isPlainObject(spec)) return;
  const type = spec.type ?? 'ClusterIP';
  if (type === 'ExternalName') {
    if (spec.externalName === undefined || spec.externalName === '') {
      add(['spec', 'externalName'], 'is required when spec.type is ExternalName: set it to the DNS name this service stands for');
    } else if (typeof spec.externalName === 'string' && !isValidDnsSubdomain(spec.externalName)) {
      add(['spec', 'externalName'], `"${spec.externalName}" ${DNS_SUBDOMAIN_RULE}`);
    }
  } else if (type === 'ClusterIP' || type === 'NodePort' || type === 'LoadBalancer') {
    if (spec.externalName !== undefined && spec.externalName !== '') {
      add(['spec', 'externalName'], `is only allowed when spec.type is ExternalName (spec.type is ${type}); remove it or set spec.type: ExternalName`);
    }
    // Headless services (clusterIP: None) may have no ports, as in Kubernetes.
    const noPorts = spec.ports === undefined || (Array.isArray(spec.ports) && spec.ports.length === 0);
    if (noPorts && spec.clusterIP !== 'None') {
      add(['spec', 'ports'], 'is required: list at least one port, e.g. [{port: 80, targetPort: 8080}] (only ExternalName and headless services may have none)');
    }
  }
  if (Array.isArray(spec.ports) && spec.ports.length > 1) {
    const names = new Map<string, number>();
    const portProto = new Map<string, number>();
    spec.ports.forEach((p: any, i: number) => {
      if (!isPlainObject(p)) return;
      if (typeof p.name === 'string') {
        const j = names.get(p.name);
        if (j !== undefined) add(['spec', 'ports', i, 'name'], `duplicate port name "${p.name}" (also spec.ports[${j}].name): port names must be unique`);
        else names.set(p.name, i);
      }
      if (typeof p.port === 'number') {
        const key = `${p.port}/${p.protocol ?? 'TCP'}`;
        const j = portProto.get(key);
        if (j !== undefined) add(['spec', 'ports', i, 'port'], `duplicate port ${key} (also spec.ports[${j}])`);
        else portProto.set(key, i);
      }
    });
  }
};

export const serviceSchema = objectSchema('label', { spec: serviceSpecSchema }, checkService);

// ---- Endpoints -------------------------------------------------------------------------

const endpointAddressSchema = z
  .object({
    ip: z.string().refine(isIpAddress, 'must be an IPv4 or IPv6 address'),
    hostname: z.string().refine(isValidDnsLabel, 'must be a lowercase RFC 1123 label').optional(),
    nodeName: z.string().optional(),
    targetRef: z.object({}).passthrough().optional(),
  })
  .passthrough();

const endpointPortSchema = z
  .object({
    name: z.string().optional(),
    port: portNumber,
    protocol,
    appProtocol: z.string().optional(),
  })
  .passthrough();

export const endpointsSubsetSchema = z
  .object({
    addresses: z.array(endpointAddressSchema).optional(),
    notReadyAddresses: z.array(endpointAddressSchema).optional(),
    ports: z.array(endpointPortSchema).optional(),
  })
  .passthrough();

export const endpointsSchema = objectSchema('subdomain', { subsets: z.array(endpointsSubsetSchema).optional() });

// ---- Secret ----------------------------------------------------------------------------

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const SECRET_KEY_RULE = "must consist of letters, digits, '-', '_' or '.' (at most 253 characters)";

function secretKeys(m: Record<string, unknown>, ctx: z.RefinementCtx): void {
  for (const k of Object.keys(m)) {
    if (!SECRET_KEY.test(k) || k.length > 253) {
      ctx.addIssue({ code: 'custom', path: [k], message: `key "${k}" is not valid: ${SECRET_KEY_RULE}` });
    }
  }
}

export const secretSchema = objectSchema('subdomain', {
  type: z.string().default('Opaque'),
  data: z
    .record(
      z.string().refine((s) => BASE64.test(s), 'is not valid base64: data values must be base64-encoded (use stringData for plain text)'),
    )
    .superRefine(secretKeys)
    .optional(),
  stringData: stringMap.superRefine(secretKeys).optional(),
  immutable: z.boolean().optional(),
}).transform(normalizeSecret);

/** Kubernetes merges stringData into data (stringData wins) on write and never stores it. */
export function normalizeSecret(obj: Record<string, any>): Record<string, any> {
  if (obj.stringData === undefined) return obj;
  const { stringData, ...rest } = obj;
  const data: Record<string, string> = { ...(rest.data ?? {}) };
  for (const [k, v] of Object.entries(stringData as Record<string, string>)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  return { ...rest, data };
}

// ---- ServiceAccount --------------------------------------------------------------------

export const serviceAccountSchema = objectSchema('subdomain', {
  secrets: z.array(z.object({}).passthrough()).optional(),
  automountServiceAccountToken: z.boolean().optional(),
});

// ---- types -----------------------------------------------------------------------------
// Object types are interfaces extending KubeObject, not `KubeObject & {spec: T}`:
// KubeObject.spec is `any`, and `any & T` is `any`, which would erase T.

export type ServicePort = z.output<typeof servicePortSchema>;
export type ServiceSpec = z.output<typeof serviceSpecSchema>;
export type EndpointsSubset = z.output<typeof endpointsSubsetSchema>;
export interface ServiceObject extends KubeObject {
  spec: ServiceSpec;
}
export interface EndpointsObject extends KubeObject {
  subsets?: EndpointsSubset[];
}
export interface SecretObject extends KubeObject {
  type: string;
  data?: Record<string, string>;
  immutable?: boolean;
}
export type NamespaceObject = KubeObject;
export type ServiceAccountObject = KubeObject;
