import type { KubeObject, WatchEvent } from '../api/types.js';

/**
 * Identifies one resource collection in a store: the canonical storage key of its kind
 * (`KindInfo.storageKey`, e.g. `flomesh.io/serviceexports`, `core/services`) plus the
 * namespace for namespaced kinds (undefined for cluster-scoped kinds or "all namespaces").
 */
export interface CollectionRef {
  storageKey: string;
  namespace?: string;
}

export interface ObjectRef extends CollectionRef {
  name: string;
}

export interface ListResult {
  items: KubeObject[];
  /** The store revision the list is consistent with; watch from here to miss nothing. */
  resourceVersion: string;
  /** With `limit`: the key of the last item returned when more items follow (list again with `after` set to it). */
  next?: { namespace: string; name: string };
  /** With `limit` and no `filter`: how many items follow this page. */
  remainingItemCount?: number;
}

/** Options of one list call: a consistent page of the collection, at the current or an older revision. */
export interface ListOptions {
  /**
   * The revision to list at (≤ the current one): the collection as it was then, rebuilt from the
   * event log. CM_ERR_GONE (410) when the log no longer covers it (compacted), or when an object
   * changed since then was last written before the oldest retained event (its state then is
   * not kept). Undefined = now.
   */
  atRevision?: number;
  /** Only items after this key, in list order (namespace '' for cluster-scoped objects). */
  after?: { namespace: string; name: string };
  /** At most this many items (a positive integer); `next` says where the rest starts. */
  limit?: number;
  /** Only items it accepts count (selectors); applied before `limit`. */
  filter?: (obj: KubeObject) => boolean;
}

export interface WriteOptions {
  /** When set, the write fails with CM_ERR_CONFLICT unless the stored object has this resourceVersion. */
  expectedResourceVersion?: string;
}

export interface StoredWatchEvent extends WatchEvent {
  /** Revision of this event (equals object.metadata.resourceVersion). */
  revision: number;
  storageKey: string;
}

export type WatchHandler = (event: StoredWatchEvent) => void;

export interface WatchOptions {
  /** Collection to follow; namespace undefined = all namespaces. storageKey undefined = everything. */
  storageKey?: string;
  namespace?: string;
  /**
   * Deliver every event with revision > fromRevision first (from the event log), then live ones.
   * If the log no longer holds events that old, throws CrossmeshError CM_ERR_GONE (HTTP 410),
   * exactly like Kubernetes "too old resource version". Undefined = only live events.
   */
  fromRevision?: number;
}

/**
 * The store behind a cluster's API. Synchronous on purpose: both backends (SQLite through
 * better-sqlite3, and memory) are synchronous, and a synchronous store makes "list, then watch
 * from the list's revision" gap-free without locks, because nothing can interleave in between.
 *
 * The store owns metadata bookkeeping: on create it sets uid, creationTimestamp,
 * generation=1 and resourceVersion; on update it keeps uid/creationTimestamp, bumps
 * generation when `spec` (or any top-level field other than metadata/status) changed,
 * and sets a new resourceVersion. Revisions are one global counter per store (like etcd).
 */
export interface ResourceStore {
  get(ref: ObjectRef): KubeObject | undefined;
  list(ref: CollectionRef, opts?: ListOptions): ListResult;
  /** Fails with CM_ERR_ALREADY_EXISTS if present. */
  create(ref: ObjectRef, obj: KubeObject): KubeObject;
  /**
   * Replaces the object (not its status: the stored status is kept unless `statusOnly`,
   * in which case only status is taken from obj). Fails with CM_ERR_NOT_FOUND if absent,
   * CM_ERR_CONFLICT on resourceVersion mismatch. Unchanged content = no new revision,
   * no event, returns the stored object.
   */
  update(ref: ObjectRef, obj: KubeObject, opts?: WriteOptions & { statusOnly?: boolean }): KubeObject;
  /** Returns the deleted object (with a new resourceVersion); CM_ERR_NOT_FOUND if absent. */
  delete(ref: ObjectRef, opts?: WriteOptions): KubeObject;
  /** Subscribe; returns an idempotent unsubscribe function. Handlers are called synchronously. */
  watch(opts: WatchOptions, handler: WatchHandler): () => void;
  /** Current revision (0 for an empty store). */
  revision(): number;
  close(): void;
}
