import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { KubeObject } from '../api/types.js';
import { compileRoutes, type ServiceRoute } from './routes.js';
import { gatewayKey, RouteTable, type RouteSource } from './route-table.js';

type Kind = 'Service' | 'Endpoints' | 'ServiceImport' | 'GlobalTrafficPolicy';
const KINDS: Kind[] = ['Service', 'Endpoints', 'ServiceImport', 'GlobalTrafficPolicy'];
const NAMESPACES = ['a', 'b'];
const NAMES = ['x', 'y', 'z'];
const CLUSTERS = ['c1', 'c3', 'c4'];
const clusterKey = (c: string) => `default/default/default/${c}`;

/** A random object of `kind` named ns/name (the shapes the API validates, small value ranges so changes collide). */
function objectArb(kind: Kind, ns: string, name: string): fc.Arbitrary<KubeObject> {
  const metadata = { name, namespace: ns };
  const port = fc.constantFrom(80, 3000, 8080);
  switch (kind) {
    case 'Service':
      return fc.uniqueArray(fc.record({ port, name: fc.option(fc.constantFrom('http', 'grpc'), { nil: undefined }), targetPort: fc.option(fc.constantFrom(80, 3000, 9000), { nil: undefined }) }), { selector: (p) => p.port, maxLength: 3 })
        .map((ports) => ({ apiVersion: 'v1', kind, metadata, spec: { ports } }));
    case 'Endpoints':
      return fc.array(fc.record({
        addresses: fc.array(fc.record({ ip: fc.constantFrom('10.0.0.1', '10.0.0.2', '127.0.0.1'), targetRef: fc.option(fc.constant({ kind: 'Pod' }), { nil: undefined }) }), { maxLength: 2 }),
        ports: fc.array(fc.record({ port: fc.constantFrom(80, 3000, 9000), name: fc.option(fc.constantFrom('http', 'grpc'), { nil: undefined }) }), { minLength: 1, maxLength: 2 }),
      }), { maxLength: 2 }).map((subsets) => ({ apiVersion: 'v1', kind, metadata, subsets }));
    case 'ServiceImport':
      return fc.uniqueArray(fc.record({
        port,
        endpoints: fc.uniqueArray(fc.record({
          clusterKey: fc.constantFrom(...CLUSTERS.map(clusterKey)),
          target: fc.record({ host: fc.constantFrom('10.1.0.1', '10.1.0.3', 'gw.example'), port: fc.constantFrom(8081, 8083), path: fc.constantFrom('/', `/${name}`), meshPort: fc.option(fc.constantFrom(9441, 9443), { nil: undefined }) }),
        }), { selector: (e) => e.clusterKey, maxLength: 3 }),
      }), { selector: (p) => p.port, maxLength: 2 }).map((ports) => ({ apiVersion: 'flomesh.io/v1alpha1', kind, metadata, spec: { type: 'ClusterSetIP', ports: ports.map((p) => ({ ...p, protocol: 'TCP' })) } }));
    case 'GlobalTrafficPolicy':
      return fc.record({
        lbType: fc.constantFrom('Locality', 'FailOver', 'ActiveActive'),
        targets: fc.uniqueArray(fc.record({ clusterKey: fc.constantFrom(...CLUSTERS.map(clusterKey)), weight: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }) }), { selector: (t) => t.clusterKey, maxLength: 3 }),
      }).map((spec) => ({ apiVersion: 'flomesh.io/v1alpha1', kind, metadata, spec }));
  }
}

/** One change: put an object or delete one. */
const changeArb = fc.record({ kind: fc.constantFrom(...KINDS), ns: fc.constantFrom(...NAMESPACES), name: fc.constantFrom(...NAMES), del: fc.boolean() })
  .chain((c) => (c.del ? fc.constant({ ...c, obj: undefined as KubeObject | undefined }) : objectArb(c.kind, c.ns, c.name).map((obj) => ({ ...c, obj: obj as KubeObject | undefined }))));

const sorted = (m: ReadonlyMap<string, ServiceRoute>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

describe('RouteTable: incremental route updates', () => {
  it('after any sequence of changes (updated per change or per burst) the table equals a compile from scratch, and its reference counts name exactly what the routes use', () => {
    fc.assert(fc.property(fc.array(changeArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 5 }), (changes, burst) => {
      const store = new Map<Kind, Map<string, KubeObject>>(KINDS.map((k) => [k, new Map()]));
      const get = (k: Kind) => (ns: string, name: string) => store.get(k)!.get(`${ns}/${name}`);
      const src: RouteSource = { service: get('Service'), endpoints: get('Endpoints'), serviceImport: get('ServiceImport'), policy: get('GlobalTrafficPolicy') };
      const table = new RouteTable('c2', undefined);
      let dirty = new Set<string>();
      changes.forEach((c, i) => {
        const key = `${c.ns}/${c.name}`;
        if (c.obj) store.get(c.kind)!.set(key, c.obj);
        else store.get(c.kind)!.delete(key);
        dirty.add(key);
        // Several changes coalesced into one update, as informer bursts are.
        if ((i + 1) % burst !== 0 && i !== changes.length - 1) return;
        table.update(dirty, src);
        dirty = new Set();
        const full = compileRoutes({ clusterName: 'c2', services: [...store.get('Service')!.values()], endpoints: [...store.get('Endpoints')!.values()], imports: [...store.get('ServiceImport')!.values()], policies: [...store.get('GlobalTrafficPolicy')!.values()] });
        assert.deepEqual(sorted(table.routes), sorted(full));
        // byService: the lowest port's route of each service.
        const lowest = new Map<string, number>();
        for (const r of full.values()) {
          const k = `${r.namespace}/${r.name}`;
          lowest.set(k, Math.min(lowest.get(k) ?? Infinity, r.port));
        }
        assert.deepEqual(new Map([...table.byService].map(([k, r]) => [k, r.port])), lowest);
        const targets = [...full.values()].flatMap((r) => [...r.locals, ...r.remotes]);
        const used = table.used();
        assert.deepEqual(used.ids, new Set(targets.map((t) => t.id)));
        assert.deepEqual(used.poolKeys, new Set(targets.map((t) => t.origin)));
        for (const t of targets) assert.ok(table.targetIds.has(t.id) && table.poolKeys.has(t.origin));
        const gateways = new Set(targets.filter((t) => t.tunnel !== undefined).map(gatewayKey));
        assert.deepEqual(new Set(table.gateways().keys()), gateways);
      });
    }), { numRuns: 300 });
  });

  it('an update of one service leaves the other routes as the same objects (their per-target caches stay valid)', () => {
    const objs = new Map<string, KubeObject>();
    const svc = (name: string, port: number): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'a' }, spec: { ports: [{ port }] } });
    const src: RouteSource = { service: (ns, name) => objs.get(`${ns}/${name}`), endpoints: () => undefined, serviceImport: () => undefined, policy: () => undefined };
    const table = new RouteTable('c2', undefined);
    for (let i = 0; i < 100; i++) objs.set(`a/s${i}`, svc(`s${i}`, 80));
    table.update([...objs.keys()], src);
    const before = table.routes.get('a/s1:80');
    objs.set('a/s2', svc('s2', 81));
    table.update(['a/s2'], src);
    assert.equal(table.routes.get('a/s1:80'), before);
    assert.equal(table.routes.has('a/s2:80'), false);
    assert.equal(table.routes.get('a/s2:81')?.port, 81);
    assert.equal(table.routes.size, 100);
  });
});
