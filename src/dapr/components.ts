/**
 * The sidecar's Dapr components: follows `Component`, `Secret` and `Resiliency` objects of the
 * app's namespace (Informers over the sidecar's cluster API client, or caches the caller gives),
 * and keeps one initialised StateStore per state component in scope.
 *
 * - scopes: a component with a non-empty `scopes` list loads only for the app ids listed.
 * - secretKeyRef: resolved from Secrets of the same namespace (base64 `data`; an empty key
 *   means the secret's name, as Dapr does).
 * - A component that fails (unknown type, missing secret, backend unreachable, init timeout) is
 *   recorded with its error and logged with its name; it never stops the sidecar and the others
 *   keep serving. A change of the component or of a secret it uses reloads that store only: the
 *   new store is initialised first, then swapped in, then the old one closed.
 * - keyPrefix (Dapr's state key prefix strategy) is resolved per component here.
 */
import { EventEmitter } from 'node:events';
import { kindFor } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { parseGoDuration } from '../api/duration.js';
import type { ApiClient } from '../client/api-client.js';
import type { ResourceCache } from '../client/cache.js';
import { Informer } from '../client/informer.js';
import { CrossmeshError, formatError, toCrossmeshError } from '../errors.js';
import { createStateStore } from '../state/factory.js';
import type { StateStore, StoreConfig } from '../state/types.js';
import { log } from '../util/log.js';
import { compileResiliency, type CompiledResiliency, type Policy } from './resiliency.js';
import type { ComponentStatus } from './types.js';

export const KEY_SEPARATOR = '||';

export interface LoadedStateStore {
  name: string;
  type: string;
  store: StateStore;
  /** Prepended to every key ('' for keyPrefix none). */
  keyPrefix: string;
  /** The Resiliency policy for targets.components.<name>.outbound, if any (current at call time). */
  readonly policy: Policy | undefined;
}

export interface ComponentRegistryOptions {
  appId: string;
  namespace: string;
  /** Directory for embedded stores' files ($CROSSMESH_HOME/state). */
  dataDir: string;
  /** Follow the cluster API through this client (Informers in `namespace`). */
  client?: ApiClient;
  /** Or follow caches the caller owns (not stopped by close()). One of client / caches is needed. */
  caches?: { components: ResourceCache; secrets: ResourceCache; resiliencies?: ResourceCache };
  /** Store factory; default src/state/factory.ts createStateStore. */
  createStore?: (type: string, config: StoreConfig) => StateStore | Promise<StateStore>;
  /** Init timeout when the component has no spec.initTimeout (Dapr default 5 s). */
  defaultInitTimeoutMs?: number;
}

interface Entry {
  name: string;
  type: string;
  version: string;
  fingerprint: string;
  state: ComponentStatus['state'];
  error?: string;
  capabilities: string[];
  /** The store serving requests (may be the previous generation while a reload initialises). */
  serving?: LoadedStateStore;
  /** Bumped on every (re)load: a finishing init of an older generation is discarded. */
  generation: number;
}

/**
 * What `/v1.0/metadata` reports for a state store, as daprd does: the component's features in
 * components-contrib's order (state.in-memory, state.sqlite and state.redis all declare ETag,
 * Transactional, TTL), then `ACTOR` for every store with both etags and transactions (daprd's
 * runtime appends it). `QUERY_API` is not reported: daprd's in-memory and sqlite stores do not
 * declare it (crossmesh's query on them is an extra), and state.redis declares it only with
 * RedisJSON, which crossmesh's redis store does not query.
 */
export function daprCapabilities(features: StateStore['features']): string[] {
  const caps: string[] = [];
  if (features.etag) caps.push('ETAG');
  if (features.transactional) caps.push('TRANSACTIONAL');
  if (features.ttl) caps.push('TTL');
  if (features.etag && features.transactional) caps.push('ACTOR');
  return caps;
}

/** Dapr's keyPrefix strategies; throws on a prefix containing `||`. */
export function keyPrefixFor(strategy: string | undefined, ctx: { appId: string; namespace: string; storeName: string }): string {
  const s = (strategy ?? '').toLowerCase();
  switch (s) {
    case '':
    case 'appid':
      return ctx.appId + KEY_SEPARATOR;
    case 'name':
      return ctx.storeName + KEY_SEPARATOR;
    case 'namespace':
      return (ctx.namespace ? `${ctx.namespace}.${ctx.appId}` : ctx.appId) + KEY_SEPARATOR;
    case 'none':
      return '';
    default:
      if (s.includes(KEY_SEPARATOR)) {
        throw new CrossmeshError('CM_ERR_CONFIG', `input key/keyPrefix '${s}' can't contain '${KEY_SEPARATOR}': set metadata keyPrefix to appid, name, namespace, none or a prefix without '${KEY_SEPARATOR}'`);
      }
      return s + KEY_SEPARATOR;
  }
}

function metadataValue(md: Record<string, string>, name: string): string | undefined {
  if (md[name] !== undefined) return md[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(md)) if (k.toLowerCase() === lower) return md[k];
  return undefined;
}

export interface ComponentRegistryEvents {
  /** A component was loaded, failed or removed. */
  change: [];
}

export class ComponentRegistry extends EventEmitter<ComponentRegistryEvents> {
  private readonly entries = new Map<string, Entry>();
  private readonly caches: { components: ResourceCache; secrets: ResourceCache; resiliencies?: ResourceCache };
  private readonly ownsCaches: boolean;
  private readonly createStore: (type: string, config: StoreConfig) => StateStore | Promise<StateStore>;
  private resiliency: CompiledResiliency = compileResiliency([]);
  private scheduled = false;
  private closed = false;
  private pending = new Set<Promise<unknown>>();
  private readonly onChange = () => this.schedule();

  constructor(private readonly opts: ComponentRegistryOptions) {
    super();
    this.createStore = opts.createStore ?? createStateStore;
    if (opts.caches) {
      this.caches = opts.caches;
      this.ownsCaches = false;
    } else if (opts.client) {
      const inf = (apiVersion: string, kind: string) => new Informer(opts.client!, kindFor(apiVersion, kind), { namespace: opts.namespace });
      this.caches = {
        components: inf('dapr.io/v1alpha1', 'Component'),
        secrets: inf('v1', 'Secret'),
        resiliencies: inf('dapr.io/v1alpha1', 'Resiliency'),
      };
      this.ownsCaches = true;
    } else {
      throw new Error('ComponentRegistry needs a client or caches');
    }
    for (const c of [this.caches.components, this.caches.secrets, this.caches.resiliencies]) {
      if (!c) continue;
      c.on('add', this.onChange);
      c.on('update', this.onChange);
      c.on('delete', this.onChange);
      c.on('synced', this.onChange);
    }
  }

  /**
   * Starts following the API; resolves once the components known at the first sync finished
   * loading (or failed), or after `timeoutMs` (the registry keeps trying in the background).
   */
  async start(timeoutMs = 10_000): Promise<void> {
    if (this.ownsCaches) for (const c of [this.caches.components, this.caches.secrets, this.caches.resiliencies]) (c as Informer | undefined)?.start();
    const deadline = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([
      (async () => {
        await Promise.all([this.caches.components.waitForSync(timeoutMs), this.caches.secrets.waitForSync(timeoutMs), this.caches.resiliencies?.waitForSync(timeoutMs)]);
        this.reconcile();
        await this.whenIdle();
      })().catch((err) => log.warn(`dapr components of ${this.opts.namespace}/${this.opts.appId} not synced yet (${toCrossmeshError(err).message}); still trying`)),
      deadline,
    ]);
  }

  /** Resolves when no store init or close is in progress. */
  async whenIdle(): Promise<void> {
    while (this.scheduled || this.pending.size > 0) {
      if (this.scheduled) await new Promise<void>((r) => setImmediate(r));
      else await Promise.allSettled([...this.pending]);
    }
  }

  getStateStore(name: string): LoadedStateStore | undefined {
    return this.entries.get(name)?.serving;
  }

  /** True when at least one state store serves (Dapr: ERR_STATE_STORE_NOT_CONFIGURED otherwise). */
  hasStateStores(): boolean {
    for (const e of this.entries.values()) if (e.serving) return true;
    return false;
  }

  status(): ComponentStatus[] {
    return [...this.entries.values()]
      .map((e) => ({ name: e.name, type: e.type, version: e.version, state: e.state, ...(e.error ? { error: e.error } : {}), capabilities: e.capabilities }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The Resiliency policy for targets.apps.<appId> (service invocation), current at call time. */
  appPolicy(appId: string): Policy | undefined {
    return this.resiliency.forApp(appId);
  }

  get resiliencyProblems(): string[] {
    return this.resiliency.problems;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [this.caches.components, this.caches.secrets, this.caches.resiliencies]) {
      if (!c) continue;
      c.off('add', this.onChange);
      c.off('update', this.onChange);
      c.off('delete', this.onChange);
      c.off('synced', this.onChange);
      if (this.ownsCaches) c.stop();
    }
    await Promise.allSettled([...this.pending]);
    const stores = [...this.entries.values()].map((e) => e.serving?.store).filter((s): s is StateStore => !!s);
    this.entries.clear();
    await Promise.allSettled(stores.map((s) => s.close()));
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (!this.closed) this.reconcile();
    });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => undefined);
    return p;
  }

  private inNamespace(o: KubeObject): boolean {
    return !o.metadata.namespace || o.metadata.namespace === this.opts.namespace;
  }

  private reconcile(): void {
    if (this.closed) return;
    // Until every collection listed once, a component may name a secret not seen yet: wait.
    if (!this.caches.components.synced || !this.caches.secrets.synced || (this.caches.resiliencies && !this.caches.resiliencies.synced)) return;
    const { appId, namespace } = this.opts;
    this.resiliency = compileResiliency((this.caches.resiliencies?.list() ?? []).filter((o) => this.inNamespace(o)), { appId });
    const seen = new Set<string>();
    let changed = false;
    for (const obj of this.caches.components.list()) {
      if (!this.inNamespace(obj)) continue;
      const scopes = obj.scopes as string[] | undefined;
      if (Array.isArray(scopes) && scopes.length > 0 && !scopes.includes(appId)) continue;
      const name = obj.metadata.name;
      seen.add(name);
      const type = String(obj.spec?.type ?? '');
      const version = String(obj.spec?.version ?? 'v1');
      let metadata: Record<string, string> = {};
      let problem: string | undefined;
      let cause: unknown;
      try {
        metadata = this.resolveMetadata(obj);
      } catch (err) {
        problem = (err as Error).message;
        cause = err;
      }
      let initTimeoutMs = this.opts.defaultInitTimeoutMs ?? 5000;
      if (obj.spec?.initTimeout) {
        try { initTimeoutMs = parseGoDuration(String(obj.spec.initTimeout)); } catch { /* validated at apply */ }
      }
      const fingerprint = JSON.stringify([type, version, metadata, problem ?? '', initTimeoutMs]);
      const old = this.entries.get(name);
      if (old && old.fingerprint === fingerprint) continue;
      changed = true;
      const entry: Entry = { name, type, version, fingerprint, state: 'loading', capabilities: [], serving: old?.serving, generation: (old?.generation ?? 0) + 1 };
      this.entries.set(name, entry);
      if (!type.startsWith('state.')) problem ??= `component type "${type}" is not supported (crossmesh serves state stores: state.in-memory, state.sqlite, state.redis)`;
      if (problem !== undefined) {
        this.fail(entry, problem, cause);
        continue;
      }
      this.track(this.load(entry, metadata, initTimeoutMs));
    }
    for (const [name, e] of this.entries) {
      if (seen.has(name)) continue;
      this.entries.delete(name);
      changed = true;
      e.generation++;
      if (e.serving) {
        const store = e.serving.store;
        log.info(`dapr component ${name} (${e.type}) removed`);
        this.track(store.close().catch((err) => log.warn(`dapr component ${name}: closing: ${toCrossmeshError(err).message}`)));
      }
    }
    if (changed) this.emit('change');
  }

  private resolveMetadata(obj: KubeObject): Record<string, string> {
    const out: Record<string, string> = {};
    const items = Array.isArray(obj.spec?.metadata) ? obj.spec.metadata : [];
    const secretStore = (obj.auth as { secretStore?: string } | undefined)?.secretStore;
    for (const m of items) {
      if (!m || typeof m.name !== 'string') continue;
      if (m.secretKeyRef) {
        if (secretStore && secretStore !== 'kubernetes') {
          throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${m.name}" uses secret store "${secretStore}", which crossmesh does not provide (only the namespace's Secrets, auth.secretStore: kubernetes)`);
        }
        const secretName = String(m.secretKeyRef.name);
        const key = m.secretKeyRef.key ? String(m.secretKeyRef.key) : secretName;
        const secret = this.caches.secrets.get(secretName, this.opts.namespace);
        if (!secret) throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${m.name}": secret "${secretName}" not found in namespace ${this.opts.namespace}; create it (\`crossmesh create secret generic ${secretName} -n ${this.opts.namespace} --from-literal=${key}=...\`) or fix secretKeyRef.name`);
        const data = (secret.data ?? {}) as Record<string, string>;
        const stringData = (secret.stringData ?? {}) as Record<string, string>;
        if (data[key] !== undefined) out[m.name] = Buffer.from(data[key], 'base64').toString('utf8');
        else if (stringData[key] !== undefined) out[m.name] = stringData[key];
        else throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${m.name}": secret "${secretName}" has no key "${key}" (keys: ${Object.keys(data).join(', ') || 'none'}); fix secretKeyRef.key or add the key to the secret`);
      } else if (m.value !== undefined && m.value !== null) {
        out[m.name] = typeof m.value === 'string' ? m.value : typeof m.value === 'object' ? JSON.stringify(m.value) : String(m.value);
      }
    }
    return out;
  }

  /** `cause`: the error behind `message`; the log line shows its chain. */
  private fail(entry: Entry, message: string, cause?: unknown): void {
    const prev = entry.serving;
    entry.serving = undefined;
    entry.state = 'failed';
    entry.error = `${entry.name}: ${message}`;
    entry.capabilities = [];
    log.warn(`dapr component ${entry.name} (${entry.type}) failed to load: ${cause === undefined ? message : formatError(cause)}`);
    if (prev) this.track(prev.store.close().catch(() => undefined));
    this.emit('change');
  }

  private async load(entry: Entry, metadata: Record<string, string>, initTimeoutMs: number): Promise<void> {
    const gen = entry.generation;
    const current = () => this.entries.get(entry.name) === entry && entry.generation === gen && !this.closed;
    let store: StateStore | undefined;
    let keyPrefix: string;
    try {
      keyPrefix = keyPrefixFor(metadataValue(metadata, 'keyPrefix'), { appId: this.opts.appId, namespace: this.opts.namespace, storeName: entry.name });
      // The factory imports the backend's module on first use (see src/state/factory.ts).
      store = await this.createStore(entry.type, { name: entry.name, metadata, dataDir: this.opts.dataDir });
      const s = store;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        s.init(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new CrossmeshError('CM_ERR_TIMEOUT', `init did not finish within ${initTimeoutMs} ms (raise spec.initTimeout if the backend is slow to answer)`)), initTimeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    } catch (err) {
      const msg = toCrossmeshError(err).message;
      if (store) {
        const s = store;
        // An init that timed out may still finish: close whatever it opened.
        this.track(s.close().catch(() => undefined));
      }
      if (current()) this.fail(entry, msg, err);
      return;
    }
    if (!current()) {
      await store.close().catch(() => undefined);
      return;
    }
    const prev = entry.serving;
    const registry = this;
    const name = entry.name;
    entry.serving = {
      name,
      type: entry.type,
      store,
      keyPrefix,
      get policy() { return registry.resiliency.forComponent(name); },
    };
    entry.state = 'loaded';
    entry.error = undefined;
    entry.capabilities = daprCapabilities(store.features);
    log.info(`dapr component ${name} (${entry.type}) ${prev ? 'reloaded' : 'loaded'}`);
    if (prev && prev.store !== store) await prev.store.close().catch((err) => log.warn(`dapr component ${name}: closing the previous store: ${toCrossmeshError(err).message}`));
    this.emit('change');
  }
}
