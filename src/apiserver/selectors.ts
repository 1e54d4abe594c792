import { CrossmeshError } from '../errors.js';
import type { KubeObject } from '../api/types.js';

/** One compiled requirement of an equality-based label selector. */
type Requirement =
  | { op: 'eq'; key: string; value: string }
  | { op: 'neq'; key: string; value: string }
  | { op: 'exists'; key: string }
  | { op: 'absent'; key: string };

export type LabelSelector = (obj: KubeObject) => boolean;

/**
 * Compiles a Kubernetes equality-based label selector (`app=node,tier!=db,canary,!legacy`)
 * once per request into a predicate. Set-based forms (`in`, `notin`) are refused clearly.
 */
export function compileLabelSelector(text: string | null): LabelSelector | undefined {
  if (!text) return undefined;
  const reqs: Requirement[] = text.split(',').map((raw) => {
    const part = raw.trim();
    if (/\s(in|notin)\s*\(/.test(part)) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `labelSelector: set-based requirement "${part}" is not supported; use key=value, key!=value, key or !key`);
    }
    let m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(part);
    if (m) return { op: 'neq', key: m[1], value: m[2] };
    m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(part);
    if (m) return { op: 'eq', key: m[1], value: m[2] };
    m = /^!([^=!\s]+)$/.exec(part);
    if (m) return { op: 'absent', key: m[1] };
    m = /^([^=!\s]+)$/.exec(part);
    if (m) return { op: 'exists', key: m[1] };
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `labelSelector: cannot parse requirement "${part}"`);
  });
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    for (const r of reqs) {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      switch (r.op) {
        case 'eq': if (labels[r.key] !== r.value) return false; break;
        case 'neq': if (has && labels[r.key] === r.value) return false; break;
        case 'exists': if (!has) return false; break;
        case 'absent': if (has) return false; break;
      }
    }
    return true;
  };
}
