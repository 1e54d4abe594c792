/**
 * The API's wire format, shared by the server (src/apiserver/) and the client (src/client/) so
 * neither imports the other: the Kubernetes `Status` body every error travels as (and its
 * conversion from and back into a CrossmeshError), and the REST resource paths (parsed by the
 * server, built by the client).
 */
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { kindForResource, type KindInfo } from './kinds.js';

// ---- Status ------------------------------------------------------------------------------

/** A Kubernetes `Status` object (what every API error body is). */
export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  code: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { field: string; message: string; reason: string }[];
    /** crossmesh's stable error code, for scripts. */
    errorCode?: string;
  };
}

export function statusFromError(err: unknown): StatusObject {
  const e = toCrossmeshError(err);
  const causes = e.details.problems?.map((p) => ({ field: p.field, message: p.message, reason: p.reason ?? 'FieldValueInvalid' }));
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: e.message,
    reason: e.reason,
    code: e.status,
    details: { name: e.details.name, kind: e.details.kind, causes, errorCode: e.code },
  };
}

/** Turns a Status body received by a client back into the CrossmeshError it describes. */
export function errorFromStatus(httpStatus: number, body: unknown): CrossmeshError {
  const s = body as Partial<StatusObject> | undefined;
  const code = (s?.details?.errorCode as CrossmeshError['code'] | undefined) ?? codeForHttpStatus(httpStatus);
  const problems = s?.details?.causes?.map((c) => ({ field: c.field, message: c.message, ...(c.reason && c.reason !== 'FieldValueInvalid' ? { reason: c.reason } : {}) }));
  return new CrossmeshError(code, s?.message ?? `HTTP ${httpStatus}`, {
    name: s?.details?.name,
    kind: s?.details?.kind,
    problems,
  });
}

function codeForHttpStatus(status: number): CrossmeshError['code'] {
  switch (status) {
    case 400: return 'CM_ERR_BAD_REQUEST';
    case 401: return 'CM_ERR_UNAUTHORIZED';
    case 403: return 'CM_ERR_FORBIDDEN';
    case 404: return 'CM_ERR_NOT_FOUND';
    case 409: return 'CM_ERR_CONFLICT';
    case 410: return 'CM_ERR_GONE';
    case 413: return 'CM_ERR_TOO_LARGE';
    case 422: return 'CM_ERR_INVALID';
    case 503: return 'CM_ERR_UNAVAILABLE';
    default: return 'CM_ERR_INTERNAL';
  }
}

// ---- resource paths ----------------------------------------------------------------------

/** What a REST path addresses, after the kind is resolved. */
export interface ResourcePath {
  kind: KindInfo;
  /** Group and version as written in the URL (an alias group is kept, so replies echo it). */
  group: string;
  version: string;
  namespace?: string;
  name?: string;
  subresource?: 'status';
}

/**
 * Parses Kubernetes REST paths:
 *   /api/v1/[namespaces/{ns}/]{plural}[/{name}[/status]]
 *   /apis/{group}/{version}/[namespaces/{ns}/]{plural}[/{name}[/status]]
 * `namespaces` is itself a resource, so /api/v1/namespaces/{name}[/status] addresses a Namespace.
 * Returns undefined for paths that are not resource paths (discovery, health).
 */
export function parseResourcePath(pathname: string): ResourcePath | undefined {
  const segs = pathname.split('/').filter((s) => s.length > 0).map(decodeSegment);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) {
    group = '';
    version = segs[1];
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    group = segs[1];
    version = segs[2];
    rest = segs.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && rest[2] === 'status' && group === '')) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name, sub, ...extra] = rest;
  if (extra.length > 0 || (sub !== undefined && sub !== 'status')) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `the server could not find the requested resource (${pathname})`);
  }
  const kind = kindForResource(group, version, plural);
  if (!kind) {
    const gv = group ? `${group}/${version}` : version;
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `the server doesn't have a resource type "${plural}" in ${gv}`);
  }
  if (namespace !== undefined && !kind.namespaced) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `${kind.kind} is cluster-scoped: use ${group ? `/apis/${group}/${version}` : `/api/${version}`}/${plural} without a namespace`);
  }
  return { kind, group, version, namespace, name, subresource: sub as 'status' | undefined };
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `malformed percent-encoding in path segment "${s}"`);
  }
}

/** Builds the REST path for a kind (the client's side of the same mapping). */
export function resourcePath(kind: KindInfo, namespace?: string, name?: string, subresource?: 'status'): string {
  const base = kind.group ? `/apis/${kind.group}/${kind.version}` : `/api/${kind.version}`;
  let p = base;
  if (kind.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${kind.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}
