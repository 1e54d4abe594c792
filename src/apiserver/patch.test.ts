import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CrossmeshError } from '../errors.js';
import { jsonPatch, mergePatch, strategicMergePatch, strategiesFor } from './patch.js';

const svc = () => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'a', labels: { app: 'a', team: 'x' }, finalizers: ['f1'] },
  spec: {
    selector: { app: 'a' },
    ports: [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
      { name: 'metrics', port: 9090, protocol: 'TCP', targetPort: 9090 },
    ],
  },
});

describe('merge patch (RFC 7386)', () => {
  it('merges objects, deletes with null, replaces lists', () => {
    const out = mergePatch(svc(), { metadata: { labels: { team: null, tier: 'web' } }, spec: { ports: [{ port: 1 }] } }) as any;
    assert.deepEqual(out.metadata.labels, { app: 'a', tier: 'web' });
    assert.deepEqual(out.spec.ports, [{ port: 1 }]);
  });
});

describe('JSON patch (RFC 6902, fast-json-patch)', () => {
  it('applies operations without touching the input', () => {
    const input = svc();
    const out = jsonPatch(input, [{ op: 'remove', path: '/spec/ports/1' }, { op: 'add', path: '/metadata/labels/x', value: 'y' }]) as any;
    assert.equal(out.spec.ports.length, 1);
    assert.equal(out.metadata.labels.x, 'y');
    assert.equal(input.spec.ports.length, 2);
  });

  it('a failed test operation or a missing path is 422 Invalid naming the operation; a malformed patch is 400', () => {
    assert.throws(() => jsonPatch(svc(), [{ op: 'test', path: '/spec/selector/app', value: 'b' }]), (e: CrossmeshError) => e.code === 'CM_ERR_INVALID' && /operation 0 .*test failed/.test(e.message));
    assert.throws(() => jsonPatch(svc(), [{ op: 'remove', path: '/spec/nope' }]), (e: CrossmeshError) => e.code === 'CM_ERR_INVALID' && /does not exist/.test(e.message));
    assert.throws(() => jsonPatch(svc(), [{ op: 'frobnicate', path: '/x' }]), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST');
    assert.throws(() => jsonPatch(svc(), { op: 'add' }), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST');
  });
});

describe('strategic merge patch', async () => {
  const st = await strategiesFor('Service');

  it('merges Service ports by their merge key (port), keeping what the patch does not name', () => {
    const out = strategicMergePatch(svc(), { spec: { ports: [{ port: 80, name: 'web' }, { port: 443, targetPort: 8443 }] } }, st) as any;
    assert.deepEqual(out.spec.ports, [
      { name: 'web', port: 80, protocol: 'TCP', targetPort: 8080 },
      { name: 'metrics', port: 9090, protocol: 'TCP', targetPort: 9090 },
      { port: 443, targetPort: 8443 },
    ]);
  });

  it('$patch: delete of a list item and of a map, $patch: replace of a list and a map, null deletes', () => {
    const del = strategicMergePatch(svc(), { spec: { ports: [{ port: 9090, $patch: 'delete' }], selector: { $patch: 'delete' } } }, st) as any;
    assert.deepEqual(del.spec.ports.map((p: any) => p.port), [80]);
    assert.equal(del.spec.selector, undefined);
    const rep = strategicMergePatch(svc(), { spec: { ports: [{ port: 1 }, { $patch: 'replace' }] }, metadata: { labels: { $patch: 'replace', only: 'this' } } }, st) as any;
    assert.deepEqual(rep.spec.ports, [{ port: 1 }]);
    assert.deepEqual(rep.metadata.labels, { only: 'this' });
    const nul = strategicMergePatch(svc(), { metadata: { labels: { team: null } } }, st) as any;
    assert.deepEqual(nul.metadata.labels, { app: 'a' });
  });

  it('$setElementOrder, $deleteFromPrimitiveList, $retainKeys, and sets (finalizers) union', () => {
    const ordered = strategicMergePatch(svc(), { spec: { '$setElementOrder/ports': [{ port: 9090 }, { port: 80 }], ports: [{ port: 80, name: 'w' }] } }, st) as any;
    assert.deepEqual(ordered.spec.ports.map((p: any) => p.port), [9090, 80]);
    assert.equal(ordered.spec.ports[1].name, 'w');
    const fin = strategicMergePatch(svc(), { metadata: { finalizers: ['f2'] } }, st) as any;
    assert.deepEqual(fin.metadata.finalizers, ['f1', 'f2']);
    const gone = strategicMergePatch(fin, { metadata: { '$deleteFromPrimitiveList/finalizers': ['f1'] } }, st) as any;
    assert.deepEqual(gone.metadata.finalizers, ['f2']);
    const kept = strategicMergePatch(svc(), { spec: { $retainKeys: ['ports'], ports: [] } }, st) as any;
    assert.deepEqual(Object.keys(kept.spec), ['ports']);
  });

  it('lists without a merge strategy are replaced; an item without the merge key is a clear 400', () => {
    const st2 = (d: string) => (d === 'subsets' ? undefined : st(d));
    assert.deepEqual((strategicMergePatch({ subsets: [{ a: 1 }] }, { subsets: [{ b: 2 }] }, st2) as any).subsets, [{ b: 2 }]);
    assert.throws(() => strategicMergePatch(svc(), { spec: { ports: [{ name: 'x' }] } }, st), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST' && /"port"/.test(e.message));
    assert.throws(() => strategicMergePatch(svc(), { spec: { $patch: 'explode' } }, st), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST');
  });
});
