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
import { clusterWithNamespace, COMPONENT, component, NS, SECRET, secret } from '../../test/support/dapr-fixtures.js';

let cluster: RunningCluster;
let client: ApiClient;
let registry: ComponentRegistry;
let api: RunningDaprApi;
let dapr: DaprClient;
let dataDir: string;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cm-dapr-sdk-'));
  ({ cluster, client } = await clusterWithNamespace());
  await client.create(COMPONENT, component('statestore', 'state.sqlite'));
  await client.create(COMPONENT, component('lockstore', 'lock.sqlite'));
  await client.create(SECRET, secret('db', { user: 'admin', password: 'pw' }));
  await client.create(SECRET, secret('api', { key: 'k-123' }));
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
  rmSync(dataDir, { recursive: true, force: true });
});

test('SDK: start (polls /v1.0/metadata), save/get/delete with etags', async () => {
  const t0 = Date.now();
  await dapr.start();
  assert.ok(Date.now() - t0 < 2000, 'the SDK sees the sidecar at once');
  assert.deepEqual(await dapr.state.save('statestore', [{ key: 'order', value: { orderId: 42 } }, { key: 'name', value: 'abc' }]), {});
  assert.deepEqual(await dapr.state.get('statestore', 'order'), { orderId: 42 });
  assert.equal(await dapr.state.get('statestore', 'name'), 'abc');
  assert.equal(await dapr.state.get('statestore', 'missing'), '');

  const [entry] = (await dapr.state.getBulk('statestore', ['order'])) as any[];
  const etag = entry.etag as string;
  const bad = await dapr.state.save('statestore', [{ key: 'order', value: { orderId: 43 }, etag: randomUUID(), options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE, consistency: StateConsistencyEnum.CONSISTENCY_STRONG } }]);
  assert.ok(bad.error, 'stale etag refused');
  assert.match(String(bad.error), /possible etag mismatch/);
  assert.deepEqual(await dapr.state.save('statestore', [{ key: 'order', value: { orderId: 43 }, etag, options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any }]), {});
  assert.deepEqual(await dapr.state.get('statestore', 'order'), { orderId: 43 });

  const del = await dapr.state.delete('statestore', 'order', { etag, concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any);
  assert.match(String(del.error), /ERR_STATE_DELETE/);
  const [now] = (await dapr.state.getBulk('statestore', ['order'])) as any[];
  assert.deepEqual(await dapr.state.delete('statestore', 'order', { etag: now.etag } as any), {});
  assert.equal(await dapr.state.get('statestore', 'order'), '');
});

test('SDK: getBulk, transaction, query, metadata', async () => {
  await dapr.state.save('statestore', [{ key: 'a', value: { city: 'Seattle', n: 1 } }, { key: 'b', value: { city: 'Paris', n: 2 } }]);
  const bulk = (await dapr.state.getBulk('statestore', ['a', 'b', 'zz'])) as any[];
  assert.deepEqual(bulk.map((x) => [x.key, x.data]), [['a', { city: 'Seattle', n: 1 }], ['b', { city: 'Paris', n: 2 }], ['zz', undefined]]);

  await dapr.state.transaction('statestore', [
    { operation: 'upsert', request: { key: 'c', value: { city: 'Seattle', n: 3 } } },
    { operation: 'delete', request: { key: 'b' } },
  ]);
  assert.equal(await dapr.state.get('statestore', 'b'), '');
  await assert.rejects(dapr.state.transaction('statestore', [{ operation: 'bogus' as any, request: { key: 'x' } }]), /ERR_NOT_SUPPORTED_STATE_OPERATION/);

  const q = await dapr.state.query('statestore', { filter: { EQ: { city: 'Seattle' } }, sort: [{ key: 'n', order: 'ASC' }], page: { limit: 10 } } as any);
  assert.deepEqual(q.results.map((r: any) => [r.key, r.data.n]), [['a', 1], ['c', 3]]);

  const md = await dapr.metadata.get();
  assert.equal(md.id, 'nodeapp');
  assert.deepEqual(md.components.map((c: any) => c.name), ['kubernetes', 'lockstore', 'statestore']);
});

test('SDK: secret.get / secret.getBulk from the built-in kubernetes store', async () => {
  assert.deepEqual(await dapr.secret.get('kubernetes', 'db'), { user: 'admin', password: 'pw' });
  assert.deepEqual(await dapr.secret.get('kubernetes', 'db', `metadata.namespace=${NS}`), { user: 'admin', password: 'pw' });
  assert.deepEqual(await dapr.secret.getBulk('kubernetes'), { db: { user: 'admin', password: 'pw' }, api: { key: 'k-123' } });
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
