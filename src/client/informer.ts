import { EventEmitter } from 'node:events';
import type { KindInfo } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { Backoff, sleep, systemClock, type Clock } from '../util/backoff.js';
import type { ApiClient } from './api-client.js';
import type { ResourceCache } from './cache.js';

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  /** First and longest pause between reconnect attempts (ms): doubling, ±20 % jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** The clock of the back-off sleeps (tests drive a fake one); default the real one. */
  clock?: Clock;
  /**
   * Applied to every object before it is cached and handed to handlers (as client-go's
   * transform): e.g. `routingFields` or `planFields`, so a cache of thousands of objects does not keep
   * bookkeeping nobody reads. An object written back from such a cache must keep what that write
   * reads (a status write: status and resourceVersion).
   */
  transform?: (obj: KubeObject) => KubeObject;
}

/**
 * Only what routing reads: names, resourceVersion, labels, spec and subsets (the sidecar's
 * route caches hold every Service, Endpoints and ServiceImport of the cluster).
 */
export function routingFields(obj: KubeObject): KubeObject {
  const m = obj.metadata;
  const slim: KubeObject = { apiVersion: intern(obj.apiVersion), kind: intern(obj.kind), metadata: { name: m.name, namespace: intern(m.namespace), resourceVersion: m.resourceVersion, ...(m.labels ? { labels: m.labels } : {}) } };
  if (obj.spec !== undefined) slim.spec = internStrings(obj.spec);
  const subsets = (obj as { subsets?: unknown }).subsets;
  if (subsets !== undefined) (slim as { subsets?: unknown }).subsets = internStrings(subsets);
  return slim;
}

/**
 * One copy of each short string the route caches repeat in every object (cluster keys, gateway
 * hosts, IPs, protocols, port names): JSON.parse makes a new string each time, and a sidecar
 * holds thousands of imports that name the same few clusters. Bounded: cleared when full.
 */
const interned = new Map<string, string>();
const INTERN_MAX = 65_536;
function intern<T extends string | undefined>(v: T): T {
  if (v === undefined || v.length > 64) return v;
  const have = interned.get(v);
  if (have !== undefined) return have as T;
  if (interned.size >= INTERN_MAX) interned.clear();
  interned.set(v, v);
  return v;
}

/** `value` with its short strings interned, in place (a freshly parsed object nobody else holds). */
function internStrings<T>(value: T): T {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = typeof value[i] === 'string' ? intern(value[i]) : internStrings(value[i]);
  } else if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const v = o[k];
      o[k] = typeof v === 'string' ? intern(v) : internStrings(v);
    }
  }
  return value;
}

/**
 * What the control plane's plan reads of exports, Services and imports: names, versions,
 * creation and deletion times, labels, spec and status (no managedFields, annotations or uid).
 * An export's status is written back from such an object: a status write takes only its status
 * and resourceVersion.
 */
export function planFields(obj: KubeObject): KubeObject {
  const m = obj.metadata;
  const metadata: KubeObject['metadata'] = { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion };
  if (m.generation !== undefined) metadata.generation = m.generation;
  if (m.creationTimestamp !== undefined) metadata.creationTimestamp = m.creationTimestamp;
  if (m.deletionTimestamp !== undefined) metadata.deletionTimestamp = m.deletionTimestamp;
  if (m.labels) metadata.labels = m.labels;
  const slim: KubeObject = { apiVersion: obj.apiVersion, kind: obj.kind, metadata };
  if (obj.spec !== undefined) slim.spec = obj.spec;
  if (obj.status !== undefined) slim.status = obj.status;
  return slim;
}


export interface InformerEvents {
  add: [KubeObject];
  update: [KubeObject, KubeObject];
  delete: [KubeObject];
  /** Emitted after every successful list and every (re)opened watch: the cache is current. */
  synced: [];
  /** A list or watch failure; the informer keeps retrying. */
  error: [CrossmeshError];
}

function keyOf(obj: KubeObject): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

/**
 * List + watch with a local cache, like client-go's informer. After a disconnect it resumes the
 * watch from the last seen resourceVersion (no event lost); when that revision is too old (410)
 * it lists again and emits the differences as add/update/delete, so handlers always converge.
 * While the API is away the cache keeps the last known state: consumers keep serving.
 */
export class Informer extends EventEmitter<InformerEvents> implements ResourceCache {
  private readonly cache = new Map<string, KubeObject>();
  private resourceVersion: string | undefined;
  private abort = new AbortController();
  private stopped = false;
  private hasSynced = false;
  private syncWaiters: (() => void)[] = [];
  private readonly backoff: Backoff;
  private readonly clock: Clock;

  constructor(private readonly client: ApiClient, readonly kind: KindInfo, private readonly opts: InformerOptions = {}) {
    super();
    this.backoff = new Backoff({ initialMs: opts.minBackoffMs ?? 100, maxMs: opts.maxBackoffMs ?? 3000, jitter: 0.2 });
    this.clock = opts.clock ?? systemClock;
    // An informer must never crash its process because nobody listens for errors.
    this.on('error', () => undefined);
  }

  start(): this {
    void this.run();
    return this;
  }

  /** Resolves after the first successful list. */
  waitForSync(timeoutMs = 10_000): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new CrossmeshError('CM_ERR_TIMEOUT', `informer for ${this.kind.plural} at ${this.client.endpoint.server} did not sync within ${timeoutMs} ms`)), timeoutMs);
      this.syncWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  list(): KubeObject[] {
    return [...this.cache.values()];
  }

  /** The cache itself, keyed `namespace/name` (no copy: read it, never keep it past an event). */
  view(): ReadonlyMap<string, KubeObject> {
    return this.cache;
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  /**
   * Drops the current watch (or back-off pause) and reconnects at once, keeping the cache:
   * for a caller that knows the API is reachable again (or that the old stream is dead) sooner
   * than the watch would notice.
   */
  restart(): void {
    if (this.stopped) return;
    this.backoff.reset();
    const old = this.abort;
    this.abort = new AbortController();
    old.abort();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) await this.relist();
        await this.client.watch(this.kind, {
          namespace: this.opts.namespace,
          labelSelector: this.opts.labelSelector,
          resourceVersion: this.resourceVersion!,
          signal: this.abort.signal,
          // A (re)opened watch resumes from the last revision: the cache is current again.
          onOpen: () => {
            this.backoff.reset();
            this.emit('synced');
          },
          onEvent: (ev) => {
            this.backoff.reset();
            const obj = ev.object;
            if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
            if (ev.type === 'BOOKMARK') return;
            const key = keyOf(obj);
            const transformed = this.opts.transform ? this.opts.transform(obj) : obj;
            const old = this.cache.get(key);
            if (ev.type === 'DELETED') {
              this.cache.delete(key);
              this.emit('delete', old ?? obj);
            } else {
              this.cache.set(key, transformed);
              if (old) this.emit('update', old, transformed);
              else this.emit('add', transformed);
            }
          },
        });
        // The server ended the stream (timeout or shutdown): resume from where we are.
      } catch (err) {
        if (this.stopped) return;
        const e = err instanceof CrossmeshError ? err : new CrossmeshError('CM_ERR_INTERNAL', String(err), { cause: err });
        if (e.code === 'CM_ERR_GONE') this.resourceVersion = undefined;
        this.emit('error', e);
        // The abortable sleep removes its abort listener when it wakes: one long-lived signal, no pile-up.
        await sleep(this.backoff.next(), this.abort.signal, this.clock);
      }
    }
  }

  private async relist(): Promise<void> {
    const list = await this.client.list(this.kind, this.opts.namespace, this.opts.labelSelector);
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const item of list.items) {
      const obj = this.opts.transform ? this.opts.transform(item) : item;
      const key = keyOf(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', old, obj);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    this.resourceVersion = list.resourceVersion;
    this.backoff.reset();
    if (!this.hasSynced) {
      this.hasSynced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    this.emit('synced');
  }
}
