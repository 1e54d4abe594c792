/**
 * Server-side apply (`PATCH` with `application/apply-patch+yaml`), as Kubernetes' structured
 * merge diff does it, over the field sets of managed-fields.ts:
 *
 * - the configuration is merged into the live object (maps merge, list-map items merge by key,
 *   sets union, atomic lists are replaced); a missing object is created from it;
 * - a field the configuration sets to another value than the live one, and that another manager
 *   owns, is a conflict: 409 `Apply failed with N conflict(s): conflict with "<manager>" using
 *   <apiVersion>: .spec.x`, each a cause with reason FieldManagerConflict; `force=true` takes the
 *   fields over instead;
 * - the same value is shared ownership, no conflict;
 * - fields the manager applied before and stops applying are removed, unless another manager
 *   owns them;
 * - the manager's Apply entry owns exactly the configuration's fields; its `time` changes only
 *   when that set does, so re-applying the same configuration changes nothing (no new
 *   resourceVersion).
 */
import { CrossmeshError, type FieldProblem } from '../errors.js';
import { isPlainObject } from '../api/meta.js';
import type { KubeObject } from '../api/types.js';
import {
  type FullMeta,
  type Managed,
  type TypeInfo,
  type WriteContext,
  dec,
  decodeManaged,
  encodeManaged,
  fieldSetOf,
  formatFieldPath,
  isValueLeaf,
  keyElement,
  nowSeconds,
  removeAt,
  sameEntry,
  setsEqual,
  valueAt,
} from './managed-fields.js';
import { deepEqual } from './patch.js';

const SEP = '\n';

function stripNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripNulls);
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = stripNulls(x);
  return out;
}

const join = (dotted: string, key: string) => (dotted === '' ? key : `${dotted}.${key}`);

/** The configuration merged into the live value. */
export function applyMerge(live: unknown, cfg: unknown, dotted: string, ti: TypeInfo): unknown {
  if (isPlainObject(cfg)) {
    const out: Record<string, unknown> = isPlainObject(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(cfg)) out[k] = applyMerge(out[k], v, join(dotted, k), ti);
    return out;
  }
  if (Array.isArray(cfg)) {
    const lt = ti.listType(dotted);
    if (!Array.isArray(live) || lt.type === 'atomic') return structuredClone(cfg);
    const out = [...live];
    if (lt.type === 'set') {
      for (const v of cfg) if (!out.some((x) => deepEqual(x, v))) out.push(v);
      return out;
    }
    for (const item of cfg) {
      const ke = keyElement(item, lt.keys, dotted, ti);
      const i = ke === undefined ? -1 : out.findIndex((x) => keyElement(x, lt.keys, dotted, ti) === ke);
      if (i >= 0) out[i] = applyMerge(out[i], item, dotted, ti);
      else out.push(structuredClone(item));
    }
    return out;
  }
  return cfg;
}

interface Conflict {
  entry: Managed;
  path: string[];
}

function managerLabel(e: Managed): string {
  let s = JSON.stringify(e.manager);
  if (e.subresource) s += ` with subresource ${JSON.stringify(e.subresource)}`;
  if (e.operation === 'Update') s += ` using ${e.apiVersion}`;
  return s;
}

export function conflictError(conflicts: Conflict[]): CrossmeshError {
  const problems: FieldProblem[] = conflicts.map((c) => ({ field: formatFieldPath(c.path), message: `conflict with ${managerLabel(c.entry)}`, reason: 'FieldManagerConflict' }));
  let message: string;
  if (conflicts.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${managerLabel(conflicts[0].entry)}: ${formatFieldPath(conflicts[0].path)}`;
  } else {
    const by = new Map<string, string[]>();
    for (const c of conflicts) {
      const label = managerLabel(c.entry);
      by.set(label, [...(by.get(label) ?? []), formatFieldPath(c.path)]);
    }
    const lines: string[] = [];
    for (const label of [...by.keys()].sort()) {
      lines.push(`conflicts with ${label}:`);
      for (const p of by.get(label)!) lines.push(`- ${p}`);
    }
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new CrossmeshError('CM_ERR_CONFLICT', message, { problems });
}

/**
 * The object an apply of `config` by `w.manager` makes of `live` (undefined: the object is
 * created), with its managedFields; throws the 409 conflict error unless `force`.
 */
export function serverSideApply(live: KubeObject | undefined, config: KubeObject, w: WriteContext & { force: boolean }): KubeObject {
  const requested = (config.metadata as FullMeta | undefined)?.managedFields;
  if (Array.isArray(requested) ? requested.length > 0 : requested !== undefined && requested !== null) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'metadata.managedFields must be nil in an apply configuration: the server keeps them');
  }
  const cfg = stripNulls(config) as KubeObject;
  if (cfg.metadata) delete (cfg.metadata as FullMeta).managedFields;
  // Only the part of the object the endpoint writes: status on /status, the rest elsewhere.
  let part: KubeObject;
  if (w.scope === 'status') part = { apiVersion: cfg.apiVersion, kind: cfg.kind, metadata: cfg.metadata, status: cfg.status } as KubeObject;
  else {
    part = { ...cfg };
    delete part.status;
  }
  const applied = fieldSetOf(part, w.ti, w.scope, false);
  const base = live ? decodeManaged((live.metadata as FullMeta).managedFields) : [];
  const me = { manager: w.manager, operation: 'Apply' as const, apiVersion: w.apiVersion, subresource: w.scope === 'status' ? 'status' : undefined };
  const merged = (live ? applyMerge(live, part, '', w.ti) : structuredClone(part)) as KubeObject;

  const conflicts: Conflict[] = [];
  if (live) {
    for (const e of base) {
      if (sameEntry(e, me)) continue;
      for (const p of applied) {
        if (!e.set.has(p)) continue;
        const path = dec(p);
        const before = valueAt(live, path, w.ti);
        const after = valueAt(merged, path, w.ti);
        if (before !== undefined && isValueLeaf(after, path, w.ti) && !deepEqual(before, after)) conflicts.push({ entry: e, path });
      }
    }
  }
  if (conflicts.length > 0) {
    if (!w.force) throw conflictError(conflicts);
    for (const c of conflicts) c.entry.set.delete(c.path.join(SEP));
  }

  const prev = base.find((e) => sameEntry(e, me));
  if (prev) {
    const others = base.filter((e) => !sameEntry(e, me));
    const ownedElsewhere = (p: string) =>
      others.some((e) => e.set.has(p) || [...e.set].some((q) => q.startsWith(p + SEP))) || [...applied].some((q) => q.startsWith(p + SEP));
    const gone = [...prev.set].filter((p) => !applied.has(p) && !ownedElsewhere(p)).sort((a, b) => a.length - b.length); // parents first: a removed item takes its fields with it
    const owned = (p: string) => applied.has(p) || others.some((e) => e.set.has(p));
    for (const p of gone) {
      removeAt(merged, dec(p), w.ti);
      // A map or list left empty by the removal goes too, unless someone owns it as such.
      for (let up = dec(p).slice(0, -1); up.length > 0; up = up.slice(0, -1)) {
        const v = valueAt(merged, up, w.ti);
        const empty = (isPlainObject(v) && Object.keys(v).length === 0) || (Array.isArray(v) && v.length === 0);
        if (!empty || owned(up.join(SEP)) || ownedElsewhere(up.join(SEP))) break;
        removeAt(merged, up, w.ti);
      }
    }
  }

  const entries = base.filter((e) => !sameEntry(e, me));
  const time = prev && setsEqual(prev.set, applied) && prev.apiVersion === w.apiVersion && prev.time ? prev.time : nowSeconds();
  const mine: Managed = { ...me, time, set: applied };
  // Kubernetes keeps an entry's place; a new one goes last.
  const at = base.findIndex((e) => sameEntry(e, me));
  if (at >= 0) entries.splice(Math.min(at, entries.length), 0, mine);
  else entries.push(mine);
  merged.metadata = { ...merged.metadata, managedFields: encodeManaged(entries) } as KubeObject['metadata'];
  return merged;
}
