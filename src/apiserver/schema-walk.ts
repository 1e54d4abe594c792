/**
 * Walking a kind's zod schema (api/schemas.ts, the one source of validation) alongside a value:
 * which fields an object node declares (unknown-field detection for `fieldValidation`), what a
 * list item's field defaults to (list-map keys such as a Service port's `protocol`), whether a
 * node is a map (`z.record`, any value) or a struct. Wrappers (optional, default, effects,
 * pipelines, lazy) are looked through.
 */
import type { z } from 'zod';
import { isPlainObject } from '../api/meta.js';

type Def = { typeName?: string; [k: string]: any };

const defOf = (s: z.ZodTypeAny | undefined): Def => ((s as unknown as { _def?: Def })?._def ?? {});

/** The schema under wrappers that do not change the shape of the value. */
export function unwrap(s: z.ZodTypeAny | undefined): z.ZodTypeAny | undefined {
  let cur = s;
  for (let i = 0; i < 32 && cur; i++) {
    const d = defOf(cur);
    switch (d.typeName) {
      case 'ZodOptional':
      case 'ZodNullable':
      case 'ZodDefault':
      case 'ZodCatch':
      case 'ZodReadonly':
      case 'ZodBranded':
        cur = d.innerType ?? d.type;
        break;
      case 'ZodEffects':
        cur = d.schema;
        break;
      case 'ZodPipeline':
        cur = d.in;
        break;
      case 'ZodLazy':
        cur = d.getter();
        break;
      default:
        return cur;
    }
  }
  return cur;
}

export type NodeKind = 'struct' | 'map' | 'list' | 'any' | 'leaf';

export function nodeKind(s: z.ZodTypeAny | undefined): NodeKind {
  const u = unwrap(s);
  switch (defOf(u).typeName) {
    case 'ZodObject':
      return Object.keys(shapeOf(u!)).length === 0 ? 'any' : 'struct';
    case 'ZodRecord':
    case 'ZodMap':
      return 'map';
    case 'ZodArray':
      return 'list';
    case 'ZodUnknown':
    case 'ZodAny':
    case undefined:
      return 'any';
    case 'ZodUnion':
    case 'ZodDiscriminatedUnion':
    case 'ZodIntersection':
      return 'any';
    default:
      return 'leaf';
  }
}

function shapeOf(s: z.ZodTypeAny): Record<string, z.ZodTypeAny> {
  const d = defOf(s);
  return typeof d.shape === 'function' ? d.shape() : (d.shape ?? {});
}

/** The schema of field `key` of an object node (undefined: not declared, or the node takes any field). */
export function fieldSchema(s: z.ZodTypeAny | undefined, key: string): z.ZodTypeAny | undefined {
  const u = unwrap(s);
  const d = defOf(u);
  if (d.typeName === 'ZodObject') return shapeOf(u!)[key];
  if (d.typeName === 'ZodRecord') return d.valueType;
  return undefined;
}

/** The schema of a list's items. */
export function itemSchema(s: z.ZodTypeAny | undefined): z.ZodTypeAny | undefined {
  const u = unwrap(s);
  const d = defOf(u);
  return d.typeName === 'ZodArray' ? d.type : undefined;
}

/** A field's default (`.default()` in zod), if it has one. */
export function defaultOf(s: z.ZodTypeAny | undefined): unknown {
  let cur = s;
  for (let i = 0; i < 32 && cur; i++) {
    const d = defOf(cur);
    if (d.typeName === 'ZodDefault') return d.defaultValue();
    if (d.typeName === 'ZodOptional' || d.typeName === 'ZodNullable' || d.typeName === 'ZodReadonly') cur = d.innerType;
    else if (d.typeName === 'ZodEffects') cur = d.schema;
    else return undefined;
  }
  return undefined;
}

/** The schema node at a dotted field path (`spec.ports`: list items are looked through). */
export function schemaAt(root: z.ZodTypeAny, dotted: string): z.ZodTypeAny | undefined {
  let cur: z.ZodTypeAny | undefined = root;
  for (const part of dotted === '' ? [] : dotted.split('.')) {
    if (nodeKind(cur) === 'list') cur = itemSchema(cur);
    cur = fieldSchema(cur, part);
    if (!cur) return undefined;
  }
  return cur;
}

export type PathSeg = string | number;

/**
 * Paths of the fields of `value` that `schema` does not declare: object nodes with declared
 * fields know exactly those (a passthrough object keeps the others, but they are still unknown
 * to the API, as Kubernetes' strict decoding calls them); `z.record`, `z.unknown()` and objects
 * declared without fields take anything. Unions: the option that knows the most.
 */
export function unknownFields(schema: z.ZodTypeAny | undefined, value: unknown, path: PathSeg[] = [], out: PathSeg[][] = []): PathSeg[][] {
  const u = unwrap(schema);
  const d = defOf(u);
  switch (d.typeName) {
    case 'ZodObject': {
      if (!isPlainObject(value)) return out;
      const shape = shapeOf(u!);
      const open = Object.keys(shape).length === 0;
      for (const [k, v] of Object.entries(value)) {
        if (shape[k]) unknownFields(shape[k], v, [...path, k], out);
        else if (!open) out.push([...path, k]);
      }
      return out;
    }
    case 'ZodRecord':
      if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) unknownFields(d.valueType, v, [...path, k], out);
      return out;
    case 'ZodArray':
      if (Array.isArray(value)) value.forEach((v, i) => unknownFields(d.type, v, [...path, i], out));
      return out;
    case 'ZodUnion':
    case 'ZodDiscriminatedUnion': {
      const options: z.ZodTypeAny[] = Array.isArray(d.options) ? d.options : [...(d.options?.values?.() ?? [])];
      let best: PathSeg[][] | undefined;
      for (const o of options) {
        const kind = nodeKind(o);
        if (kind === 'leaf' || (kind === 'list') !== Array.isArray(value) || ((kind === 'struct' || kind === 'map') && !isPlainObject(value))) continue;
        const found = unknownFields(o, value, path, []);
        if (!best || found.length < best.length) best = found;
      }
      out.push(...(best ?? []));
      return out;
    }
    case 'ZodIntersection': {
      const left = unknownFields(d.left, value, path, []);
      const right = new Set(unknownFields(d.right, value, path, []).map((p) => JSON.stringify(p)));
      out.push(...left.filter((p) => right.has(JSON.stringify(p))));
      return out;
    }
    default:
      return out;
  }
}

/** Removes the field at `path` from `obj` (in place); missing parents are fine. */
export function deletePath(obj: unknown, path: readonly PathSeg[]): void {
  let cur: any = obj;
  for (let i = 0; i < path.length - 1; i++) {
    if (cur === null || typeof cur !== 'object') return;
    cur = cur[path[i] as any];
  }
  if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) delete cur[path[path.length - 1] as string];
}
