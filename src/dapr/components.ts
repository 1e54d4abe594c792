/**
 * The sidecar's Dapr components: follows `Component`, `Secret` and `Resiliency` objects of the
 * app's namespace (and the app's Dapr `Configuration`, when it names one), Informers over the
 * sidecar's cluster API client or caches the caller gives, and keeps one initialised store per
 * component in scope: state stores (`state.*`), secret stores (`secretstores.*`), lock stores
 * (`lock.*`), pub/subs (`pubsub.*`: their consumer group and topic scopes resolved here; the
 * subscriptions on them are src/dapr/pubsub/subscriber.ts's).
 *
 * - scopes: a component with a non-empty `scopes` list loads only for the app ids listed.
 * - the built-in secret store `kubernetes` (type secretstores.kubernetes) is always there, as
 *   daprd on Kubernetes preloads it (a Component named `kubernetes` replaces it).
 * - secretKeyRef: resolved through the secret store `auth.secretStore` names (default
 *   `kubernetes`, as daprd), with the same store code the secrets API uses; kubernetes reads the
 *   Secrets of the component's namespace (base64 `data`); an empty key means the secret's name,
 *   as Dapr does. A component whose secret store is still loading waits for it.
 * - Configuration `spec.secrets.scopes`: which secrets of which store the app may read.
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
import { BUILTIN_KUBERNETES_STORE, createSecretStore } from '../secrets/factory.js';
import { secretValues } from '../secrets/kubernetes.js';
import type { KubernetesSecretSource, SecretStore } from '../secrets/types.js';
import { createLockStore } from '../lock/factory.js';
import type { LockStore } from '../lock/types.js';
import { createPubSub, SUPPORTED_PUBSUBS } from '../pubsub/factory.js';
import type { PubSub } from '../pubsub/types.js';
import { compileTopicScopes, type TopicScopes } from './pubsub/scopes.js';
import { compileSecretScopes, type SecretScopes } from './secret-scopes.js';
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

export interface LoadedSecretStore {
  name: string;
  type: string;
  store: SecretStore;
  readonly policy: Policy | undefined;
}

export interface LoadedLockStore {
  name: string;
  type: string;
  store: LockStore;
  /** The component's keyPrefix strategy, lowercased (daprd SaveLockConfiguration): appid (default), name, none or a literal. */
  keyPrefix: string;
  readonly policy: Policy | undefined;
}

export interface LoadedPubSub {
  name: string;
  type: string;
  /** Named `store` like the other categories' backends (closed the same way). */
  store: PubSub;
  /** Consumer group of this app's subscriptions: metadata consumerID, default the app id (Dapr). */
  group: string;
  scopes: TopicScopes;
  /** targets.components.<name>.outbound: around publishes. */
  readonly policy: Policy | undefined;
  /** targets.components.<name>.inbound: around each delivery to the app. */
  readonly inboundPolicy: Policy | undefined;
}

type Category = 'state' | 'secret' | 'lock' | 'pubsub';
type Loaded = { category: 'state'; s: LoadedStateStore } | { category: 'secret'; s: LoadedSecretStore } | { category: 'lock'; s: LoadedLockStore } | { category: 'pubsub'; s: LoadedPubSub };

function categoryOf(type: string): Category | undefined {
  if (type.startsWith('state.')) return 'state';
  if (type.startsWith('secretstores.')) return 'secret';
  if (type.startsWith('lock.')) return 'lock';
  if (type.startsWith('pubsub.')) return 'pubsub';
  return undefined;
}

/** A secretKeyRef that cannot resolve yet because its secret store is still loading. */
class Waiting extends Error {}

export interface ComponentRegistryOptions {
  appId: string;
  namespace: string;
  /** Directory for embedded stores' files ($CROSSMESH_HOME/state). */
  dataDir: string;
  /** Follow the cluster API through this client (Informers in `namespace`). */
  client?: ApiClient;
  /** Or follow caches the caller owns (not stopped by close()). One of client / caches is needed. */
  caches?: { components: ResourceCache; secrets: ResourceCache; resiliencies?: ResourceCache; configurations?: ResourceCache };
  /** The app's Dapr Configuration (`crossmesh run --config NAME`): its spec.secrets.scopes apply. */
  config?: string;
  /** The app's service account (named in the kubernetes secret store's refusals). */
  serviceAccount?: string;
  /** The app's working directory: relative secretsFile paths resolve here. Default process.cwd(). */
  workingDir?: string;
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
  category?: Category;
  /** The store serving requests (may be the previous generation while a reload initialises). */
  serving?: Loaded;
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
  private readonly caches: { components: ResourceCache; secrets: ResourceCache; resiliencies?: ResourceCache; configurations?: ResourceCache };
  private secretScopes: SecretScopes = compileSecretScopes(undefined);
  private readonly kubernetesSource: KubernetesSecretSource;
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
        ...(opts.config ? { configurations: inf('dapr.io/v1alpha1', 'Configuration') } : {}),
      };
      this.ownsCaches = true;
    } else {
      throw new Error('ComponentRegistry needs a client or caches');
    }
    const secretKind = kindFor('v1', 'Secret');
    const client = opts.client;
    const secrets = this.caches.secrets;
    // The kubernetes secret store reads live through the sidecar's ApiClient (as daprd's component
    // GETs through client-go), or the caches' Secrets when the caller gave caches only.
    this.kubernetesSource = {
      get: (name, ns) => (client ? client.get(secretKind, name, ns) : Promise.resolve(secrets.get(name, ns))),
      list: async (ns) => (client ? (await client.list(secretKind, ns)).items : secrets.list().filter((o) => (o.metadata.namespace ?? '') === ns)),
      cached: (name, ns) => secrets.get(name, ns),
    };
    for (const c of this.allCaches()) {
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
    if (this.ownsCaches) for (const c of this.allCaches()) (c as Informer).start();
    const deadline = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([
      (async () => {
        await Promise.all(this.allCaches().map((c) => c.waitForSync(timeoutMs)));
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

  private allCaches(): ResourceCache[] {
    const c = this.caches;
    return [c.components, c.secrets, c.resiliencies, c.configurations].filter((x): x is ResourceCache => !!x);
  }

  /** The app id (the lock API's default key prefix). */
  get appId(): string {
    return this.opts.appId;
  }

  getStateStore(name: string): LoadedStateStore | undefined {
    const l = this.entries.get(name)?.serving;
    return l?.category === 'state' ? l.s : undefined;
  }

  private has(category: Category): boolean {
    for (const e of this.entries.values()) if (e.serving?.category === category) return true;
    return false;
  }

  /** True when at least one state store serves (Dapr: ERR_STATE_STORE_NOT_CONFIGURED otherwise). */
  hasStateStores(): boolean {
    return this.has('state');
  }

  getSecretStore(name: string): LoadedSecretStore | undefined {
    const l = this.entries.get(name)?.serving;
    return l?.category === 'secret' ? l.s : undefined;
  }

  hasSecretStores(): boolean {
    return this.has('secret');
  }

  /** The app's Configuration secrets scopes (daprd isSecretAllowed): true when no scope names the store. */
  isSecretAllowed(store: string, key: string): boolean {
    return this.secretScopes.isAllowed(store, key);
  }

  getLockStore(name: string): LoadedLockStore | undefined {
    const l = this.entries.get(name)?.serving;
    return l?.category === 'lock' ? l.s : undefined;
  }

  hasLockStores(): boolean {
    return this.has('lock');
  }

  getPubSub(name: string): LoadedPubSub | undefined {
    const l = this.entries.get(name)?.serving;
    return l?.category === 'pubsub' ? l.s : undefined;
  }

  hasPubSubs(): boolean {
    return this.has('pubsub');
  }

  /** Every pub/sub serving now. */
  pubSubs(): LoadedPubSub[] {
    const out: LoadedPubSub[] = [];
    for (const e of this.entries.values()) if (e.serving?.category === 'pubsub') out.push(e.serving.s);
    return out;
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
    for (const c of this.allCaches()) {
      c.off('add', this.onChange);
      c.off('update', this.onChange);
      c.off('delete', this.onChange);
      c.off('synced', this.onChange);
      if (this.ownsCaches) c.stop();
    }
    await Promise.allSettled([...this.pending]);
    const stores = [...this.entries.values()].map((e) => e.serving?.s.store).filter((s): s is StateStore | SecretStore | LockStore | PubSub => !!s);
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
    if (this.allCaches().some((c) => !c.synced)) return;
    const { appId, namespace } = this.opts;
    this.resiliency = compileResiliency((this.caches.resiliencies?.list() ?? []).filter((o) => this.inNamespace(o)), { appId });
    if (this.opts.config) {
      const cfg = this.caches.configurations?.get(this.opts.config, namespace);
      this.secretScopes = compileSecretScopes(cfg);
    }
    const inScope: KubeObject[] = [];
    for (const obj of this.caches.components.list()) {
      if (!this.inNamespace(obj)) continue;
      const scopes = obj.scopes as string[] | undefined;
      if (Array.isArray(scopes) && scopes.length > 0 && !scopes.includes(appId)) continue;
      inScope.push(obj);
    }
    // daprd on Kubernetes preloads the kubernetes secret store (unscoped, no metadata).
    if (!inScope.some((o) => o.metadata.name === BUILTIN_KUBERNETES_STORE)) {
      inScope.unshift({ apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name: BUILTIN_KUBERNETES_STORE, namespace }, spec: { type: 'secretstores.kubernetes', version: 'v1', metadata: [] } });
    }
    // Secret stores first: the others may resolve their secretKeyRefs through them.
    inScope.sort((a, b) => Number(categoryOf(String(b.spec?.type ?? '')) === 'secret') - Number(categoryOf(String(a.spec?.type ?? '')) === 'secret'));
    const seen = new Set<string>();
    let changed = false;
    for (const obj of inScope) {
      const name = obj.metadata.name;
      seen.add(name);
      const type = String(obj.spec?.type ?? '');
      const version = String(obj.spec?.version ?? 'v1');
      const category = categoryOf(type);
      let metadata: Record<string, string> = {};
      let problem: string | undefined;
      let waiting: string | undefined;
      let cause: unknown;
      try {
        metadata = this.resolveMetadata(obj);
      } catch (err) {
        if (err instanceof Waiting) waiting = err.message;
        else {
          problem = (err as Error).message;
          cause = err;
        }
      }
      let initTimeoutMs = this.opts.defaultInitTimeoutMs ?? 5000;
      if (obj.spec?.initTimeout) {
        try { initTimeoutMs = parseGoDuration(String(obj.spec.initTimeout)); } catch { /* validated at apply */ }
      }
      const fingerprint = JSON.stringify([type, version, metadata, problem ?? '', waiting ?? '', initTimeoutMs]);
      const old = this.entries.get(name);
      if (old && old.fingerprint === fingerprint) continue;
      changed = true;
      const entry: Entry = { name, type, version, fingerprint, category, state: 'loading', capabilities: [], serving: old?.serving, generation: (old?.generation ?? 0) + 1 };
      this.entries.set(name, entry);
      if (!category) problem ??= `component type "${type}" is not supported (crossmesh serves state stores: state.in-memory, state.sqlite, state.redis; secret stores: secretstores.kubernetes, secretstores.local.env, secretstores.local.file; lock stores: lock.redis, lock.sqlite; pub/subs: ${SUPPORTED_PUBSUBS.join(', ')})`;
      if (problem !== undefined) {
        this.fail(entry, problem, cause);
        continue;
      }
      if (waiting !== undefined) {
        // Not a failure yet: the secret store it needs is loading; its load reschedules us.
        entry.error = `${name}: ${waiting}`;
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
        const store = e.serving.s.store;
        log.info(`dapr component ${name} (${e.type}) removed`);
        this.track(store.close().catch((err) => log.warn(`dapr component ${name}: closing: ${toCrossmeshError(err).message}`)));
      }
    }
    if (changed) this.emit('change');
  }

  /**
   * A component's metadata with its secretKeyRefs resolved through the secret store
   * `auth.secretStore` names (default kubernetes), as daprd's processResourceSecrets does: the
   * kubernetes store reads the Secrets of the component's namespace (what daprd's operator hands
   * the sidecar), any other store is asked for the secret by name; the key defaults to the
   * secret's name.
   */
  private resolveMetadata(obj: KubeObject): Record<string, string> {
    const out: Record<string, string> = {};
    const items = Array.isArray(obj.spec?.metadata) ? obj.spec.metadata : [];
    const storeName = (obj.auth as { secretStore?: string } | undefined)?.secretStore || BUILTIN_KUBERNETES_STORE;
    for (const m of items) {
      if (!m || typeof m.name !== 'string') continue;
      if (m.secretKeyRef) {
        const secretName = String(m.secretKeyRef.name);
        const key = m.secretKeyRef.key ? String(m.secretKeyRef.key) : secretName;
        const data = this.secretFor(storeName, secretName, m.name, key, obj.metadata.name);
        if (data[key] !== undefined) out[m.name] = data[key];
        else {
          const where = storeName === BUILTIN_KUBERNETES_STORE || this.isKubernetesStore(storeName) ? `secret "${secretName}"` : `secret "${secretName}" of secret store "${storeName}"`;
          throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${m.name}": ${where} has no key "${key}" (keys: ${Object.keys(data).join(', ') || 'none'}); fix secretKeyRef.key or add the key to the secret`);
        }
      } else if (m.value !== undefined && m.value !== null) {
        out[m.name] = typeof m.value === 'string' ? m.value : typeof m.value === 'object' ? JSON.stringify(m.value) : String(m.value);
      }
    }
    return out;
  }

  private isKubernetesStore(storeName: string): boolean {
    const e = this.entries.get(storeName);
    if (e) return e.type === 'secretstores.kubernetes';
    const obj = this.caches.components.get(storeName, this.opts.namespace);
    return obj ? String(obj.spec?.type) === 'secretstores.kubernetes' : storeName === BUILTIN_KUBERNETES_STORE;
  }

  /** The secret a secretKeyRef names, from its store; throws Waiting while that store loads. */
  private secretFor(storeName: string, secretName: string, item: string, key: string, component: string): Record<string, string> {
    const ns = this.opts.namespace;
    if (this.isKubernetesStore(storeName)) {
      // The kubernetes store's own reading (peek = the Secrets informer), no init needed.
      const secret = this.kubernetesSource.cached(secretName, ns);
      if (!secret) throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${item}": secret "${secretName}" not found in namespace ${ns}; create it (\`crossmesh create secret generic ${secretName} -n ${ns} --from-literal=${key}=...\`) or fix secretKeyRef.name`);
      return secretValues(secret);
    }
    if (storeName === component) throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${item}": auth.secretStore names the component itself`);
    const e = this.entries.get(storeName);
    const loaded = e?.serving?.category === 'secret' ? e.serving.s : undefined;
    if (!loaded) {
      const declared = this.caches.components.get(storeName, ns);
      if (e?.state === 'failed') throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${item}": its secret store "${storeName}" failed to load (${e.error})`);
      if (declared && categoryOf(String(declared.spec?.type ?? '')) !== 'secret') throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${item}": auth.secretStore "${storeName}" is a ${String(declared.spec?.type)} component, not a secret store`);
      if (declared && e) throw new Waiting(`waiting for secret store "${storeName}" to load`);
      throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${item}": secret store "${storeName}" (auth.secretStore) is not loaded: no secret store Component of that name in namespace ${ns} for app ${this.opts.appId}; create it or fix auth.secretStore`);
    }
    const data = loaded.store.peek(secretName);
    if (!data) throw new CrossmeshError('CM_ERR_CONFIG', `metadata "${item}": secret "${secretName}" not found in secret store "${storeName}"; add it there or fix secretKeyRef.name`);
    return data;
  }

  /** `cause`: the error behind `message`; the log line shows its chain. */
  private fail(entry: Entry, message: string, cause?: unknown): void {
    const prev = entry.serving;
    entry.serving = undefined;
    entry.state = 'failed';
    entry.error = `${entry.name}: ${message}`;
    entry.capabilities = [];
    log.warn(`dapr component ${entry.name} (${entry.type}) failed to load: ${cause === undefined ? message : formatError(cause)}`);
    if (prev) this.track(prev.s.store.close().catch(() => undefined));
    this.emit('change');
    // Components waiting for this one (a secret store) see the failure.
    if (entry.category === 'secret') this.schedule();
  }

  private async load(entry: Entry, metadata: Record<string, string>, initTimeoutMs: number): Promise<void> {
    const gen = entry.generation;
    const current = () => this.entries.get(entry.name) === entry && entry.generation === gen && !this.closed;
    const { appId, namespace, dataDir } = this.opts;
    const name = entry.name;
    let store: StateStore | SecretStore | LockStore | PubSub | undefined;
    let make: () => Loaded;
    let capabilities: () => string[];
    const registry = this;
    const policy = { get policy() { return registry.resiliency.forComponent(name); } };
    const inbound = { get inboundPolicy() { return registry.resiliency.forComponentInbound(name); } };
    try {
      // Each factory imports the backend's module on first use (see src/state/factory.ts).
      if (entry.category === 'state') {
        const keyPrefix = keyPrefixFor(metadataValue(metadata, 'keyPrefix'), { appId, namespace, storeName: name });
        const st = await this.createStore(entry.type, { name, metadata, dataDir });
        store = st;
        make = () => ({ category: 'state', s: Object.defineProperties({ name, type: entry.type, store: st, keyPrefix }, Object.getOwnPropertyDescriptors(policy)) as LoadedStateStore });
        capabilities = () => daprCapabilities(st.features);
      } else if (entry.category === 'secret') {
        const st = await createSecretStore(entry.type, { name, metadata, namespace, serviceAccount: this.opts.serviceAccount, workingDir: this.opts.workingDir ?? process.cwd(), kubernetes: this.kubernetesSource }, entry.version);
        store = st;
        make = () => ({ category: 'secret', s: Object.defineProperties({ name, type: entry.type, store: st }, Object.getOwnPropertyDescriptors(policy)) as LoadedSecretStore });
        capabilities = () => [...st.features];
      } else if (entry.category === 'pubsub') {
        const scopes = compileTopicScopes(metadata, appId, name);
        const group = metadataValue(metadata, 'consumerID') || appId;
        const ps = await createPubSub(entry.type, { name, metadata, dataDir }, entry.version);
        store = ps;
        make = () => ({ category: 'pubsub', s: Object.defineProperties({ name, type: entry.type, store: ps, group, scopes }, { ...Object.getOwnPropertyDescriptors(policy), ...Object.getOwnPropertyDescriptors(inbound) }) as LoadedPubSub });
        capabilities = () => ps.features.ttl ? ['TTL'] : [];
      } else {
        const raw = metadataValue(metadata, 'keyPrefix');
        // daprd SaveLockConfiguration: the strategy is lowercased; one containing || fails the component.
        if (raw && raw.includes(KEY_SEPARATOR)) throw new CrossmeshError('CM_ERR_CONFIG', `input key/keyPrefix '${raw}' can't contain '${KEY_SEPARATOR}'`);
        const keyPrefix = (raw ?? '').toLowerCase() || 'appid';
        const st = await createLockStore(entry.type, { name, metadata, dataDir }, entry.version);
        store = st;
        make = () => ({ category: 'lock', s: Object.defineProperties({ name, type: entry.type, store: st, keyPrefix }, Object.getOwnPropertyDescriptors(policy)) as LoadedLockStore });
        capabilities = () => [];
      }
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
    entry.serving = make();
    entry.state = 'loaded';
    entry.error = undefined;
    entry.capabilities = capabilities();
    if (name !== BUILTIN_KUBERNETES_STORE || prev) log.info(`dapr component ${name} (${entry.type}) ${prev ? 'reloaded' : 'loaded'}`);
    if (prev && prev.s.store !== store) await prev.s.store.close().catch((err) => log.warn(`dapr component ${name}: closing the previous store: ${toCrossmeshError(err).message}`));
    this.emit('change');
    // Components whose secretKeyRefs name this secret store resolve now.
    if (entry.category === 'secret') this.schedule();
  }
}
