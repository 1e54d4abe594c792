/**
 * Accept negotiation for reads, as Kubernetes does it: the client's media ranges in order, the
 * first one we can serve wins. `application/json;as=Table;g=meta.k8s.io;v=v1` (or v1beta1) =
 * a Table, `as=PartialObjectMetadata[List]` = metadata only, `application/json`, `application/*`
 * or `*\/*` (and no Accept) = the object as JSON; a range with an `as` we don't serve, or
 * another media type (protobuf, yaml), is skipped; nothing servable = 406. Parsed once per
 * distinct header (a small cache: clients send a handful of them).
 */
export type ReadFormat =
  | { as: 'json' }
  | { as: 'Table'; apiVersion: string }
  | { as: 'PartialObjectMetadata'; apiVersion: string }
  | { as: 'APIGroupDiscoveryList'; apiVersion: string; contentType: string };

export const ACCEPTED_READ_TYPES = 'application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io';

const JSON_FORMAT: ReadFormat = { as: 'json' };
const cache = new Map<string, ReadFormat | null>();
const CACHE_MAX = 64;

function parseRange(range: string): { type: string; params: Map<string, string> } {
  const [type, ...rest] = range.split(';');
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq > 0) params.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim().replace(/^"|"$/g, ''));
  }
  return { type: type.trim().toLowerCase(), params };
}

function formatOf(range: string): ReadFormat | null {
  const { type, params } = parseRange(range);
  if (type !== 'application/json' && type !== 'application/*' && type !== '*/*') return null;
  const as = params.get('as');
  if (as === undefined) return JSON_FORMAT;
  const g = params.get('g');
  const v = params.get('v');
  if (as === 'Table' && g === 'meta.k8s.io' && (v === 'v1' || v === 'v1beta1')) return { as: 'Table', apiVersion: `meta.k8s.io/${v}` };
  if ((as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') && g === 'meta.k8s.io' && (v === 'v1' || v === 'v1beta1')) {
    return { as: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${v}` };
  }
  if (as === 'APIGroupDiscoveryList' && g === 'apidiscovery.k8s.io' && (v === 'v2' || v === 'v2beta1')) {
    return { as: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${v}`, contentType: `application/json;g=apidiscovery.k8s.io;v=${v};as=APIGroupDiscoveryList` };
  }
  return null;
}

/** What a path serves: resources (JSON, Table, metadata) or the discovery roots (JSON, aggregated discovery). */
export type ReadContext = 'resource' | 'discovery';

function servable(f: ReadFormat, context: ReadContext): boolean {
  if (f.as === 'json') return true;
  return context === 'discovery' ? f.as === 'APIGroupDiscoveryList' : f.as !== 'APIGroupDiscoveryList';
}

/** The format to answer in; null = nothing in Accept is servable (406). */
export function negotiate(accept: string | undefined, context: ReadContext = 'resource'): ReadFormat | null {
  if (!accept || accept.trim() === '') return JSON_FORMAT;
  const key = `${context}\u0000${accept}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  let out: ReadFormat | null = null;
  for (const range of accept.split(',')) {
    const f = formatOf(range);
    if (f && servable(f, context)) {
      out = f;
      break;
    }
  }
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, out);
  return out;
}

/** The 406 Status body (Kubernetes' NotAcceptable). */
export function notAcceptable(accept: string, accepted = ACCEPTED_READ_TYPES): Record<string, unknown> {
  return {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', code: 406, reason: 'NotAcceptable',
    message: `only the following media types are accepted: ${accepted} (the request's Accept was "${accept}")`,
  };
}
