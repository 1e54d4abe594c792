import { CrossmeshError } from '../errors.js';

/**
 * The simple JSONPaths of printer columns (what CRD additionalPrinterColumns allow): fields
 * `.a.b`, indexes `[0]`, wildcards `[*]` and equality filters `[?(@.type=="Valid")]`, compiled
 * once into steps; evaluating one is a walk, no parsing.
 */
type Step =
  | { op: 'field'; name: string }
  | { op: 'index'; index: number }
  | { op: 'all' }
  | { op: 'filter'; path: string[]; value: string };

export type CompiledPath = (obj: unknown) => unknown[];

export function compileJsonPath(path: string): CompiledPath {
  const steps: Step[] = [];
  let rest = path.trim();
  if (rest.startsWith('{') && rest.endsWith('}')) rest = rest.slice(1, -1);
  if (rest.startsWith('$')) rest = rest.slice(1);
  while (rest.length > 0) {
    let m: RegExpExecArray | null;
    if ((m = /^\.([A-Za-z0-9_-]+)/.exec(rest))) steps.push({ op: 'field', name: m[1] });
    else if ((m = /^\[(\d+)\]/.exec(rest))) steps.push({ op: 'index', index: Number(m[1]) });
    else if ((m = /^\[\*\]/.exec(rest))) steps.push({ op: 'all' });
    else if ((m = /^\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*==\s*(?:"([^"]*)"|'([^']*)')\)\]/.exec(rest))) {
      steps.push({ op: 'filter', path: m[1].slice(1).split('.'), value: m[2] ?? m[3] });
    } else {
      throw new CrossmeshError('CM_ERR_CONFIG', `printer column JSONPath "${path}": cannot read "${rest}" (only .field, [n], [*] and [?(@.field=="value")] are supported)`);
    }
    rest = rest.slice(m[0].length);
  }
  return (obj) => {
    let cur: unknown[] = [obj];
    for (const s of steps) {
      const next: unknown[] = [];
      for (const v of cur) {
        if (v === null || v === undefined) continue;
        switch (s.op) {
          case 'field':
            if (typeof v === 'object' && !Array.isArray(v) && (v as Record<string, unknown>)[s.name] !== undefined) next.push((v as Record<string, unknown>)[s.name]);
            break;
          case 'index':
            if (Array.isArray(v) && s.index < v.length) next.push(v[s.index]);
            break;
          case 'all':
            if (Array.isArray(v)) next.push(...v);
            else if (typeof v === 'object') next.push(...Object.values(v as object));
            break;
          case 'filter':
            if (Array.isArray(v)) {
              for (const item of v) {
                let x: unknown = item;
                for (const f of s.path) x = x && typeof x === 'object' ? (x as Record<string, unknown>)[f] : undefined;
                if (x !== undefined && String(x) === s.value) next.push(item);
              }
            }
            break;
        }
      }
      cur = next;
    }
    return cur;
  };
}
