import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { kindFor } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { parseResourcePath } from '../api/wire.js';
import { CrossmeshError } from '../errors.js';
import { managerFromUserAgent, parseDeleteOptions, parseWriteOptions } from './write-options.js';
import { checkUnknownFields, validateForWrite } from './field-validation.js';

const req = (ua?: string) => ({ headers: ua ? { 'user-agent': ua } : {} }) as IncomingMessage;
const q = (s: string) => new URLSearchParams(s);
const bad = (re: RegExp) => (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST' && re.test(e.message);

describe('write options', () => {
  it('dryRun=All only, fieldValidation defaults to Warn, fieldManager from the query or the User-Agent', () => {
    assert.deepEqual(parseWriteOptions(q(''), req('kubectl/v1.28.2 (linux/amd64) kubernetes/89a4ea3'), 'create'), { dryRun: false, fieldValidation: 'Warn', manager: 'kubectl', force: false });
    assert.deepEqual(parseWriteOptions(q('dryRun=All&fieldValidation=Strict&fieldManager=kubectl-edit'), req(), 'patch'), { dryRun: true, fieldValidation: 'Strict', manager: 'kubectl-edit', force: false });
    assert.equal(managerFromUserAgent(undefined), 'unknown');
    assert.throws(() => parseWriteOptions(q('dryRun=Yes'), req(), 'create'), bad(/^dryRun: Unsupported value: "Yes": supported values: "All"$/));
    assert.throws(() => parseWriteOptions(q('fieldValidation=strict'), req(), 'create'), bad(/fieldValidation: Unsupported value: "strict"/));
    assert.throws(() => parseWriteOptions(q(`fieldManager=${'m'.repeat(129)}`), req(), 'create'), bad(/may not be longer than 128/));
    assert.throws(() => parseWriteOptions(q('fieldManager=a%01b'), req(), 'create'), bad(/printable/));
  });

  it('apply needs a fieldManager; force is for apply only', () => {
    assert.throws(() => parseWriteOptions(q(''), req('kubectl/v1'), 'apply'), bad(/fieldManager is required for apply requests/));
    assert.equal(parseWriteOptions(q('fieldManager=k&force=true'), req(), 'apply').force, true);
    assert.throws(() => parseWriteOptions(q('force=true'), req(), 'patch'), bad(/force: Forbidden/));
  });

  it('DeleteOptions: propagationPolicy from the query or the body, gracePeriodSeconds, preconditions; bad values are 400', () => {
    assert.deepEqual(parseDeleteOptions(q('propagationPolicy=Foreground'), undefined), { dryRun: false, propagationPolicy: 'Foreground', gracePeriodSeconds: undefined, preconditions: undefined });
    const body = { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background', gracePeriodSeconds: 0, dryRun: ['All'], preconditions: { resourceVersion: '7' } };
    assert.deepEqual(parseDeleteOptions(q(''), body), { dryRun: true, propagationPolicy: 'Background', gracePeriodSeconds: 0, preconditions: { uid: undefined, resourceVersion: '7' } });
    assert.equal(parseDeleteOptions(q('orphanDependents=true'), undefined).propagationPolicy, 'Orphan');
    assert.throws(() => parseDeleteOptions(q('propagationPolicy=Never'), undefined), bad(/propagationPolicy: Unsupported value: "Never"/));
    assert.throws(() => parseDeleteOptions(q('gracePeriodSeconds=-1'), undefined), bad(/gracePeriodSeconds/));
    assert.throws(() => parseDeleteOptions(q(''), { kind: 'Pod' }), bad(/DeleteOptions/));
  });
});

describe('field validation', () => {
  const p = parseResourcePath('/apis/flomesh.io/v1alpha1/namespaces/default/serviceexports/x')!;
  const sexp = (): KubeObject => ({
    apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'x', namespace: 'default', creationTimestamp: null as unknown as string, managedFields: [] } as KubeObject['metadata'],
    spec: { foo: 1, rules: [{ portNumber: 3000, path: '/x', bar: true }] },
  });

  it('Strict refuses unknown fields with Kubernetes\' strict decoding message; Warn drops them with warnings; Ignore drops them silently', () => {
    assert.throws(() => checkUnknownFields(p, sexp(), undefined, 'Strict'), bad(/^ServiceExport in version "v1alpha1" cannot be handled as a ServiceExport: strict decoding error: unknown field "spec.foo", unknown field "spec.rules\[0\].bar"$/));
    const warned = sexp();
    assert.deepEqual(checkUnknownFields(p, warned, undefined, 'Warn'), ['unknown field "spec.foo"', 'unknown field "spec.rules[0].bar"']);
    assert.deepEqual(warned.spec, { rules: [{ portNumber: 3000, path: '/x' }] });
    const ignored = sexp();
    assert.deepEqual(checkUnknownFields(p, ignored, undefined, 'Ignore'), []);
    assert.equal(ignored.spec.foo, undefined);
  });

  it('ObjectMeta fields clients send are known (creationTimestamp null, managedFields, ownerReferences, finalizers); the stored object\'s own unknown fields do not count', () => {
    const o = sexp();
    delete o.spec.foo;
    delete o.spec.rules[0].bar;
    Object.assign(o.metadata, { ownerReferences: [{ uid: 'u', kind: 'X', name: 'y', apiVersion: 'v1' }], finalizers: ['a/b'], generateName: 'x-' });
    assert.deepEqual(checkUnknownFields(p, o, undefined, 'Strict'), []);
    const legacy = sexp();
    assert.deepEqual(checkUnknownFields(p, sexp(), legacy, 'Strict'), []);
    assert.ok(validateForWrite(p, o));
    void kindFor;
  });

  it('fields of the built-in kinds Kubernetes knows but crossmesh does not model are known (a real cluster\'s Service applies under Strict)', () => {
    const svcPath = parseResourcePath('/api/v1/namespaces/default/services/web')!;
    const svc: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { ports: [{ port: 80 }], sessionAffinity: 'None', ipFamilies: ['IPv4'], internalTrafficPolicy: 'Cluster', foo: 1 } };
    assert.throws(() => checkUnknownFields(svcPath, svc, undefined, 'Strict'), bad(/strict decoding error: unknown field "spec\.foo"$/));
  });

  it('an invalid object is 422 with Kubernetes\' message and one cause per problem', () => {
    const o = sexp();
    o.spec = { rules: [{ portNumber: 'x', path: 'nodeapp' }] };
    assert.throws(() => validateForWrite(p, o), (e: CrossmeshError) => {
      assert.equal(e.code, 'CM_ERR_INVALID');
      assert.match(e.message, /^ServiceExport\.flomesh\.io "x" is invalid: \[spec\.rules\[0\]\.portNumber: Invalid value: "x": .*, spec\.rules\[0\]\.path: Invalid value: "nodeapp": must start with "\/"/);
      assert.deepEqual(e.details.problems?.map((c) => [c.field, c.reason]), [['spec.rules[0].portNumber', 'FieldValueInvalid'], ['spec.rules[0].path', 'FieldValueInvalid']]);
      return true;
    });
    const missing = sexp();
    missing.spec = {};
    assert.throws(() => validateForWrite(p, missing), (e: CrossmeshError) => /spec\.rules: Required value/.test(e.message) && e.details.problems?.[0].reason === 'FieldValueRequired');
  });
});
