/**
 * The three PATCH bodies besides server-side apply, with Kubernetes' semantics:
 *
 * - `application/merge-patch+json`: RFC 7386 (objects merge, `null` deletes, lists are replaced);
 * - `application/json-patch+json`: RFC 6902, by fast-json-patch; a failed operation (a `test`
 *   that does not hold, a path that does not resolve) is 422 Invalid, as Kubernetes answers;
 * - `application/strategic-merge-patch+json` (core kinds only, as in Kubernetes): a merge patch
 *   whose lists merge by their `x-kubernetes-patch-merge-key` when their patch strategy is
 *   `merge` (Service `spec.ports` by `port`, ObjectMeta `ownerReferences` by `uid`, `finalizers`
 *   as a set), with the directives kubectl generates: `$patch: replace|delete|merge` (in a map
 *   or as a list item), `$retainKeys`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`.
 *   The list strategies are the ones the OpenAPI documents publish (api/jsonschema.ts
 *   `LIST_EXTENSIONS`, loaded on first use so a cluster that never gets a strategic patch does
 *   not load zod-to-json-schema), plus ObjectMeta's.
 */
import fastJsonPatch from 'fast-json-patch';
import { CrossmeshError } from '../errors.js';
import { isPlainObject } from '../api/meta.js';

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch; the document is not modified. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'a JSON patch (application/json-patch+json) must be a list of operations, e.g. [{"op":"replace","path":"/spec/x","value":1}]');
  }
  const problem = fastJsonPatch.validate(ops as fastJsonPatch.Operation[], doc as object);
  if (problem) throw jsonPatchError(problem, ops);
  try {
    return fastJsonPatch.applyPatch(doc, ops as fastJsonPatch.Operation[], true, false, true).newDocument;
  } catch (err) {
    throw jsonPatchError(err, ops);
  }
}

const JSON_PATCH_REASONS: Record<string, string> = {
  SEQUENCE_NOT_AN_ARRAY: 'the patch must be a list of operations',
  OPERATION_NOT_AN_OBJECT: 'an operation must be an object {op, path, ...}',
  OPERATION_OP_INVALID: 'op must be one of add, remove, replace, move, copy, test',
  OPERATION_PATH_INVALID: 'path must be a JSON pointer string such as "/spec/x"',
  OPERATION_FROM_REQUIRED: '"from" is required for move and copy',
  OPERATION_VALUE_REQUIRED: '"value" is required for add, replace and test',
  OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED: 'the value must be JSON',
  OPERATION_PATH_CANNOT_ADD: 'the path cannot be added to (its parent does not exist)',
  OPERATION_PATH_UNRESOLVABLE: 'the path does not exist in the object',
  OPERATION_FROM_UNRESOLVABLE: '"from" does not exist in the object',
  OPERATION_PATH_ILLEGAL_ARRAY_INDEX: 'the path has an illegal list index',
  OPERATION_VALUE_OUT_OF_BOUNDS: 'the list index is out of bounds',
  TEST_OPERATION_FAILED: 'test failed: the value at the path is not the given one',
};

function jsonPatchError(err: unknown, ops: unknown[]): CrossmeshError {
  const e = err as { name?: string; index?: number; message?: string };
  const name = e.name ?? '';
  const reason = JSON_PATCH_REASONS[name] ?? String(e.message ?? err).split('\n')[0];
  const op = typeof e.index === 'number' ? ops[e.index] : undefined;
  const where = typeof e.index === 'number' ? `operation ${e.index} (${JSON.stringify(op)})` : 'the patch';
  // A malformed patch is a bad request; one that does not apply to this object is Invalid (422).
  const code = name.startsWith('OPERATION_') && !['OPERATION_PATH_CANNOT_ADD', 'OPERATION_PATH_UNRESOLVABLE', 'OPERATION_FROM_UNRESOLVABLE', 'OPERATION_VALUE_OUT_OF_BOUNDS', 'OPERATION_PATH_ILLEGAL_ARRAY_INDEX'].includes(name) || name === 'SEQUENCE_NOT_AN_ARRAY'
    ? 'CM_ERR_BAD_REQUEST'
    : 'CM_ERR_INVALID';
  const path = isPlainObject(op) && typeof op.path === 'string' ? op.path : '';
  const message = `the JSON patch's ${where} failed: ${reason}`;
  return new CrossmeshError(code, message, code === 'CM_ERR_INVALID' ? { problems: [{ field: path, message: reason }], cause: err } : { cause: err });
}

// ---- strategic merge patch -------------------------------------------------------------

export interface ListStrategy {
  strategy?: 'merge' | 'replace' | 'retainKeys';
  mergeKey?: string;
}

/** Dotted field path (list items looked through) → the list's strategy. */
export type Strategies = (dotted: string) => ListStrategy | undefined;

/** ObjectMeta's lists, as Kubernetes declares them (patchStrategy=merge). */
const OBJECT_META_LISTS: Record<string, ListStrategy> = {
  'metadata.finalizers': { strategy: 'merge' },
  'metadata.ownerReferences': { strategy: 'merge', mergeKey: 'uid' },
};

let listExtensions: Promise<Readonly<Record<string, Readonly<Record<string, Record<string, unknown>>>>>> | undefined;

/** The list strategies of a kind: from the OpenAPI list extensions (loaded on first use) and ObjectMeta's. */
export async function strategiesFor(kind: string): Promise<Strategies> {
  listExtensions ??= import('../api/jsonschema.js').then((m) => m.LIST_EXTENSIONS);
  const ext = (await listExtensions)[kind] ?? {};
  return (dotted) => {
    if (OBJECT_META_LISTS[dotted]) return OBJECT_META_LISTS[dotted];
    const e = ext[dotted];
    if (!e) return undefined;
    const strategy = e['x-kubernetes-patch-strategy'];
    const mergeKey = e['x-kubernetes-patch-merge-key'];
    return {
      strategy: typeof strategy === 'string' && strategy.split(',').includes('merge') ? 'merge' : undefined,
      mergeKey: typeof mergeKey === 'string' ? mergeKey : undefined,
    };
  };
}

const DELETE = Symbol('delete');
const bad = (message: string) => new CrossmeshError('CM_ERR_BAD_REQUEST', message);

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Directives removed, recursively (for values that replace rather than merge). */
function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => !(isPlainObject(x) && x.$patch !== undefined && Object.keys(x).length === 1)).map(stripDirectives);
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    if (x === null) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}

/** Applies a strategic merge patch to `original` (not modified). */
export function strategicMergePatch(original: unknown, patch: unknown, strategies: Strategies): unknown {
  if (!isPlainObject(patch)) throw bad('a strategic merge patch must be a JSON object');
  const out = smpMap(isPlainObject(original) ? original : undefined, patch, '', strategies);
  return out === DELETE ? {} : out;
}

function smpMap(orig: Record<string, unknown> | undefined, patch: Record<string, unknown>, path: string, st: Strategies): Record<string, unknown> | typeof DELETE {
  const directive = patch.$patch;
  if (directive !== undefined) {
    if (directive === 'delete') return DELETE;
    if (directive === 'replace') return stripDirectives(patch) as Record<string, unknown>;
    if (directive !== 'merge') throw bad(`${path || 'the patch'}: unknown $patch directive ${JSON.stringify(directive)}: use replace, delete or merge`);
  }
  const out: Record<string, unknown> = orig ? { ...orig } : {};
  const orders: [string, unknown[]][] = [];
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys') continue;
    if (key.startsWith('$setElementOrder/')) {
      if (!Array.isArray(value)) throw bad(`${join(path, key)}: must be a list`);
      orders.push([key.slice('$setElementOrder/'.length), value]);
      continue;
    }
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      if (!Array.isArray(value)) throw bad(`${join(path, key)}: must be a list`);
      const cur = out[field];
      if (Array.isArray(cur)) out[field] = cur.filter((x) => !value.some((d) => deepEqual(d, x)));
      continue;
    }
    if (key.startsWith('$')) throw bad(`${join(path, key)}: unknown strategic merge patch directive`);
    if (value === null) {
      delete out[key];
    } else if (isPlainObject(value)) {
      const merged = smpMap(isPlainObject(out[key]) ? (out[key] as Record<string, unknown>) : undefined, value, join(path, key), st);
      if (merged === DELETE) delete out[key];
      else out[key] = merged;
    } else if (Array.isArray(value)) {
      out[key] = smpList(out[key], value, join(path, key), st);
    } else {
      out[key] = value;
    }
  }
  for (const [field, order] of orders) {
    const cur = out[field];
    if (Array.isArray(cur)) out[field] = applyOrder(cur, order, st(join(path, field))?.mergeKey);
  }
  const retain = patch.$retainKeys;
  if (retain !== undefined) {
    if (!Array.isArray(retain)) throw bad(`${join(path, '$retainKeys')}: must be a list of field names`);
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

function smpList(orig: unknown, patch: unknown[], path: string, st: Strategies): unknown[] {
  if (patch.some((x) => isPlainObject(x) && x.$patch === 'replace' && Object.keys(x).length === 1)) {
    return stripDirectives(patch.filter((x) => !(isPlainObject(x) && x.$patch === 'replace'))) as unknown[];
  }
  const s = st(path);
  if (s?.strategy !== 'merge') return stripDirectives(patch) as unknown[];
  const out = Array.isArray(orig) ? [...orig] : [];
  const key = s.mergeKey;
  if (!key) {
    // A set of primitives (finalizers): union, in order.
    for (const v of patch) if (!out.some((x) => deepEqual(x, v))) out.push(v);
    return out;
  }
  for (const item of patch) {
    if (!isPlainObject(item)) throw bad(`${path}: the items of this list merge by "${key}": each must be an object with "${key}"`);
    if (!(key in item)) throw bad(`${path}: an item has no "${key}", the key its list merges by`);
    const idx = out.findIndex((x) => isPlainObject(x) && deepEqual(x[key], item[key]));
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    const merged = smpMap(idx >= 0 ? (out[idx] as Record<string, unknown>) : undefined, item, path, st);
    if (merged === DELETE) {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = merged;
    else out.push(merged);
  }
  return out;
}

/** `$setElementOrder`: the listed items first, in that order; the others keep their relative order after them. */
function applyOrder(list: unknown[], order: unknown[], mergeKey: string | undefined): unknown[] {
  const keyOf = (x: unknown) => (mergeKey && isPlainObject(x) ? x[mergeKey] : x);
  const rank = (x: unknown) => {
    const i = order.findIndex((o) => deepEqual(keyOf(o), keyOf(x)));
    return i < 0 ? order.length : i;
  };
  return list.map((x, i) => ({ x, i, r: rank(x) })).sort((a, b) => a.r - b.r || a.i - b.i).map((e) => e.x);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isPlainObject(a)) {
    if (!isPlainObject(b)) return false;
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}
