/**
 * The one ResourceStore contract suite. Every backend runs it (src/store/memory.test.ts, sqlite.test.ts),
 * so "passes the contract" means "behaves like every other backend".
 */
import assert from 'node:assert/strict';
import { describe, it, beforeEach, afterEach } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import { CrossmeshError, type ErrorCode } from '../../src/errors.js';
import type { HandlerErrorReporter } from '../../src/store/watchers.js';
import type { CollectionRef, ObjectRef, ResourceStore, StoredWatchEvent, WatchOptions } from '../../src/store/types.js';

export interface ContractStoreOptions {
  eventLogSize?: number;
  onHandlerError?: HandlerErrorReporter;
}

export interface ContractFixture {
  store: ResourceStore;
  /** Opens the same data again (the test closes `store` first). Backends without persistence omit it. */
  reopen?: () => ResourceStore;
  /** Closes whatever is still open and removes files. */
  cleanup: () => void;
}

const SVC = 'core/services';
const EXP = 'flomesh.io/serviceexports';
const CLU = 'flomesh.io/clusters';

function svc(name: string, spec: Record<string, unknown> = { port: 80 }, extra: Partial<KubeObject> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec, ...extra };
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, `expected a CrossmeshError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function record(store: ResourceStore, opts: WatchOptions): { events: StoredWatchEvent[]; stop: () => void } {
  const events: StoredWatchEvent[] = [];
  const stop = store.watch(opts, (e) => events.push(e));
  return { events, stop };
}

/** Deterministic PRNG (mulberry32) so a failing stress run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function stateKey(storageKey: string, obj: KubeObject): string {
  return `${storageKey}|${obj.metadata.namespace ?? ''}|${obj.metadata.name}`;
}

/**
 * `persistent`: the backend keeps its data across close + reopen (the fixture must then provide
 * `reopen`); the persistence case is only registered for such backends.
 */
export function storeContract(name: string, makeStore: (opts?: ContractStoreOptions) => ContractFixture, opts: { persistent?: boolean } = {}): void {
  describe(`ResourceStore contract: ${name}`, () => {
    let fx: ContractFixture;
    let store: ResourceStore;
    beforeEach(() => {
      fx = makeStore();
      store = fx.store;
    });
    afterEach(() => fx.cleanup());

    it('create sets metadata, forces identity from the ref, and get returns it', () => {
      const before = Date.now();
      const input = svc('ignored-name', { port: 80 }, { status: { ready: true } });
      input.metadata.namespace = 'other';
      input.metadata.uid = 'caller-uid';
      input.metadata.generation = 7;
      input.metadata.labels = { app: 'web' };
      const created = store.create({ storageKey: SVC, namespace: 'ns1', name: 'web' }, input);
      assert.equal(created.metadata.name, 'web');
      assert.equal(created.metadata.namespace, 'ns1');
      assert.match(created.metadata.uid!, /^[0-9a-f-]{36}$/);
      assert.notEqual(created.metadata.uid, 'caller-uid');
      assert.equal(created.metadata.generation, 1);
      assert.equal(created.metadata.resourceVersion, '1');
      assert.equal(store.revision(), 1);
      assert.ok(Date.parse(created.metadata.creationTimestamp!) >= before - 1000);
      assert.deepEqual(created.metadata.labels, { app: 'web' });
      assert.deepEqual(created.status, { ready: true });
      assert.equal(input.metadata.name, 'ignored-name', 'the caller object is not modified');
      assert.deepEqual(store.get({ storageKey: SVC, namespace: 'ns1', name: 'web' }), created);
      // Returned objects are copies: mutating them does not change the store.
      created.spec.port = 1;
      store.get({ storageKey: SVC, namespace: 'ns1', name: 'web' })!.spec.port = 2;
      assert.equal(store.get({ storageKey: SVC, namespace: 'ns1', name: 'web' })!.spec.port, 80);
      assert.equal(store.get({ storageKey: SVC, namespace: 'ns2', name: 'web' }), undefined);
      assert.equal(store.get({ storageKey: EXP, namespace: 'ns1', name: 'web' }), undefined);
    });

    it('lists by namespace and across namespaces, sorted, with the current revision', () => {
      for (const [ns, n] of [['b', 'z'], ['a', 'y'], ['b', 'a'], ['a', 'b'], ['c', 'm']]) {
        store.create({ storageKey: SVC, namespace: ns, name: n }, svc(n));
      }
      store.create({ storageKey: EXP, namespace: 'a', name: 'x' }, svc('x'));
      const all = store.list({ storageKey: SVC });
      assert.deepEqual(all.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['a/b', 'a/y', 'b/a', 'b/z', 'c/m']);
      assert.equal(all.resourceVersion, '6');
      assert.deepEqual(store.list({ storageKey: SVC, namespace: 'b' }).items.map((o) => o.metadata.name), ['a', 'z']);
      assert.deepEqual(store.list({ storageKey: SVC, namespace: 'nope' }).items, []);
      assert.deepEqual(store.list({ storageKey: 'core/nothing' }), { items: [], resourceVersion: '6' });
      assert.deepEqual(store.list({ storageKey: EXP }).items.map((o) => o.metadata.name), ['x']);
    });

    it('handles cluster-scoped objects (no namespace)', () => {
      const input = svc('c1');
      input.metadata.namespace = 'should-go';
      const created = store.create({ storageKey: CLU, name: 'c1' }, input);
      assert.equal(created.metadata.namespace, undefined);
      assert.ok(!('namespace' in created.metadata));
      store.create({ storageKey: CLU, name: 'a0' }, svc('a0'));
      assert.deepEqual(store.list({ storageKey: CLU }).items.map((o) => o.metadata.name), ['a0', 'c1']);
      assert.deepEqual(store.get({ storageKey: CLU, name: 'c1' }), created);
      const deleted = store.delete({ storageKey: CLU, name: 'c1' });
      assert.equal(deleted.metadata.resourceVersion, '3');
      assert.deepEqual(store.list({ storageKey: CLU }).items.map((o) => o.metadata.name), ['a0']);
    });

    it('refuses to create an object twice (AlreadyExists) without using a revision', () => {
      store.create({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a'));
      expectCode(() => store.create({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a')), 'CM_ERR_ALREADY_EXISTS', /ns\/a/);
      assert.equal(store.revision(), 1);
      // Same name elsewhere is a different object.
      store.create({ storageKey: SVC, namespace: 'ns2', name: 'a' }, svc('a'));
      store.create({ storageKey: EXP, namespace: 'ns', name: 'a' }, svc('a'));
      assert.equal(store.revision(), 3);
    });

    it('update bumps generation only for non-metadata, non-status changes and keeps identity', () => {
      const ref: ObjectRef = { storageKey: SVC, namespace: 'ns', name: 'a' };
      const created = store.create(ref, svc('a', { port: 80 }));
      const labelled = store.update(ref, { ...svc('a', { port: 80 }), metadata: { name: 'a', labels: { x: '1' } } });
      assert.equal(labelled.metadata.generation, 1, 'labels are metadata');
      assert.equal(labelled.metadata.resourceVersion, '2');
      assert.equal(labelled.metadata.uid, created.metadata.uid);
      assert.equal(labelled.metadata.creationTimestamp, created.metadata.creationTimestamp);
      const changed = store.update(ref, { ...svc('a', { port: 81 }), metadata: { name: 'a', labels: { x: '1' }, uid: 'forged', generation: 99 } });
      assert.equal(changed.metadata.generation, 2);
      assert.equal(changed.metadata.uid, created.metadata.uid);
      assert.equal(changed.metadata.resourceVersion, '3');
      // Another top-level field (Secret.data-like) also counts.
      const data = store.update(ref, { ...svc('a', { port: 81 }), data: { k: 'v' }, metadata: { name: 'a', labels: { x: '1' } } });
      assert.equal(data.metadata.generation, 3);
      assert.deepEqual(store.get(ref), data);
    });

    it('an update that changes nothing is a no-op: same object, no revision, no event', () => {
      const ref: ObjectRef = { storageKey: SVC, namespace: 'ns', name: 'a' };
      const created = store.create(ref, svc('a', { port: 80, list: [1, 2] }, { status: { s: 1 } }));
      const w = record(store, {});
      // Server-owned metadata, a stale resourceVersion, a different status, undefined members: still nothing to do.
      const same = store.update(ref, {
        ...svc('x', { list: [1, 2], port: 80, gone: undefined }),
        status: { s: 2 },
        metadata: { name: 'x', resourceVersion: '999', uid: 'u', generation: 5 },
      });
      assert.deepEqual(same, created);
      assert.equal(store.revision(), 1);
      assert.equal(store.update(ref, { ...created }, { statusOnly: true }).metadata.resourceVersion, '1');
      assert.equal(w.events.length, 0);
      w.stop();
    });

    it('normal updates keep the stored status; statusOnly takes only status', () => {
      const ref: ObjectRef = { storageKey: SVC, namespace: 'ns', name: 'a' };
      store.create(ref, svc('a', { port: 80 }, { status: { phase: 'Pending' } }));
      const u = store.update(ref, svc('a', { port: 81 }, { status: { phase: 'Hacked' } }));
      assert.deepEqual(u.status, { phase: 'Pending' });
      assert.equal(u.spec.port, 81);
      const s = store.update(ref, { ...svc('a', { port: 9999 }), metadata: { name: 'a', labels: { no: 'pe' } }, status: { phase: 'Ready' } }, { statusOnly: true });
      assert.deepEqual(s.status, { phase: 'Ready' });
      assert.equal(s.spec.port, 81, 'statusOnly ignores spec');
      assert.equal(s.metadata.labels, undefined, 'statusOnly ignores metadata');
      assert.equal(s.metadata.generation, 2, 'status does not bump generation');
      assert.equal(s.metadata.resourceVersion, '3');
      const cleared = store.update(ref, svc('a', { port: 81 }), { statusOnly: true });
      assert.equal(cleared.status, undefined);
      assert.equal(cleared.metadata.resourceVersion, '4');
      // A normal update of an object without status does not add one.
      assert.equal(store.update(ref, svc('a', { port: 82 }, { status: { x: 1 } })).status, undefined);
    });

    it('optimistic concurrency: update and delete conflict on a stale resourceVersion', () => {
      const ref: ObjectRef = { storageKey: SVC, namespace: 'ns', name: 'a' };
      const v1 = store.create(ref, svc('a', { port: 80 }));
      const v2 = store.update(ref, svc('a', { port: 81 }), { expectedResourceVersion: v1.metadata.resourceVersion });
      assert.equal(v2.metadata.resourceVersion, '2');
      expectCode(() => store.update(ref, svc('a', { port: 82 }), { expectedResourceVersion: '1' }), 'CM_ERR_CONFLICT', /core\/services ns\/a.*\b2\b.*\b1\b/);
      // Even a no-op update reports the conflict: the caller's view is stale.
      expectCode(() => store.update(ref, svc('a', { port: 81 }), { expectedResourceVersion: '1' }), 'CM_ERR_CONFLICT');
      expectCode(() => store.update(ref, svc('a'), { expectedResourceVersion: '1', statusOnly: true }), 'CM_ERR_CONFLICT');
      expectCode(() => store.delete(ref, { expectedResourceVersion: '1' }), 'CM_ERR_CONFLICT', /delete/);
      assert.equal(store.revision(), 2);
      assert.equal(store.get(ref)!.spec.port, 81);
      const gone = store.delete(ref, { expectedResourceVersion: '2' });
      assert.equal(gone.metadata.resourceVersion, '3');
    });

    it('delete returns the object with a new resourceVersion; missing objects are NotFound', () => {
      const ref: ObjectRef = { storageKey: SVC, namespace: 'ns', name: 'a' };
      const created = store.create(ref, svc('a', { port: 80 }, { status: { ok: true } }));
      const deleted = store.delete(ref);
      assert.deepEqual(deleted, { ...created, metadata: { ...created.metadata, resourceVersion: '2' } });
      assert.equal(store.get(ref), undefined);
      assert.deepEqual(store.list({ storageKey: SVC }).items, []);
      expectCode(() => store.delete(ref), 'CM_ERR_NOT_FOUND', /core\/services ns\/a/);
      expectCode(() => store.update(ref, svc('a')), 'CM_ERR_NOT_FOUND');
      assert.equal(store.revision(), 2);
      // Re-creating gets a new identity.
      const again = store.create(ref, svc('a'));
      assert.notEqual(again.metadata.uid, created.metadata.uid);
      assert.equal(again.metadata.generation, 1);
    });

    it('revisions are one global counter, +1 per write, untouched by failed writes', () => {
      assert.equal(store.revision(), 0);
      assert.equal(store.list({ storageKey: SVC }).resourceVersion, '0');
      const seen: number[] = [];
      for (let i = 0; i < 5; i++) {
        seen.push(Number(store.create({ storageKey: i % 2 ? SVC : EXP, namespace: 'n', name: `o${i}` }, svc('x')).metadata.resourceVersion));
        try {
          store.create({ storageKey: i % 2 ? SVC : EXP, namespace: 'n', name: `o${i}` }, svc('x'));
        } catch {
          /* AlreadyExists */
        }
      }
      seen.push(Number(store.update({ storageKey: EXP, namespace: 'n', name: 'o0' }, svc('x', { p: 1 })).metadata.resourceVersion));
      seen.push(Number(store.delete({ storageKey: SVC, namespace: 'n', name: 'o1' }).metadata.resourceVersion));
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(store.revision(), 7);
    });

    it('watch filters by storageKey and namespace and reports every event type', () => {
      const all = record(store, {});
      const services = record(store, { storageKey: SVC });
      const ns1 = record(store, { storageKey: SVC, namespace: 'ns1' });
      const anyNs1 = record(store, { namespace: 'ns1' });
      const a = store.create({ storageKey: SVC, namespace: 'ns1', name: 'a' }, svc('a'));
      store.create({ storageKey: SVC, namespace: 'ns2', name: 'b' }, svc('b'));
      store.create({ storageKey: EXP, namespace: 'ns1', name: 'c' }, svc('c'));
      const a2 = store.update({ storageKey: SVC, namespace: 'ns1', name: 'a' }, svc('a', { port: 1 }));
      const a3 = store.delete({ storageKey: SVC, namespace: 'ns1', name: 'a' });
      assert.deepEqual(all.events.map((e) => e.revision), [1, 2, 3, 4, 5]);
      assert.deepEqual(services.events.map((e) => e.revision), [1, 2, 4, 5]);
      assert.deepEqual(anyNs1.events.map((e) => e.revision), [1, 3, 4, 5]);
      assert.deepEqual(ns1.events, [
        { type: 'ADDED', object: a, revision: 1, storageKey: SVC },
        { type: 'MODIFIED', object: a2, revision: 4, storageKey: SVC },
        { type: 'DELETED', object: { ...a2, metadata: { ...a2.metadata, resourceVersion: '5' } }, revision: 5, storageKey: SVC },
      ]);
      assert.deepEqual(ns1.events[2].object, a3);
      for (const e of all.events) assert.equal(e.object.metadata.resourceVersion, String(e.revision));
      for (const w of [all, services, ns1, anyNs1]) w.stop();
    });

    it('list then watch from its resourceVersion gets exactly the later events (replay, then live)', () => {
      const ref = (n: string): ObjectRef => ({ storageKey: SVC, namespace: 'ns', name: n });
      store.create(ref('a'), svc('a'));
      store.create(ref('b'), svc('b'));
      const listed = store.list({ storageKey: SVC, namespace: 'ns' });
      store.update(ref('a'), svc('a', { port: 1 }));
      store.create({ storageKey: EXP, namespace: 'ns', name: 'x' }, svc('x'));
      store.delete(ref('b'));
      const w = record(store, { storageKey: SVC, namespace: 'ns', fromRevision: Number(listed.resourceVersion) });
      assert.deepEqual(w.events.map((e) => [e.type, e.object.metadata.name, e.revision]), [['MODIFIED', 'a', 3], ['DELETED', 'b', 5]]);
      store.create(ref('c'), svc('c'));
      assert.deepEqual(w.events.map((e) => e.revision), [3, 5, 6]);
      // From the current revision: nothing to replay. From 0: everything.
      const now = record(store, { fromRevision: store.revision() });
      assert.equal(now.events.length, 0);
      const fromZero = record(store, { fromRevision: 0 });
      assert.deepEqual(fromZero.events.map((e) => e.revision), [1, 2, 3, 4, 5, 6]);
      // Live-only watch sees nothing old.
      const live = record(store, {});
      store.delete(ref('c'));
      for (const x of [w, now, fromZero, live]) assert.equal(x.events.at(-1)!.revision, 7);
      assert.equal(live.events.length, 1);
      for (const x of [w, now, fromZero, live]) x.stop();
      expectCode(() => store.watch({ fromRevision: -1 }, () => {}), 'CM_ERR_BAD_REQUEST');
    });

    it('watch from a revision the log no longer holds is Gone (410)', () => {
      const small = makeStore({ eventLogSize: 5 });
      try {
        const s = small.store;
        for (let i = 0; i < 12; i++) s.create({ storageKey: SVC, namespace: 'ns', name: `o${i}` }, svc('x'));
        // Log keeps revisions 8..12: watching from 7 replays 8..12, from 6 would miss 7.
        const ok = record(s, { fromRevision: 7 });
        assert.deepEqual(ok.events.map((e) => e.revision), [8, 9, 10, 11, 12]);
        expectCode(() => s.watch({ fromRevision: 6 }, () => {}), 'CM_ERR_GONE', /too old/);
        expectCode(() => s.watch({ fromRevision: 0, storageKey: SVC }, () => {}), 'CM_ERR_GONE');
        // The current revision is always fine, however short the log.
        const cur = record(s, { fromRevision: 12 });
        s.delete({ storageKey: SVC, namespace: 'ns', name: 'o0' });
        assert.deepEqual(cur.events.map((e) => e.revision), [13]);
        assert.deepEqual(ok.events.map((e) => e.revision), [8, 9, 10, 11, 12, 13]);
      } finally {
        small.cleanup();
      }
    });

    it('lists in pages: limit, after, remainingItemCount, filter before limit', () => {
      for (const [ns, name] of [['a', 'x'], ['a', 'y'], ['b', 'x'], ['b', 'z'], ['c', 'w']]) {
        store.create({ storageKey: SVC, namespace: ns, name }, svc(name, { port: 80 }, { metadata: { name, labels: { l: name } } } as Partial<KubeObject>));
      }
      const p1 = store.list({ storageKey: SVC }, { limit: 2 });
      assert.deepEqual(p1.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['a/x', 'a/y']);
      assert.deepEqual(p1.next, { namespace: 'a', name: 'y' });
      assert.equal(p1.remainingItemCount, 3);
      const p2 = store.list({ storageKey: SVC }, { limit: 2, after: p1.next });
      assert.deepEqual(p2.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['b/x', 'b/z']);
      assert.equal(p2.remainingItemCount, 1);
      const p3 = store.list({ storageKey: SVC }, { limit: 2, after: p2.next });
      assert.deepEqual(p3.items.map((o) => o.metadata.name), ['w']);
      assert.equal(p3.next, undefined);
      assert.equal(p3.remainingItemCount, undefined);
      // A filter counts only the items it accepts and gives no remaining count.
      const f = store.list({ storageKey: SVC }, { limit: 1, filter: (o) => o.metadata.name === 'x' });
      assert.deepEqual(f.items.map((o) => o.metadata.namespace), ['a']);
      assert.deepEqual(f.next, { namespace: 'a', name: 'x' });
      assert.equal(f.remainingItemCount, undefined);
      const f2 = store.list({ storageKey: SVC }, { limit: 1, after: f.next, filter: (o) => o.metadata.name === 'x' });
      assert.deepEqual(f2.items.map((o) => o.metadata.namespace), ['b']);
      // The last match: no next page.
      assert.equal(f2.next, undefined);
      expectCode(() => store.list({ storageKey: SVC }, { limit: 0 }), 'CM_ERR_BAD_REQUEST');
      expectCode(() => store.list({ storageKey: SVC }, { atRevision: store.revision() + 1 }), 'CM_ERR_BAD_REQUEST');
    });

    it('lists at an older revision from the event log: creates, updates and deletes since are undone', () => {
      const ref = (name: string, namespace = 'ns') => ({ storageKey: SVC, namespace, name });
      store.create(ref('a'), svc('a', { port: 1 }));
      store.create(ref('b'), svc('b', { port: 1 }));
      store.create({ storageKey: EXP, namespace: 'ns', name: 'other' }, { apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'other' }, spec: {} });
      const then = store.list({ storageKey: SVC, namespace: 'ns' });
      store.update(ref('a'), svc('a', { port: 2 }));
      store.delete(ref('b'));
      store.create(ref('c'), svc('c'));
      store.create(ref('d', 'elsewhere'), svc('d'));
      const at = store.list({ storageKey: SVC, namespace: 'ns' }, { atRevision: Number(then.resourceVersion) });
      assert.equal(at.resourceVersion, then.resourceVersion);
      assert.deepEqual(at.items, then.items);
      const paged = store.list({ storageKey: SVC, namespace: 'ns' }, { atRevision: Number(then.resourceVersion), limit: 1, after: { namespace: 'ns', name: 'a' } });
      assert.deepEqual(paged.items.map((o) => [o.metadata.name, o.spec]), [['b', { port: 1 }]]);
      assert.equal(store.list({ storageKey: SVC }).items.length, 3);
    });

    it('a list at a revision the log no longer covers is Gone (410)', () => {
      const small = makeStore({ eventLogSize: 3 });
      try {
        const s = small.store;
        const ref = (name: string) => ({ storageKey: SVC, namespace: 'ns', name });
        s.create(ref('a'), svc('a', { port: 1 }));
        s.create(ref('b'), svc('b', { port: 1 }));
        const r2 = s.revision();
        s.create(ref('c'), svc('c'));
        s.create(ref('d'), svc('d'));
        // The log holds 2..4: at 2, c and d did not exist (their ADDED events are kept).
        assert.deepEqual(s.list({ storageKey: SVC }, { atRevision: r2 }).items.map((o) => o.metadata.name), ['a', 'b']);
        s.update(ref('a'), svc('a', { port: 2 }));
        // a was last written at 1, no longer in the log: its state at 2 is lost.
        expectCode(() => s.list({ storageKey: SVC }, { atRevision: r2 }), 'CM_ERR_GONE', /too old resource version/);
        expectCode(() => s.list({ storageKey: SVC }, { atRevision: 0 }), 'CM_ERR_GONE');
        // Another collection untouched since: still fine.
        assert.deepEqual(s.list({ storageKey: EXP }, { atRevision: r2 }).items, []);
      } finally {
        small.cleanup();
      }
    });

    it('a throwing handler breaks neither the write nor the other handlers', () => {
      const reported: unknown[] = [];
      const fx2 = makeStore({ onHandlerError: (err) => reported.push(err) });
      try {
        const s = fx2.store;
        const before = record(s, {});
        s.watch({}, () => {
          throw new Error('boom');
        });
        const after = record(s, {});
        const created = s.create({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a'));
        s.update({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a', { port: 2 }));
        assert.equal(created.metadata.resourceVersion, '1');
        assert.equal(s.revision(), 2);
        assert.deepEqual(before.events.map((e) => e.revision), [1, 2]);
        assert.deepEqual(after.events.map((e) => e.revision), [1, 2]);
        assert.equal(reported.length, 2);
        assert.match(String(reported[0]), /boom/);
        // A throwing handler during replay does not stop replay either.
        let replayed = 0;
        s.watch({ fromRevision: 0 }, () => {
          replayed++;
          throw new Error('replay boom');
        });
        assert.equal(replayed, 2);
      } finally {
        fx2.cleanup();
      }
    });

    it('unsubscribe stops delivery, is idempotent, and works from inside a handler', () => {
      const w = record(store, {});
      store.create({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a'));
      w.stop();
      w.stop();
      store.create({ storageKey: SVC, namespace: 'ns', name: 'b' }, svc('b'));
      assert.equal(w.events.length, 1);
      let calls = 0;
      const stop = store.watch({}, () => {
        calls++;
        stop();
      });
      store.create({ storageKey: SVC, namespace: 'ns', name: 'c' }, svc('c'));
      store.create({ storageKey: SVC, namespace: 'ns', name: 'd' }, svc('d'));
      assert.equal(calls, 1);
    });

    it('handlers get their own copies of objects', () => {
      const w = record(store, {});
      store.watch({}, (e) => {
        e.object.spec.port = 666;
        e.object.metadata.name = 'mutated';
      });
      const w2 = record(store, {});
      store.create({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a', { port: 80 }));
      assert.equal(w.events[0].object.spec.port, 80);
      assert.equal(w2.events[0].object.spec.port, 80);
      assert.equal(store.get({ storageKey: SVC, namespace: 'ns', name: 'a' })!.spec.port, 80);
    });

    it('writes and watches made from inside handlers keep every watcher in revision order, exactly once', () => {
      const order: number[] = [];
      const late: StoredWatchEvent[] = [];
      let lateStarted = false;
      // A controller-like watcher: reacts to ADDED by writing status, which is itself an event.
      store.watch({ storageKey: SVC }, (e) => {
        if (e.type === 'ADDED') {
          store.update({ storageKey: SVC, namespace: 'ns', name: e.object.metadata.name }, { ...e.object, status: { seen: true } }, { statusOnly: true });
          if (!lateStarted) {
            lateStarted = true;
            store.watch({ fromRevision: e.revision - 1 }, (ev) => late.push(ev));
          }
        }
      });
      const all = store.watch({}, (e) => order.push(e.revision));
      for (const n of ['a', 'b', 'c']) store.create({ storageKey: SVC, namespace: 'ns', name: n }, svc(n));
      assert.deepEqual(order, [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(late.map((e) => e.revision), [1, 2, 3, 4, 5, 6]);
      assert.equal(store.get({ storageKey: SVC, namespace: 'ns', name: 'c' })!.status.seen, true);
      all();
    });

    it('loses and duplicates no events under concurrent writers and watchers joining at random points', async () => {
      const random = rng(0xc0ffee);
      const kinds = [SVC, EXP];
      const namespaces = ['n1', 'n2', 'n3'];
      const ops = { done: 0, conflicts: 0, noops: 0 };
      type Watcher = { filter: CollectionRef | { storageKey?: undefined; namespace?: string }; snapRevision: number; state: Map<string, KubeObject>; revisions: number[] };
      const watchers: Watcher[] = [];

      const snapshot = (filter: Watcher['filter']): { state: Map<string, KubeObject>; revision: number } => {
        const state = new Map<string, KubeObject>();
        let revision = store.revision();
        for (const sk of filter.storageKey ? [filter.storageKey] : kinds) {
          const l = store.list({ storageKey: sk, namespace: filter.namespace });
          revision = Number(l.resourceVersion);
          for (const o of l.items) state.set(stateKey(sk, o), o);
        }
        return { state, revision };
      };
      const follow = async (filter: Watcher['filter']): Promise<void> => {
        const snap = snapshot(filter);
        // Sometimes let writes happen between list and watch, so the watch must replay them.
        const delay = Math.floor(random() * 4);
        for (let i = 0; i < delay; i++) await tick();
        const w: Watcher = { filter, snapRevision: snap.revision, state: snap.state, revisions: [] };
        watchers.push(w);
        store.watch({ ...filter, fromRevision: snap.revision }, (e) => {
          w.revisions.push(e.revision);
          if (e.type === 'DELETED') w.state.delete(stateKey(e.storageKey, e.object));
          else w.state.set(stateKey(e.storageKey, e.object), e.object);
        });
      };

      const writer = async (id: number, count: number): Promise<void> => {
        for (let i = 0; i < count; i++) {
          const sk = kinds[Math.floor(random() * kinds.length)];
          const ns = namespaces[Math.floor(random() * namespaces.length)];
          const ref: ObjectRef = { storageKey: sk, namespace: ns, name: `w${id}-${Math.floor(random() * 12)}` };
          const current = store.get(ref);
          const roll = random();
          try {
            if (!current) store.create(ref, svc(ref.name, { v: i }));
            else if (roll < 0.25) store.delete(ref, { expectedResourceVersion: current.metadata.resourceVersion });
            else if (roll < 0.4) store.update(ref, { ...current, status: { i } }, { statusOnly: true });
            else if (roll < 0.5) {
              const before = store.revision();
              store.update(ref, current);
              if (store.revision() === before) ops.noops++;
            } else store.update(ref, svc(ref.name, { v: i, id }), { expectedResourceVersion: roll < 0.6 ? '1' : current.metadata.resourceVersion });
          } catch (err) {
            if (!(err instanceof CrossmeshError) || err.code !== 'CM_ERR_CONFLICT') throw err;
            ops.conflicts++;
          }
          ops.done++;
          if (random() < 0.5) await tick();
        }
      };

      const filters: Watcher['filter'][] = [{}, { storageKey: SVC }, { storageKey: EXP, namespace: 'n2' }, { namespace: 'n1' }, { storageKey: SVC, namespace: 'n3' }];
      await follow({}); // from the very start
      const spawner = async (): Promise<void> => {
        while (ops.done < 2400) {
          for (let i = 0; i < 15; i++) await tick();
          await follow(filters[Math.floor(random() * filters.length)]);
        }
      };
      await Promise.all([writer(1, 600), writer(2, 600), writer(3, 600), writer(4, 600), spawner()]);

      const total = store.revision();
      assert.ok(total > 1500, `enough writes happened (${total})`);
      assert.ok(ops.conflicts > 0 && ops.noops > 0, 'the mix covered conflicts and no-ops');
      assert.ok(watchers.length >= 10, `watchers joined along the way (${watchers.length})`);
      // The first watcher sees every revision exactly once, in order.
      assert.deepEqual(watchers[0].revisions, Array.from({ length: total }, (_, i) => i + 1));
      for (const w of watchers) {
        for (let i = 1; i < w.revisions.length; i++) assert.ok(w.revisions[i] > w.revisions[i - 1], 'ascending, no duplicates');
        if (w.revisions.length) assert.ok(w.revisions[0] > w.snapRevision, 'nothing the list already had');
        const expected = snapshot(w.filter).state;
        assert.deepEqual(new Map([...w.state].sort()), new Map([...expected].sort()), `watcher ${JSON.stringify(w.filter)} from ${w.snapRevision} converges`);
      }
    });

    it('close is idempotent and later calls fail clearly', () => {
      store.create({ storageKey: SVC, namespace: 'ns', name: 'a' }, svc('a'));
      store.close();
      store.close();
      expectCode(() => store.get({ storageKey: SVC, namespace: 'ns', name: 'a' }), 'CM_ERR_UNAVAILABLE', /closed/);
      expectCode(() => store.create({ storageKey: SVC, namespace: 'ns', name: 'b' }, svc('b')), 'CM_ERR_UNAVAILABLE');
    });

    if (opts.persistent) it('persists objects, revision and the event log across reopen', () => {
      assert.ok(fx.reopen, 'a persistent backend fixture must provide reopen()');
      const ref = (n: string, ns = 'ns'): ObjectRef => ({ storageKey: SVC, namespace: ns, name: n });
      store.create(ref('a'), svc('a', { port: 1 }, { status: { up: true } }));
      store.create(ref('b'), svc('b'));
      store.create({ storageKey: CLU, name: 'c1' }, svc('c1'));
      const listed = store.list({ storageKey: SVC });
      store.update(ref('a'), svc('a', { port: 2 }));
      store.delete(ref('b'));
      const before = { svc: store.list({ storageKey: SVC }), clu: store.list({ storageKey: CLU }), rev: store.revision() };
      const liveBefore = record(store, { fromRevision: Number(listed.resourceVersion) });
      store.close();

      const reopened = fx.reopen();
      assert.equal(reopened.revision(), 5);
      assert.deepEqual(reopened.list({ storageKey: SVC }), before.svc);
      assert.deepEqual(reopened.list({ storageKey: CLU }), before.clu);
      assert.deepEqual(reopened.get(ref('a')), before.svc.items[0]);
      // Watching from a revision read before the restart replays exactly what the old process saw.
      const replay = record(reopened, { storageKey: SVC, fromRevision: Number(listed.resourceVersion) });
      assert.deepEqual(replay.events, liveBefore.events);
      const next = reopened.create(ref('d'), svc('d'));
      assert.equal(next.metadata.resourceVersion, '6');
      assert.deepEqual(replay.events.map((e) => e.revision), [4, 5, 6]);
      // Metadata rules still hold against reloaded objects: a no-op is a no-op.
      reopened.update(ref('a'), before.svc.items[0]);
      assert.equal(reopened.revision(), 6);
      reopened.close();
    });
  });
}
