import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CrossmeshError } from '../errors.js';
import { KUBECTL_BODIES } from '../../test/support/kubectl-bodies.js';
import { decodeProtobufObject, decodeProtobufRequest, kubernetesTypes } from './protobuf-body.js';

const TOKEN_REQUEST = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest' };

function decodeCaptured(path: string, body: Buffer): Record<string, unknown> {
  return path.endsWith('/token') ? decodeProtobufObject(body, TOKEN_REQUEST) : decodeProtobufRequest(body, `${path}?fieldManager=kubectl-create&fieldValidation=Strict`);
}

function refusal(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}

/** A body as client-go frames it: k8s\0 + runtime.Unknown{typeMeta, raw}, encoded with the same .proto. */
function frame(apiVersion: string, kind: string, raw: Uint8Array, extra: Record<string, unknown> = {}): Buffer {
  const unknown = kubernetesTypes().lookupType('crossmesh.k8s.Unknown');
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), Buffer.from(unknown.encode(unknown.fromObject({ typeMeta: { apiVersion, kind }, raw, ...extra })).finish())]);
}

function encode(type: string, obj: Record<string, unknown>): Uint8Array {
  const t = kubernetesTypes().lookupType(`crossmesh.k8s.${type}`);
  return t.encode(t.fromObject(obj)).finish();
}

describe('Kubernetes protobuf request bodies', () => {
  for (const b of KUBECTL_BODIES) {
    it(`${b.command}: kubectl 1.33's protobuf body decodes to kubectl 1.31's JSON body`, () => {
      assert.deepEqual(decodeCaptured(b.path, Buffer.from(b.protobuf, 'base64')), JSON.parse(b.json));
    });
  }

  it('Secret.data (map<string, bytes>) comes out as base64, the literal bytes kubectl read', () => {
    const b = KUBECTL_BODIES.find((x) => x.command.includes('secret generic'))!;
    const data = decodeCaptured(b.path, Buffer.from(b.protobuf, 'base64')).data as Record<string, string>;
    assert.equal(Buffer.from(data.k, 'base64').toString('utf8'), 'v');
    assert.equal(Buffer.from(data.bin, 'base64').toString('utf8'), 'héllo');
  });

  it('Lease: MicroTime keeps microseconds, Time keeps whole seconds, an empty Time is null, pointer fields keep zero values', () => {
    const seconds = Date.UTC(2026, 0, 2, 3, 4, 5) / 1000;
    const raw = encode('Lease', {
      metadata: { name: 'l', namespace: 'ns', generateName: '', creationTimestamp: {}, deletionTimestamp: { seconds, nanos: 987_654_321 }, labels: { a: 'b' } },
      spec: { holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: { seconds, nanos: 123_456_789 }, renewTime: { seconds }, leaseTransitions: 0 },
    });
    assert.deepEqual(decodeProtobufRequest(frame('coordination.k8s.io/v1', 'Lease', raw), '/apis/coordination.k8s.io/v1/namespaces/ns/leases'), {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'l', namespace: 'ns', creationTimestamp: null, deletionTimestamp: '2026-01-02T03:04:05Z', labels: { a: 'b' } },
      spec: { holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: '2026-01-02T03:04:05.123456Z', renewTime: '2026-01-02T03:04:05.000000Z', leaseTransitions: 0 },
    });
  });

  it('Endpoints: ip and port are kept even when empty or zero; managedFields JSON and int64 generation decode', () => {
    const raw = encode('Endpoints', {
      metadata: { name: 'e', generation: 3, managedFields: [{ manager: 'm', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { Raw: Buffer.from('{"f:subsets":{}}') } }] },
      subsets: [{ addresses: [{ ip: '10.0.0.1', hostname: '', nodeName: '' }], ports: [{ name: 'http', port: 0, protocol: 'TCP' }] }],
    });
    assert.deepEqual(decodeProtobufRequest(frame('v1', 'Endpoints', raw), '/api/v1/namespaces/ns/endpoints'), {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'e', generation: 3, managedFields: [{ manager: 'm', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:subsets': {} } }] },
      subsets: [{ addresses: [{ ip: '10.0.0.1', nodeName: '' }], ports: [{ name: 'http', port: 0, protocol: 'TCP' }] }],
    });
  });

  it('a kind crossmesh serves only as JSON (a CRD) → 415 in kube-apiserver words, whatever the body', () => {
    const ns = Buffer.from(KUBECTL_BODIES[0].protobuf, 'base64');
    for (const path of ['/apis/flomesh.io/v1alpha1/namespaces/t1/serviceexports', '/apis/multicluster.flomesh.io/v1alpha1/globaltrafficpolicies', '/apis/dapr.io/v1alpha1/namespaces/t1/components']) {
      refusal(() => decodeProtobufRequest(ns, path), 'CM_ERR_UNSUPPORTED_MEDIA', /^the body of the request was in an unknown format - accepted media types include: application\/json, application\/yaml$/);
    }
  });

  it('malformed bodies → 400 saying what was wrong', () => {
    const secret = KUBECTL_BODIES.find((x) => x.command.includes('secret generic'))!;
    const body = Buffer.from(secret.protobuf, 'base64');
    refusal(() => decodeProtobufRequest(body.subarray(0, body.length - 9), secret.path), 'CM_ERR_BAD_REQUEST', /^the object provided is unrecognized \(must be of type Secret\): the protobuf body is malformed: .*index out of range/);
    refusal(() => decodeProtobufRequest(Buffer.from('{"kind":"Secret"}'), secret.path), 'CM_ERR_BAD_REQUEST', /does not appear to be a protobuf message, expected prefix \[107 56 115 0\]/);
    refusal(() => decodeProtobufRequest(Buffer.alloc(0), secret.path), 'CM_ERR_BAD_REQUEST', /does not appear to be a protobuf message/);
    refusal(() => decodeProtobufRequest(body, '/api/v1/namespaces'), 'CM_ERR_BAD_REQUEST', /must be of type Namespace\): the protobuf body is a Secret \(v1\) but the request is for a Namespace \(v1\)/);
    refusal(() => decodeProtobufObject(body, TOKEN_REQUEST), 'CM_ERR_BAD_REQUEST', /is a Secret \(v1\) but the request is for a TokenRequest/);
    refusal(() => decodeProtobufRequest(frame('v1', 'Secret', new Uint8Array(0), { contentEncoding: 'gzip' }), secret.path), 'CM_ERR_BAD_REQUEST', /contentEncoding "gzip"/);
    // A Time of seconds past what a date can hold.
    const badTime = encode('Namespace', { metadata: { name: 'x', creationTimestamp: { seconds: 9e15 } } });
    refusal(() => decodeProtobufRequest(frame('v1', 'Namespace', badTime), '/api/v1/namespaces'), 'CM_ERR_BAD_REQUEST', /metadata\.creationTimestamp: 9000000000000000 seconds is not a time/);
  });
});
