import { CrossmeshError } from '../errors.js';
import type { KubeObject } from '../api/types.js';

/** One compiled requirement of a label selector. */
type Requirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: Set<string> }
  | { op: 'exists' | 'absent'; key: string }
  | { op: 'gt' | 'lt'; key: string; value: number };

export type LabelSelector = (obj: KubeObject) => boolean;

// A label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
const KEY = /^(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function bad(text: string, why: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_BAD_REQUEST', `unable to parse requirement: labelSelector "${text}": ${why}; use key=value, key!=value, key in (a,b), key notin (a,b), key or !key, separated by commas`);
}

/** Splits on commas outside parentheses. */
function splitTerms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function checkKey(text: string, key: string): string {
  if (!KEY.test(key)) throw bad(text, `"${key}" is not a valid label key (alphanumerics, '-', '_', '.', at most 63, with an optional DNS prefix and '/')`);
  return key;
}

function checkValue(text: string, value: string): string {
  if (!VALUE.test(value)) throw bad(text, `"${value}" is not a valid label value (at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric)`);
  return value;
}

/**
 * Compiles a Kubernetes label selector, equality- and set-based (`app=node,tier!=db,env in
 * (a,b),track notin (x),canary,!legacy`, also `key>N` / `key<N`), once per request into a
 * predicate. A malformed one is a 400 naming the term and the accepted forms.
 */
export function compileLabelSelector(text: string | null): LabelSelector | undefined {
  if (!text || text.trim() === '') return undefined;
  const reqs: Requirement[] = splitTerms(text).map((raw): Requirement => {
    const part = raw.trim();
    if (part === '') throw bad(text, 'an empty requirement');
    let m = /^(\S+?)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part);
    if (m) {
      const values = m[3].split(',').map((v) => checkValue(text, v.trim()));
      return { op: m[2] as 'in' | 'notin', key: checkKey(text, m[1]), values: new Set(values) };
    }
    if (/\s(in|notin)\b/.test(part)) throw bad(text, `"${part}": a set needs parentheses, e.g. env in (prod,dev)`);
    m = /^([^=!<>\s]+)\s*!=\s*(\S*)$/.exec(part);
    if (m) return { op: 'neq', key: checkKey(text, m[1]), value: checkValue(text, m[2]) };
    m = /^([^=!<>\s]+)\s*==?\s*(\S*)$/.exec(part);
    if (m) return { op: 'eq', key: checkKey(text, m[1]), value: checkValue(text, m[2]) };
    m = /^([^=!<>\s]+)\s*([<>])\s*(-?\d+)$/.exec(part);
    if (m) return { op: m[2] === '>' ? 'gt' : 'lt', key: checkKey(text, m[1]), value: Number(m[3]) };
    m = /^!\s*([^=!<>\s]+)$/.exec(part);
    if (m) return { op: 'absent', key: checkKey(text, m[1]) };
    m = /^([^=!<>\s]+)$/.exec(part);
    if (m) return { op: 'exists', key: checkKey(text, m[1]) };
    throw bad(text, `cannot read "${part}"`);
  });
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    for (const r of reqs) {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case 'eq': if (!has || v !== r.value) return false; break;
        case 'neq': if (has && v === r.value) return false; break;
        case 'in': if (!has || !r.values.has(v)) return false; break;
        case 'notin': if (has && r.values.has(v)) return false; break;
        case 'exists': if (!has) return false; break;
        case 'absent': if (has) return false; break;
        case 'gt': if (!has || !/^-?\d+$/.test(v) || !(Number(v) > r.value)) return false; break;
        case 'lt': if (!has || !/^-?\d+$/.test(v) || !(Number(v) < r.value)) return false; break;
      }
    }
    return true;
  };
}
