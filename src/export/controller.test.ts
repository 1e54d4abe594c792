import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition, KubeObject } from '../api/index.js';
import { waitFor } from '../../test/support/http-backend.js';
import { SEXP, SVC, ensureNamespace, seedExport, service, startTestCluster, type TestCluster } from '../../test/support/cluster-fixtures.js';
import { evaluateExports, mergeCondition } from './index.js';

const NS = 'dapr-test';

describe('export controller (Valid condition)', () => {
  let tc: TestCluster;
  const get = (name: string, ns = NS) => tc.cluster.store.get({ storageKey: SEXP.storageKey, namespace: ns, name });
  const cond = (name: string, type = 'Valid', ns = NS): Condition | undefined =>
    (get(name, ns)?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
  const valid = (name: string, status: 'True' | 'False', message?: RegExp, ns = NS) =>
    waitFor(() => {
      const c = cond(name, 'Valid', ns);
      return c && c.status === status && (!message || message.test(c.message)) && c;
    }, `${ns}/${name} Valid=${status} ${message ?? ''}`);

  /** The seed's export shape, on a path of its own (the seed's `/nodeapp` is taken by the first test). */
  const own = (name: string, ns = NS, spec: Record<string, unknown> = {}) =>
    seedExport(name, ns, { rules: [{ portNumber: 3000, path: `/${name}`, pathType: 'Prefix' }], ...spec });

  before(async () => {
    tc = await startTestCluster('cluster-1');
    await ensureNamespace(tc.api, NS);
    await ensureNamespace(tc.api, 'other');
  });
  after(() => tc.close());

  it('marks a good export Valid=True Success with the reference message and observedGeneration', async () => {
    await tc.api.apply(SVC, service('nodeapp', NS));
    await tc.api.apply(SEXP, seedExport());
    const c = await valid('nodeapp', 'True');
    assert.equal(c.reason, 'Success');
    assert.equal(c.message, 'Service dapr-test/nodeapp is exported successfully.');
    assert.equal(c.observedGeneration, get('nodeapp')!.metadata.generation);
    assert.ok(!Number.isNaN(Date.parse(c.lastTransitionTime)));
  });

  it('Service missing → False Failed; creating it recovers; lastTransitionTime moves only on status change', async () => {
    await tc.api.apply(SEXP, own('lonely'));
    const f = await valid('lonely', 'False', /Service dapr-test\/lonely not found/);
    assert.equal(f.reason, 'Failed');
    // A spec change keeps the status False: same transition time, new observedGeneration.
    await tc.api.apply(SEXP, own('lonely', NS, { sessionSticky: true }));
    await waitFor(() => cond('lonely')?.observedGeneration === 2, 'observedGeneration 2');
    assert.equal(cond('lonely')!.lastTransitionTime, f.lastTransitionTime);
    // lastTransitionTime has millisecond resolution: let the clock pass the first transition.
    await waitFor(() => Date.now() > Date.parse(f.lastTransitionTime), 'the clock to pass the first transition');
    await tc.api.apply(SVC, service('lonely', NS));
    const t = await valid('lonely', 'True');
    assert.ok(Date.parse(t.lastTransitionTime) > Date.parse(f.lastTransitionTime), `${t.lastTransitionTime} after ${f.lastTransitionTime}`);
    await tc.api.delete(SVC, 'lonely', NS);
    await valid('lonely', 'False', /not found/);
  });

  it('ExternalName Service → False', async () => {
    await tc.api.apply(SVC, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: NS }, spec: { type: 'ExternalName', externalName: 'example.com' } });
    await tc.api.apply(SEXP, own('ext'));
    await valid('ext', 'False', /ExternalName/);
  });

  it("a rule's portNumber that is not a port of the Service → False; fixing the Service recovers", async () => {
    await tc.api.apply(SVC, service('ports', NS, [{ port: 8080 }]));
    await tc.api.apply(SEXP, own('ports'));
    await valid('ports', 'False', /spec\.rules\[0\]\.portNumber 3000 is not a port of Service dapr-test\/ports \(its ports: 8080\)/);
    await tc.api.apply(SVC, service('ports', NS, [{ port: 8080 }, { port: 3000, name: 'http' }]));
    await valid('ports', 'True');
  });

  it('a path+pathType already claimed by an older export → False; deleting the winner makes the loser valid', async () => {
    await tc.api.apply(SVC, service('first', NS));
    await tc.api.apply(SEXP, seedExport('first', NS, { rules: [{ portNumber: 3000, path: '/shared', pathType: 'Prefix' }] }));
    await valid('first', 'True');
    await tc.api.apply(SVC, service('second', 'other'));
    // `/shared/` is the same Prefix claim as `/shared`.
    await tc.api.apply(SEXP, seedExport('second', 'other', { rules: [{ portNumber: 3000, path: '/shared/', pathType: 'Prefix' }, { portNumber: 3000, path: '/mine', pathType: 'Prefix' }] }));
    await valid('second', 'False', /path \/shared\/ \(Prefix\) is already exported by ServiceExport dapr-test\/first/, 'other');
    assert.equal(cond('first')!.status, 'True', 'the older export keeps its path');
    // Exact on the same path is a different claim.
    await tc.api.apply(SVC, service('third', NS));
    await tc.api.apply(SEXP, seedExport('third', NS, { rules: [{ portNumber: 3000, path: '/shared', pathType: 'Exact' }] }));
    await valid('third', 'True');
    await tc.api.delete(SEXP, 'first', NS);
    await valid('second', 'True', undefined, 'other');
  });

  it('keeps the Conflict condition others write, and does not loop', async () => {
    await tc.api.apply(SVC, service('conf', NS));
    await tc.api.apply(SEXP, own('conf'));
    await valid('conf', 'True');
    const conflict: Condition = { type: 'Conflict', status: 'True', reason: 'Conflict', message: 'ServiceExport dapr-test/conf conflicts, ports differ', lastTransitionTime: '2024-01-01T00:00:00Z' };
    const cur = get('conf')!;
    await tc.api.replaceStatus(SEXP, { ...cur, status: { conditions: [...cur.status.conditions, conflict] } } as KubeObject);
    await tc.api.delete(SVC, 'conf', NS);
    await valid('conf', 'False');
    assert.deepEqual(cond('conf', 'Conflict'), conflict, 'Conflict kept as written');
    const rv = get('conf')!.metadata.resourceVersion;
    // A later change: the controller re-evaluates every export for it, so once its effect shows,
    // conf has been evaluated again after settling. It must not have been written again.
    await tc.api.apply(SEXP, own('conf-later'));
    await valid('conf-later', 'False', /Service dapr-test\/conf-later not found/);
    assert.equal(get('conf')!.metadata.resourceVersion, rv, 'no further writes once settled');
    assert.deepEqual(cond('conf', 'Conflict'), conflict);
  });
});

describe('evaluateExports / mergeCondition (pure)', () => {
  const exp = (name: string, ts: string, path: string, pathType = 'Prefix'): KubeObject => ({
    apiVersion: 'flomesh.io/v1alpha1',
    kind: 'ServiceExport',
    metadata: { name, namespace: 'ns', creationTimestamp: ts },
    spec: { rules: [{ portNumber: 80, path, pathType }] },
  });
  const svc = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns' }, spec: { ports: [{ port: 80 }] } });

  it('first by creationTimestamp, then by name, wins a path', () => {
    const v = evaluateExports([exp('b', '2024-01-01T00:00:01Z', '/p'), exp('a', '2024-01-01T00:00:02Z', '/p'), exp('c', '2024-01-01T00:00:01Z', '/p')], (_, n) => svc(n));
    assert.equal(v.get('ns/b')!.valid, true);
    assert.equal(v.get('ns/c')!.valid, false);
    assert.equal(v.get('ns/a')!.valid, false);
  });

  it('an invalid export claims nothing', () => {
    const v = evaluateExports([exp('old', '2024-01-01T00:00:00Z', '/p'), exp('new', '2024-01-02T00:00:00Z', '/p')], (_, n) => (n === 'old' ? undefined : svc(n)));
    assert.equal(v.get('ns/old')!.valid, false);
    assert.equal(v.get('ns/new')!.valid, true);
  });

  it('mergeCondition keeps other types and reports no change as undefined', () => {
    const now = '2024-02-02T00:00:00Z';
    const base = [{ type: 'Conflict', status: 'False', reason: 'NoConflict', message: '', lastTransitionTime: '2024-01-01T00:00:00Z' }];
    const next = { type: 'Valid', status: 'True' as const, reason: 'Success', message: 'ok', observedGeneration: 1 };
    const merged = mergeCondition(base, next, now)!;
    assert.equal(merged.length, 2);
    assert.equal(merged[0], base[0]);
    assert.equal(mergeCondition(merged, next, '2099-01-01T00:00:00Z'), undefined);
    const changedMsg = mergeCondition(merged, { ...next, message: 'other' }, '2099-01-01T00:00:00Z')!;
    assert.equal(changedMsg[1].lastTransitionTime, now, 'same status keeps the transition time');
    const flipped = mergeCondition(merged, { ...next, status: 'False' }, '2099-01-01T00:00:00Z')!;
    assert.equal(flipped[1].lastTransitionTime, '2099-01-01T00:00:00Z');
  });
});
