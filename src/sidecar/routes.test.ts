import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { KubeObject } from '../api/types.js';
import { compileRoutes, routeKey, describeRoute } from './routes.js';
import { chooseTarget, OutlierDetector, WeightedPicker } from './balancer.js';

const key = (c: string) => `default/default/default/${c}`;
const svc = (ns: string, name: string, port: number): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ port, targetPort: port }] } });
const eps = (ns: string, name: string, ports: number[]): KubeObject => ({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name, namespace: ns }, subsets: ports.map((p) => ({ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: p }] })) });
const imp = (ns: string, name: string, port: number, clusters: string[]): KubeObject => ({
  apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceImport', metadata: { name, namespace: ns },
  spec: { type: 'ClusterSetIP', ports: [{ port, protocol: 'TCP', endpoints: clusters.map((c, i) => ({ clusterKey: key(c), target: { host: '127.0.0.1', ip: '127.0.0.1', port: 9000 + i, path: `/${name}` } })) }] },
});
const gtp = (ns: string, name: string, lbType: string, targets: { clusterKey: string; weight?: number }[] = []): KubeObject => ({ apiVersion: 'flomesh.io/v1alpha1', kind: 'GlobalTrafficPolicy', metadata: { name, namespace: ns }, spec: { lbType, targets } });

/** Polls `cond` (every 5 ms, up to 3 s). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function count(route: ReturnType<typeof compileRoutes> extends Map<string, infer R> ? R : never, n: number): Map<string, number> {
  const picker = new WeightedPicker();
  const outliers = new OutlierDetector();
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const t = chooseTarget(route, picker, outliers, undefined);
    const id = t?.id ?? 'none';
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

describe('outbound route compilation and policies', () => {
  it('Locality (no policy): imports are invisible; no local endpoint means no target', () => {
    const routes = compileRoutes({ clusterName: 'cluster-2', services: [], endpoints: [], imports: [imp('dapr-test', 'nodeapp', 3000, ['cluster-1', 'cluster-3'])], policies: [] });
    const r = routes.get(routeKey('dapr-test', 'nodeapp', 3000))!;
    assert.equal(r.lbType, 'Locality');
    assert.equal(r.remotes.length, 0);
    assert.deepEqual(count(r, 3), new Map([['none', 3]]));
    assert.match(describeRoute(r), /exported by:.*cluster-1.*not used under Locality/);
  });

  it('ActiveActive spreads by weight (100/300 → 1:3), with the export path as prefix; explicit 0 stays 0', () => {
    const routes = compileRoutes({
      clusterName: 'cluster-2', services: [], endpoints: [],
      imports: [imp('dapr-test', 'nodeapp', 3000, ['cluster-1', 'cluster-3', 'cluster-4'])],
      policies: [gtp('dapr-test', 'nodeapp', 'ActiveActive', [{ clusterKey: key('cluster-1'), weight: 100 }, { clusterKey: key('cluster-3'), weight: 300 }, { clusterKey: key('cluster-4'), weight: 0 }])],
    });
    const r = routes.get(routeKey('dapr-test', 'nodeapp', 3000))!;
    assert.equal(r.remotes.find((t) => t.cluster === key('cluster-1'))!.pathPrefix, '/nodeapp');
    const seen = count(r, 400);
    assert.equal(seen.get(`remote:${key('cluster-1')}`), 100);
    assert.equal(seen.get(`remote:${key('cluster-3')}`), 300);
    assert.equal(seen.get(`remote:${key('cluster-4')}`), undefined);
  });

  it('ActiveActive with no targets uses every exporter at 100, plus locals at 100', () => {
    const routes = compileRoutes({ clusterName: 'cluster-2', services: [svc('ns', 'a', 80)], endpoints: [eps('ns', 'a', [5001])], imports: [imp('ns', 'a', 80, ['cluster-1'])], policies: [gtp('ns', 'a', 'ActiveActive')] });
    const seen = count(routes.get(routeKey('ns', 'a', 80))!, 100);
    assert.equal(seen.get('local:127.0.0.1:5001'), 50);
    assert.equal(seen.get(`remote:${key('cluster-1')}`), 50);
  });

  it('FailOver uses locals while one is healthy, remotes otherwise', () => {
    const withLocal = compileRoutes({ clusterName: 'c2', services: [svc('ns', 'a', 80)], endpoints: [eps('ns', 'a', [5001])], imports: [imp('ns', 'a', 80, ['cluster-1'])], policies: [gtp('ns', 'a', 'FailOver', [{ clusterKey: key('cluster-1') }])] });
    const r = withLocal.get(routeKey('ns', 'a', 80))!;
    assert.deepEqual(count(r, 10), new Map([['local:127.0.0.1:5001', 10]]));
    const outliers = new OutlierDetector({ baseEjectionMs: 60_000 });
    outliers.failure(r.locals[0], 'connect');
    const t = chooseTarget(r, new WeightedPicker(), outliers, undefined);
    assert.equal(t?.id, `remote:${key('cluster-1')}`, 'an ejected local fails over');
    const noLocal = compileRoutes({ clusterName: 'c2', services: [], endpoints: [], imports: [imp('ns', 'a', 80, ['cluster-1'])], policies: [gtp('ns', 'a', 'FailOver', [{ clusterKey: key('cluster-1') }])] });
    assert.deepEqual(count(noLocal.get(routeKey('ns', 'a', 80))!, 4), new Map([[`remote:${key('cluster-1')}`, 4]]));
  });

  it('skips targets already tried for a request', () => {
    const routes = compileRoutes({ clusterName: 'c2', services: [svc('ns', 'a', 80)], endpoints: [eps('ns', 'a', [5001, 5002])], imports: [], policies: [] });
    const r = routes.get(routeKey('ns', 'a', 80))!;
    const picker = new WeightedPicker();
    const first = chooseTarget(r, picker, new OutlierDetector(), undefined)!;
    const second = chooseTarget(r, picker, new OutlierDetector(), new Set([first.id]))!;
    assert.notEqual(first.id, second.id);
    assert.equal(chooseTarget(r, picker, new OutlierDetector(), new Set([first.id, second.id])), undefined);
  });

  it('an ejected target is re-admitted only after its period and a successful TCP probe', async () => {
    // The target's port: nothing listens there at first (the probe is refused), later a server does.
    let accepted = 0;
    const server = createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
    try {
      const routes = compileRoutes({ clusterName: 'c2', services: [svc('ns', 'a', 80)], endpoints: [eps('ns', 'a', [port])], imports: [], policies: [] });
      const t = routes.get(routeKey('ns', 'a', 80))!.locals[0];
      let now = 1_000_000;
      const o = new OutlierDetector({ baseEjectionMs: 50, now: () => now });
      const settled = () => until(() => o.healthOf(t)?.probing === false, 'the probe to finish');

      o.failure(t, 'connect');
      assert.deepEqual(o.healthOf(t), { consecutive: 1, ejectedUntil: 1_000_050, ejections: 1, probing: false }, 'a refused connection ejects at once');
      assert.deepEqual(o.ejected(), [t.id]);
      now = 1_000_049;
      assert.equal(o.isHealthy(t), false);
      assert.equal(o.healthOf(t)!.probing, false, 'no probe before the period ends');

      now = 1_000_050;
      assert.equal(o.isHealthy(t), false, 'the period alone does not re-admit');
      assert.equal(o.healthOf(t)!.probing, true, 'the probe starts when the period ends');
      // Target still down: the probe is refused; ejected for one more base period from then (not doubled).
      await settled();
      assert.deepEqual(o.healthOf(t), { consecutive: 1, ejectedUntil: 1_000_100, ejections: 1, probing: false });
      assert.equal(o.isHealthy(t), false);
      assert.deepEqual(o.ejected(), [t.id]);

      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      now = 1_000_099;
      assert.equal(o.isHealthy(t), false);
      assert.equal(o.healthOf(t)!.probing, false, 'no probe before the new period ends');
      now = 1_000_100;
      assert.equal(o.isHealthy(t), false, 'not re-admitted before the probe succeeded');
      assert.equal(o.healthOf(t)!.probing, true);
      assert.equal(o.isHealthy(t), false, 'one probe at a time');
      await settled();
      assert.equal(o.isHealthy(t), true, 're-admitted after a successful probe');
      assert.deepEqual(o.healthOf(t), { consecutive: 0, ejectedUntil: 0, ejections: 0, probing: false });
      assert.deepEqual(o.ejected(), []);
      await until(() => accepted === 1, 'the probe connection to be accepted');
    } finally {
      server.close();
    }
  });
});
