import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kindFor } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { serverSideApply } from './apply.js';
import { baseManaged, decodeManaged, fieldSetOf, fromFieldsV1, recordUpdate, toFieldsV1, typeInfoFor, type WriteContext } from './managed-fields.js';

const SVC = kindFor('v1', 'Service');
const GTP = kindFor('flomesh.io/v1alpha1', 'GlobalTrafficPolicy');

const service = (ports: unknown[], labels: Record<string, string> = { app: 'a' }): KubeObject => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'default', labels }, spec: { selector: { app: 'a' }, ports },
});

const managers = (o: KubeObject) => decodeManaged((o.metadata as any).managedFields).map((e) => `${e.manager}/${e.operation}`);

describe('managedFields', async () => {
  const ti = await typeInfoFor(SVC);
  const gti = await typeInfoFor(GTP);
  const ctx = (manager: string, t = ti, apiVersion = 'v1'): WriteContext => ({ manager, apiVersion, scope: 'main', ti: t });

  it('fieldsV1: f: fields, k: list-map items keyed by port and protocol (defaulted TCP), "." for owned nodes with children', () => {
    const set = fieldSetOf(service([{ port: 80, targetPort: 8080 }]), ti, 'main', true);
    const v1 = toFieldsV1(set) as any;
    assert.deepEqual(v1['f:metadata'], { 'f:labels': { '.': {}, 'f:app': {} } });
    assert.deepEqual(v1['f:spec']['f:ports'], { '.': {}, 'k:{"port":80,"protocol":"TCP"}': { '.': {}, 'f:port': {}, 'f:targetPort': {} } });
    assert.deepEqual(fromFieldsV1(v1), set);
  });

  it('an Update owns what it adds or changes and takes it from the others; a no-op keeps the entry and its time', () => {
    const created = service([{ port: 80 }]);
    (created.metadata as any).managedFields = recordUpdate(undefined, created, [], ctx('kubectl-create'));
    const labelled: KubeObject = structuredClone(created);
    labelled.metadata.labels = { app: 'b', team: 'x' };
    (labelled.metadata as any).managedFields = recordUpdate(created, labelled, baseManaged(created, undefined), ctx('kubectl-label'));
    const entries = decodeManaged((labelled.metadata as any).managedFields);
    const create = entries.find((e) => e.manager === 'kubectl-create')!;
    const label = entries.find((e) => e.manager === 'kubectl-label')!;
    assert.ok(!create.set.has('f:metadata\nf:labels\nf:app'));
    assert.ok(label.set.has('f:metadata\nf:labels\nf:app') && label.set.has('f:metadata\nf:labels\nf:team'));
    const again = recordUpdate(labelled, structuredClone(labelled), baseManaged(labelled, undefined), ctx('kubectl-label'));
    assert.deepEqual(again, (labelled.metadata as any).managedFields);
  });

  it('client-sent managedFields replace the live ones ([{}] resets them); [] keeps them', () => {
    const live = service([{ port: 80 }]);
    (live.metadata as any).managedFields = recordUpdate(undefined, live, [], ctx('a'));
    assert.deepEqual(baseManaged(live, []).map((e) => e.manager), ['a']);
    assert.deepEqual(baseManaged(live, [{}]), []);
    assert.deepEqual(baseManaged(live, [{ manager: 'b', operation: 'Apply', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': {} } }]).map((e) => e.manager), ['b']);
    assert.throws(() => baseManaged(live, [{ manager: 'b', operation: 'Bogus' }]), (e: CrossmeshError) => e.code === 'CM_ERR_INVALID' && /managedFields\[0\]\.operation/.test(e.message));
  });
});

describe('server-side apply', async () => {
  const ti = await typeInfoFor(SVC);
  const gti = await typeInfoFor(GTP);
  const sti = await typeInfoFor(kindFor('flomesh.io/v1alpha1', 'ServiceExport'));
  const w = (manager: string, force = false) => ({ manager, apiVersion: 'v1', scope: 'main' as const, ti, force });

  it('creates, re-applies unchanged (same managedFields, same time), merges list-map items by key', () => {
    const created = serverSideApply(undefined, service([{ port: 80, targetPort: 8080 }]), w('kubectl'));
    assert.deepEqual(managers(created), ['kubectl/Apply']);
    const again = serverSideApply(created, service([{ port: 80, targetPort: 8080 }]), w('kubectl'));
    assert.deepEqual(again, created);
    const other = serverSideApply(created, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a' }, spec: { ports: [{ port: 443, targetPort: 8443 }] } } as KubeObject, w('other'));
    assert.deepEqual(other.spec.ports.map((p: any) => p.port), [80, 443]);
    assert.deepEqual(managers(other), ['kubectl/Apply', 'other/Apply']);
  });

  it('a different value of a field another manager owns is a 409 conflict with causes; the same value is shared; force takes it', () => {
    const created = serverSideApply(undefined, service([{ port: 80, targetPort: 8080 }]), w('kubectl'));
    const shared = serverSideApply(created, service([{ port: 80, targetPort: 8080 }]), w('helm'));
    assert.deepEqual(managers(shared), ['kubectl/Apply', 'helm/Apply']);
    assert.throws(() => serverSideApply(shared, service([{ port: 80, targetPort: 9000 }]), w('helm')), (e: CrossmeshError) => {
      assert.equal(e.code, 'CM_ERR_CONFLICT');
      assert.equal(e.message, 'Apply failed with 1 conflict: conflict with "kubectl": .spec.ports[port=80,protocol="TCP"].targetPort');
      assert.deepEqual(e.details.problems, [{ field: '.spec.ports[port=80,protocol="TCP"].targetPort', message: 'conflict with "kubectl"', reason: 'FieldManagerConflict' }]);
      return true;
    });
    const forced = serverSideApply(shared, service([{ port: 80, targetPort: 9000 }]), w('helm', true));
    assert.equal(forced.spec.ports[0].targetPort, 9000);
    const kubectl = decodeManaged((forced.metadata as any).managedFields).find((e) => e.manager === 'kubectl')!;
    assert.ok(![...kubectl.set].some((p) => p.endsWith('f:targetPort')));
  });

  it('conflicts with Update managers name their apiVersion; several are listed per manager', () => {
    const gtp = (weights: number[], lb = 'ActiveActive'): KubeObject => ({
      apiVersion: 'flomesh.io/v1alpha1', kind: 'GlobalTrafficPolicy', metadata: { name: 'g', namespace: 'default' },
      spec: { lbType: lb, targets: weights.map((weight, i) => ({ clusterKey: `default/default/default/c${i}`, weight })) },
    });
    const live = gtp([100]);
    (live.metadata as any).managedFields = recordUpdate(undefined, live, [], { manager: 'kubectl-edit', apiVersion: 'flomesh.io/v1alpha1', scope: 'main', ti: gti });
    assert.throws(() => serverSideApply(live, gtp([30], 'FailOver'), { manager: 'kubectl', apiVersion: 'flomesh.io/v1alpha1', scope: 'main', ti: gti, force: false }), (e: CrossmeshError) =>
      e.message === 'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using flomesh.io/v1alpha1:\n- .spec.lbType\n- .spec.targets');
  });

  it('fields the manager stops applying are removed unless another manager owns them', () => {
    const first = serverSideApply(undefined, service([{ port: 80 }, { port: 81 }], { app: 'a', gone: 'x', kept: 'y' }), w('kubectl'));
    const labelled = structuredClone(first);
    (labelled.metadata as any).managedFields = recordUpdate(first, labelled, baseManaged(first, undefined), { manager: 'kubectl-label', apiVersion: 'v1', scope: 'main', ti });
    // kubectl-label changed nothing, so owns nothing: now let it own `kept` by changing it.
    const owned = structuredClone(labelled);
    owned.metadata.labels!.kept = 'z';
    (owned.metadata as any).managedFields = recordUpdate(labelled, owned, baseManaged(labelled, undefined), { manager: 'kubectl-label', apiVersion: 'v1', scope: 'main', ti });
    const second = serverSideApply(owned, service([{ port: 80 }], { app: 'a' }), w('kubectl'));
    assert.deepEqual(second.metadata.labels, { app: 'a', kept: 'z' });
    assert.deepEqual(second.spec.ports.map((p: any) => p.port), [80]);
  });

  it('a map the manager stops applying goes whole, not as an empty map', () => {
    const gw = { manager: 'crossmesh', apiVersion: 'flomesh.io/v1alpha1', scope: 'main' as const, ti: sti, force: false };
    const sexp = (extra: Record<string, unknown>): KubeObject => ({ apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'c', namespace: 'default' }, spec: { rules: [{ portNumber: 1, path: '/a' }], ...extra } });
    const first = serverSideApply(undefined, sexp({ pathRewrite: { from: '^/a', to: '/' } }), gw);
    const second = serverSideApply(first, sexp({}), gw);
    assert.deepEqual(second.spec, { rules: [{ portNumber: 1, path: '/a' }] });
  });

  it('an apply configuration may not carry managedFields', () => {
    const cfg = service([{ port: 80 }]);
    (cfg.metadata as any).managedFields = [{ manager: 'x' }];
    assert.throws(() => serverSideApply(undefined, cfg, w('kubectl')), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST' && /managedFields must be nil/.test(e.message));
  });
});
