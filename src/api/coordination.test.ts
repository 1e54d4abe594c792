import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kindFor, resolveKindName, toMicroTime, validateObject, type LeaseObject } from './validation.js';
import { invalid } from '../../test/support/api-asserts.js';

const lease = (spec: unknown, name = 'nodeapp-k3f9x') => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name, namespace: 'dapr-test', labels: { 'crossmesh.io/endpoints': 'nodeapp' } },
  spec,
});

test('Lease: registry entry and a good lease as a sidecar writes it', () => {
  const k = kindFor('coordination.k8s.io/v1', 'Lease');
  assert.equal(k.plural, 'leases');
  assert.equal(k.namespaced, true);
  assert.equal(k.storageKey, 'coordination.k8s.io/leases');
  assert.equal(resolveKindName('leases.coordination.k8s.io'), k);
  const now = toMicroTime(new Date('2024-05-01T10:00:00.123Z'));
  assert.equal(now, '2024-05-01T10:00:00.123000Z');
  const l = validateObject(lease({ holderIdentity: 'k3f9x', leaseDurationSeconds: 3, acquireTime: now, renewTime: now, leaseTransitions: 0 })) as LeaseObject;
  assert.equal(l.spec.leaseDurationSeconds, 3);
  assert.equal(l.spec.renewTime, now);
  // Kubernetes accepts an empty spec, and times with offsets or without fractions.
  assert.deepEqual((validateObject({ ...lease(undefined), spec: undefined }) as LeaseObject).spec, {});
  validateObject(lease({ renewTime: '2024-05-01T10:00:00+02:00' }));
});

test('Lease: bad inputs', () => {
  invalid(lease({ leaseDurationSeconds: 0 }), 'spec.leaseDurationSeconds', /at least 1/);
  invalid(lease({ leaseDurationSeconds: 1.5 }), 'spec.leaseDurationSeconds');
  invalid(lease({ leaseDurationSeconds: '3' }), 'spec.leaseDurationSeconds');
  invalid(lease({ renewTime: 'yesterday' }), 'spec.renewTime', /RFC 3339/);
  invalid(lease({ acquireTime: '2024-13-45T99:00:00Z' }), 'spec.acquireTime', /RFC 3339/);
  invalid(lease({ renewTime: 1714557600 }), 'spec.renewTime');
  invalid(lease({ leaseTransitions: -1 }), 'spec.leaseTransitions', /negative/);
  invalid(lease({ holderIdentity: 7 }), 'spec.holderIdentity');
  invalid(lease({}, 'Nodeapp_1'), 'metadata.name');
});
