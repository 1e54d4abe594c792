/**
 * In-memory ResourceStore: for tests and `crossmesh cluster` without a data dir. Nothing
 * survives the process. Objects are kept as normalized JSON-like values that are never mutated
 * (every write builds a new object), so the event log can share them with the object map.
 */
import type { KubeObject } from '../api/types.js';
import { BaseStore, type BaseStoreOptions, type Change } from './base.js';
import { compareKeys, type ObjectKey } from './keys.js';
import type { StoredWatchEvent } from './types.js';
import { eventMatches, type EventFilter } from './watchers.js';

type Namespaces = Map<string, Map<string, KubeObject>>;

export class MemoryStore extends BaseStore {
  protected readonly freshReads = false;
  /** storageKey -> namespace ('' = cluster-scoped) -> name -> object */
  private readonly kinds = new Map<string, Namespaces>();
  /**
   * Newest events, oldest first. Revisions are contiguous (every write is exactly one event),
   * so the event with revision r sits at index r - log[0].revision.
   */
  private log: StoredWatchEvent[] = [];
  private logStart = 0;
  private rev = 0;

  constructor(opts: BaseStoreOptions = {}) {
    super(opts);
  }

  revision(): number {
    return this.rev;
  }

  protected readObject(key: ObjectKey): KubeObject | undefined {
    return this.kinds.get(key.storageKey)?.get(key.namespace)?.get(key.name);
  }

  protected listObjects(storageKey: string, namespace: string | undefined): KubeObject[] {
    const namespaces = this.kinds.get(storageKey);
    if (!namespaces) return [];
    const entries: Array<{ namespace: string; name: string; obj: KubeObject }> = [];
    for (const [ns, objects] of namespaces) {
      if (namespace !== undefined && ns !== namespace) continue;
      for (const [name, obj] of objects) entries.push({ namespace: ns, name, obj });
    }
    return entries.sort(compareKeys).map((e) => e.obj);
  }

  protected applyChange(change: Change): void {
    const { key } = change;
    if (change.type === 'DELETED') {
      const namespaces = this.kinds.get(key.storageKey);
      const objects = namespaces?.get(key.namespace);
      objects?.delete(key.name);
      // Drop empty maps so long-running stores with churn do not keep dead namespaces around.
      if (objects && objects.size === 0) namespaces!.delete(key.namespace);
      if (namespaces && namespaces.size === 0) this.kinds.delete(key.storageKey);
    } else {
      let namespaces = this.kinds.get(key.storageKey);
      if (!namespaces) this.kinds.set(key.storageKey, (namespaces = new Map()));
      let objects = namespaces.get(key.namespace);
      if (!objects) namespaces.set(key.namespace, (objects = new Map()));
      objects.set(key.name, change.object);
    }
    this.append({ type: change.type, object: change.object, revision: change.revision, storageKey: key.storageKey });
    this.rev = change.revision;
  }

  protected oldestRetained(): number | undefined {
    return this.logStart < this.log.length ? this.log[this.logStart].revision : undefined;
  }

  protected eventsSince(after: number, filter: EventFilter): StoredWatchEvent[] {
    const oldest = this.oldestRetained();
    if (oldest === undefined) return [];
    const from = this.logStart + Math.max(0, after + 1 - oldest);
    const out: StoredWatchEvent[] = [];
    for (let i = from; i < this.log.length; i++) {
      if (eventMatches(filter, this.log[i])) out.push(this.log[i]);
    }
    return out;
  }

  protected closeBackend(): void {
    this.kinds.clear();
    this.log = [];
    this.logStart = 0;
  }

  /** Appends and trims to eventLogSize; compacts the array lazily so trimming stays O(1) amortized. */
  private append(event: StoredWatchEvent): void {
    this.log.push(event);
    if (this.log.length - this.logStart > this.eventLogSize) this.logStart++;
    if (this.logStart >= this.eventLogSize) {
      this.log = this.log.slice(this.logStart);
      this.logStart = 0;
    }
  }
}
