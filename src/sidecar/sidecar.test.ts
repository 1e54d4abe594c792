import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kindFor } from '../api/index.js';
import { ApiClient } from '../client/api-client.js';
import { startCluster, type RunningCluster } from '../cluster/cluster.js';
import { startSidecar, type RunningSidecar } from './sidecar.js';
import { meshClient } from '../../test/support/mesh-client.js';

const EP = kindFor('v1', 'Endpoints');
const LEASE = kindFor('coordination.k8s.io/v1', 'Lease');

async function eventually<T>(check: () => Promise<T | undefined | false>, ms = 6000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function app(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => res.end(JSON.stringify({ app: name, path: req.url })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

async function setup(dataDir: string | null = null, apiPort = 0) {
  const cluster = await startCluster({ name: 'cluster-1', dataDir, apiPort });
  const client = new ApiClient(cluster.endpoint);
  if (!(await client.get(kindFor('v1', 'Namespace'), 'dapr-test'))) {
    await client.create(kindFor('v1', 'Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dapr-test' } });
  }
  return { cluster, client, endpoint: cluster.endpoint };
}

const ports = async (client: ApiClient) => (((await client.get(EP, "nodeapp", "dapr-test"))?.subsets ?? []) as any[]).map((s: any) => s.ports[0].port).sort();

test('startSidecar: inbound reaches the app, two instances are two subsets, close deregisters at once', async (t) => {
  const { cluster, client, endpoint } = await setup();
  const a = await app('a');
  const b = await app('b');
  const cars: RunningSidecar[] = [];
  t.after(async () => {
    await Promise.all(cars.map((c) => c.close()));
    a.server.close();
    b.server.close();
    await client.close();
    await cluster.close();
  });
  const identity = { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'nodeapp' };
  cars.push(await startSidecar({ identity, api: endpoint, servicePort: 3000, appPort: a.port }));
  cars.push(await startSidecar({ identity, api: endpoint, servicePort: 3000, appPort: b.port }));
  const [ca, cb] = cars;
  assert.notEqual(ca.identity.instanceId, cb.identity.instanceId);
  assert.deepEqual(await ports(client), [ca.ports.inbound, cb.ports.inbound].sort());
  assert.equal(ca.appEnv.APP_PORT, String(a.port));
  assert.equal(ca.appEnv.HTTP_PROXY, `http://127.0.0.1:${ca.ports.outbound}`);
  assert.equal(ca.appEnv.NO_PROXY, 'localhost,127.0.0.1,::1');

  // The inbound port speaks mesh mTLS only: call it as another workload of the cluster does.
  assert.equal(ca.meshIdentity().spiffeId, 'spiffe://crossmesh.local/ns/dapr-test/sa/default');
  const mesh = await meshClient(cluster.pki);
  const res = await mesh.request(ca.ports.inbound!, '/ports?x=1');
  assert.deepEqual(JSON.parse(res.text), { app: 'a', path: '/ports?x=1' });
  assert.equal(res.headers['x-crossmesh-served-by'], `cluster-1/nodeapp-${ca.identity.instanceId}`);
  await assert.rejects(fetch(`http://127.0.0.1:${ca.ports.inbound}/ports`), 'plaintext to the inbound port gets no answer');
  assert.equal((await fetch(`http://127.0.0.1:${ca.ports.http}/v1.0/healthz`)).status, 204);
  const metrics = await (await fetch(`http://127.0.0.1:${ca.ports.http}/metrics`)).text();
  assert.match(metrics, /crossmesh_sidecar_requests_total\{direction="inbound",source_cluster="cluster-1",destination_cluster="cluster-1",code="200",cluster="cluster-1",namespace="dapr-test",app_id="nodeapp"\} 1/);
  assert.match(metrics, /crossmesh_sidecar_request_duration_seconds_count\{[^}]*direction="inbound"[^}]*\} 1/);
  // The Dapr API: no Component in the namespace → 500 ERR_STATE_STORE_NOT_CONFIGURED.
  assert.equal((await fetch(`http://127.0.0.1:${ca.ports.http}/v1.0/state/statestore/k`)).status, 500);

  // The app going away: the inbound hop answers 502 naming the app.
  await new Promise((r) => b.server.close(r));
  const bad = await mesh.request(cb.ports.inbound!, '/');
  assert.equal(bad.status, 502);
  assert.match(bad.text, /app dapr-test\/nodeapp/);

  await cb.close();
  assert.deepEqual(await ports(client), [ca.ports.inbound]);
  assert.equal(await client.get(LEASE, `nodeapp-${cb.identity.instanceId}`, 'dapr-test'), undefined);
  await cb.close(); // idempotent
});

test('startSidecar: a client-only app has no inbound, no APP_PORT, no registration', async (t) => {
  const { cluster, client, endpoint } = await setup();
  const c = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'curl' }, api: endpoint });
  t.after(async () => { await c.close(); await client.close(); await cluster.close(); });
  assert.equal(c.ports.inbound, undefined);
  assert.equal(c.appEnv.APP_PORT, undefined);
  assert.equal(await c.register(), false);
  assert.equal(await client.get(EP, 'curl', 'dapr-test'), undefined);
  assert.ok(c.appEnv.DAPR_GRPC_PORT);
});

test('lease: a sidecar that stops renewing loses its endpoint within the lease duration', async (t) => {
  const { cluster, client, endpoint } = await setup();
  const a = await app('a');
  const c = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'nodeapp' }, api: endpoint, servicePort: 3000, appPort: a.port, leaseDurationSeconds: 1 });
  t.after(async () => { await c.close(); a.server.close(); await client.close(); await cluster.close(); });
  assert.deepEqual(await ports(client), [c.ports.inbound]);
  const t0 = Date.now();
  await c.registration!.close(false); // as if the sidecar died: no deregistration, no renewals
  await eventually(async () => (await ports(client)).length === 0, 4000, 'the endpoint to expire');
  assert.ok(Date.now() - t0 >= 900, 'not before the lease duration');
  assert.equal(await client.get(LEASE, `nodeapp-${c.identity.instanceId}`, 'dapr-test'), undefined);
});

test('registration survives the cluster API going away and comes back registered', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crossmesh-sidecar-'));
  let { cluster, client, endpoint } = await setup(join(dir, 'c1'));
  const a = await app('a');
  const c = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'nodeapp' }, api: endpoint, servicePort: 3000, appPort: a.port });
  // A second instance that dies during the outage: its lease expiring after the restart marks
  // the end of the grace period the restarted cluster gives every lease it finds.
  const control = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'control' }, api: endpoint, servicePort: 3000, appPort: a.port });
  let current: RunningCluster = cluster;
  let away: NetServer | undefined;
  t.after(async () => {
    away?.close();
    await c.close();
    await control.close();
    a.server.close();
    await client.close();
    await current.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const leaseName = `nodeapp-${c.identity.instanceId}`;
  const controlLease = `control-${control.identity.instanceId}`;
  const before = (await client.get(LEASE, leaseName, 'dapr-test'))!;
  assert.ok(await client.get(LEASE, controlLease, 'dapr-test'));
  await client.close();
  await cluster.close();
  await control.registration!.close(false); // as if it died: no deregistration, no renewals
  await eventually(async () => c.registration!.state === 'failing', 5000, 'the sidecar to notice');
  // While the API is away its port accepts and drops connections: the sidecar keeps retrying.
  let attempts = 0;
  away = createNetServer((s) => {
    attempts++;
    s.destroy();
  });
  await new Promise<void>((r) => away!.listen(cluster.apiPort, '127.0.0.1', r));
  await eventually(async () => attempts >= 2, 5000, 'two more attempts while the API is away');
  await new Promise((r) => away!.close(r));
  away = undefined;
  ({ cluster, client } = await setup(join(dir, 'c1'), cluster.apiPort));
  current = cluster;
  await eventually(async () => c.registration!.state === 'registered', 5000, 'the sidecar to renew again');
  // The dead instance's lease expires one lease duration after the restart ...
  await eventually(async () => (await client.get(LEASE, controlLease, 'dapr-test')) === undefined, 6000, 'the dead instance\'s lease to expire');
  // ... by when the live one has outlived the same grace, renewed and never expired (not re-created).
  const lease = (await client.get(LEASE, leaseName, 'dapr-test'))!;
  assert.equal(lease.metadata.uid, before.metadata.uid, 'the same Lease object');
  assert.ok(Date.parse(lease.spec.renewTime) > Date.parse(before.spec.renewTime), 'renewed after the restart');
  assert.deepEqual(await ports(client), [c.ports.inbound]);
  assert.equal(c.registration!.state, 'registered');
});

test('outbound: a bodyless GET answered 503 by the only endpoint comes back as the app answered it (nothing to retry on); with a second endpoint it is retried there', async (t) => {
  const { cluster, client, endpoint } = await setup();
  // The first app answers 503 to everything, the second 200.
  const failing = createServer((req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('busy: the app says so');
  });
  await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
  const healthy = await app('healthy');
  const cars: RunningSidecar[] = [];
  t.after(async () => {
    await Promise.all(cars.map((c) => c.close()));
    failing.close();
    healthy.server.close();
    await client.close();
    await cluster.close();
  });
  await client.create(kindFor('v1', 'Service'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, spec: { ports: [{ port: 3000 }] } });
  const identity = { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'nodeapp' };
  cars.push(await startSidecar({ identity, api: endpoint, servicePort: 3000, appPort: (failing.address() as { port: number }).port }));
  const caller = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'caller' }, api: endpoint });
  cars.push(caller);
  const get = () => new Promise<{ status: number; text: string; retryAfter?: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: caller.ports.outbound, path: 'http://nodeapp.dapr-test:3000/work', headers: { host: 'nodeapp.dapr-test:3000' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
  const one = await eventually(async () => { const r = await get(); return r.status === 503 ? r : undefined; }, 6000, 'the route to the one endpoint');
  assert.equal(one.text, 'busy: the app says so', "the app's own 503, not a gateway error");
  assert.equal(one.retryAfter, '1');
  const retriesBefore = (caller.router as { stats?: { retries: number } }).stats?.retries ?? 0;

  // A second endpoint: the 503 is now held back and the GET retried on it.
  cars.push(await startSidecar({ identity, api: endpoint, servicePort: 3000, appPort: healthy.port }));
  await eventually(async () => (await ports(client)).length === 2, 6000, 'two endpoints');
  const answers = await eventually(async () => {
    const rs = await Promise.all([get(), get(), get(), get()]);
    return rs.every((r) => r.status === 200) ? rs : undefined;
  }, 6000, 'every GET answered by the healthy endpoint');
  for (const r of answers) assert.equal(JSON.parse(r.text).app, 'healthy');
  assert.ok(((caller.router as { stats?: { retries: number } }).stats?.retries ?? 0) > retriesBefore, 'the 503s of the failing endpoint were retried on the healthy one');
});
