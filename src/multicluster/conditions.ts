import type { Condition } from '../api/types.js';

/**
 * Sets one condition in a list, keeping the others (several writers own different condition
 * types on one object). lastTransitionTime only moves when the status flips, as in Kubernetes.
 * Returns the same array instance when nothing changed, so callers can skip the write.
 */
export function setCondition(conditions: Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now = new Date().toISOString()): Condition[] {
  const list = conditions ?? [];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  if (prev && prev.status === next.status && prev.reason === next.reason && prev.message === next.message && prev.observedGeneration === next.observedGeneration) {
    return list;
  }
  const merged: Condition = { ...next, lastTransitionTime: prev && prev.status === next.status ? prev.lastTransitionTime : now };
  if (merged.observedGeneration === undefined) delete merged.observedGeneration;
  const out = [...list];
  if (i >= 0) out[i] = merged;
  else out.push(merged);
  return out;
}

export function getCondition(obj: { status?: { conditions?: Condition[] } }, type: string): Condition | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}
