import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { KubeObject } from '../api/types.js';
import { plan, type MemberSnapshot } from './desired.js';

const KEYS = ['a/x', 'a/y', 'b/x', 'b/z'];
const CLUSTERS = ['c1', 'c2', 'c3'];
const clusterKey = (c: string) => `default/default/default/${c}`;

const obj = (kind: string, key: string, extra: Record<string, unknown>): KubeObject => {
  const [namespace, name] = key.split('/');
  return { apiVersion: kind === 'Service' ? 'v1' : 'flomesh.io/v1alpha1', kind, metadata: { name, namespace }, ...extra } as KubeObject;
};

/** One member: per service key maybe a Service, maybe an export (valid or not), maybe an import left from before. */
const memberArb = (c: string): fc.Arbitrary<MemberSnapshot> => fc.record({
  synced: fc.boolean(),
  meshPort: fc.option(fc.constantFrom(9441, 9443), { nil: undefined }),
  perKey: fc.array(fc.record({
    service: fc.option(fc.record({ headless: fc.boolean(), ports: fc.uniqueArray(fc.record({ port: fc.constantFrom(80, 3000), protocol: fc.constantFrom('TCP', 'UDP') }), { selector: (p) => p.port, minLength: 1, maxLength: 2 }) }), { nil: undefined }),
    export: fc.option(fc.record({ valid: fc.boolean(), created: fc.integer({ min: 0, max: 3 }), rules: fc.uniqueArray(fc.record({ portNumber: fc.constantFrom(80, 3000), path: fc.constantFrom('/x', '/y') }), { selector: (r) => r.portNumber, minLength: 1, maxLength: 2 }), targetClusters: fc.option(fc.subarray(CLUSTERS.map(clusterKey)), { nil: undefined }) }), { nil: undefined }),
    imported: fc.option(fc.subarray(CLUSTERS.filter((x) => x !== c)), { nil: undefined }),
  }), { minLength: KEYS.length, maxLength: KEYS.length }),
}).map(({ synced, meshPort, perKey }) => {
  const exports = new Map<string, KubeObject>();
  const services = new Map<string, KubeObject>();
  const imports = new Map<string, KubeObject>();
  perKey.forEach((p, i) => {
    const key = KEYS[i];
    if (p.service) services.set(key, obj('Service', key, { spec: { ...(p.service.headless ? { clusterIP: 'None' } : {}), ports: p.service.ports } }));
    if (p.export) {
      exports.set(key, obj('ServiceExport', key, {
        metadata: { name: key.split('/')[1], namespace: key.split('/')[0], creationTimestamp: `2026-01-0${p.export.created + 1}T00:00:00Z` },
        spec: { rules: p.export.rules, ...(p.export.targetClusters ? { targetClusters: p.export.targetClusters } : {}) },
        status: { conditions: [{ type: 'Valid', status: p.export.valid ? 'True' : 'False' }] },
      }));
    }
    if (p.imported?.length) {
      imports.set(key, obj('ServiceImport', key, { spec: { type: 'ClusterSetIP', serviceAccountName: '*', ports: [{ port: 80, protocol: 'TCP', endpoints: p.imported.map((x) => ({ clusterKey: clusterKey(x), target: { host: '10.0.0.9', port: 8080, path: '/x' } })) }] } }));
    }
  });
  return { clusterKey: clusterKey(c), gatewayHost: `10.0.0.${CLUSTERS.indexOf(c) + 1}`, gatewayPort: 8080, meshPort, synced, exports, services, imports };
});

describe('plan: per-service planning', () => {
  it('planning only some services gives, for them, exactly what the whole plan says (imports of every member, conflict verdicts)', () => {
    fc.assert(fc.property(fc.tuple(...CLUSTERS.map(memberArb)), fc.subarray(KEYS, { minLength: 1 }), (members, keys) => {
      const whole = plan(members);
      const part = plan(members, new Set(keys));
      for (const m of members) {
        const want = new Map([...(whole.imports.get(m.clusterKey) ?? new Map())].filter(([k]) => keys.includes(k)));
        assert.deepEqual(part.imports.get(m.clusterKey) ?? new Map(), want, m.clusterKey);
      }
      const inKeys = (v: { namespace: string; name: string }) => keys.includes(`${v.namespace}/${v.name}`);
      const order = (a: { clusterKey: string; namespace: string; name: string }, b: typeof a) => `${a.namespace}/${a.name}/${a.clusterKey}`.localeCompare(`${b.namespace}/${b.name}/${b.clusterKey}`);
      assert.deepEqual([...part.verdicts].sort(order), whole.verdicts.filter(inKeys).sort(order));
    }), { numRuns: 300 });
  });
});
