import { CrossmeshError } from '../errors.js';
import type { KindInfo } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { compileFieldSelector } from './field-selectors.js';
import { decodeContinue, type ContinueToken } from './pagination.js';
import { compileLabelSelector } from './selectors.js';
import type { IncludeObject } from './table.js';

/**
 * The query of a list or watch, parsed and checked once, with Kubernetes' rules for which
 * combinations are allowed (apimachinery's ListOptions validation: 422 Invalid naming the field).
 */
export interface ListQuery {
  watch: boolean;
  /** Label and field selectors together; undefined = everything. */
  filter?: (o: KubeObject) => boolean;
  /** Only this name (fieldSelector metadata.name=x). */
  name?: string;
  resourceVersion?: string;
  resourceVersionMatch?: 'NotOlderThan' | 'Exact';
  limit?: number;
  continue?: ContinueToken;
  allowWatchBookmarks: boolean;
  sendInitialEvents?: boolean;
  timeoutSeconds?: number;
  includeObject: IncludeObject;
}

function invalid(problems: Array<{ field: string; message: string }>): CrossmeshError {
  const text = problems.map((p) => `${p.field}: ${p.message}`);
  const msg = `ListOptions.meta.k8s.io "" is invalid: ${text.length === 1 ? text[0] : `[${text.join(', ')}]`}`;
  return new CrossmeshError('CM_ERR_INVALID', msg, { kind: 'ListOptions', problems });
}

function bool(q: URLSearchParams, name: string): boolean | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${name}=${v}: not a boolean; use true or false`);
}

function int(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${name}=${v}: not an integer`);
  return Number(v);
}

export function parseListQuery(q: URLSearchParams, kind: KindInfo): ListQuery {
  const label = compileLabelSelector(q.get('labelSelector'));
  const field = compileFieldSelector(q.get('fieldSelector'), kind.kind);
  const filter = label && field ? (o: KubeObject) => field.matches(o) && label(o) : label ?? field?.matches;
  const watch = bool(q, 'watch') === true;
  const rv = q.get('resourceVersion') ?? undefined;
  const matchRaw = q.get('resourceVersionMatch') ?? '';
  const continueRaw = q.get('continue') ?? '';
  const sendInitialEvents = bool(q, 'sendInitialEvents');
  const includeRaw = q.get('includeObject') ?? 'Metadata';
  if (includeRaw !== 'None' && includeRaw !== 'Metadata' && includeRaw !== 'Object') {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `includeObject=${includeRaw} is not supported; use None, Metadata or Object`);
  }
  const problems: Array<{ field: string; message: string }> = [];
  const match = matchRaw === '' ? undefined : matchRaw;
  if (watch) {
    if (sendInitialEvents !== undefined && match !== 'NotOlderThan') {
      problems.push({ field: 'resourceVersionMatch', message: 'Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan' });
    }
    if (match !== undefined) {
      if (sendInitialEvents === undefined) problems.push({ field: 'resourceVersionMatch', message: 'Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided' });
      if (match !== 'NotOlderThan') problems.push({ field: 'resourceVersionMatch', message: `Unsupported value: "${match}": supported values: "NotOlderThan"` });
      if (continueRaw) problems.push({ field: 'resourceVersionMatch', message: 'Forbidden: resourceVersionMatch is forbidden when continue is provided' });
    }
  } else {
    if (match !== undefined) {
      if (!rv) problems.push({ field: 'resourceVersionMatch', message: 'Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided' });
      if (continueRaw) problems.push({ field: 'resourceVersionMatch', message: 'Forbidden: resourceVersionMatch is forbidden when continue is provided' });
      if (match !== 'Exact' && match !== 'NotOlderThan') problems.push({ field: 'resourceVersionMatch', message: `Unsupported value: "${match}": supported values: "Exact", "NotOlderThan", ""` });
      if (match === 'Exact' && rv === '0') problems.push({ field: 'resourceVersionMatch', message: 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"' });
    }
    if (sendInitialEvents !== undefined) problems.push({ field: 'sendInitialEvents', message: 'Forbidden: sendInitialEvents is forbidden for list' });
  }
  if (problems.length) throw invalid(problems);
  if (rv !== undefined && rv !== '' && !/^\d+$/.test(rv)) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `invalid resource version "${rv}": a resourceVersion is the number from a list's or an object's metadata.resourceVersion (0 = any)`);
  }
  let token: ContinueToken | undefined;
  if (continueRaw) {
    if (rv !== undefined && rv !== '' && rv !== '0') {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'specifying resource version is not allowed when using continue');
    }
    token = decodeContinue(continueRaw);
  }
  const limit = int(q, 'limit');
  const timeoutSeconds = int(q, 'timeoutSeconds');
  return {
    watch,
    filter,
    name: field?.name,
    resourceVersion: rv === '' ? undefined : rv,
    resourceVersionMatch: match as ListQuery['resourceVersionMatch'],
    limit: limit !== undefined && limit > 0 ? limit : undefined,
    continue: token,
    allowWatchBookmarks: bool(q, 'allowWatchBookmarks') === true,
    sendInitialEvents,
    timeoutSeconds: timeoutSeconds !== undefined && timeoutSeconds > 0 ? timeoutSeconds : undefined,
    includeObject: includeRaw,
  };
}
