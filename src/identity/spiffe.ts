/**
 * SPIFFE IDs: `spiffe://<trust-domain><path>`, per the SPIFFE ID spec (SPIFFE-ID.md §2): the
 * trust domain is lowercase `[a-z0-9._-]`, so no port, user info or upper case; the path is
 * `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`, no trailing `/`; no query
 * or fragment. crossmesh's workloads use one path form, `/ns/<namespace>/sa/<service-account>`,
 * both DNS labels as in Kubernetes. Parsing is by character class only (no URL parser): a URL
 * parser normalises (`%2e`, `..`, case), and an identity must be compared as the bytes it is.
 */
import { CrossmeshError } from '../errors.js';

export const SPIFFE_SCHEME_PREFIX = 'spiffe://';
/** The trust domain a mesh gets unless configured otherwise. */
export const DEFAULT_TRUST_DOMAIN = 'crossmesh.local';
/** The spec's limits: a trust domain of at most 255 bytes, an ID of at most 2048 bytes. */
const MAX_TRUST_DOMAIN_LENGTH = 255;
const MAX_ID_LENGTH = 2048;

const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const PATH_SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;
/** Kubernetes RFC 1123 label: what a namespace and a service account name are. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A parsed SPIFFE ID; `path` is `''` for a trust domain's own ID, else starts with `/`. */
export interface SpiffeId {
  trustDomain: string;
  path: string;
}

/** The identity of one crossmesh workload: `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

function invalid(value: string, why: string): CrossmeshError {
  // JSON.stringify so control characters and quotes in a hostile value show as escapes.
  return new CrossmeshError('CM_ERR_IDENTITY_INVALID', `invalid SPIFFE ID ${JSON.stringify(value.slice(0, 200))}: ${why}`);
}

/** Returns `td` if it is a valid trust domain name, else throws CM_ERR_IDENTITY_INVALID. */
export function validateTrustDomain(td: string): string {
  if (td === '') throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', 'invalid trust domain "": it is empty');
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) {
    throw new CrossmeshError('CM_ERR_IDENTITY_INVALID', `invalid trust domain: longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`);
  }
  if (!TRUST_DOMAIN_CHARS.test(td)) {
    throw new CrossmeshError(
      'CM_ERR_IDENTITY_INVALID',
      `invalid trust domain ${JSON.stringify(td.slice(0, 200))}: only lowercase letters, digits, '.', '-' and '_' are allowed (no port, user info or upper case)`,
    );
  }
  return td;
}

/** Parses any SPIFFE ID (throws CM_ERR_IDENTITY_INVALID naming what is wrong). */
export function parseSpiffeId(value: string): SpiffeId {
  if (value.length > MAX_ID_LENGTH) throw invalid(value, `longer than ${MAX_ID_LENGTH} characters`);
  if (!value.startsWith(SPIFFE_SCHEME_PREFIX)) throw invalid(value, `it must start with "${SPIFFE_SCHEME_PREFIX}" (lowercase)`);
  const rest = value.slice(SPIFFE_SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (trustDomain === '') throw invalid(value, 'the trust domain is empty');
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) throw invalid(value, `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`);
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    throw invalid(value, "the trust domain may hold only lowercase letters, digits, '.', '-' and '_' (no port, user info or upper case)");
  }
  if (path !== '') checkPath(value, path);
  return { trustDomain, path };
}

function checkPath(value: string, path: string): void {
  // path starts with '/'; split gives '' first, then the segments.
  const segments = path.split('/').slice(1);
  for (const seg of segments) {
    if (seg === '') throw invalid(value, 'the path has an empty segment (a "//" or a trailing "/")');
    if (seg === '.' || seg === '..') throw invalid(value, 'the path has a "." or ".." segment');
    if (!PATH_SEGMENT_CHARS.test(seg)) {
      throw invalid(value, "path segments may hold only letters, digits, '.', '-' and '_' (no query, fragment or percent-encoding)");
    }
  }
}

/** `spiffe://<trustDomain><path>`, after checking both (so a formatted ID always parses back). */
export function formatSpiffeId(id: SpiffeId): string {
  const value = `${SPIFFE_SCHEME_PREFIX}${id.trustDomain}${id.path}`;
  const parsed = parseSpiffeId(value);
  if (parsed.trustDomain !== id.trustDomain || parsed.path !== id.path) throw invalid(value, 'the trust domain holds a "/"');
  return value;
}

/** The trust domain's own SPIFFE ID (`spiffe://<td>`), carried by the mesh's CA certificates. */
export function trustDomainId(trustDomain: string): string {
  return `${SPIFFE_SCHEME_PREFIX}${validateTrustDomain(trustDomain)}`;
}

/** Parses a workload's SPIFFE ID (`.../ns/<ns>/sa/<sa>`); any other valid SPIFFE ID is refused too. */
export function parseWorkloadId(value: string): WorkloadIdentity {
  const { trustDomain, path } = parseSpiffeId(value);
  const segments = path.split('/').slice(1);
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    throw invalid(value, 'a crossmesh workload ID has the path /ns/<namespace>/sa/<service-account>');
  }
  const [, namespace, , serviceAccount] = segments;
  if (!DNS_LABEL.test(namespace)) throw invalid(value, `namespace "${namespace}" is not a DNS label (lowercase letters, digits and '-', at most 63)`);
  if (!DNS_LABEL.test(serviceAccount)) {
    throw invalid(value, `service account "${serviceAccount}" is not a DNS label (lowercase letters, digits and '-', at most 63)`);
  }
  return { trustDomain, namespace, serviceAccount };
}

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`, checked. */
export function formatWorkloadId(id: WorkloadIdentity): string {
  const value = `${SPIFFE_SCHEME_PREFIX}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
  const back = parseWorkloadId(value);
  if (back.trustDomain !== id.trustDomain || back.namespace !== id.namespace || back.serviceAccount !== id.serviceAccount) {
    throw invalid(value, 'a part holds a "/"');
  }
  return value;
}
