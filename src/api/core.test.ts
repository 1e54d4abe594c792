import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateObject, type SecretObject, type ServiceObject } from './validation.js';
import { invalid } from '../../test/support/api-asserts.js';

const svc = (spec: unknown, name = 'nodeapp') => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'dapr-test' }, spec });

test('Namespace: good, cluster-scoped drops namespace, label-only names', () => {
  const ns = validateObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dapr-test', namespace: 'x' } });
  assert.deepEqual(ns.metadata, { name: 'dapr-test' });
  invalid({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } }, 'metadata.name', /RFC 1123 label/);
  invalid({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x'.repeat(64) } }, 'metadata.name');
  invalid({ apiVersion: 'v1', kind: 'Namespace', metadata: {} }, 'metadata.name', /is required/);
  invalid({ apiVersion: 'v1', kind: 'Namespace' }, 'metadata', /is required/);
});

test('Service: defaults (type, protocol, targetPort) and passthrough of unknown fields', () => {
  const input = svc({ selector: { app: 'node' }, ports: [{ port: 3000 }, { name: 'web', port: 80, targetPort: 'http', protocol: 'UDP' }], sessionAffinity: 'None' });
  const out = validateObject(input) as ServiceObject;
  assert.notEqual(out, input);
  assert.equal(out.spec.type, 'ClusterIP');
  assert.deepEqual(out.spec.ports?.[0], { protocol: 'TCP', port: 3000, targetPort: 3000 });
  assert.equal(out.spec.ports?.[1].targetPort, 'http');
  assert.equal(out.spec.ports?.[1].protocol, 'UDP');
  assert.equal(out.spec.sessionAffinity, 'None');
  assert.equal((input.spec as any).type, undefined, 'input is not mutated');
});

test('Service: system metadata is kept', () => {
  const meta = { name: 'a', namespace: 'n', resourceVersion: '7', uid: 'u-1', creationTimestamp: '2024-01-01T00:00:00Z', generation: 2 };
  const out = validateObject({ apiVersion: 'v1', kind: 'Service', metadata: meta, spec: { ports: [{ port: 1 }] } });
  assert.deepEqual(out.metadata, meta);
});

test('Service: bad inputs name the field', () => {
  invalid(svc({ ports: [{ port: 0 }] }), 'spec.ports[0].port', /1 to 65535 \(got 0\)/);
  invalid(svc({ ports: [{ port: 65536 }] }), 'spec.ports[0].port', /got 65536/);
  invalid(svc({ ports: [{ port: '80' }] }), 'spec.ports[0].port', /must be a number \(got "80"\)/);
  invalid(svc({ ports: [{ port: 1.5 }] }), 'spec.ports[0].port', /integer/);
  invalid(svc({ ports: [{ port: 80, targetPort: 70000 }] }), 'spec.ports[0].targetPort');
  invalid(svc({ ports: [{ port: 80, targetPort: 'Not_A_Name' }] }), 'spec.ports[0].targetPort', /name of a port/);
  invalid(svc({ ports: [{ port: 80, protocol: 'HTTP' }] }), 'spec.ports[0].protocol', /one of TCP, UDP, SCTP \(got "HTTP"\)/);
  invalid(svc({ type: 'Foo', ports: [{ port: 80 }] }), 'spec.type', /ClusterIP, NodePort, LoadBalancer, ExternalName/);
  invalid(svc({}), 'spec.ports', /is required/);
  invalid(svc({ ports: [] }), 'spec.ports', /at least one port/);
  invalid(svc(undefined), 'spec', /is required/);
  invalid(svc({ ports: [{ port: 80 }] }, 'Node_App'), 'metadata.name', /RFC 1123 label/);
  invalid(svc({ ports: [{ port: 80 }] }, 'a.b'), 'metadata.name', /RFC 1123 label/);
  invalid(svc({ ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] }), 'spec.ports[1].name', /duplicate port name "a"/);
  invalid(svc({ ports: [{ port: 80 }], selector: { app: 1 } }), 'spec.selector.app', /must be a string/);
  invalid({ ...svc({ ports: [{ port: 80 }] }), metadata: { name: 'a', namespace: 'Bad NS' } }, 'metadata.namespace');
  invalid({ ...svc({ ports: [{ port: 80 }] }), metadata: { name: 'a', annotations: { 'dapr.io/enabled': true } } }, 'metadata.annotations["dapr.io/enabled"]', /quote/);
});

test('Service: externalName is required iff type ExternalName; headless may omit ports', () => {
  const ext = validateObject(svc({ type: 'ExternalName', externalName: 'db.example.com' })) as ServiceObject;
  assert.equal(ext.spec.externalName, 'db.example.com');
  invalid(svc({ type: 'ExternalName' }), 'spec.externalName', /required when spec.type is ExternalName/);
  invalid(svc({ ports: [{ port: 80 }], externalName: 'x.com' }), 'spec.externalName', /only allowed/);
  validateObject(svc({ clusterIP: 'None' }));
});

test('Service: every problem is listed, including cross-field ones next to type errors', () => {
  const err = invalid(svc({ type: 'ExternalName', ports: [{ port: 'x' }, { port: 99999 }] }), 'spec.ports[0].port');
  const fields = err.details.problems!.map((p) => p.field);
  assert.deepEqual(fields.sort(), ['spec.externalName', 'spec.ports[0].port', 'spec.ports[1].port']);
  assert.equal(err.details.kind, 'Service');
  assert.equal(err.details.name, 'nodeapp');
});

test('Endpoints: good and bad', () => {
  const ep = validateObject({
    apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'nodeapp', namespace: 'n' },
    subsets: [{ addresses: [{ ip: '10.0.0.1' }, { ip: '::1', hostname: 'h1' }], ports: [{ port: 3000 }] }],
  });
  assert.equal((ep.subsets as any)[0].ports[0].protocol, 'TCP');
  const base = (subsets: unknown) => ({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'e' }, subsets });
  invalid(base([{ addresses: [{ ip: '10.0.0.300' }] }]), 'subsets[0].addresses[0].ip', /IPv4 or IPv6/);
  invalid(base([{ addresses: [{}] }]), 'subsets[0].addresses[0].ip', /is required/);
  invalid(base([{ notReadyAddresses: [{ ip: 'host' }] }]), 'subsets[0].notReadyAddresses[0].ip');
  invalid(base([{ ports: [{ port: 0 }] }]), 'subsets[0].ports[0].port');
  invalid(base({}), 'subsets', /must be a list/);
});

test('Secret: type default, stringData merged into data as base64 and removed', () => {
  const s = validateObject({
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'redis', namespace: 'dapr-test' },
    data: { a: Buffer.from('x').toString('base64'), 'redis-password': 'b2xk' },
    stringData: { 'redis-password': 'changeme' },
  }) as SecretObject;
  assert.equal(s.type, 'Opaque');
  assert.equal(s.stringData, undefined);
  assert.equal(Buffer.from(s.data!['redis-password'], 'base64').toString(), 'changeme');
  assert.equal(s.data!.a, 'eA==');
});

test('Secret: bad base64, bad keys, wrong types', () => {
  const sec = (extra: object) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, ...extra });
  invalid(sec({ data: { k: 'not base64!' } }), 'data.k', /base64/);
  invalid(sec({ data: { k: 'abc' } }), 'data.k', /base64/);
  invalid(sec({ data: { 'bad key': 'YQ==' } }), 'data["bad key"]', /key "bad key"/);
  invalid(sec({ stringData: { 'a/b': 'x' } }), 'stringData["a/b"]');
  invalid(sec({ stringData: { p: 5 } }), 'stringData.p', /must be a string/);
  invalid(sec({ type: 5 }), 'type');
});

test('ServiceAccount: good and bad', () => {
  const sa = validateObject({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'curl', namespace: 'curl' } });
  assert.equal(sa.metadata.name, 'curl');
  invalid({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'Curl' } }, 'metadata.name');
  invalid({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'c' }, automountServiceAccountToken: 'yes' }, 'automountServiceAccountToken', /true or false/);
  invalid({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'c', labels: { 'a b': 'x' } } }, 'metadata.labels["a b"]');
});
