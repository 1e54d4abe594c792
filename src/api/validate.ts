/**
 * Object validation: runs a kind's schema, turns zod's issues into FieldProblems with
 * Kubernetes-style field paths and messages that say what is expected and what was found,
 * and lists every problem at once.
 */
import { z } from 'zod';
import { CrossmeshError, type ErrorDetails, type FieldProblem } from '../errors.js';
import { kindFor, type KindInfo } from './kinds.js';
import { checkFor, schemaFor } from './schemas.js';
import { isPlainObject, type PathSeg } from './meta.js';
import type { KubeObject } from './types.js';

export interface PathProblem {
  path: PathSeg[];
  message: string;
}

/** `['spec','rules',0,'portNumber']` → `spec.rules[0].portNumber`; odd keys are quoted. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
};

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (isPlainObject(v)) return 'a mapping';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return JSON.stringify(v);
}

/** Messages for zod's built-in issues; `(got X)` is appended in toProblems from the input. */
const errorMap: z.ZodErrorMap = (issue, ctx) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.received === 'undefined') return { message: 'is required' };
      if (issue.expected === 'integer') return { message: 'must be an integer' };
      if (issue.expected === 'string' && (issue.received === 'number' || issue.received === 'boolean')) {
        return { message: 'must be a string: quote the value in YAML' };
      }
      return { message: `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}` };
    case 'invalid_enum_value':
      return { message: `must be one of ${issue.options.join(', ')}` };
    case 'too_small':
      if (issue.type === 'array') return { message: `must have at least ${issue.minimum} item(s)` };
      if (issue.type === 'string') return { message: issue.minimum === 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters` };
      return { message: `must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum}` };
    case 'too_big':
      if (issue.type === 'array') return { message: `must have at most ${issue.maximum} item(s)` };
      if (issue.type === 'string') return { message: `must be at most ${issue.maximum} characters` };
      return { message: `must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum}` };
    case 'invalid_union':
      return { message: ctx.defaultError === 'Invalid input' ? 'has the wrong type' : ctx.defaultError };
    default:
      return { message: ctx.defaultError };
  }
};

const SHOW_GOT = new Set(['invalid_type', 'invalid_enum_value', 'too_small', 'too_big', 'invalid_string', 'invalid_union', 'not_multiple_of']);

function valueAt(root: unknown, path: readonly PathSeg[]): unknown {
  let v: any = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[seg];
  }
  return v;
}

function toProblems(input: unknown, issues: z.ZodIssue[]): PathProblem[] {
  const out: PathProblem[] = [];
  for (const issue of issues) {
    let message = issue.message;
    const got = valueAt(input, issue.path);
    if (SHOW_GOT.has(issue.code) && got !== undefined && !message.includes('(got ')) {
      message += ` (got ${describe(got)})`;
    }
    out.push({ path: issue.path, message });
  }
  return out;
}

export type CheckResult =
  | { ok: true; info: KindInfo; value: KubeObject }
  | { ok: false; info: KindInfo; problems: PathProblem[] };

/**
 * Validates an object whose apiVersion/kind are known to resolve (kindFor throws otherwise).
 * Never throws for field problems: returns them all.
 */
export function checkObject(obj: Record<string, any>): CheckResult {
  const info = kindFor(obj.apiVersion, obj.kind);
  // Parse a deep copy: passthrough fields would otherwise be shared with the caller's object.
  const input = structuredClone(obj);
  const res = schemaFor(info).safeParse(input, { errorMap });
  if (res.success) {
    const value = res.data as KubeObject;
    // Cluster-scoped kinds have no namespace; Kubernetes drops one silently, so do we.
    if (!info.namespaced && value.metadata && 'namespace' in value.metadata) delete value.metadata.namespace;
    return { ok: true, info, value };
  }
  const problems = toProblems(input, res.error.issues);
  // zod skips cross-field refinements once a field has the wrong type; run them on the raw
  // input so every problem is reported at once.
  const check = checkFor(info);
  if (check) {
    check(obj, (path, message) => {
      if (!problems.some((p) => formatPath(p.path) === formatPath(path) && p.message === message)) problems.push({ path, message });
    });
  }
  return { ok: false, info, problems };
}

export function objectLabel(obj: unknown): string {
  const o = isPlainObject(obj) ? obj : {};
  const kind = typeof o.kind === 'string' && o.kind ? o.kind : '(no kind)';
  const name = isPlainObject(o.metadata) && typeof o.metadata.name === 'string' && o.metadata.name ? o.metadata.name : '(no name)';
  return `${kind}/${name}`;
}

export function whereLabel(where: { file?: string; document?: number; line?: number }): string {
  const parts: string[] = [];
  if (where.document !== undefined) parts.push(`document ${where.document}`);
  if (where.line !== undefined) parts.push(`(line ${where.line})`);
  const loc = parts.join(' ');
  if (where.file !== undefined) return loc ? `${where.file}: ${loc}, ` : `${where.file}: `;
  return loc ? `${loc}, ` : '';
}

/** apiVersion/kind present and strings: reported as ordinary field problems. */
export function envelopeProblems(obj: unknown): PathProblem[] {
  if (!isPlainObject(obj)) {
    return [{ path: [], message: `must be a mapping (a Kubernetes-style object with apiVersion, kind, metadata), got ${describe(obj)}` }];
  }
  const out: PathProblem[] = [];
  for (const f of ['apiVersion', 'kind'] as const) {
    if (obj[f] === undefined || obj[f] === null || obj[f] === '') {
      out.push({ path: [f], message: `is required${f === 'kind' ? ', e.g. kind: Service' : ', e.g. apiVersion: v1'}` });
    } else if (typeof obj[f] !== 'string') out.push({ path: [f], message: `must be a string (got ${describe(obj[f])})` });
  }
  return out;
}

/**
 * Validates one object and returns a NEW normalized object with defaults applied. Throws
 * CM_ERR_UNKNOWN_KIND / CM_ERR_UNSUPPORTED_KIND for kinds crossmesh does not serve, and
 * CM_ERR_INVALID listing every problem otherwise.
 */
export function validateObject(obj: unknown, where: { file?: string; document?: number; line?: number } = {}): KubeObject {
  const label = objectLabel(obj);
  const o = isPlainObject(obj) ? obj : {};
  const base: ErrorDetails = {
    ...where,
    kind: typeof o.kind === 'string' ? o.kind : undefined,
    name: isPlainObject(o.metadata) && typeof o.metadata.name === 'string' ? o.metadata.name : undefined,
  };
  const fail = (problems: PathProblem[]): never => {
    const fp: FieldProblem[] = problems.map((p) => ({ field: formatPath(p.path), message: p.message }));
    const lines = fp.map((p) => `${whereLabel(where)}${label}: ${p.field ? `${p.field}: ` : ''}${p.message}`);
    throw new CrossmeshError('CM_ERR_INVALID', lines.join('\n'), { ...base, problems: fp });
  };
  const env = envelopeProblems(obj);
  if (env.length) fail(env);
  let res: CheckResult;
  try {
    res = checkObject(o);
  } catch (err) {
    if (err instanceof CrossmeshError) {
      throw new CrossmeshError(err.code, `${whereLabel(where)}${label}: ${err.message}`, { ...base, ...err.details, ...where, cause: err });
    }
    throw err;
  }
  if (!res.ok) return fail(res.problems);
  return res.value;
}
