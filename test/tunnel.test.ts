/**
 * The L4 mesh tunnel end to end: a client sidecar in cluster-a calls nodeapp.dapr-test:3000,
 * exported by cluster-b and cluster-c, whose gateways' mesh ports splice the tunnels to the app
 * sidecars there. Clusters (store, API, export controller, gateway, lease controller) and the
 * client sidecar run in this process; the exporting app sidecars are real processes
 * (test/support/sidecar-worker.ts) so that an endpoint can die as a crashed process does; the
 * apps are node:http servers in this process, so every request that reached an app is counted.
 *
 * The ServiceImports in cluster-a are written here (what the control plane would write: the
 * exporting gateways' addresses with their mesh ports; test/multicluster.test.ts covers that).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { kindFor, type KubeObject } from '../src/api/index.js';
import { StoreCache } from '../src/client/cache.js';
import { Gateway } from '../src/gateway/index.js';
import type { MeshOutboundRouter } from '../src/sidecar/outbound.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/sidecar.js';
import { EPS, SEXP, SVC, endpoints, ensureNamespace, seedExport, service, startTestCluster, meshRoot, type TestCluster } from './support/cluster-fixtures.js';
import { startBackend, waitFor, type Backend } from './support/http-backend.js';
import { spawnSidecar, type SidecarProcess } from './support/sidecar-process.js';
import { RawConn } from './support/tunnel-client.js';
import { tempDir } from './helpers.js';

const SIMP = kindFor('flomesh.io/v1alpha1', 'ServiceImport');
const GTP = kindFor('flomesh.io/v1alpha1', 'GlobalTrafficPolicy');
const NS = 'dapr-test';
const key = (name: string) => `default/default/default/${name}`;

interface Reply { status: number; body: string; cluster?: string; servedBy?: string; ms: number; error?: string }

/** An app: GET answers `<name> <url>`; POST reads the body, records it, answers (or holds it for `/hold`). */
async function app(name: string): Promise<Backend & { posts: string[]; held: ServerResponse[] }> {
  const posts: string[] = [];
  const held: ServerResponse[] = [];
  const b = await startBackend(name, (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        posts.push(body);
        if (req.url === '/hold') {
          held.push(res);
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${name} POST ${body}`);
      });
      return;
    }
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${name} ${req.url}`);
  });
  return Object.assign(b, { posts, held });
}

describe('mesh tunnels between clusters through real sidecars', () => {
  const { dir: home, cleanup } = tempDir('crossmesh-tunnel-');
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let ca: TestCluster;
  let cb: TestCluster;
  let cc: TestCluster;
  let appB: Awaited<ReturnType<typeof app>>;
  let appC: Awaited<ReturnType<typeof app>>;
  let carB: SidecarProcess;
  let carC: SidecarProcess;
  let client: RunningSidecar;
  /** Gateways started by the restart test (closed in after()). */
  const extra: { gateway: Gateway; caches: StoreCache[] }[] = [];
  let gatewayB: () => Gateway;
  let gwPortB = 0;
  let meshPortB = 0;

  const router = () => client.router as MeshOutboundRouter;

  /** One request through the client sidecar's outbound listener, as the app's HTTP client sends it. */
  function call(service: string, path = '/ports', opts: { method?: string; body?: string; timeoutMs?: number } = {}): Promise<Reply> {
    const started = Date.now();
    return new Promise((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1', port: client.ports.outbound, method: opts.method ?? 'GET', path: `http://${service}.${NS}:3000${path}`, agent,
        headers: opts.body !== undefined ? { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(opts.body)) } : {},
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, cluster: res.headers['x-crossmesh-cluster'] as string | undefined, servedBy: res.headers['x-crossmesh-served-by'] as string | undefined, ms: Date.now() - started }));
        res.on('error', (e) => resolve({ status: 0, body: text, ms: Date.now() - started, error: String(e) }));
      });
      // A hang is a failure of its own: give up well before the test's timeout.
      req.setTimeout(opts.timeoutMs ?? 8000, () => req.destroy(new Error(`no answer within ${opts.timeoutMs ?? 8000} ms`)));
      req.on('error', (e) => resolve({ status: 0, body: '', ms: Date.now() - started, error: String(e) }));
      req.end(opts.body);
    });
  }

  const endpointOf = (tc: TestCluster) => tc.cluster.endpoint;

  function appSidecar(tc: TestCluster, a: Backend): Promise<SidecarProcess> {
    return spawnSidecar({
      identity: { clusterName: tc.cluster.name, namespace: NS, appId: 'nodeapp' },
      api: endpointOf(tc),
      servicePort: 3000,
      appPort: a.port,
      stateDir: home,
      home,
      // A crashed instance's endpoint goes within ~1.5 s (the lease controller sweeps every 500 ms).
      renewIntervalMs: 300,
      leaseDurationSeconds: 1,
    });
  }

  /** The endpoints the cluster's gateway tunnels `svc` to (inbound ports of app sidecars). */
  const tunnelPorts = (gw: Gateway, svc: string) => (gw.routes.tunnel(`${svc}.${NS}:3000`)?.endpoints ?? []).map((e) => Number(e.id.split(':')[1]));

  function importOf(name: string, exporters: TestCluster[]): KubeObject {
    return {
      apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceImport', metadata: { name, namespace: NS },
      spec: {
        type: 'ClusterSetIP', serviceAccountName: '*',
        ports: [{ protocol: 'TCP', port: 3000, endpoints: exporters.map((tc) => ({ clusterKey: key(tc.cluster.name), target: { host: '127.0.0.1', ip: '127.0.0.1', port: tc.cluster.gatewayPort, path: `/${name}`, meshPort: tc.cluster.meshPort } })) }],
      },
    };
  }

  async function exportIn(tc: TestCluster, name: string, inboundPort?: number): Promise<void> {
    await tc.api.apply(SVC, service(name, NS));
    if (inboundPort !== undefined) await tc.api.apply(EPS, endpoints(name, NS, [inboundPort]));
    await tc.api.apply(SEXP, seedExport(name, NS, { rules: [{ portNumber: 3000, path: `/${name}`, pathType: 'Prefix' }], pathRewrite: { from: `^/${name}/?`, to: '/' } }));
  }

  /** Metric value of the gateway's tunnel counter for tunnels from cluster-a. */
  async function tunnelsFromA(gw: Gateway, result = 'established'): Promise<number> {
    const text = (await gw.metrics.render()).body;
    const m = new RegExp(`crossmesh_gateway_tunnels_total\\{[^}]*source_cluster="cluster-a"[^}]*result="${result}"[^}]*\\} (\\d+)`).exec(text);
    return m ? Number(m[1]) : 0;
  }

  before(async () => {
    const root = await meshRoot();
    [ca, cb, cc] = await Promise.all([startTestCluster('cluster-a', root), startTestCluster('cluster-b', root), startTestCluster('cluster-c', root)]);
    gatewayB = () => cb.cluster.gateway;
    gwPortB = cb.cluster.gatewayPort;
    meshPortB = cb.cluster.meshPort;
    for (const tc of [ca, cb, cc]) await ensureNamespace(tc.api, NS);
    await ensureNamespace(ca.api, 'curl');
    appB = await app('appB');
    appC = await app('appC');
    await Promise.all([cb.api.apply(SVC, service('nodeapp', NS)), cc.api.apply(SVC, service('nodeapp', NS))]);
    [carB, carC] = await Promise.all([appSidecar(cb, appB), appSidecar(cc, appC)]);
    await exportIn(cb, 'nodeapp');
    await exportIn(cc, 'nodeapp');
    // onlyb: exported by cluster-b alone (to the same app sidecar), so nothing can fail over.
    await exportIn(cb, 'onlyb', carB.ports.inbound);
    await waitFor(() => tunnelPorts(cb.cluster.gateway, 'nodeapp').length === 1 && tunnelPorts(cc.cluster.gateway, 'nodeapp').length === 1 && tunnelPorts(cb.cluster.gateway, 'onlyb').length === 1, 'exports served with the app sidecars as endpoints', 8000);

    await ca.api.apply(SIMP, importOf('nodeapp', [cb, cc]));
    await ca.api.apply(SIMP, importOf('onlyb', [cb]));
    // ghost: imported as if cluster-b exported it, which it does not.
    await ca.api.apply(SIMP, importOf('ghost', [cb]));
    for (const name of ['nodeapp', 'onlyb', 'ghost']) {
      await ca.api.apply(GTP, { apiVersion: 'flomesh.io/v1alpha1', kind: 'GlobalTrafficPolicy', metadata: { name, namespace: NS }, spec: { lbType: 'ActiveActive' } });
    }
    client = await startSidecar({ identity: { clusterName: 'cluster-a', namespace: 'curl', appId: 'curl' }, api: endpointOf(ca), daprStateDir: home });
    await waitFor(() => {
      try {
        return /remote targets:.*cluster-b via tunnel to nodeapp\.dapr-test:3000 through gateway mesh port .*cluster-c via tunnel/.test(router().explain(`nodeapp.${NS}:3000`)) && router().explain(`ghost.${NS}:3000`);
      } catch {
        return false;
      }
    }, 'client routes over tunnels', 8000);
  });

  after(async () => {
    agent.destroy();
    for (const r of [...(appB?.held ?? []), ...(appC?.held ?? [])]) r.destroy();
    await client?.close();
    await Promise.all([carB, carC].map((c) => c?.kill('SIGKILL')));
    for (const e of extra) {
      await e.gateway.close(200);
      for (const c of e.caches) c.stop();
    }
    await Promise.all([ca, cb, cc].map((tc) => tc?.close()));
    await appB?.close();
    await appC?.close();
    cleanup();
  });

  it('ActiveActive: calls alternate over cluster-b and cluster-c through pooled tunnels; the apps see the caller\'s path', async () => {
    const replies: Reply[] = [];
    for (let i = 0; i < 8; i++) replies.push(await call('nodeapp', `/ports?i=${i}`));
    for (const r of replies) assert.equal(r.status, 200, r.body);
    for (let i = 1; i < replies.length; i++) assert.notEqual(replies[i].cluster, replies[i - 1].cluster, replies.map((r) => r.cluster).join());
    assert.deepEqual(new Set(replies.map((r) => r.cluster)), new Set(['cluster-b', 'cluster-c']));
    for (const r of replies) {
      assert.match(r.body, r.cluster === 'cluster-b' ? /^appB \/ports\?i=\d$/ : /^appC \/ports\?i=\d$/, 'no path prefix through a tunnel: the app gets the caller\'s path');
      assert.match(r.servedBy!, new RegExp(`^${r.cluster}/nodeapp-${r.cluster === 'cluster-b' ? carB.instanceId : carC.instanceId}$`), 'answered by the remote app sidecar');
    }
    // Sequential calls reuse one pooled tunnel per cluster; the gateways' HTTP ports saw nothing.
    assert.equal(await tunnelsFromA(cb.cluster.gateway), 1);
    assert.equal(await tunnelsFromA(cc.cluster.gateway), 1);
    assert.equal(cb.cluster.gateway.activeTunnels, 1);
    assert.doesNotMatch((await cb.cluster.gateway.metrics.render()).body, /crossmesh_gateway_requests_total\{[^}]*direction="inbound"/);
  });

  it('a service the remote cluster does not export: its gateway refuses the tunnel and the caller gets a 502 JSON that says so', async () => {
    const before = appB.hits.length;
    const r = await call('ghost');
    assert.equal(r.status, 502, r.body);
    const body = JSON.parse(r.body) as { errorCode: string; message: string };
    assert.equal(body.errorCode, 'CM_ERR_BAD_GATEWAY');
    assert.match(body.message, /refused the tunnel \(404\): cluster cluster-b does not export "ghost\.dapr-test:3000"/);
    assert.match(body.message, /the request failed before any byte was sent/);
    assert.ok(r.ms < 2000, `answered in ${r.ms} ms`);
    assert.equal(appB.hits.length, before, 'nothing reached the app');
    assert.ok(await tunnelsFromA(cb.cluster.gateway, '404') >= 1, 'the gateway counted the refusal');
  });

  it('gateway restart: requests in the down time fail over (or fail fast with 502 JSON), the pool replaces the dead tunnels, and the new gateway is used at once', async () => {
    // Pooled tunnels to cluster-b for both services.
    assert.equal((await call('onlyb')).status, 200);
    assert.equal((await call('nodeapp')).cluster !== undefined, true);
    await waitFor(() => gatewayB().activeTunnels >= 2, 'two pooled tunnels at cluster-b');

    await gatewayB().close(200);
    // Down time: nodeapp fails over to cluster-c, every call answered.
    const during: Reply[] = [];
    for (let i = 0; i < 10; i++) during.push(await call('nodeapp'));
    assert.deepEqual(during.filter((r) => r.status !== 200), [], 'nodeapp calls in the down time');
    assert.ok(during.every((r) => r.cluster === 'cluster-c'));
    // onlyb has nowhere else to go: a clear 502 JSON, fast, for a GET and for a POST (whose body never left).
    for (const opts of [{}, { method: 'POST', body: 'order-during-downtime' }]) {
      const r = await call('onlyb', '/x', opts);
      assert.equal(r.status, 502, r.body);
      const body = JSON.parse(r.body) as { errorCode: string; message: string };
      assert.equal(body.errorCode, 'CM_ERR_BAD_GATEWAY');
      assert.match(body.message, new RegExp(`127\\.0\\.0\\.1:${meshPortB}.*refused the connection \\(ECONNREFUSED\\); the request failed before any byte was sent`));
      assert.ok(r.ms < 2000, `answered in ${r.ms} ms`);
    }
    assert.ok(!appB.posts.includes('order-during-downtime'));

    // A new gateway on the same ports.
    const caches = [SEXP, SVC, EPS].map((k) => new StoreCache(cb.cluster.store, k.storageKey).start());
    const gw = new Gateway({ clusterName: 'cluster-b', exports: caches[0], services: caches[1], endpoints: caches[2], port: gwPortB, meshPort: meshPortB });
    extra.push({ gateway: gw, caches });
    await gw.listen();
    gatewayB = () => gw;
    assert.equal(gw.meshPort, meshPortB);
    assert.equal(tunnelPorts(gw, 'onlyb').length, 1);
    // The first call after the restart succeeds: cluster-b is ejected, but it is the only target.
    const first = await call('onlyb', '/after-restart');
    assert.equal(first.status, 200, first.body);
    assert.equal(first.body, 'appB /after-restart');
    // nodeapp: cluster-b comes back into rotation once its ejection ends and a probe succeeds.
    const after: Reply[] = [];
    await waitFor(async () => {
      const r = await call('nodeapp');
      after.push(r);
      return r.cluster === 'cluster-b';
    }, 'cluster-b answering nodeapp again', 6000);
    assert.deepEqual(after.filter((r) => r.status !== 200), []);
    assert.ok(await tunnelsFromA(gw) >= 2, 'new tunnels through the new gateway');
  });

  /** Closes cluster-b's gateway and starts a new one on the same HTTP and mesh ports (a restarted cluster process keeps them in ports.json). */
  async function restartGatewayB(): Promise<Gateway> {
    await gatewayB().close(200);
    const caches = [SEXP, SVC, EPS].map((k) => new StoreCache(cb.cluster.store, k.storageKey).start());
    const gw = new Gateway({ clusterName: 'cluster-b', exports: caches[0], services: caches[1], endpoints: caches[2], port: gwPortB, meshPort: meshPortB });
    extra.push({ gateway: gw, caches });
    await gw.listen();
    gatewayB = () => gw;
    return gw;
  }

  it('a pooled tunnel whose gateway restarted with no call in between: once the new gateway is reachable, the next call opens a new tunnel and succeeds', async () => {
    assert.equal((await call('onlyb', '/warm')).status, 200);
    await waitFor(() => gatewayB().activeTunnels >= 1, 'a pooled tunnel at cluster-b');
    const gw = await restartGatewayB();
    // What a caller of a restarted cluster sees first: its mesh port accepts connections again.
    await waitFor(async () => {
      const c = await RawConn.open(meshPortB).catch(() => undefined);
      c?.destroy();
      return c !== undefined;
    }, 'the new mesh port accepting');
    const before = await tunnelsFromA(gw);
    const r = await call('onlyb', '/next');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'appB /next');
    assert.equal(await tunnelsFromA(gw), before + 1, 'a new tunnel was opened');
  });

  // FAILS (product): the dead pooled tunnel is reused when the call arrives in the same I/O turn
  // as the gateway's FIN; the GET then fails with EPIPE on a reused connection and is not retried
  // on a fresh connection to the same (only) target, so the caller gets a 502 although the new
  // gateway is up (and the healthy target is ejected as if its connection had been refused).
  it('a pooled tunnel whose gateway restarted with no call in between: the very next call succeeds (a GET that fails on a reused tunnel is retried on a fresh one)', async () => {
    assert.equal((await call('onlyb', '/warm2')).status, 200);
    await waitFor(() => gatewayB().activeTunnels >= 1, 'a pooled tunnel at cluster-b');
    await restartGatewayB();
    const r = await call('onlyb', '/next2');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'appB /next2');
  });

  it('endpoint death mid-tunnel: cluster-b\'s app sidecar is killed under a stream of GETs and POSTs; no GET fails, no POST runs twice', async () => {
    // cluster-b back in rotation first (the earlier restart may have left it ejected).
    await waitFor(async () => (await call('nodeapp')).cluster === 'cluster-b', 'cluster-b in rotation', 6000);
    const deadPort = carB.ports.inbound!;
    const gets: Reply[] = [];
    const posts: { id: string; reply: Reply }[] = [];
    let killedAt = 0;
    let goneAt = 0;
    let afterGone = 0;
    const done = () => goneAt !== 0 && afterGone >= 40;
    const getLoop = async () => {
      while (!done()) {
        const r = await call('nodeapp');
        gets.push(r);
        if (goneAt !== 0) afterGone++;
        // Pacing (a bounded load on a shared machine), not a wait for anything.
        await new Promise((res) => setTimeout(res, 2));
      }
    };
    const postLoop = async () => {
      while (!done()) {
        const id = randomUUID();
        posts.push({ id, reply: await call('nodeapp', '/order', { method: 'POST', body: id }) });
        await new Promise((res) => setTimeout(res, 2));
      }
    };
    const killer = async () => {
      await waitFor(() => gets.filter((r) => r.cluster === 'cluster-b').length >= 5 && posts.length >= 3, 'traffic on both clusters', 5000);
      killedAt = Date.now();
      await carB.kill('SIGKILL');
      // The endpoint stays registered until its lease expires: the gateway keeps offering it meanwhile.
      await waitFor(() => !tunnelPorts(gatewayB(), 'nodeapp').includes(deadPort), 'the dead endpoint removed (lease expired)', 5000);
      goneAt = Date.now();
    };
    await Promise.all([getLoop(), getLoop(), getLoop(), postLoop(), killer()]);

    const failedGets = gets.filter((r) => r.status !== 200);
    assert.deepEqual(failedGets, [], `${failedGets.length} of ${gets.length} GETs failed`);
    assert.ok(router().stats.retries > 0, 'the client sidecar retried on the other cluster');
    // No POST ran twice; a POST answered 200 ran exactly once; a POST that failed got a 502 JSON.
    const seen = new Map<string, number>();
    for (const body of [...appB.posts, ...appC.posts]) seen.set(body, (seen.get(body) ?? 0) + 1);
    for (const { id, reply } of posts) {
      const n = seen.get(id) ?? 0;
      assert.ok(n <= 1, `POST ${id} reached the apps ${n} times`);
      if (reply.status === 200) assert.equal(n, 1, `POST ${id} answered 200 but reached the apps ${n} times`);
      else {
        assert.equal(reply.status, 502, `POST ${id}: ${reply.status} ${reply.body} ${reply.error ?? ''}`);
        assert.equal(JSON.parse(reply.body).errorCode, 'CM_ERR_BAD_GATEWAY');
      }
    }
    const postFailures = posts.filter((p) => p.reply.status !== 200).length;
    console.log(`# endpoint death: ${gets.length} GETs (0 failed), ${posts.length} POSTs (${postFailures} answered 502), ${router().stats.retries} retries; dead endpoint removed ${goneAt - killedAt} ms after the kill`);
  });

  it('a POST whose body reached an endpoint that then dies is not retried: 502 JSON, and the app saw it once', async () => {
    // A fresh app sidecar in cluster-b.
    carB = await appSidecar(cb, appB);
    await waitFor(() => tunnelPorts(gatewayB(), 'nodeapp').join() === String(carB.ports.inbound), 'the new endpoint of cluster-b', 5000);
    await waitFor(async () => (await call('nodeapp')).cluster === 'cluster-b', 'cluster-b in rotation again', 6000);
    const id = `held-${randomUUID()}`;
    const pending = call('nodeapp', '/hold', { method: 'POST', body: id });
    const where = await waitFor(() => (appB.posts.includes(id) ? 'b' : appC.posts.includes(id) ? 'c' : undefined), 'the POST at an app', 5000);
    // Kill the app sidecar of the cluster that holds the request (its app is fine; the endpoint dies).
    const killedAt = Date.now();
    await (where === 'b' ? carB : carC).kill('SIGKILL');
    const r = await pending;
    assert.equal(r.status, 502, `${r.status} ${r.body} ${r.error ?? ''}`);
    const body = JSON.parse(r.body) as { errorCode: string; message: string };
    assert.equal(body.errorCode, 'CM_ERR_BAD_GATEWAY');
    assert.match(body.message, /closed the connection before responding/);
    assert.ok(Date.now() - killedAt < 2000, `answered ${Date.now() - killedAt} ms after the kill`);
    const count = [...appB.posts, ...appC.posts].filter((p) => p === id).length;
    assert.equal(count, 1, 'the POST reached an app exactly once (no retry elsewhere)');
  });
});
