/** The official JS SDK (@dapr/dapr 3.x) against our Dapr API, unchanged. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CommunicationProtocolEnum, DaprClient, LogLevel, StateConcurrencyEnum, StateConsistencyEnum } from '@dapr/dapr';
import type { ApiClient } from '../client/api-client.js';
import type { RunningCluster } from '../cluster/cluster.js';
import { ComponentRegistry } from './components.js';
import { startDaprApiServer, type RunningDaprApi } from './server.js';
import { clusterWithNamespace, NS, SDK_STORES, seedSdkComponents } from '../../test/support/dapr-fixtures.js';
import { RedisServer } from '../../test/support/redis-server.js';

let cluster: RunningCluster;
let client: ApiClient;
let registry: ComponentRegistry;
let api: RunningDaprApi;
let dapr: DaprClient;
let dataDir: string;
let redis: RedisServer;

/** Every state store crossmesh has, driven the same way through the SDK. */
const STORES = SDK_STORES;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cm-dapr-sdk-'));
  ({ cluster, client } = await clusterWithNamespace());
  redis = await RedisServer.start();
  await seedSdkComponents(client, redis);
  registry = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir, client });
  await registry.start();
  api = await startDaprApiServer({ appId: 'nodeapp', namespace: NS, components: registry, apiToken: 'tok' });
  dapr = new DaprClient({
    daprHost: '127.0.0.1', daprPort: String(api.port), daprApiToken: 'tok',
    communicationProtocol: CommunicationProtocolEnum.HTTP, logger: { level: LogLevel.Error },
  });
});

after(async () => {
  await dapr?.stop().catch(() => undefined);
  await api?.close();
  await registry?.close();
  await client?.close();
  await cluster?.close();
  await redis?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('SDK: start polls /v1.0/metadata and sees the sidecar at once', async () => {
  const t0 = Date.now();
  await dapr.start();
  assert.ok(Date.now() - t0 < 2000, 'the SDK sees the sidecar at once');
});

for (const st of STORES) {
  test(`SDK on ${st.type}: save/get/delete with etags, first-write, daprd's answers`, async () => {
    const store = st.name;
    assert.deepEqual(await dapr.state.save(store, [{ key: 'order', value: { orderId: 42 } }, { key: 'name', value: 'abc' }]), {});
    assert.deepEqual(await dapr.state.get(store, 'order'), { orderId: 42 });
    assert.equal(await dapr.state.get(store, 'name'), 'abc');
    assert.equal(await dapr.state.get(store, 'missing'), '');

    const [entry] = (await dapr.state.getBulk(store, ['order'])) as any[];
    const etag = entry.etag as string;
    const stale = st.etags === 'uuid' ? randomUUID() : String(Number(etag) + 100);
    const bad = await dapr.state.save(store, [{ key: 'order', value: { orderId: 43 }, etag: stale, options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE, consistency: StateConsistencyEnum.CONSISTENCY_STRONG } }]);
    assert.ok(bad.error, 'stale etag refused');
    assert.match(String(bad.error), /possible etag mismatch/);
    assert.deepEqual(await dapr.state.save(store, [{ key: 'order', value: { orderId: 43 }, etag, options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any }]), {});
    assert.deepEqual(await dapr.state.get(store, 'order'), { orderId: 43 });

    const del = await dapr.state.delete(store, 'order', { etag, concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any);
    assert.match(String(del.error), /ERR_STATE_DELETE/);
    const [now] = (await dapr.state.getBulk(store, ['order'])) as any[];
    assert.deepEqual(await dapr.state.delete(store, 'order', { etag: now.etag } as any), {});
    assert.equal(await dapr.state.get(store, 'order'), '');

    // The SDK's own e2e case: first-write with an etag on a key that does not exist. daprd's
    // state.redis saves it; its in-memory and sqlite stores refuse it (src/state/etag.ts).
    const first = await dapr.state.save(store, [{ key: 'key-1', value: 'value-1', etag: '1234', options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any }]);
    if (st.type === 'state.redis') {
      assert.deepEqual(first, {});
      assert.equal(await dapr.state.get(store, 'key-1'), 'value-1');
    } else {
      assert.match(String(first.error), /possible etag mismatch/);
      assert.equal(await dapr.state.get(store, 'key-1'), '');
    }
  });

  test(`SDK on ${st.type}: getBulk, transaction, query`, async () => {
    const store = st.name;
    await dapr.state.save(store, [{ key: 'a', value: { city: 'Seattle', n: 1 } }, { key: 'b', value: { city: 'Paris', n: 2 } }]);
    const bulk = (await dapr.state.getBulk(store, ['a', 'b', 'zz'])) as any[];
    assert.deepEqual(bulk.map((x) => [x.key, x.data]), [['a', { city: 'Seattle', n: 1 }], ['b', { city: 'Paris', n: 2 }], ['zz', undefined]]);

    await dapr.state.transaction(store, [
      { operation: 'upsert', request: { key: 'c', value: { city: 'Seattle', n: 3 } } },
      { operation: 'delete', request: { key: 'b' } },
    ]);
    assert.equal(await dapr.state.get(store, 'b'), '');
    await assert.rejects(dapr.state.transaction(store, [{ operation: 'bogus' as any, request: { key: 'x' } }]), /ERR_NOT_SUPPORTED_STATE_OPERATION/);

    const query = dapr.state.query(store, { filter: { EQ: { city: 'Seattle' } }, sort: [{ key: 'n', order: 'ASC' }], page: { limit: 10 } } as any);
    if (st.query) {
      const q = await query;
      assert.deepEqual(q.results.map((r: any) => [r.key, r.data.n]), [['a', 1], ['c', 3]]);
    } else {
      // daprd's state.redis queries only with RedisJSON; crossmesh's answers as daprd does without it.
      await assert.rejects(query, /state store does not support querying/);
    }
  });
}

test('SDK: metadata lists the components with daprd\'s capabilities', async () => {
  const md = await dapr.metadata.get();
  assert.equal(md.id, 'nodeapp');
  assert.deepEqual(md.components.map((c: any) => c.name), ['kubernetes', 'lockstore', 'memstore', 'redisstore', 'statestore']);
  const redisCaps = md.components.find((c: any) => c.name === 'redisstore')!.capabilities;
  for (const c of ['ETAG', 'TRANSACTIONAL', 'ACTOR']) assert.ok(redisCaps.includes(c), `state.redis reports ${c} (the SDK's e2e expectation): ${redisCaps}`);
});

test('SDK: secret.get / secret.getBulk from the built-in kubernetes store', async () => {
  assert.deepEqual(await dapr.secret.get('kubernetes', 'db'), { user: 'admin', password: 'pw' });
  assert.deepEqual(await dapr.secret.get('kubernetes', 'db', `metadata.namespace=${NS}`), { user: 'admin', password: 'pw' });
  assert.deepEqual(await dapr.secret.getBulk('kubernetes'), { db: { user: 'admin', password: 'pw' }, api: { key: 'k-123' }, redis: { 'redis-password': redis.password } });
  await assert.rejects(dapr.secret.get('kubernetes', 'nope'), /ERR_SECRET_GET/);
  await assert.rejects(dapr.secret.get('vault', 'db'), /ERR_SECRET_STORE_NOT_FOUND/);
});

test('SDK: lock.lock / lock.unlock with owners and statuses', async () => {
  assert.deepEqual(await dapr.lock.lock('lockstore', 'order-42', 'worker-a', 30), { success: true });
  assert.deepEqual(await dapr.lock.lock('lockstore', 'order-42', 'worker-b', 30), { success: false });
  assert.deepEqual(await dapr.lock.unlock('lockstore', 'order-42', 'worker-b'), { status: 2 /* LockStatus.LockBelongsToOthers */ });
  assert.deepEqual(await dapr.lock.unlock('lockstore', 'order-42', 'worker-a'), { status: 0 /* LockStatus.Success */ });
  assert.deepEqual(await dapr.lock.unlock('lockstore', 'order-42', 'worker-a'), { status: 1 /* LockStatus.LockDoesNotExist */ });
  await assert.rejects(dapr.lock.lock('lockstore', 'order-42', 'worker-a', 0), /ExpiryInSeconds is not positive/);
});
