/** Status conditions: merged by type (several controllers write conditions on one object). */
import type { Condition, KubeObject } from './types.js';

export const VALID = 'Valid';
export const CONFLICT = 'Conflict';

function conditionOf(obj: KubeObject, type: string): Condition | undefined {
  const conds = obj.status?.conditions;
  if (!Array.isArray(conds)) return undefined;
  for (const c of conds as Condition[]) if (c && c.type === type) return c;
  return undefined;
}

export function getCondition(obj: KubeObject, type: string): Condition | undefined {
  return conditionOf(obj, type);
}

/**
 * An export the gateway serves: Valid=True (set by this cluster's export controller) and not
 * Conflict=True (set by the control plane).
 */
export function isExportServed(obj: KubeObject): boolean {
  if (obj.metadata.deletionTimestamp) return false;
  return conditionOf(obj, VALID)?.status === 'True' && conditionOf(obj, CONFLICT)?.status !== 'True';
}

/**
 * `conditions` with `next` merged in by type (others kept as they are). lastTransitionTime
 * is kept when the status did not change. Returns undefined when nothing changed at all.
 */
export function mergeCondition(conditions: unknown, next: Omit<Condition, 'lastTransitionTime'>, now: string): Condition[] | undefined {
  const list = Array.isArray(conditions) ? (conditions as Condition[]) : [];
  const i = list.findIndex((c) => c && c.type === next.type);
  const old = i >= 0 ? list[i] : undefined;
  if (
    old &&
    old.status === next.status &&
    old.reason === next.reason &&
    old.message === next.message &&
    old.observedGeneration === next.observedGeneration &&
    typeof old.lastTransitionTime === 'string'
  ) {
    return undefined;
  }
  const cond: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: old && old.status === next.status && old.lastTransitionTime ? old.lastTransitionTime : now,
    ...(next.observedGeneration !== undefined ? { observedGeneration: next.observedGeneration } : {}),
  };
  const out = list.slice();
  if (i >= 0) out[i] = cond;
  else out.push(cond);
  return out;
}
