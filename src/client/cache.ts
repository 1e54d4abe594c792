import { EventEmitter } from 'node:events';
import type { KubeObject } from '../api/types.js';
import type { ResourceStore } from '../store/types.js';

export interface CacheEvents {
  add: [KubeObject];
  update: [KubeObject, KubeObject];
  delete: [KubeObject];
  synced: [];
  error: [Error];
}

/**
 * What a controller or data-plane component follows: a synced local copy of one collection with
 * change events. `Informer` provides it over HTTP (sidecars, the control plane reaching members);
 * `StoreCache` provides it in-process over the cluster's own store (the gateway and the member's
 * controllers), with no HTTP in between.
 */
export interface ResourceCache extends EventEmitter<CacheEvents> {
  list(): KubeObject[];
  get(name: string, namespace?: string): KubeObject | undefined;
  readonly synced: boolean;
  waitForSync(timeoutMs?: number): Promise<void>;
  stop(): void;
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** A ResourceCache over a ResourceStore's synchronous watch: synced as soon as it starts. */
export class StoreCache extends EventEmitter<CacheEvents> implements ResourceCache {
  private readonly cache = new Map<string, KubeObject>();
  private unsubscribe?: () => void;

  constructor(private readonly store: ResourceStore, readonly storageKey: string, private readonly namespace?: string) {
    super();
    this.on('error', () => undefined);
  }

  start(): this {
    const list = this.store.list({ storageKey: this.storageKey, namespace: this.namespace });
    for (const obj of list.items) {
      this.cache.set(keyOf(obj.metadata.namespace, obj.metadata.name), obj);
      this.emit('add', obj);
    }
    this.unsubscribe = this.store.watch({ storageKey: this.storageKey, namespace: this.namespace, fromRevision: Number(list.resourceVersion) }, (ev) => {
      const key = keyOf(ev.object.metadata.namespace, ev.object.metadata.name);
      const old = this.cache.get(key);
      if (ev.type === 'DELETED') {
        this.cache.delete(key);
        this.emit('delete', old ?? ev.object);
      } else if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
        this.cache.set(key, ev.object);
        if (old) this.emit('update', old, ev.object);
        else this.emit('add', ev.object);
      }
    });
    this.emit('synced');
    return this;
  }

  list(): KubeObject[] {
    return [...this.cache.values()];
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.cache.get(keyOf(namespace, name));
  }

  get synced(): boolean {
    return this.unsubscribe !== undefined;
  }

  waitForSync(): Promise<void> {
    return Promise.resolve();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
