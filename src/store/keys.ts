import type { CollectionRef, ObjectRef } from './types.js';

/**
 * Where an object lives inside a store. Cluster-scoped objects use namespace '' so both
 * backends can key every object by the same triple (SQLite needs a NOT NULL primary key).
 */
export interface ObjectKey {
  storageKey: string;
  namespace: string;
  name: string;
}

export function objectKey(ref: ObjectRef): ObjectKey {
  return { storageKey: ref.storageKey, namespace: ref.namespace || '', name: ref.name };
}

/** Namespace filter of a collection: undefined means "every namespace" ('' is treated the same, as in Kubernetes). */
export function namespaceFilter(ref: CollectionRef | { namespace?: string }): string | undefined {
  return ref.namespace ? ref.namespace : undefined;
}

/** Human-readable name of an object for error messages: `core/services dapr-test/nodeapp`. */
export function describeRef(ref: ObjectRef): string {
  return ref.namespace ? `${ref.storageKey} ${ref.namespace}/${ref.name}` : `${ref.storageKey} ${ref.name}`;
}

/** Order of list results in both backends: namespace, then name (plain code-unit order, like SQLite BINARY for ASCII names). */
export function compareKeys(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return 0;
}
