import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore } from '../store/index.js';
import { toMicroTime } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { ENDPOINTS_KEY, ENDPOINTS_LABEL, LEASES_KEY, LeaseController, instancePodName, withoutInstance } from './index.js';

function setup() {
  const store = openStore(null);
  store.create({ storageKey: 'core/namespaces', name: 'dapr-test' }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dapr-test' } });
  let now = 1_000_000;
  const clock = { advance: (ms: number) => (now += ms) };
  const lease = (instance: string, duration = 3): KubeObject => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: instancePodName('nodeapp', instance), namespace: 'dapr-test', labels: { [ENDPOINTS_LABEL]: 'nodeapp' } },
    spec: { holderIdentity: instance, leaseDurationSeconds: duration, renewTime: toMicroTime() },
  });
  const subset = (instance: string, port: number) => ({ addresses: [{ ip: '127.0.0.1', targetRef: { kind: 'Pod', name: instancePodName('nodeapp', instance) } }], ports: [{ port, protocol: 'TCP' }] });
  const leaseRef = (i: string) => ({ storageKey: LEASES_KEY, namespace: 'dapr-test', name: instancePodName('nodeapp', i) });
  const epRef = { storageKey: ENDPOINTS_KEY, namespace: 'dapr-test', name: 'nodeapp' };
  for (const i of ['a1', 'b2']) store.create(leaseRef(i), lease(i));
  store.create(epRef, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, subsets: [subset('a1', 4001), subset('b2', 4002), { addresses: [{ ip: '10.0.0.9' }], ports: [{ port: 80, protocol: 'TCP' }] }] } as KubeObject);
  const renew = (i: string) => {
    const l = store.get(leaseRef(i))!;
    store.update(leaseRef(i), { ...l, spec: { ...l.spec, renewTime: toMicroTime(new Date(Date.now() + 1)) + '' } });
  };
  const ctl = () => new LeaseController(store, { now: () => now, checkIntervalMs: 60_000 }).start();
  return { store, clock, renew, ctl, leaseRef, epRef };
}

test('LeaseController: an unrenewed lease expires: its subset and the lease go, others stay', () => {
  const { store, clock, renew, ctl, leaseRef, epRef } = setup();
  const c = ctl();
  try {
    clock.advance(2000);
    renew('b2');
    assert.deepEqual(c.sweep(), []);
    clock.advance(1500); // a1: 3.5 s since seen; b2: 1.5 s
    assert.deepEqual(c.sweep(), ['dapr-test/nodeapp-a1']);
    assert.equal(store.get(leaseRef('a1')), undefined);
    assert.ok(store.get(leaseRef('b2')));
    const ep = store.get(epRef) as any;
    assert.deepEqual(ep.subsets.map((s: any) => s.ports[0].port), [4002, 80], 'the unrelated subset (no targetRef) is kept');
    clock.advance(3001);
    assert.deepEqual(c.sweep(), ['dapr-test/nodeapp-b2']);
    assert.deepEqual((store.get(epRef) as any).subsets.map((s: any) => s.ports[0].port), [80]);
  } finally {
    c.close();
    store.close();
  }
});

test('LeaseController: after a restart every lease gets a full duration of grace', () => {
  const { store, clock, ctl, leaseRef } = setup();
  clock.advance(60_000); // leases are old (nobody watched them for a minute)
  const c = ctl();
  try {
    assert.deepEqual(c.sweep(), []);
    clock.advance(2999);
    assert.deepEqual(c.sweep(), []);
    clock.advance(2);
    assert.equal(c.sweep().length, 2);
    assert.equal(store.get(leaseRef('a1')), undefined);
  } finally {
    c.close();
    store.close();
  }
});

test('LeaseController: leases without the endpoints label are not touched; withoutInstance keeps identity when nothing matches', () => {
  const { store, clock, ctl } = setup();
  store.create({ storageKey: LEASES_KEY, namespace: 'dapr-test', name: 'leader' }, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'leader', namespace: 'dapr-test' }, spec: { leaseDurationSeconds: 1 } });
  const c = ctl();
  try {
    clock.advance(10_000);
    assert.deepEqual(c.sweep().sort(), ['dapr-test/nodeapp-a1', 'dapr-test/nodeapp-b2']);
    assert.ok(store.get({ storageKey: LEASES_KEY, namespace: 'dapr-test', name: 'leader' }));
    const subsets = [{ addresses: [{ ip: '1.2.3.4' }] }];
    assert.equal(withoutInstance(subsets, 'x'), subsets);
  } finally {
    c.close();
    store.close();
  }
});
