/**
 * Whether each ServiceExport of a cluster can be exported: pure function of the exports and
 * the cluster's Services, so the controller re-evaluates everything on any change (exports are
 * few) and the outcome never depends on event order.
 */
import type { KubeObject, ServiceExportObject, ServiceObject } from '../api/index.js';

export interface Verdict {
  valid: boolean;
  message: string;
}

/** `ns/name`. */
export function refOf(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

/** Older first (creationTimestamp), then by namespace/name: the first claim on a path wins. */
export function byAge(a: KubeObject, b: KubeObject): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ra = refOf(a);
  const rb = refOf(b);
  return ra < rb ? -1 : ra > rb ? 1 : 0;
}

/** The reason a Service cannot back an export, or undefined when it can. */
function serviceProblem(exp: ServiceExportObject, svc: ServiceObject | undefined): string | undefined {
  const ref = refOf(exp);
  if (!svc) return `Service ${ref} not found: a ServiceExport exports the Service of the same name and namespace; create it first`;
  if (svc.metadata.deletionTimestamp) return `Service ${ref} is being deleted`;
  const type = svc.spec?.type ?? 'ClusterIP';
  if (type === 'ExternalName') return `Service ${ref} is of type ExternalName, which has no endpoints in this cluster and cannot be exported`;
  const ports: number[] = Array.isArray(svc.spec?.ports) ? svc.spec.ports.map((p) => p.port) : [];
  const rules = Array.isArray(exp.spec?.rules) ? exp.spec.rules : [];
  for (let i = 0; i < rules.length; i++) {
    if (!ports.includes(rules[i].portNumber)) {
      const have = ports.length ? `its ports: ${ports.join(', ')}` : 'it has no ports';
      return `spec.rules[${i}].portNumber ${rules[i].portNumber} is not a port of Service ${ref} (${have})`;
    }
  }
  return undefined;
}

/** Prefix key: the path without trailing `/` (`/` stays `/`): `/a` and `/a/` claim the same paths. */
export function prefixKey(path: string): string {
  let end = path.length;
  while (end > 1 && path.charCodeAt(end - 1) === 47) end--;
  return end === path.length ? path : path.slice(0, end);
}

function ruleKey(rule: { path: string; pathType?: string }): string {
  return rule.pathType === 'Exact' ? `Exact ${rule.path}` : `Prefix ${prefixKey(rule.path)}`;
}

/**
 * Verdict per export (keyed by `ns/name`). Exports are taken oldest first; one whose Service
 * is fine claims its rules' path+pathType, and a later export claiming one of them fails.
 * Exports that fail for another reason claim nothing, so they block no one.
 */
export function evaluateExports(exports: KubeObject[], serviceOf: (namespace: string, name: string) => KubeObject | undefined): Map<string, Verdict> {
  const out = new Map<string, Verdict>();
  const claims = new Map<string, string>();
  const sorted = exports.filter((e) => !e.metadata.deletionTimestamp).sort(byAge);
  for (const obj of sorted) {
    const exp = obj as ServiceExportObject;
    const ref = refOf(exp);
    const problem = serviceProblem(exp, serviceOf(exp.metadata.namespace ?? '', exp.metadata.name) as ServiceObject | undefined);
    if (problem) {
      out.set(ref, { valid: false, message: problem });
      continue;
    }
    const rules = Array.isArray(exp.spec?.rules) ? exp.spec.rules : [];
    let taken: string | undefined;
    for (const r of rules) {
      const owner = claims.get(ruleKey(r));
      if (owner !== undefined && owner !== ref) {
        taken = `path ${r.path} (${r.pathType ?? 'Prefix'}) is already exported by ServiceExport ${owner}; use another path, or delete that export`;
        break;
      }
    }
    if (taken) {
      out.set(ref, { valid: false, message: taken });
      continue;
    }
    for (const r of rules) claims.set(ruleKey(r), ref);
    out.set(ref, { valid: true, message: `Service ${ref} is exported successfully.` });
  }
  return out;
}
