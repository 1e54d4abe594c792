/**
 * The ResourceStore behaviour, written once. A backend only provides storage primitives
 * (read, list, apply one change atomically, read its event log); everything a client can
 * observe — metadata, conflicts, no-op updates, revisions, watch — lives here and in
 * metadata.ts / watchers.ts, so every backend passes the same contract suite for the same reasons.
 */
import type { KubeObject, WatchEventType } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { objectKey, namespaceFilter, type ObjectKey } from './keys.js';
import { alreadyExists, buildCreated, buildDeleted, buildUpdated, checkExpectedVersion, notFound, stamp } from './metadata.js';
import { page, snapshotAt } from './snapshot.js';
import type { CollectionRef, ListOptions, ListResult, ObjectRef, ResourceStore, StoredWatchEvent, WatchHandler, WatchOptions, WriteOptions } from './types.js';
import { WatchHub, type EventFilter, type EventSource, type HandlerErrorReporter } from './watchers.js';

export const DEFAULT_EVENT_LOG_SIZE = 10_000;

export interface BaseStoreOptions {
  /** How many of the newest events the log keeps for watch replay (default 10000). */
  eventLogSize?: number;
  /** Where exceptions thrown by watch handlers are reported (default: console.error). */
  onHandlerError?: HandlerErrorReporter;
}

/** One write, as the backend must persist it atomically: the object row (or its removal) and the event. */
export interface Change {
  key: ObjectKey;
  type: Exclude<WatchEventType, 'BOOKMARK' | 'ERROR'>;
  /** The object as stored (for DELETED: as last stored, with the delete's resourceVersion). */
  object: KubeObject;
  revision: number;
}

export abstract class BaseStore implements ResourceStore {
  protected readonly eventLogSize: number;
  private readonly hub: WatchHub;
  private readonly snapshotSource: EventSource;
  private closed = false;

  /**
   * True when readObject/listObjects return objects nobody else holds (SQLite parses fresh
   * JSON each time); false when they are the backend's own (memory), so they are copied
   * before leaving the store.
   */
  protected abstract readonly freshReads: boolean;

  constructor(opts: BaseStoreOptions = {}) {
    const size = opts.eventLogSize ?? DEFAULT_EVENT_LOG_SIZE;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new CrossmeshError('CM_ERR_CONFIG', `eventLogSize must be a positive integer, got ${String(size)}`);
    }
    this.eventLogSize = size;
    const source: EventSource = {
      revision: () => this.revision(),
      oldestRetained: () => this.oldestRetained(),
      eventsSince: (after, filter) => this.eventsSince(after, filter),
    };
    this.hub = new WatchHub(source, opts.onHandlerError);
    this.snapshotSource = source;
  }

  // --- backend primitives ---------------------------------------------------------------
  protected abstract readObject(key: ObjectKey): KubeObject | undefined;
  /** Objects of one kind, optionally one namespace, sorted by namespace then name. */
  protected abstract listObjects(storageKey: string, namespace: string | undefined): KubeObject[];
  /** Persist the change atomically (object + event + log trimming + revision). Must throw, not half-apply. */
  protected abstract applyChange(change: Change): void;
  protected abstract oldestRetained(): number | undefined;
  protected abstract eventsSince(after: number, filter: EventFilter): StoredWatchEvent[];
  protected abstract closeBackend(): void;
  abstract revision(): number;

  // --- ResourceStore ---------------------------------------------------------------------
  get(ref: ObjectRef): KubeObject | undefined {
    this.assertOpen();
    const obj = this.readObject(objectKey(ref));
    return obj && this.out(obj);
  }

  list(ref: CollectionRef, opts: ListOptions = {}): ListResult {
    this.assertOpen();
    const namespace = namespaceFilter(ref);
    const current = this.revision();
    const at = opts.atRevision;
    if (at !== undefined && (!Number.isSafeInteger(at) || at < 0 || at > current)) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `cannot list at revision ${String(at)}: the store is at ${current}`);
    }
    if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 1)) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `list limit must be a positive integer, got ${String(opts.limit)}`);
    }
    let all = this.listObjects(ref.storageKey, namespace);
    if (at !== undefined && at < current) {
      all = snapshotAt(this.snapshotSource, { storageKey: ref.storageKey, namespace }, all, at);
    }
    const paged = opts.after || opts.limit !== undefined || opts.filter ? page(all, opts) : { items: all };
    const items = this.freshReads ? paged.items : paged.items.map((o) => structuredClone(o));
    const out: ListResult = { items, resourceVersion: String(at ?? current) };
    if (paged.next) out.next = paged.next;
    if (paged.remainingItemCount !== undefined) out.remainingItemCount = paged.remainingItemCount;
    return out;
  }

  create(ref: ObjectRef, obj: KubeObject): KubeObject {
    this.assertOpen();
    const key = objectKey(ref);
    if (this.readObject(key)) throw alreadyExists(ref);
    const revision = this.revision() + 1;
    return this.commit({ key, type: 'ADDED', object: buildCreated(ref, obj, revision), revision });
  }

  update(ref: ObjectRef, obj: KubeObject, opts: WriteOptions & { statusOnly?: boolean } = {}): KubeObject {
    this.assertOpen();
    const key = objectKey(ref);
    const stored = this.readObject(key);
    if (!stored) throw notFound(ref);
    checkExpectedVersion(ref, stored, opts.expectedResourceVersion, 'update');
    const next = buildUpdated(ref, stored, obj, opts.statusOnly === true);
    if (!next) return this.out(stored);
    const revision = this.revision() + 1;
    return this.commit({ key, type: 'MODIFIED', object: stamp(next, revision), revision });
  }

  delete(ref: ObjectRef, opts: WriteOptions = {}): KubeObject {
    this.assertOpen();
    const key = objectKey(ref);
    const stored = this.readObject(key);
    if (!stored) throw notFound(ref);
    checkExpectedVersion(ref, stored, opts.expectedResourceVersion, 'delete');
    const revision = this.revision() + 1;
    return this.commit({ key, type: 'DELETED', object: buildDeleted(stored, revision), revision });
  }

  watch(opts: WatchOptions, handler: WatchHandler): () => void {
    this.assertOpen();
    return this.hub.watch(opts, handler);
  }

  /** Idempotent. Watchers are dropped without a final event. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.close();
    this.closeBackend();
  }

  private commit(change: Change): KubeObject {
    this.applyChange(change);
    // Only after the change is durable: a watcher must never see a write that did not happen.
    this.hub.publish({ type: change.type, object: change.object, revision: change.revision, storageKey: change.key.storageKey });
    return structuredClone(change.object);
  }

  private out(obj: KubeObject): KubeObject {
    return this.freshReads ? obj : structuredClone(obj);
  }

  private assertOpen(): void {
    if (this.closed) throw new CrossmeshError('CM_ERR_UNAVAILABLE', 'the resource store is closed');
  }
}
