/**
 * `metadata.managedFields`: which field manager owns which fields, as Kubernetes' structured
 * merge diff records them (`fieldsType: FieldsV1`, `fieldsV1` in the `f:`/`k:`/`v:` encoding).
 *
 * A field set is a set of paths; a path is a list of elements: `f:<field>`, `k:<json of the
 * list-map keys>` (an item of a list of type map, e.g. a Service port
 * `k:{"port":80,"protocol":"TCP"}`), `v:<json value>` (an item of a set). In `fieldsV1` a path
 * that is itself owned and has owned children carries `".": {}`.
 *
 * Every write records its manager: Update operations (create, replace, patch) own what they
 * added or changed and take it from the others; Apply operations (apply.ts) own exactly the
 * fields of their configuration. What counts: everything but apiVersion, kind, the system
 * fields of metadata (name, namespace, uid, resourceVersion, generation, creationTimestamp,
 * managedFields…) and status, which only the status subresource's writes own.
 *
 * List types come from the OpenAPI list extensions (api/jsonschema.ts `LIST_EXTENSIONS`:
 * `x-kubernetes-list-type` map/set/atomic, `x-kubernetes-list-map-keys`); every other list is
 * atomic, as Kubernetes treats lists of CRDs. Missing list-map key fields take their zod default
 * (a Service port's `protocol: TCP`).
 */
import type { z } from 'zod';
import { CrossmeshError } from '../errors.js';
import { isPlainObject } from '../api/meta.js';
import type { KindInfo } from '../api/index.js';
import type { KubeObject, ObjectMeta } from '../api/types.js';

/** ObjectMeta with the Kubernetes fields crossmesh's type leaves out. */
export type FullMeta = ObjectMeta & { managedFields?: unknown; generateName?: string };
import { schemaFor } from '../api/schemas.js';
import { deepEqual } from './patch.js';
import { defaultOf, fieldSchema, itemSchema, nodeKind, schemaAt } from './schema-walk.js';

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

/** An entry with its field set decoded. */
export interface Managed {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  subresource?: string;
  set: Set<string>;
}

const SEP = '\n';
export const enc = (path: readonly string[]): string => path.join(SEP);
export const dec = (p: string): string[] => (p === '' ? [] : p.split(SEP));

export type ListType = { type: 'map'; keys: string[] } | { type: 'set' } | { type: 'atomic' };

/** What the field-set computations need to know of a kind's schema. */
export interface TypeInfo {
  listType(dotted: string): ListType;
  /** A map (`z.record`, untyped): granular, owned itself when added. */
  isMap(dotted: string): boolean;
  keyDefault(dotted: string, key: string): unknown;
}

const META_LISTS: Record<string, ListType> = {
  'metadata.finalizers': { type: 'set' },
  'metadata.ownerReferences': { type: 'map', keys: ['uid'] },
};

let listExtensions: Promise<Readonly<Record<string, Readonly<Record<string, Record<string, unknown>>>>>> | undefined;
const typeInfos = new Map<string, TypeInfo>();

/** The kind's TypeInfo (the OpenAPI list extensions are loaded on first use). */
export async function typeInfoFor(info: KindInfo): Promise<TypeInfo> {
  const hit = typeInfos.get(info.storageKey);
  if (hit) return hit;
  listExtensions ??= import('../api/jsonschema.js').then((m) => m.LIST_EXTENSIONS);
  const ext = (await listExtensions)[info.kind] ?? {};
  const root = schemaFor(info);
  const ti: TypeInfo = {
    listType(dotted) {
      if (META_LISTS[dotted]) return META_LISTS[dotted];
      const e = ext[dotted];
      const t = e?.['x-kubernetes-list-type'];
      const keys = e?.['x-kubernetes-list-map-keys'];
      if (t === 'map' && Array.isArray(keys)) return { type: 'map', keys: keys as string[] };
      if (t === 'set') return { type: 'set' };
      return { type: 'atomic' };
    },
    isMap(dotted) {
      return dotted !== '' && nodeKind(schemaAt(root, dotted)) === 'map';
    },
    keyDefault(dotted, key) {
      return defaultOf(fieldSchema(itemSchema(schemaAt(root, dotted)) as z.ZodTypeAny, key));
    },
  };
  typeInfos.set(info.storageKey, ti);
  return ti;
}

const IGNORED_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']);

const join = (dotted: string, key: string) => (dotted === '' ? key : `${dotted}.${key}`);

/** The list-map key element of an item (`k:{"port":80,"protocol":"TCP"}`), or undefined when the item is not an object. */
export function keyElement(item: unknown, keys: string[], dotted: string, ti: TypeInfo): string | undefined {
  if (!isPlainObject(item)) return undefined;
  const k: Record<string, unknown> = {};
  for (const name of [...keys].sort()) {
    const v = item[name] ?? ti.keyDefault(dotted, name);
    if (v !== undefined) k[name] = v;
  }
  return `k:${JSON.stringify(k)}`;
}

/** Which part of the object a write's field set covers. */
export type Scope = 'main' | 'status';

/**
 * The field set of an object. `withMaps`: maps and non-atomic lists are members themselves
 * (Update operations own the maps they create); Apply sets own leaves and list items only.
 */
export function fieldSetOf(obj: KubeObject | Record<string, unknown> | undefined, ti: TypeInfo, scope: Scope, withMaps: boolean): Set<string> {
  const out = new Set<string>();
  if (!isPlainObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    if ((k === 'status') !== (scope === 'status')) continue;
    if (k === 'metadata') {
      if (scope === 'status' || !isPlainObject(v)) continue;
      for (const [mk, mv] of Object.entries(v)) {
        if (IGNORED_META.has(mk) || mv === null || mv === undefined) continue;
        collect(mv, `metadata.${mk}`, ['f:metadata', `f:${mk}`], out, ti, withMaps);
      }
      continue;
    }
    if (v === null || v === undefined) continue;
    collect(v, k, [`f:${k}`], out, ti, withMaps);
  }
  return out;
}

function collect(value: unknown, dotted: string, path: string[], out: Set<string>, ti: TypeInfo, withMaps: boolean): void {
  if (isPlainObject(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== null && value[k] !== undefined);
    if (keys.length === 0) {
      out.add(enc(path));
      return;
    }
    if (withMaps && ti.isMap(dotted)) out.add(enc(path));
    for (const k of keys) collect(value[k], join(dotted, k), [...path, `f:${k}`], out, ti, withMaps);
    return;
  }
  if (Array.isArray(value)) {
    const lt = ti.listType(dotted);
    if (lt.type === 'atomic') {
      out.add(enc(path));
      return;
    }
    if (withMaps) out.add(enc(path));
    for (const item of value) {
      if (lt.type === 'set') {
        out.add(enc([...path, `v:${JSON.stringify(item)}`]));
        continue;
      }
      const ke = keyElement(item, lt.keys, dotted, ti);
      if (!ke) continue;
      const ip = [...path, ke];
      out.add(enc(ip));
      for (const [f, fv] of Object.entries(item as Record<string, unknown>)) {
        if (fv === null || fv === undefined) continue;
        collect(fv, join(dotted, f), [...ip, `f:${f}`], out, ti, withMaps);
      }
    }
    return;
  }
  out.add(enc(path));
}

/** The dotted schema path of a field path (items looked through). */
export function dottedOf(path: readonly string[]): string {
  return path.filter((e) => e.startsWith('f:')).map((e) => e.slice(2)).join('.');
}

/** The value at a field path, `undefined` when absent. */
export function valueAt(obj: unknown, path: readonly string[], ti: TypeInfo): unknown {
  let cur: unknown = obj;
  const fields: string[] = [];
  for (const el of path) {
    if (el.startsWith('f:')) {
      if (!isPlainObject(cur)) return undefined;
      fields.push(el.slice(2));
      cur = cur[el.slice(2)];
    } else if (el.startsWith('k:')) {
      if (!Array.isArray(cur)) return undefined;
      const dotted = fields.join('.');
      const lt = ti.listType(dotted);
      if (lt.type !== 'map') return undefined;
      cur = cur.find((item) => keyElement(item, lt.keys, dotted, ti) === el);
    } else if (el.startsWith('v:')) {
      if (!Array.isArray(cur)) return undefined;
      const v = JSON.parse(el.slice(2));
      cur = cur.find((x) => deepEqual(x, v));
    } else {
      return undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** Whether the value at a path is a leaf whose value counts (not a map or a granular list, which own nothing by value). */
export function isValueLeaf(value: unknown, path: readonly string[], ti: TypeInfo): boolean {
  if (isPlainObject(value)) return Object.keys(value).length === 0;
  if (Array.isArray(value)) return ti.listType(dottedOf(path)).type === 'atomic';
  return true;
}

/** Removes the node at a field path from obj (in place). */
export function removeAt(obj: unknown, path: readonly string[], ti: TypeInfo): void {
  if (path.length === 0) return;
  const parent = path.length === 1 ? obj : valueAt(obj, path.slice(0, -1), ti);
  const last = path[path.length - 1];
  if (last.startsWith('f:')) {
    if (isPlainObject(parent)) delete parent[last.slice(2)];
  } else if (Array.isArray(parent)) {
    const target = valueAt(obj, path, ti);
    const i = parent.indexOf(target);
    if (i >= 0) parent.splice(i, 1);
  }
}

// ---- fieldsV1 encoding -----------------------------------------------------------------

export function toFieldsV1(set: Set<string>): Record<string, unknown> {
  const root: Record<string, any> = {};
  for (const p of set) {
    let node = root;
    for (const el of dec(p)) node = node[el] ??= {};
    node['.'] = node['.'] ?? true;
  }
  return finish(root) as Record<string, unknown>;
}

function finish(node: Record<string, any>): Record<string, unknown> {
  const own = node['.'] === true;
  const keys = Object.keys(node).filter((k) => k !== '.').sort();
  const out: Record<string, unknown> = {};
  if (own && keys.length > 0) out['.'] = {};
  for (const k of keys) out[k] = finish(node[k]);
  return out;
}

export function fromFieldsV1(v: unknown, prefix: string[] = [], out = new Set<string>()): Set<string> {
  if (!isPlainObject(v)) throw new Error('fieldsV1 must be an object');
  for (const [k, child] of Object.entries(v)) {
    if (k === '.') {
      out.add(enc(prefix));
      continue;
    }
    if (!/^[fkvi]:/.test(k)) throw new Error(`fieldsV1: ${JSON.stringify(k)} is not a field path element (f:, k:, v:, i:)`);
    if (!isPlainObject(child)) throw new Error(`fieldsV1: ${JSON.stringify(k)} must map to an object`);
    if (Object.keys(child).length === 0) out.add(enc([...prefix, k]));
    else fromFieldsV1(child, [...prefix, k], out);
  }
  return out;
}

/** Decodes managedFields (as stored, or as a client sent them); 422 on a malformed entry. */
export function decodeManaged(entries: unknown): Managed[] {
  if (entries === undefined || entries === null) return [];
  if (!Array.isArray(entries)) throw invalidManaged('', 'must be a list');
  return entries.map((e, i) => {
    const where = `[${i}]`;
    if (!isPlainObject(e)) throw invalidManaged(where, 'must be an object');
    if (typeof e.manager !== 'string') throw invalidManaged(`${where}.manager`, 'is required');
    if (e.operation !== 'Apply' && e.operation !== 'Update') throw invalidManaged(`${where}.operation`, 'must be Apply or Update');
    if (e.fieldsType !== undefined && e.fieldsType !== 'FieldsV1') throw invalidManaged(`${where}.fieldsType`, 'must be FieldsV1');
    let set: Set<string>;
    try {
      set = fromFieldsV1(e.fieldsV1 ?? {});
    } catch (err) {
      throw invalidManaged(`${where}.fieldsV1`, (err as Error).message);
    }
    return {
      manager: e.manager,
      operation: e.operation,
      apiVersion: typeof e.apiVersion === 'string' ? e.apiVersion : '',
      time: typeof e.time === 'string' ? e.time : undefined,
      subresource: typeof e.subresource === 'string' && e.subresource !== '' ? e.subresource : undefined,
      set,
    };
  });
}

function invalidManaged(where: string, message: string): CrossmeshError {
  const field = `metadata.managedFields${where}`;
  return new CrossmeshError('CM_ERR_INVALID', `${field}: ${message}`, { problems: [{ field, message }] });
}

export function encodeManaged(entries: Managed[]): ManagedFieldsEntry[] {
  return entries
    .filter((e) => e.set.size > 0)
    .map((e) => ({
      manager: e.manager,
      operation: e.operation,
      apiVersion: e.apiVersion,
      ...(e.time ? { time: e.time } : {}),
      fieldsType: 'FieldsV1' as const,
      fieldsV1: toFieldsV1(e.set),
      ...(e.subresource ? { subresource: e.subresource } : {}),
    }));
}

/** Kubernetes' entry identity: manager, operation, subresource, and the apiVersion of an Update. */
export function sameEntry(a: Pick<Managed, 'manager' | 'operation' | 'apiVersion' | 'subresource'>, b: Pick<Managed, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): boolean {
  return a.manager === b.manager && a.operation === b.operation && (a.subresource ?? '') === (b.subresource ?? '') && (a.operation === 'Apply' || a.apiVersion === b.apiVersion);
}

/** Kubernetes' time format for managedFields: RFC 3339 in seconds. */
export function nowSeconds(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

export interface WriteContext {
  manager: string;
  apiVersion: string;
  scope: Scope;
  ti: TypeInfo;
}

/**
 * The managed fields before a write: the live object's, unless the request carries other,
 * non-empty managedFields (a client may rewrite them, as kubectl does when it migrates
 * client-side apply ownership to server-side apply); `[{}]` resets them, `[]` or none keeps them.
 */
export function baseManaged(live: KubeObject | undefined, requested: unknown): Managed[] {
  const liveEntries = (live?.metadata as FullMeta | undefined)?.managedFields;
  if (Array.isArray(requested) && requested.length > 0 && !deepEqual(requested, liveEntries)) {
    if (requested.length === 1 && isPlainObject(requested[0]) && Object.keys(requested[0]).length === 0) return [];
    return decodeManaged(requested);
  }
  return decodeManaged(liveEntries);
}

/**
 * Records an Update operation (create, replace, patch): the manager owns what it added or
 * changed, the others lose it; removed fields leave every set.
 */
export function recordUpdate(live: KubeObject | undefined, next: KubeObject, base: Managed[], w: WriteContext): ManagedFieldsEntry[] {
  const before = fieldSetOf(live, w.ti, w.scope, true);
  const after = fieldSetOf(next, w.ti, w.scope, true);
  const changed = new Set<string>();
  const removed = new Set<string>();
  for (const p of after) {
    if (!before.has(p)) changed.add(p);
    else {
      const path = dec(p);
      const a = valueAt(live, path, w.ti);
      const b = valueAt(next, path, w.ti);
      if (isValueLeaf(b, path, w.ti) && !deepEqual(a, b)) changed.add(p);
    }
  }
  for (const p of before) if (!after.has(p)) removed.add(p);
  const subresource = w.scope === 'status' ? 'status' : undefined;
  const me = { manager: w.manager, operation: 'Update' as const, apiVersion: w.apiVersion, subresource };
  const entries = base.map((e) => ({ ...e, set: new Set(e.set) }));
  for (const e of entries) {
    if (sameEntry(e, me)) continue;
    for (const p of changed) e.set.delete(p);
    for (const p of removed) e.set.delete(p);
  }
  let mine = entries.find((e) => sameEntry(e, me));
  if (!mine && changed.size > 0) {
    mine = { ...me, set: new Set() };
    entries.push(mine);
  }
  if (mine) {
    const old = new Set(mine.set);
    for (const p of changed) mine.set.add(p);
    for (const p of removed) mine.set.delete(p);
    if (!setsEqual(old, mine.set) || !mine.time) mine.time = nowSeconds();
  }
  return encodeManaged(entries);
}

export function setsEqual(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** `.spec.ports[port=80,protocol="TCP"].targetPort`: a field path as Kubernetes prints it in conflicts. */
export function formatFieldPath(path: readonly string[]): string {
  let out = '';
  for (const el of path) {
    const body = el.slice(2);
    if (el.startsWith('f:')) out += `.${body}`;
    else if (el.startsWith('k:')) {
      const k = JSON.parse(body) as Record<string, unknown>;
      out += `[${Object.entries(k).map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(',')}]`;
    } else if (el.startsWith('v:')) out += `[=${body}]`;
    else out += `[${body}]`;
  }
  return out;
}
