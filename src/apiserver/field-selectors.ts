import { CrossmeshError } from '../errors.js';
import type { KubeObject } from '../api/types.js';

/**
 * Field selectors as Kubernetes serves them: `metadata.name` and `metadata.namespace` on every
 * kind (plus `type` on Secrets and `status.phase` on Namespaces, as Kubernetes has them), with
 * `=`, `==` and `!=`, terms joined by commas (`\,` `\=` `\\` escape). Anything else is the 400
 * Kubernetes answers: `field label not supported: <label>`.
 */
export interface FieldSelector {
  matches: (obj: KubeObject) => boolean;
  /** Set when the selector pins one name (`metadata.name=x`: what `kubectl wait` and informers on one object send). */
  name?: string;
  namespace?: string;
}

const EXTRA_FIELDS: Record<string, Record<string, (o: KubeObject) => string>> = {
  Secret: { type: (o) => (o as { type?: string }).type ?? 'Opaque' },
  Namespace: { 'status.phase': (o) => (o.status?.phase as string | undefined) ?? 'Active' },
};

const COMMON: Record<string, (o: KubeObject) => string> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace ?? '',
};

function splitUnescaped(text: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && i + 1 < text.length) {
      cur += ch + text[i + 1];
      i++;
    } else if (ch === sep) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const unescape = (s: string) => s.replace(/\\(.)/g, '$1');

export function compileFieldSelector(text: string | null, kind: string): FieldSelector | undefined {
  if (!text || text.trim() === '') return undefined;
  const fields = { ...COMMON, ...EXTRA_FIELDS[kind] };
  const terms: Array<{ get: (o: KubeObject) => string; value: string; negate: boolean }> = [];
  let name: string | undefined;
  let namespace: string | undefined;
  for (const raw of splitUnescaped(text, ',')) {
    const part = raw.trim();
    const m = /^((?:[^=!\\]|\\.)+?)\s*(!=|==|=)\s*((?:[^\\]|\\.)*)$/.exec(part);
    if (!m) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `invalid selector: '${text}'; can't understand '${part}' (use field=value, field==value or field!=value, e.g. metadata.name=nodeapp)`);
    const label = m[1].trim();
    const get = fields[label];
    if (!get) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `field label not supported: ${label} (this API selects on ${Object.keys(fields).join(', ')})`);
    const value = unescape(m[3].trim());
    const negate = m[2] === '!=';
    if (!negate && label === 'metadata.name') name = value;
    if (!negate && label === 'metadata.namespace') namespace = value;
    terms.push({ get, value, negate });
  }
  return {
    name,
    namespace,
    matches: (o) => {
      for (const t of terms) if ((t.get(o) === t.value) === t.negate) return false;
      return true;
    },
  };
}
