/**
 * Dapr state query over JSON values, evaluated in JS for every store that supports query
 * (memory, sqlite). Filter keys are dotted paths into the value (`person.org`); EQ/IN compare
 * JSON values structurally; AND/OR nest. Results are ordered by the sort keys, then by key, so
 * paging is stable; the page token is an opaque encoding of the offset.
 */
import { isDeepStrictEqual } from 'node:util';
import type { QueryFilter, QueryRequest, QueryResult } from './types.js';
import { badRequest } from './errors.js';

export interface QueryCandidate {
  key: string;
  data: Buffer;
  etag: string;
}

function lookup(value: unknown, path: string): unknown {
  let cur = value;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Validates the filter shape once, so a bad query fails even against an empty store. */
function compile(filter: QueryFilter): (value: unknown) => boolean {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) throw badRequest('query filter must be an object');
  const ops = Object.keys(filter);
  if (ops.length !== 1) throw badRequest(`query filter must have exactly one operator (EQ, IN, AND, OR), got ${ops.join(', ') || 'none'}`);
  const op = ops[0];
  const arg = (filter as Record<string, unknown>)[op];
  switch (op) {
    case 'EQ':
    case 'IN': {
      if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) throw badRequest(`query ${op} needs an object {path: value}`);
      const entries = Object.entries(arg as Record<string, unknown>);
      if (entries.length !== 1) throw badRequest(`query ${op} needs exactly one path`);
      const [path, want] = entries[0];
      if (op === 'EQ') return (v) => isDeepStrictEqual(lookup(v, path), want);
      if (!Array.isArray(want)) throw badRequest(`query IN.${path} needs an array`);
      return (v) => {
        const got = lookup(v, path);
        return want.some((w) => isDeepStrictEqual(got, w));
      };
    }
    case 'AND':
    case 'OR': {
      if (!Array.isArray(arg) || arg.length === 0) throw badRequest(`query ${op} needs a non-empty array of filters`);
      const parts = arg.map((f) => compile(f as QueryFilter));
      return op === 'AND' ? (v) => parts.every((p) => p(v)) : (v) => parts.some((p) => p(v));
    }
    default:
      throw badRequest(`unsupported query operator ${op} (supported: EQ, IN, AND, OR)`);
  }
}

const TYPE_RANK: Record<string, number> = { number: 0, string: 1, boolean: 2, object: 3, undefined: 4 };

/** Numbers before strings before the rest; missing values last (in both directions, as SQL NULLS LAST). */
function compareValues(a: unknown, b: unknown): number {
  const ta = TYPE_RANK[typeof a] ?? 3;
  const tb = TYPE_RANK[typeof b] ?? 3;
  if (ta !== tb) return ta - tb;
  if (typeof a === 'number' || typeof a === 'string' || typeof a === 'boolean') return a < (b as typeof a) ? -1 : a > (b as typeof a) ? 1 : 0;
  return 0;
}

export function encodeToken(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}

export function decodeToken(token: string | undefined): number {
  if (token === undefined || token === '') return 0;
  const m = /^o:(\d+)$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw badRequest(`invalid query page token ${JSON.stringify(token)}`);
  return Number(m[1]);
}

/** Evaluates a query over every candidate (callers pass only keys with the caller's prefix). */
export function runQuery(q: QueryRequest, candidates: Iterable<QueryCandidate>): QueryResult {
  const match = q.filter ? compile(q.filter) : () => true;
  const sort = q.sort ?? [];
  for (const s of sort) {
    if (typeof s?.key !== 'string' || s.key === '') throw badRequest('query sort needs a key');
    if (s.order !== undefined && s.order !== 'ASC' && s.order !== 'DESC') throw badRequest(`query sort order must be ASC or DESC, got ${String(s.order)}`);
  }
  const limit = q.page?.limit ?? 0;
  if (!Number.isInteger(limit) || limit < 0) throw badRequest(`query page limit must be a non-negative integer, got ${limit}`);
  const offset = decodeToken(q.page?.token);

  const rows: { c: QueryCandidate; value: unknown }[] = [];
  for (const c of candidates) {
    let value: unknown;
    try {
      value = JSON.parse(c.data.toString('utf8'));
    } catch {
      // Not JSON: only a filterless query can return it (there is nothing to compare).
      if (q.filter) continue;
      value = undefined;
    }
    if (match(value)) rows.push({ c, value });
  }
  rows.sort((x, y) => {
    for (const s of sort) {
      const a = lookup(x.value, s.key);
      const b = lookup(y.value, s.key);
      // Missing values stay last whatever the direction.
      if (a === undefined || b === undefined) {
        if (a !== b) return a === undefined ? 1 : -1;
        continue;
      }
      const d = compareValues(a, b);
      if (d !== 0) return s.order === 'DESC' ? -d : d;
    }
    return x.c.key < y.c.key ? -1 : x.c.key > y.c.key ? 1 : 0;
  });
  const end = limit > 0 ? offset + limit : rows.length;
  const page = rows.slice(offset, end).map((r) => ({ key: r.c.key, data: r.c.data, etag: r.c.etag }));
  return end < rows.length ? { results: page, token: encodeToken(end) } : { results: page };
}
