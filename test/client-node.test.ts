import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { eventually, runCli, tempDir } from './helpers.js';

/**
 * The official Kubernetes client (@kubernetes/client-node 1.x) against a real cluster process,
 * over the kubeconfig `crossmesh kubeconfig get` prints (https, the cluster's CA, a bearer
 * token): typed CoreV1Api and CustomObjectsApi calls, and makeInformer's list+watch following
 * adds, updates and deletes across a cluster restart (sqlite store, event log kept) and through
 * a 410 Gone (the store keeps 40 events here: CROSSMESH_STORE_EVENT_LOG_SIZE) that makes it relist.
 */
const MERGE = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const LOG_SIZE = 40;

interface Seen { verb: 'add' | 'update' | 'delete'; name: string; rv: string }

describe('@kubernetes/client-node against a crossmesh cluster', () => {
  const { dir: home, cleanup } = tempDir();
  const env = { CROSSMESH_STORE_EVENT_LOG_SIZE: String(LOG_SIZE) };
  const cli = (args: string[]) => runCli(args, { home, env });
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;

  const up = async () => {
    const res = await cli(['up', '--clusters', 'control-plane', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(res.code, 0, res.stderr);
  };

  before(async () => {
    await up();
    const res = await cli(['kubeconfig', 'get', 'control-plane']);
    assert.equal(res.code, 0, res.stderr);
    kc = new k8s.KubeConfig();
    kc.loadFromString(res.stdout);
    core = kc.makeApiClient(k8s.CoreV1Api);
    custom = kc.makeApiClient(k8s.CustomObjectsApi);
  });

  after(async () => {
    await cli(['down', '--purge']);
    cleanup();
  });

  it('KubeConfig reads the https server, the CA data and the bearer token', () => {
    const cluster = kc.getCurrentCluster()!;
    assert.match(cluster.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(Buffer.from(cluster.caData!, 'base64').toString(), /BEGIN CERTIFICATE/);
    assert.match(kc.getCurrentUser()!.token!, /^\S{32,}$/);
  });

  it('CoreV1Api: create, read, list, merge-patch and delete a Namespace, a Service and a Secret', async () => {
    const ns = await core.createNamespace({ body: { metadata: { name: 'cn-test' } } });
    assert.equal(ns.metadata?.name, 'cn-test');
    assert.ok((await core.listNamespace()).items.some((n) => n.metadata?.name === 'cn-test'));

    const svc = await core.createNamespacedService({
      namespace: 'cn-test',
      body: { metadata: { name: 'web', labels: { app: 'web' } }, spec: { ports: [{ port: 80, targetPort: 8080 }] } },
    });
    assert.equal(svc.kind, 'Service');
    assert.ok(svc.metadata?.resourceVersion);
    const read = await core.readNamespacedService({ name: 'web', namespace: 'cn-test' });
    assert.equal(read.spec?.ports?.[0].port, 80);
    assert.equal(read.metadata?.uid, svc.metadata?.uid);
    const list = await core.listNamespacedService({ namespace: 'cn-test', labelSelector: 'app in (web,api)' });
    assert.deepEqual(list.items.map((s) => s.metadata?.name), ['web']);
    assert.ok(list.metadata?.resourceVersion);
    assert.equal((await core.listNamespacedService({ namespace: 'cn-test', fieldSelector: 'metadata.name!=web' })).items.length, 0);
    const patched = await core.patchNamespacedService({ name: 'web', namespace: 'cn-test', body: { metadata: { labels: { tier: 'front' } } } }, MERGE);
    assert.deepEqual(patched.metadata?.labels, { app: 'web', tier: 'front' });
    assert.ok(Number(patched.metadata?.resourceVersion) > Number(svc.metadata?.resourceVersion));

    const secret = await core.createNamespacedSecret({
      namespace: 'cn-test',
      body: { metadata: { name: 'redis' }, type: 'Opaque', data: { 'redis-password': Buffer.from('changeme').toString('base64') } },
    });
    assert.equal(secret.metadata?.name, 'redis');
    const got = await core.readNamespacedSecret({ name: 'redis', namespace: 'cn-test' });
    assert.equal(Buffer.from(got.data!['redis-password'], 'base64').toString(), 'changeme');
    await core.patchNamespacedSecret({ name: 'redis', namespace: 'cn-test', body: { metadata: { annotations: { rotated: 'no' } } } }, MERGE);
    assert.equal((await core.readNamespacedSecret({ name: 'redis', namespace: 'cn-test' })).metadata?.annotations?.rotated, 'no');

    await core.deleteNamespacedSecret({ name: 'redis', namespace: 'cn-test' });
    await core.deleteNamespacedService({ name: 'web', namespace: 'cn-test' });
    await assert.rejects(core.readNamespacedService({ name: 'web', namespace: 'cn-test' }), (err: { code?: number; body?: string }) => {
      assert.equal(err.code, 404);
      assert.match(String(err.body), /services \\?"web\\?" not found/);
      return true;
    });
    await core.deleteNamespace({ name: 'cn-test' });
    await assert.rejects(core.readNamespace({ name: 'cn-test' }), (err: { code?: number }) => err.code === 404);
  });

  it('CustomObjectsApi: ServiceExport and GlobalTrafficPolicy (flomesh.io) create, get, list, merge patch', async () => {
    await core.createNamespace({ body: { metadata: { name: 'dapr-test' } } });
    await core.createNamespacedService({ namespace: 'dapr-test', body: { metadata: { name: 'nodeapp' }, spec: { ports: [{ port: 3000 }] } } });
    const g = { group: 'flomesh.io', version: 'v1alpha1', namespace: 'dapr-test' };
    const sexp = await custom.createNamespacedCustomObject({
      ...g, plural: 'serviceexports',
      body: {
        apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'nodeapp' },
        spec: { serviceAccountName: '*', pathRewrite: { from: '^/nodeapp/?', to: '/' }, rules: [{ portNumber: 3000, path: '/nodeapp', pathType: 'Prefix' }] },
      },
    }) as k8s.KubernetesObject;
    assert.equal(sexp.metadata?.name, 'nodeapp');
    // The export controller validates it (status condition Valid=True).
    await eventually(async () => {
      const o = await custom.getNamespacedCustomObject({ ...g, plural: 'serviceexports', name: 'nodeapp' }) as { status?: { conditions?: Array<{ type: string; status: string }> } };
      return o.status?.conditions?.some((c) => c.type === 'Valid' && c.status === 'True');
    }, 10_000, 'ServiceExport nodeapp Valid=True');

    await custom.createNamespacedCustomObject({
      ...g, plural: 'globaltrafficpolicies',
      body: {
        apiVersion: 'flomesh.io/v1alpha1', kind: 'GlobalTrafficPolicy', metadata: { name: 'nodeapp' },
        spec: { lbType: 'ActiveActive', targets: [{ clusterKey: 'default/default/default/cluster-1', weight: 100 }] },
      },
    });
    const gtps = await custom.listNamespacedCustomObject({ ...g, plural: 'globaltrafficpolicies' }) as { kind: string; items: k8s.KubernetesObject[]; metadata: { resourceVersion: string } };
    assert.equal(gtps.kind, 'GlobalTrafficPolicyList');
    assert.deepEqual(gtps.items.map((o) => o.metadata?.name), ['nodeapp']);
    const all = await custom.listClusterCustomObject({ group: 'flomesh.io', version: 'v1alpha1', plural: 'serviceexports' }) as { items: k8s.KubernetesObject[] };
    assert.deepEqual(all.items.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`), ['dapr-test/nodeapp']);
    const patched = await custom.patchNamespacedCustomObject({
      ...g, plural: 'globaltrafficpolicies', name: 'nodeapp',
      body: { spec: { targets: [{ clusterKey: 'default/default/default/cluster-1', weight: 100 }, { clusterKey: 'default/default/default/cluster-3', weight: 50 }] } },
    }, MERGE) as { spec: { lbType: string; targets: Array<{ weight: number }> } };
    assert.equal(patched.spec.lbType, 'ActiveActive');
    assert.deepEqual(patched.spec.targets.map((t) => t.weight), [100, 50]);
    const sexpPatched = await custom.patchNamespacedCustomObject({ ...g, plural: 'serviceexports', name: 'nodeapp', body: { metadata: { labels: { exported: 'yes' } } } }, MERGE) as k8s.KubernetesObject;
    assert.equal(sexpPatched.metadata?.labels?.exported, 'yes');
  });

  it('makeInformer follows adds, updates and deletes, loses nothing across a cluster restart, and relists after 410 Gone', async () => {
    const NS = 'informed';
    await core.createNamespace({ body: { metadata: { name: NS } } });
    let lists = 0;
    const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${NS}/services`, () => {
      lists++;
      return core.listNamespacedService({ namespace: NS });
    });
    const seen: Seen[] = [];
    const record = (verb: Seen['verb']) => (o: k8s.V1Service) => seen.push({ verb, name: o.metadata!.name!, rv: o.metadata!.resourceVersion! });
    informer.on('add', record('add'));
    informer.on('update', record('update'));
    informer.on('delete', record('delete'));
    // client-node's informer stops on a connection error and leaves restarting to its user: do it with a short backoff.
    // (Its stop() reports the aborted watch as an error too: no restart while stopped on purpose.)
    let stopped = false;
    let errors = 0;
    let restart: NodeJS.Timeout | undefined;
    informer.on('error', () => {
      errors++;
      if (stopped || restart) return;
      restart = setTimeout(() => {
        restart = undefined;
        if (!stopped) void informer.start();
      }, 100);
    });
    const svc = (name: string, port: number) => ({ metadata: { name }, spec: { ports: [{ port }] } });
    const truth = async () => (await core.listNamespacedService({ namespace: NS })).items.map((s) => `${s.metadata!.name}@${s.metadata!.resourceVersion}`).sort();
    const cache = () => informer.list(NS).map((s) => `${s.metadata!.name}@${s.metadata!.resourceVersion}`).sort();
    const converged = async (what: string) => {
      await eventually(async () => JSON.stringify(cache()) === JSON.stringify(await truth()), 15_000, `the informer's cache to equal the store (${what}): cache ${JSON.stringify(cache())}`);
    };
    const after = (n: number) => seen.slice(n).map((s) => `${s.verb} ${s.name}`);
    try {
      await core.createNamespacedService({ namespace: NS, body: svc('a', 80) });
      await informer.start();
      assert.equal(lists, 1);
      await converged('initial list');
      assert.deepEqual(after(0), ['add a']);

      let mark = seen.length;
      await core.createNamespacedService({ namespace: NS, body: svc('b', 81) });
      await core.patchNamespacedService({ name: 'a', namespace: NS, body: { spec: { ports: [{ port: 8080 }] } } }, MERGE);
      await core.deleteNamespacedService({ name: 'b', namespace: NS });
      await eventually(() => seen.length >= mark + 3, 10_000, 'three watch events');
      assert.deepEqual(after(mark), ['add b', 'update a', 'delete b']);
      await converged('after the watch events');

      // The cluster goes down (nobody can change anything meanwhile) and comes back on the same ports and data.
      const down = await cli(['down']);
      assert.equal(down.code, 0, down.stderr);
      await eventually(() => errors > 0, 10_000, 'the informer to notice the cluster is gone');
      await up();
      mark = seen.length;
      const sa = await core.createNamespacedService({ namespace: NS, body: svc('c', 82) });
      await core.patchNamespacedService({ name: 'a', namespace: NS, body: { metadata: { labels: { round: '2' } } } }, MERGE);
      await core.deleteNamespacedService({ name: 'c', namespace: NS });
      await core.createNamespacedService({ namespace: NS, body: svc('d', 83) });
      await eventually(() => seen.length >= mark + 4, 15_000, 'the four changes made after the restart');
      assert.deepEqual(after(mark), ['add c', 'update a', 'delete c', 'add d'], 'every change after the restart, in order, once');
      assert.equal(seen.slice(mark).find((s) => s.name === 'c')!.rv, sa.metadata!.resourceVersion);
      assert.equal(lists, 1, 'the informer resumed its watch from its resourceVersion: no relist');
      await converged('after the restart');

      // Gone: the informer stops, more than the log's worth of writes happen, it watches again from its old resourceVersion.
      stopped = true;
      await informer.stop();
      const oldRv = (informer as unknown as { latestResourceVersion(): string }).latestResourceVersion();
      await core.createNamespace({ body: { metadata: { name: 'churn' } } });
      for (let i = 0; i < LOG_SIZE + 5; i++) {
        await core.createNamespacedSecret({ namespace: 'churn', body: { metadata: { name: `s${i}` }, data: {} } });
      }
      await core.deleteNamespacedService({ name: 'd', namespace: NS });
      await core.createNamespacedService({ namespace: NS, body: svc('e', 84) });
      // Watching from the old revision is now 410 Gone (an ERROR event in the stream).
      const rawWatch = await fetchWatch(kc, `/api/v1/namespaces/${NS}/services?watch=true&resourceVersion=${oldRv}`);
      assert.equal(rawWatch.type, 'ERROR');
      assert.equal(rawWatch.object.code, 410);
      assert.equal(rawWatch.object.reason, 'Expired');
      mark = seen.length;
      stopped = false;
      await informer.start();
      await converged('after the relist');
      assert.equal(lists, 2, 'the 410 made the informer list again');
      // The relist's differences: d went, e came; a is unchanged, so no event for it.
      assert.deepEqual(after(mark).sort(), ['add e', 'delete d']);
      // And it watches on from the new list.
      mark = seen.length;
      await core.createNamespacedService({ namespace: NS, body: svc('f', 85) });
      await eventually(() => after(mark).includes('add f'), 10_000, 'add f after the relist');
      await converged('at the end');
    } finally {
      stopped = true;
      clearTimeout(restart);
      await informer.stop();
    }
  });
});

/** The first event of a raw watch request made with the kubeconfig's credentials. */
async function fetchWatch(kc: k8s.KubeConfig, path: string): Promise<{ type: string; object: { code: number; reason: string } }> {
  const { request } = await import('node:https');
  const cluster = kc.getCurrentCluster()!;
  const url = new URL(cluster.server + path);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      ca: Buffer.from(cluster.caData!, 'base64'),
      headers: { authorization: `Bearer ${kc.getCurrentUser()!.token}` },
    }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          req.destroy();
          resolve(JSON.parse(buf.slice(0, nl)));
        }
      });
      res.on('end', () => reject(new Error(`watch ended without an event: ${buf}`)));
    });
    req.on('error', reject);
    req.end();
  });
}
