import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kindFor } from '../src/api/index.js';
import type { KubeObject } from '../src/api/types.js';
import { ApiClient } from '../src/client/api-client.js';
import { INTERMEDIATE_PATH, type IntermediateInfo } from '../src/identity/api.js';
import { fingerprintOf } from '../src/identity/pki-settings.js';
import { startCluster, type RunningCluster } from '../src/cluster/cluster.js';
import { eventually, runCli, tempDir } from './helpers.js';

const SIMP = kindFor('flomesh.io/v1alpha1', 'ServiceImport');
const SEXP = kindFor('flomesh.io/v1alpha1', 'ServiceExport');
const CLUSTER = kindFor('flomesh.io/v1alpha1', 'Cluster');
const SVC = kindFor('v1', 'Service');
const EP = kindFor('v1', 'Endpoints');
const NS = kindFor('v1', 'Namespace');
const key = (name: string) => `default/default/default/${name}`;

interface Backend { server: Server; port: number; hits: string[] }

async function backend(label: string): Promise<Backend> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url!);
    res.setHeader('content-type', 'text/plain');
    res.end(`${label} ${req.method} ${req.url}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, hits };
}

/**
 * Four real cluster processes, as in the seed: `crossmesh up` starts and joins them, exports
 * in members become ServiceImports in the others, through restarts of members and of the
 * control plane.
 */
describe('multi-cluster control plane with four cluster processes', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  const clients = new Map<string, ApiClient>();
  const backends: Backend[] = [];
  const c = (name: string) => clients.get(name)!;
  const gatewayPort = (name: string) => JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')).gatewayPort as number;
  const meshPort = (name: string) => JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')).meshPort as number;
  const pidOf = (name: string) => JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')).pid as number;

  function refreshClients(): void {
    const cfg = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as { contexts: Record<string, { server: string; token: string; ca?: string }> };
    for (const [name, ctx] of Object.entries(cfg.contexts)) {
      void clients.get(name)?.close();
      clients.set(name, new ApiClient({ name, server: ctx.server, token: ctx.token, ...(ctx.ca ? { ca: ctx.ca } : {}) }));
    }
  }

  async function exportService(cluster: string, ns: string, name: string, b: Backend, extra: { spec?: Record<string, unknown>; service?: Record<string, unknown> } = {}): Promise<void> {
    const api = c(cluster);
    // The control plane may create the namespace first (to import another member's export).
    if (!(await api.get(NS, ns))) {
      await api.create(NS, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }).catch((err) => {
        if (err?.code !== 'CM_ERR_ALREADY_EXISTS') throw err;
      });
    }
    await api.apply(SVC, { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ port: 3000, targetPort: 3000 }], ...extra.service } });
    await api.apply(EP, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name, namespace: ns }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: b.port }] }] });
    await api.apply(SEXP, {
      apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name, namespace: ns },
      spec: { serviceAccountName: '*', pathRewrite: { from: `^/${name}/?`, to: '/' }, rules: [{ portNumber: 3000, path: `/${name}`, pathType: 'Prefix' }], ...extra.spec },
    });
  }

  const intermediateOf = async (cluster: string) => (await c(cluster).raw('GET', INTERMEDIATE_PATH)) as IntermediateInfo;
  /** The control plane's root (the mesh root), as its process wrote it. */
  const meshRootFingerprint = () => fingerprintOf(readFileSync(join(home, 'clusters', 'control-plane', 'pki', 'ca.crt'), 'utf8'));
  const meshIdentityOf = async (m: string) => {
    const o = await c('control-plane').get(CLUSTER, m);
    return o?.status?.conditions?.find((x: { type: string }) => x.type === 'MeshIdentity') as { status: string; reason: string; message: string; lastTransitionTime: string } | undefined;
  };
  let intermediatesBeforeRestart: Map<string, IntermediateInfo> | undefined;

  const importOf = (cluster: string, ns: string, name: string) => c(cluster).get(SIMP, name, ns);
  const clusterKeysOf = (imp: KubeObject | undefined) => (imp?.spec?.ports ?? []).flatMap((p: { endpoints: { clusterKey: string }[] }) => p.endpoints.map((e) => e.clusterKey)).sort();

  before(async () => {
    const res = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /clusters\.flomesh\.io\/cluster-1 created/);
    refreshClients();
    for (const label of ['c1', 'c3', 'c1b', 'late']) backends.push(await backend(label));
  });

  after(async () => {
    for (const api of clients.values()) await api.close();
    for (const b of backends) b.server.close();
    await cli(['down', '--purge']);
    cleanup();
  });

  it('joins members: Managed=True on every Cluster, members claimed', async () => {
    for (const m of ['cluster-1', 'cluster-2', 'cluster-3']) {
      const cl = await eventually(async () => {
        const o = await c('control-plane').get(CLUSTER, m);
        return o?.status?.conditions?.find((x: { type: string; status: string }) => x.type === 'Managed' && x.status === 'True') ? o : undefined;
      }, 5000, `${m} Managed`);
      const cond = cl.status.conditions.find((x: { type: string }) => x.type === 'Managed');
      assert.equal(cond.reason, 'Success');
      assert.equal(cond.message, `Cluster ${key(m)} joined ClusterSet successfully.`);
      const def = await c(m).get(NS, 'default');
      assert.match(def!.metadata.annotations!['multicluster.flomesh.io/managed-by'], /^control-plane\//);
    }
    // Each member's mesh CA is now an intermediate of the control plane's root.
    for (const m of ['cluster-1', 'cluster-2', 'cluster-3']) {
      const cond = await eventually(async () => {
        const x = await meshIdentityOf(m);
        return x?.status === 'True' ? x : undefined;
      }, 5000, `${m} MeshIdentity`);
      const info = await intermediateOf(m);
      assert.equal(info.rootFingerprint, meshRootFingerprint());
      assert.equal(info.joined, true);
      assert.match(info.subject, new RegExp(`CN=crossmesh cluster ${m} CA`));
      assert.equal(cond.message, `Cluster ${key(m)}: mesh CA "${info.subject}" issued by "${info.issuer}" (mesh root ${info.rootFingerprint}), valid until ${info.notAfter}.`);
    }
    const table = await cli(['--cluster', 'control-plane', 'get', 'clusters']);
    assert.match(table.stdout, /cluster-2\s+default\s+default\s+default\s+127\.0\.0\.1:\d+\s+True/);
  });

  it('propagates an export to every other member in well under a second, and the gateway serves it with the rewrite', async () => {
    const started = Date.now();
    await exportService('cluster-1', 'dapr-test', 'nodeapp', backends[0]);
    const imp = await eventually(() => importOf('cluster-2', 'dapr-test', 'nodeapp'), 5000, 'import in cluster-2');
    const latency = Date.now() - started;
    console.log(`# propagation: ServiceExport applied in cluster-1 -> ServiceImport visible in cluster-2 in ${latency} ms`);
    assert.ok(latency < 1000, `propagation took ${latency} ms`);
    assert.deepEqual(imp.spec.ports, [{ protocol: 'TCP', port: 3000, endpoints: [{ clusterKey: key('cluster-1'), target: { host: '127.0.0.1', ip: '127.0.0.1', port: gatewayPort('cluster-1'), path: '/nodeapp', meshPort: meshPort('cluster-1') } }] }]);
    assert.equal(imp.spec.type, 'ClusterSetIP');
    assert.equal(imp.spec.serviceAccountName, '*');
    await eventually(() => importOf('cluster-3', 'dapr-test', 'nodeapp'), 3000, 'import in cluster-3');
    assert.ok(await c('cluster-3').get(NS, 'dapr-test'), 'namespace created in the importer');
    assert.equal(await importOf('cluster-1', 'dapr-test', 'nodeapp'), undefined, 'the exporter does not import itself');
    const exp = await c('cluster-1').get(SEXP, 'nodeapp', 'dapr-test');
    assert.equal(exp!.status.conditions.find((x: { type: string }) => x.type === 'Valid').status, 'True');

    const res = await fetch(`http://127.0.0.1:${gatewayPort('cluster-1')}/nodeapp/ports`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'c1 GET /ports');
    const simp = await cli(['get', 'simp', '-A', '--cluster', 'cluster-2']);
    assert.match(simp.stdout, /dapr-test\s+nodeapp\s+ClusterSetIP\s+3000\s+cluster-1/);
  });

  it('merges a second exporter by clusterKey; a conflicting one gets Conflict=True', async () => {
    await exportService('cluster-3', 'dapr-test', 'nodeapp', backends[1]);
    await eventually(async () => clusterKeysOf(await importOf('cluster-2', 'dapr-test', 'nodeapp')).join() === [key('cluster-1'), key('cluster-3')].join(), 3000, 'merged endpoints');
    assert.deepEqual(clusterKeysOf(await importOf('cluster-1', 'dapr-test', 'nodeapp')), [key('cluster-3')]);
    assert.deepEqual(clusterKeysOf(await importOf('cluster-3', 'dapr-test', 'nodeapp')), [key('cluster-1')]);

    // cluster-2 exports a Service of the same name with another protocol on port 3000: conflict.
    await exportService('cluster-2', 'dapr-test', 'nodeapp', backends[2], { service: { ports: [{ port: 3000, protocol: 'UDP' }] } });
    const conflicted = await eventually(async () => {
      const e = await c('cluster-2').get(SEXP, 'nodeapp', 'dapr-test');
      return e?.status?.conditions?.find((x: { type: string; status: string }) => x.type === 'Conflict' && x.status === 'True');
    }, 3000, 'Conflict=True');
    assert.match(conflicted.message, /^ServiceExport dapr-test\/nodeapp conflicts, port 3000\/UDP/);
    assert.deepEqual(clusterKeysOf(await importOf('cluster-1', 'dapr-test', 'nodeapp')), [key('cluster-3')], 'the conflicting exporter is not merged');
    await c('cluster-2').delete(SEXP, 'nodeapp', 'dapr-test');
    await c('cluster-2').delete(SVC, 'nodeapp', 'dapr-test');
  });

  it('honours targetClusters', async () => {
    await exportService('cluster-1', 'only2', 'svc2', backends[2], { spec: { targetClusters: [key('cluster-2')] } });
    await eventually(() => importOf('cluster-2', 'only2', 'svc2'), 3000, 'import in cluster-2');
    // A later export to everyone: once it is imported in cluster-3, the control plane has applied
    // a plan that includes svc2 to cluster-3 as well (reconciles are serialized).
    await exportService('cluster-1', 'only2', 'everyone', backends[2]);
    await eventually(() => importOf('cluster-3', 'only2', 'everyone'), 3000, 'the later export imported in cluster-3');
    assert.equal(await importOf('cluster-3', 'only2', 'svc2'), undefined, 'svc2 is not imported outside its targetClusters');
    assert.ok(await importOf('cluster-2', 'only2', 'svc2'));
  });

  it('removes endpoints when an export or its Service is deleted, and the import when none is left', async () => {
    await exportService('cluster-3', 'gone', 'temp', backends[1]);
    await exportService('cluster-1', 'gone', 'temp', backends[0]);
    await eventually(async () => clusterKeysOf(await importOf('cluster-2', 'gone', 'temp')).length === 2, 3000, 'two exporters');
    await c('cluster-3').delete(SVC, 'temp', 'gone');
    await eventually(async () => clusterKeysOf(await importOf('cluster-2', 'gone', 'temp')).join() === key('cluster-1'), 3000, 'service delete removes endpoints');
    await c('cluster-1').delete(SEXP, 'temp', 'gone');
    await eventually(async () => (await importOf('cluster-2', 'gone', 'temp')) === undefined, 3000, 'import deleted');
  });

  it('a restarted member converges: exports made while it was down reach it', async () => {
    const pid = pidOf('cluster-2');
    process.kill(pid, 'SIGKILL');
    await eventually(async () => {
      const o = await c('control-plane').get(CLUSTER, 'cluster-2');
      return o?.status?.conditions?.find((x: { type: string; status: string }) => x.type === 'Managed' && x.status === 'False');
    }, 5000, 'Managed=False while down');
    await exportService('cluster-1', 'while-down', 'svcx', backends[0]);
    const res = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(res.code, 0, res.stderr);
    refreshClients();
    await eventually(() => importOf('cluster-2', 'while-down', 'svcx'), 5000, 'import after member restart');
    assert.ok(await importOf('cluster-2', 'dapr-test', 'nodeapp'), 'earlier imports survived the restart');
  });

  it('a control-plane outage keeps imports; on return it adds what is missing and removes what is stale', async () => {
    intermediatesBeforeRestart = new Map();
    for (const m of ['cluster-1', 'cluster-2', 'cluster-3']) intermediatesBeforeRestart.set(m, await intermediateOf(m));
    process.kill(pidOf('control-plane'), 'SIGKILL');
    // Changes only once the control plane is gone (its API refuses connections).
    await eventually(async () => {
      try {
        await c('control-plane').get(NS, 'default');
        return false;
      } catch {
        return true;
      }
    }, 5000, 'the control plane to be gone');
    await c('cluster-1').delete(SEXP, 'svcx', 'while-down');
    await exportService('cluster-3', 'cp-down', 'fresh', backends[1]);
    // The members process the changes themselves (cluster-3 validates its new export)...
    await eventually(async () => {
      const e = await c('cluster-3').get(SEXP, 'fresh', 'cp-down');
      return e?.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Valid' && x.status === 'True');
    }, 3000, 'cp-down/fresh Valid in cluster-3');
    // ...and nothing else touches the imports: the existing ones stay, the stale one too, nothing new arrives.
    assert.ok(await importOf('cluster-2', 'dapr-test', 'nodeapp'), 'imports stay while the control plane is down');
    assert.ok(await importOf('cluster-2', 'while-down', 'svcx'), 'the stale import is only removed by the control plane');
    assert.equal(await importOf('cluster-2', 'cp-down', 'fresh'), undefined);
    const res = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(res.code, 0, res.stderr);
    refreshClients();
    await eventually(() => importOf('cluster-2', 'cp-down', 'fresh'), 5000, 'new export propagated after return');
    await eventually(async () => (await importOf('cluster-2', 'while-down', 'svcx')) === undefined, 5000, 'stale import removed');
    const nodeapp = await importOf('cluster-2', 'dapr-test', 'nodeapp');
    assert.deepEqual(clusterKeysOf(nodeapp), [key('cluster-1'), key('cluster-3')], 'no duplicates');
    // The restarted control plane found the members' mesh CAs valid: nothing re-issued.
    for (const [m, before] of intermediatesBeforeRestart!) {
      assert.deepEqual(await intermediateOf(m), before, `${m}'s intermediate after the control-plane restart`);
      assert.equal((await meshIdentityOf(m))?.status, 'True');
    }
  });

  it('a cluster joined later (the seed way: kubeconfig get + apply Cluster) receives earlier exports; deleting it cleans up', async () => {
    const res = await cli(['up', '--clusters', 'cluster-4', '--api-port', '0', '--gateway-port', '0', '--no-join']);
    assert.equal(res.code, 0, res.stderr);
    refreshClients();
    const kc = (await cli(['kubeconfig', 'get', 'cluster-4'])).stdout;
    const manifest = `apiVersion: flomesh.io/v1alpha1
kind: Cluster
metadata:
  name: cluster-4
spec:
  gatewayHost: 127.0.0.1
  gatewayPort: ${gatewayPort('cluster-4')}
  kubeconfig: |+
${kc.split('\n').map((l) => '    ' + l).join('\n')}
`;
    const applied = await cli(['--cluster', 'control-plane', 'apply', '-f', '-'], manifest);
    assert.equal(applied.code, 0, applied.stderr);
    await eventually(() => importOf('cluster-4', 'dapr-test', 'nodeapp'), 5000, 'earlier export reaches the late member');
    await exportService('cluster-4', 'late', 'svc4', backends[3]);
    await eventually(() => importOf('cluster-2', 'late', 'svc4'), 3000, 'late member export propagates');
    await c('control-plane').delete(CLUSTER, 'cluster-4');
    await eventually(async () => (await importOf('cluster-2', 'late', 'svc4')) === undefined, 3000, 'its endpoints are removed from the others');
    await eventually(async () => (await importOf('cluster-4', 'dapr-test', 'nodeapp')) === undefined, 3000, 'imports in the departed member are removed');
    // The claim is released after the imports are cleaned up, in its own write: wait for it.
    await eventually(async () => (await c('cluster-4').get(NS, 'default'))!.metadata.annotations?.['multicluster.flomesh.io/managed-by'] === undefined, 3000, 'claim released');
  });

  it('a member managed by another control plane refuses the second one', async () => {
    const other: RunningCluster = await startCluster({ name: 'other-cp', dataDir: null });
    try {
      const kc = (await cli(['kubeconfig', 'get', 'cluster-1'])).stdout;
      const api = new ApiClient(other.endpoint);
      await api.create(CLUSTER, { apiVersion: 'flomesh.io/v1alpha1', kind: 'Cluster', metadata: { name: 'cluster-1' }, spec: { gatewayHost: '127.0.0.1', gatewayPort: gatewayPort('cluster-1'), kubeconfig: kc } });
      const cond = await eventually(async () => {
        const o = await api.get(CLUSTER, 'cluster-1');
        return o?.status?.conditions?.find((x: { type: string; status: string }) => x.type === 'Managed' && x.status === 'False');
      }, 5000, 'Managed=False');
      assert.equal(cond.reason, 'ManagedByAnotherControlPlane');
      assert.match(cond.message, /already managed by control plane control-plane\//);
      await api.close();
    } finally {
      await other.close();
    }
  });
});
