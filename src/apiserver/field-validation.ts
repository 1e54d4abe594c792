/**
 * What a write's body is checked against before it is stored, worded as Kubernetes words it:
 *
 * - unknown fields (fields the kind's zod schema does not declare; schema-walk.ts), per the
 *   request's `fieldValidation`: Strict → 400 `strict decoding error: unknown field "spec.foo"`;
 *   Warn (the default) → dropped, and a `Warning: 299 - "unknown field \"spec.foo\""` header;
 *   Ignore → dropped silently. Only fields the write introduces count: an unknown field the
 *   stored object already carries (written before this check existed) is left alone.
 * - the schema itself (api/validate.ts `checkObject`): 422 Invalid with Kubernetes' message
 *   `ServiceExport.flomesh.io "x" is invalid: spec.rules[0].portNumber: Invalid value: "x": ...`
 *   and one cause per problem (FieldValueRequired / FieldValueInvalid).
 */
import { CrossmeshError, type FieldProblem } from '../errors.js';
import { isPlainObject } from '../api/meta.js';
import type { KubeObject } from '../api/types.js';
import type { ResourcePath } from '../api/wire.js';
import { schemaFor } from '../api/schemas.js';
import { checkObject, envelopeProblems, formatPath, type PathProblem } from '../api/validate.js';
import { deletePath, unknownFields, type PathSeg } from './schema-walk.js';
import type { FieldValidation } from './write-options.js';

/** `ServiceExport.flomesh.io` / `Service`: how Kubernetes names a kind in its messages. */
export function qualifiedKind(p: ResourcePath): string {
  return p.group ? `${p.kind.kind}.${p.group}` : p.kind.kind;
}

/**
 * Fields of the built-in Kubernetes kinds that Kubernetes knows and crossmesh's zod schemas do
 * not model (they keep them, passthrough, but nothing reads them): known, so a manifest written
 * for Kubernetes (or `kubectl get -o yaml` of a real cluster's Service) applies under Strict as
 * it would there. Keyed by kind, then the dotted path of the object holding them.
 */
const KUBERNETES_FIELDS: Record<string, Record<string, string[]>> = {
  Service: {
    spec: [
      'sessionAffinity', 'sessionAffinityConfig', 'externalIPs', 'loadBalancerIP', 'loadBalancerSourceRanges', 'externalTrafficPolicy',
      'healthCheckNodePort', 'publishNotReadyAddresses', 'ipFamilies', 'ipFamilyPolicy', 'clusterIPs', 'allocateLoadBalancerNodePorts',
      'loadBalancerClass', 'internalTrafficPolicy', 'trafficDistribution',
    ],
  },
  ServiceAccount: { '': ['imagePullSecrets'] },
  Lease: { spec: ['preferredHolder', 'strategy'] },
};

function isKubernetesField(kind: string, path: PathSeg[]): boolean {
  const holder = path.slice(0, -1).filter((s) => typeof s === 'string').join('.');
  return KUBERNETES_FIELDS[kind]?.[holder]?.includes(String(path[path.length - 1])) ?? false;
}

/**
 * Applies the fieldValidation mode to `obj` (in place): returns the warnings to send, throws
 * in Strict mode. `live` is the stored object (its own unknown fields do not count).
 */
export function checkUnknownFields(p: ResourcePath, obj: KubeObject, live: KubeObject | undefined, mode: FieldValidation): string[] {
  const schema = schemaFor(p.kind);
  const known = new Set(live ? unknownFields(schema, live).map((x) => JSON.stringify(x)) : []);
  const found: PathSeg[][] = unknownFields(schema, obj).filter((x) => !known.has(JSON.stringify(x)) && !isKubernetesField(p.kind.kind, x));
  if (found.length === 0) return [];
  const names = found.map((x) => `unknown field ${JSON.stringify(formatPath(x))}`);
  if (mode === 'Strict') {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${p.kind.kind} in version "${p.version}" cannot be handled as a ${p.kind.kind}: strict decoding error: ${names.join(', ')}`, {
      kind: p.kind.kind,
      name: obj.metadata?.name,
      problems: found.map((x) => ({ field: formatPath(x), message: 'unknown field', reason: 'FieldValueInvalid' })),
    });
  }
  // deletePath only removes object keys, so list indexes of the other paths stay right.
  for (const x of found) deletePath(obj, x);
  return mode === 'Warn' ? names : [];
}

function valueAt(root: unknown, path: readonly PathSeg[]): unknown {
  let v: any = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[seg];
  }
  return v;
}

function describeProblem(input: unknown, pr: PathProblem): { text: string; reason: string } {
  const msg = pr.message.replace(/ \(got [^)]*\)$/, '');
  if (/^is required\b/.test(msg)) {
    const rest = msg.replace(/^is required[:,]?\s*/, '');
    return { text: rest ? `Required value: ${rest}` : 'Required value', reason: 'FieldValueRequired' };
  }
  const got = valueAt(input, pr.path);
  if (got === undefined || isPlainObject(got) || Array.isArray(got)) return { text: `Invalid value: ${msg}`, reason: 'FieldValueInvalid' };
  return { text: `Invalid value: ${JSON.stringify(got)}: ${msg}`, reason: 'FieldValueInvalid' };
}

/**
 * Validates (and defaults) a whole object for a write to `p`. Unknown and unsupported kinds keep
 * their CrossmeshError; field problems are one 422 Invalid listing all of them.
 */
export function validateForWrite(p: ResourcePath, body: KubeObject): KubeObject {
  const name = isPlainObject(body?.metadata) && typeof body.metadata.name === 'string' ? body.metadata.name : '';
  const env = envelopeProblems(body);
  const res = env.length ? { ok: false as const, problems: env } : checkObject(body);
  if (res.ok) {
    if (res.value.kind !== p.kind.kind) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the body is a ${res.value.kind} but the URL addresses ${p.kind.plural}`);
    }
    return res.value;
  }
  const problems: FieldProblem[] = [];
  const lines: string[] = [];
  for (const pr of res.problems) {
    const field = formatPath(pr.path);
    const d = describeProblem(body, pr);
    problems.push({ field, message: d.text, reason: d.reason });
    lines.push(field ? `${field}: ${d.text}` : d.text);
  }
  const list = lines.length === 1 ? lines[0] : `[${lines.join(', ')}]`;
  throw new CrossmeshError('CM_ERR_INVALID', `${qualifiedKind(p)} ${JSON.stringify(name)} is invalid: ${list}`, { kind: p.kind.kind, name, problems });
}
