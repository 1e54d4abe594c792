/**
 * Distributed locks held by a sidecar that dies: real sidecar processes (test/support/
 * sidecar-worker.ts) share a lock.sqlite file and a lock.redis server; the holder is SIGKILLed
 * and the lock frees itself when its expiry passes, not before, as daprd's (Redis TTL) does.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { kindFor } from '../src/api/index.js';
import type { ApiClient } from '../src/client/api-client.js';
import type { RunningCluster } from '../src/cluster/cluster.js';
import { clusterWithNamespace, COMPONENT, component, eventually, http, NS } from './support/dapr-fixtures.js';
import { startBackend, type Backend } from './support/http-backend.js';
import { RedisServer } from './support/redis-server.js';
import { spawnSidecar, type SidecarProcess } from './support/sidecar-process.js';
import { tempDir } from './helpers.js';

let cluster: RunningCluster;
let client: ApiClient;
let redis: RedisServer;
let app: Backend;
const { dir: home, cleanup } = tempDir('crossmesh-dapr-lock-');
const cars: SidecarProcess[] = [];

before(async () => {
  redis = await RedisServer.start();
  ({ cluster, client } = await clusterWithNamespace());
  await client.create(kindFor('v1', 'Service'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'worker', namespace: NS }, spec: { ports: [{ port: 3000, protocol: 'TCP' }] } });
  await client.create(COMPONENT, component('sqllock', 'lock.sqlite'));
  await client.create(COMPONENT, component('redislock', 'lock.redis', [{ name: 'redisHost', value: redis.address }, { name: 'redisPassword', value: redis.password }]));
  app = await startBackend('worker');
});

after(async () => {
  await Promise.all(cars.map((c) => c.kill('SIGKILL')));
  await app?.close();
  await client?.close();
  await cluster?.close();
  await redis?.stop();
  cleanup();
});

async function sidecar(): Promise<{ car: SidecarProcess; base: string }> {
  const car = await spawnSidecar({
    identity: { clusterName: cluster.name, namespace: NS, appId: 'worker' },
    api: cluster.endpoint,
    servicePort: 3000,
    appPort: app.port,
    stateDir: home,
    home,
  });
  cars.push(car);
  const base = `http://127.0.0.1:${car.ports.http}`;
  // Components load in the background: wait until both lock stores serve.
  await eventually(async () => {
    const md = (await http(base, 'GET', '/v1.0/metadata')).json;
    const names = (md?.components ?? []).map((c: { name: string }) => c.name);
    return names.includes('sqllock') && names.includes('redislock');
  }, 10_000, 'the lock stores load in the sidecar');
  return { car, base };
}

test('a lock held by a SIGKILLed sidecar expires on time; until then the other sidecar cannot take it', async () => {
  const [a, b] = await Promise.all([sidecar(), sidecar()]);
  const expiry = 2;
  const taken: Record<string, number> = {};
  for (const store of ['sqllock', 'redislock']) {
    const r = await http(a.base, 'POST', `/v1.0-alpha1/lock/${store}`, { resourceId: 'job-7', lockOwner: `instance-${a.car.instanceId}`, expiryInSeconds: expiry });
    assert.equal(r.text, '{"success":true}', `${store}: ${r.text}`);
    taken[store] = Date.now();
    // Both sidecars are app `worker`: the same key lock||worker||job-7.
    assert.equal((await http(b.base, 'POST', `/v1.0-alpha1/lock/${store}`, { resourceId: 'job-7', lockOwner: `instance-${b.car.instanceId}`, expiryInSeconds: 30 })).text, '{"success":false}');
  }
  await a.car.kill('SIGKILL');
  for (const store of ['sqllock', 'redislock']) {
    let got = 0;
    await eventually(async () => {
      const r = await http(b.base, 'POST', `/v1.0-alpha1/lock/${store}`, { resourceId: 'job-7', lockOwner: `instance-${b.car.instanceId}`, expiryInSeconds: 30 });
      if (r.json?.success === true) got = Date.now();
      return got > 0;
    }, (expiry + 3) * 1000, `${store}: the dead holder's lock expires`);
    const held = got - taken[store];
    // Redis expires keys with up to ~1 ms of slack; sqlite compares wall-clock ms.
    assert.ok(held >= expiry * 1000 - 50, `${store}: taken over after ${held} ms, before the ${expiry} s expiry`);
    assert.ok(held < (expiry + 2) * 1000, `${store}: taken over only after ${held} ms`);
    assert.equal((await http(b.base, 'POST', `/v1.0-alpha1/unlock/${store}`, { resourceId: 'job-7', lockOwner: `instance-${b.car.instanceId}` })).text, '{"status":0}');
  }
});
