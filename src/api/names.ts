/**
 * Name and address syntax shared by every kind. The rules are Kubernetes' own
 * (k8s.io/apimachinery/pkg/util/validation) so a manifest valid here is valid on a real API
 * server too — crossmesh's controllers are meant to run against one later.
 */
import { isIP, isIPv4 } from 'node:net';
import type { KubeObject } from './types.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** RFC 1123 label: Namespace and Service names (they become DNS labels: `svc.ns`). */
export function isValidDnsLabel(s: unknown): boolean {
  return typeof s === 'string' && s.length <= 63 && DNS_LABEL.test(s);
}

/** RFC 1123 subdomain: the default rule for object names. */
export function isValidDnsSubdomain(s: unknown): boolean {
  return typeof s === 'string' && s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

export const DNS_LABEL_RULE =
  "must be a lowercase RFC 1123 label: at most 63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. \"my-name\")";
export const DNS_SUBDOMAIN_RULE =
  "must be a lowercase RFC 1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (e.g. \"my-name\" or \"example.com\")";

/** Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain, name <= 63 chars. */
export function isQualifiedName(s: string): boolean {
  const parts = s.split('/');
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1];
  if (parts.length === 2 && (parts[0] === '' || !isValidDnsSubdomain(parts[0]))) return false;
  return name.length > 0 && name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

/** Label values: empty, or <= 63 chars of alnum, '-', '_', '.', alnum at both ends. */
export function isLabelValue(s: string): boolean {
  return s === '' || (s.length <= 63 && QUALIFIED_NAME_PART.test(s));
}

/** Named container ports (Service targetPort as a string): IANA service name syntax. */
export function isIanaSvcName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && !s.includes('--') && /[a-z]/.test(s);
}

export function isIpAddress(s: unknown): boolean {
  return typeof s === 'string' && isIP(s) !== 0;
}

/** Gateway hosts: an IPv4 address or a DNS name (case-insensitive, as DNS is). */
export function isHostName(s: unknown): boolean {
  return typeof s === 'string' && (isIPv4(s) || isValidDnsSubdomain(s.toLowerCase()));
}

/** `region/zone/group/cluster`, the key FSM uses for a member cluster. */
export function isClusterKey(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  const parts = s.split('/');
  return parts.length === 4 && parts.every((p) => p !== '' && !/\s/.test(p));
}
export const CLUSTER_KEY_RULE = 'must be region/zone/group/cluster, e.g. "default/default/default/cluster-1"';

/** `region/zone/group/name`, with 'default' for unset parts, as FSM computes it. */
export function clusterKeyOf(cluster: KubeObject): string {
  const spec = typeof cluster.spec === 'object' && cluster.spec !== null && !Array.isArray(cluster.spec) ? (cluster.spec as Record<string, unknown>) : {};
  const part = (v: unknown) => (typeof v === 'string' && v !== '' ? v : 'default');
  return `${part(spec.region)}/${part(spec.zone)}/${part(spec.group)}/${cluster.metadata.name}`;
}

/**
 * `ServiceExport.spec.serviceAccountName`: who may call an exported service from other clusters.
 * `*` = any mesh identity; `name` = that service account in any namespace of any member;
 * `namespace/name` = only that one. Names are DNS labels because they become SPIFFE ID segments.
 */
export function isServiceAccountRule(s: unknown): boolean {
  if (s === '*') return true;
  if (typeof s !== 'string') return false;
  const parts = s.split('/');
  return parts.length <= 2 && parts.every(isValidDnsLabel);
}

export const SERVICE_ACCOUNT_RULE =
  'must be "*" (any mesh identity), a service account name (e.g. "curl") or namespace/name (e.g. "curl/curl"), each a lowercase RFC 1123 label';
