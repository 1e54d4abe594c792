/**
 * The Dapr gRPC API (DAPR_GRPC_PORT) driven by the official @dapr/dapr client in gRPC mode, and
 * by raw @grpc/grpc-js calls for what the SDK does not expose: the state stores (state.sqlite,
 * state.in-memory, state.redis against a real redis-server), secrets, locks, metadata shared with
 * the HTTP API, the API token, unimplemented methods and the message size limit.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CommunicationProtocolEnum, DaprClient, LogLevel, StateConcurrencyEnum } from '@dapr/dapr';
import type { ApiClient } from '../../client/api-client.js';
import type { RunningCluster } from '../../cluster/cluster.js';
import { ComponentRegistry } from '../components.js';
import { startDaprApiServer, type RunningDaprApi } from '../server.js';
import { startDaprGrpcListener } from './listener.js';
import { httpMetadataSource } from './http-metadata.js';
import { DAPR_SERVICE, daprServiceDefinition } from './server.js';
import { clusterWithNamespace, NS, SDK_STORES, seedSdkComponents } from '../../../test/support/dapr-fixtures.js';
import { RedisServer } from '../../../test/support/redis-server.js';

let cluster: RunningCluster;
let client: ApiClient;
let registry: ComponentRegistry;
let api: RunningDaprApi;
let grpcApi: { port: number; close(): Promise<void> };
let dapr: DaprClient;
let raw: grpc.Client & Record<string, Function>;
let dataDir: string;
let redis: RedisServer;

const STORES = SDK_STORES;

/** A gRPC status error: code and message as the client sees them. */
interface Failure { code: number; rawMessage?: string; details?: string; metadata?: grpc.Metadata }

/** One unary call with grpc-js (the promise rejects with the ServiceError). */
function call(method: string, req: object, md = new grpc.Metadata({}), c = raw): Promise<any> {
  if (!md.get('dapr-api-token').length) md.set('dapr-api-token', 'tok');
  return new Promise((resolve, reject) => (c[method] as Function).call(c, req, md, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))));
}

async function fails(p: Promise<unknown>, code: number, message: RegExp): Promise<Failure> {
  try {
    await p;
  } catch (err) {
    const e = err as Failure;
    assert.equal(e.code, code, `code ${e.code} (${e.rawMessage ?? e.details})`);
    assert.match(e.rawMessage ?? e.details ?? '', message);
    return e;
  }
  assert.fail('the call succeeded');
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cm-dapr-grpc-'));
  ({ cluster, client } = await clusterWithNamespace());
  redis = await RedisServer.start();
  await seedSdkComponents(client, redis);
  registry = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir, client });
  await registry.start();
  api = await startDaprApiServer({ appId: 'nodeapp', namespace: NS, components: registry, apiToken: 'tok' });
  grpcApi = await startDaprGrpcListener({ appId: 'nodeapp', components: registry, apiToken: 'tok', metadata: httpMetadataSource(api.port, 'tok') });
  dapr = new DaprClient({
    daprHost: '127.0.0.1', daprPort: String(grpcApi.port), daprApiToken: 'tok',
    communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error },
  });
  const Ctor = grpc.makeGenericClientConstructor(daprServiceDefinition(), DAPR_SERVICE);
  raw = new Ctor(`127.0.0.1:${grpcApi.port}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 16 << 20 }) as never;
});

after(async () => {
  raw?.close();
  await dapr?.stop().catch(() => undefined);
  await grpcApi?.close();
  await api?.close();
  await registry?.close();
  await client?.close();
  await cluster?.close();
  await redis?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('gRPC SDK: start polls GetMetadata and sees the sidecar at once', async () => {
  const t0 = Date.now();
  await dapr.start();
  assert.ok(Date.now() - t0 < 2000);
});

for (const st of STORES) {
  test(`gRPC SDK on ${st.type}: save/get/delete with etags, first-write, daprd's gRPC codes`, async () => {
    const store = st.name;
    await dapr.state.save(store, [{ key: 'order', value: { orderId: 42 } }, { key: 'name', value: 'abc' }]);
    assert.deepEqual(await dapr.state.get(store, 'order'), { orderId: 42 });
    assert.equal(await dapr.state.get(store, 'name'), 'abc');
    // A missing key is an empty GetStateResponse (no error, no etag).
    assert.equal(await dapr.state.get(store, 'missing'), '');
    assert.deepEqual(await call('GetState', { storeName: store, key: 'missing' }), { data: Buffer.alloc(0), etag: '', metadata: {} });

    const [entry] = (await dapr.state.getBulk(store, ['order'])) as any[];
    const etag = entry.etag as string;
    assert.ok(etag);
    const stale = st.etags === 'uuid' ? randomUUID() : String(Number(etag) + 100);
    const firstWrite = { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any;
    await fails(dapr.state.save(store, [{ key: 'order', value: { orderId: 43 }, etag: stale, options: firstWrite }]), grpc.status.ABORTED,
      new RegExp(`^failed saving state in state store ${store}: possible etag mismatch`));
    await dapr.state.save(store, [{ key: 'order', value: { orderId: 43 }, etag, options: firstWrite }]);
    assert.deepEqual(await dapr.state.get(store, 'order'), { orderId: 43 });
    // first-write without etag on an existing key: refused as well.
    await fails(dapr.state.save(store, [{ key: 'order', value: 1, options: firstWrite }]), grpc.status.ABORTED, /possible etag mismatch/);

    await fails(dapr.state.delete(store, 'order', { etag, concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } as any), grpc.status.ABORTED,
      /^failed deleting state with key order: possible etag mismatch/);
    const now = await call('GetState', { storeName: store, key: 'order' });
    assert.notEqual(now.etag, etag);
    await dapr.state.delete(store, 'order', { etag: now.etag } as any);
    assert.equal(await dapr.state.get(store, 'order'), '');

    // The SDK's own e2e case: first-write with an etag on a missing key (redis saves it; in-memory and sqlite refuse it).
    const first = dapr.state.save(store, [{ key: 'key-1', value: 'value-1', etag: '1234', options: firstWrite }]);
    if (st.type === 'state.redis') {
      await first;
      assert.equal(await dapr.state.get(store, 'key-1'), 'value-1');
    } else {
      await fails(first, grpc.status.ABORTED, /possible etag mismatch/);
      assert.equal(await dapr.state.get(store, 'key-1'), '');
    }
  });

  test(`gRPC SDK on ${st.type}: getBulk, transaction, query, DeleteBulkState, ttl`, async () => {
    const store = st.name;
    await dapr.state.save(store, [{ key: 'a', value: { city: 'Seattle', n: 1 } }, { key: 'b', value: { city: 'Paris', n: 2 } }]);
    const bulk = (await dapr.state.getBulk(store, ['a', 'b', 'zz'])) as any[];
    assert.deepEqual(bulk.map((x) => [x.key, x.data]), [['a', { city: 'Seattle', n: 1 }], ['b', { city: 'Paris', n: 2 }], ['zz', '']]);
    assert.equal(bulk[2].etag, '');

    // The SDK's gRPC transaction sends values as given (strings).
    await dapr.state.transaction(store, [
      { operation: 'upsert', request: { key: 'c', value: JSON.stringify({ city: 'Seattle', n: 3 }) } },
      { operation: 'delete', request: { key: 'b' } },
    ]);
    assert.equal(await dapr.state.get(store, 'b'), '');
    assert.deepEqual(await dapr.state.get(store, 'c'), { city: 'Seattle', n: 3 });
    await fails(dapr.state.transaction(store, [{ operation: 'bogus' as any, request: { key: 'x' } }]), grpc.status.UNIMPLEMENTED, /^operation type bogus not supported$/);

    const q = dapr.state.query(store, { filter: { EQ: { city: 'Seattle' } }, sort: [{ key: 'n', order: 'ASC' }], page: { limit: 10 } } as any);
    if (st.query) {
      const res = await q;
      assert.deepEqual(res.results.map((r: any) => [r.key, JSON.parse(Buffer.from(r.data).toString()).n]), [['a', 1], ['c', 3]]);
      // QueryStateAlpha1 takes the query as a JSON string: a broken one is daprd's ERR_STATE_QUERY.
      await fails(call('QueryStateAlpha1', { storeName: store, query: '{nope' }), grpc.status.INTERNAL, new RegExp(`^failed query in state store ${store}: failed to parse JSON query body`));
    } else {
      await fails(q, grpc.status.INTERNAL, /^state store does not support querying$/);
    }

    // DeleteBulkState: a stale etag is daprd's bulk delete answer, with Aborted.
    const cur = await call('GetState', { storeName: store, key: 'a' });
    const stale = st.etags === 'uuid' ? randomUUID() : String(Number(cur.etag) + 100);
    await fails(call('DeleteBulkState', { storeName: store, states: [{ key: 'a', etag: { value: stale } }] }), grpc.status.ABORTED,
      new RegExp(`^failed deleting state in state store ${store}: possible etag mismatch`));
    await call('DeleteBulkState', { storeName: store, states: [{ key: 'a', etag: { value: cur.etag } }, { key: 'c' }] });
    assert.deepEqual((await call('GetBulkState', { storeName: store, keys: ['a', 'c'], parallelism: 2 })).items.map((i: any) => [i.key, i.data.length]), [['a', 0], ['c', 0]]);

    // ttlInSeconds in the item's metadata; the expiry comes back in GetState's metadata.
    await call('SaveState', { storeName: store, states: [{ key: 'ttl', value: Buffer.from('"t"'), metadata: { ttlInSeconds: '100' } }] });
    const ttl = await call('GetState', { storeName: store, key: 'ttl' });
    assert.ok(Date.parse(ttl.metadata.ttlExpireTime) > Date.now() + 90_000, JSON.stringify(ttl.metadata));
  });
}

test('gRPC: daprd\'s refusals: unknown store, empty key, || in a key, a bad ttl; bytes kept as sent', async () => {
  await fails(call('GetState', { storeName: 'nope', key: 'k' }), grpc.status.INVALID_ARGUMENT, /^state store nope is not found$/);
  await fails(call('SaveState', { storeName: 'statestore', states: [{ key: '', value: Buffer.from('1') }] }), grpc.status.INVALID_ARGUMENT, /^state key cannot be empty$/);
  await fails(call('SaveState', { storeName: 'statestore', states: [{ key: 'a||b', value: Buffer.from('1') }] }), grpc.status.INVALID_ARGUMENT, /can't contain '\|\|'/);
  await fails(call('SaveState', { storeName: 'statestore', states: [{ key: 'k', value: Buffer.from('1'), metadata: { ttlInSeconds: 'soon' } }] }), grpc.status.INTERNAL, /ttlInSeconds must be an integer/);
  // Values are bytes: not JSON, binary, and read back unchanged.
  const bin = Buffer.from([0, 1, 2, 255, 10]);
  await call('SaveState', { storeName: 'memstore', states: [{ key: 'bin', value: bin }] });
  assert.deepEqual((await call('GetState', { storeName: 'memstore', key: 'bin' })).data, bin);
});

test('gRPC SDK: metadata is the HTTP API\'s: components, and SetMetadata seen by both', async () => {
  const md = await dapr.metadata.get();
  assert.equal(md.id, 'nodeapp');
  assert.deepEqual(md.components.map((c: any) => c.name), ['kubernetes', 'lockstore', 'memstore', 'redisstore', 'statestore']);
  assert.ok(md.components.find((c: any) => c.name === 'redisstore')!.capabilities.includes('TRANSACTIONAL'));
  assert.equal(await dapr.metadata.set('from-grpc', 'g'), true);
  const viaHttp = await (await fetch(`http://127.0.0.1:${api.port}/v1.0/metadata`, { headers: { 'dapr-api-token': 'tok' } })).json() as any;
  assert.equal(viaHttp.extended['from-grpc'], 'g');
  await fetch(`http://127.0.0.1:${api.port}/v1.0/metadata/from-http`, { method: 'PUT', body: 'h', headers: { 'dapr-api-token': 'tok' } });
  assert.equal((await dapr.metadata.get()).extended['from-http'], 'h');
});

test('gRPC SDK: secret.get / getBulk from the built-in kubernetes store, with daprd\'s codes', async () => {
  assert.deepEqual(await dapr.secret.get('kubernetes', 'api'), { key: 'k-123' });
  assert.deepEqual((await call('GetSecret', { storeName: 'kubernetes', key: 'db' })).data, { user: 'admin', password: 'pw' });
  assert.deepEqual(await dapr.secret.getBulk('kubernetes'), { db: { user: 'admin', password: 'pw' }, api: { key: 'k-123' }, redis: { 'redis-password': redis.password } });
  await fails(dapr.secret.get('kubernetes', 'nope'), grpc.status.INTERNAL, /^failed getting secret with key nope from secret store kubernetes/);
  await fails(dapr.secret.get('vault', 'db'), grpc.status.INVALID_ARGUMENT, /^failed finding secret store with key vault$/);
});

test('gRPC SDK: lock / unlock with owners and statuses', async () => {
  assert.deepEqual(await dapr.lock.lock('lockstore', 'order-42', 'worker-a', 30), { success: true });
  assert.deepEqual(await dapr.lock.lock('lockstore', 'order-42', 'worker-b', 30), { success: false });
  assert.deepEqual(await dapr.lock.unlock('lockstore', 'order-42', 'worker-b'), { status: 2 });
  assert.deepEqual(await dapr.lock.unlock('lockstore', 'order-42', 'worker-a'), { status: 0 });
  assert.deepEqual(await dapr.lock.unlock('lockstore', 'order-42', 'worker-a'), { status: 1 });
  await fails(dapr.lock.lock('lockstore', 'order-42', 'worker-a', 0), grpc.status.INVALID_ARGUMENT, /^ExpiryInSeconds is not positive in lock store lockstore$/);
  await fails(dapr.lock.lock('nolock', 'r', 'o', 5), grpc.status.INVALID_ARGUMENT, /^lock store nolock not found$/);
});

test('gRPC: the API token as daprd checks it: right, wrong, missing (UNAUTHENTICATED with an ErrorInfo)', async () => {
  assert.equal((await call('GetMetadata', {}, new grpc.Metadata())).id, 'nodeapp');
  const wrong = new grpc.Metadata();
  wrong.set('dapr-api-token', 'other');
  const denied = await fails(call('GetState', { storeName: 'statestore', key: 'k' }, wrong), grpc.status.UNAUTHENTICATED, /^Unauthorized$/);
  const details = denied.metadata!.get('grpc-status-details-bin')[0] as Buffer;
  const text = details.toString('latin1');
  for (const part of ['type.googleapis.com/google.rpc.ErrorInfo', 'dapr.io', 'http.code', '401', 'http.error_message', 'authentication error: api token mismatch']) assert.ok(text.includes(part), `${part} in the details`);
  // The SDK with a wrong token and without one. (Its start() polls GetMetadata until it
  // answers, which it never does without the token, as with daprd: skip that poll.)
  for (const daprApiToken of ['other', undefined]) {
    const sdk = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(grpcApi.port), daprApiToken, communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error } });
    (sdk as any).daprClient.setIsInitialized(true);
    await fails(sdk.state.get('statestore', 'k'), grpc.status.UNAUTHENTICATED, /^Unauthorized$/);
    await fails(sdk.metadata.get(), grpc.status.UNAUTHENTICATED, /^Unauthorized$/);
  }
  const missing = await new Promise<grpc.ServiceError>((resolve) => (raw as any).GetState({ storeName: 'statestore', key: 'k' }, new grpc.Metadata(), (err: grpc.ServiceError) => resolve(err)));
  assert.equal(missing.code, grpc.status.UNAUTHENTICATED);
  assert.ok((missing.metadata.get('grpc-status-details-bin')[0] as Buffer).toString('latin1').includes('missing api token in request metadata'));
  // Unimplemented methods are behind the token too.
  await fails(call('PublishEvent', { pubsubName: 'p', topic: 't' }, wrong), grpc.status.UNAUTHENTICATED, /^Unauthorized$/);
});

test('gRPC: methods crossmesh does not implement answer UNIMPLEMENTED naming the method and the block', async () => {
  await fails(call('InvokeBinding', { name: 'b' }), grpc.status.UNIMPLEMENTED, /bindings API yet \(gRPC \/dapr\.proto\.runtime\.v1\.Dapr\/InvokeBinding\)/);
  await fails(call('GetConfiguration', { storeName: 'c' }), grpc.status.UNIMPLEMENTED, /configuration API yet \(gRPC .*\/GetConfiguration\)/);
  await fails(call('InvokeActor', { actorType: 'a', actorId: '1', method: 'm' }), grpc.status.UNIMPLEMENTED, /actors API yet \(gRPC .*\/InvokeActor\)/);
  await fails(call('SubtleGetKeyAlpha1', {}), grpc.status.UNIMPLEMENTED, /cryptography API yet \(gRPC .*\/SubtleGetKeyAlpha1\)/);
  await fails(call('StartWorkflowBeta1', {}), grpc.status.UNIMPLEMENTED, /^crossmesh does not implement the workflow API yet \(gRPC .*\/StartWorkflowBeta1\)$/);
  await fails(call('ScheduleJobAlpha1', {}), grpc.status.UNIMPLEMENTED, /the jobs API yet \(gRPC .*\/ScheduleJobAlpha1\)/);
  await fails(call('ConverseAlpha1', {}), grpc.status.UNIMPLEMENTED, /the conversation API yet/);
  // A streaming one.
  const stream = (raw as any).SubscribeConfiguration({ storeName: 'c' }, (() => { const m = new grpc.Metadata(); m.set('dapr-api-token', 'tok'); return m; })());
  const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
  assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  assert.match(err.details, /configuration API yet \(gRPC .*\/SubscribeConfiguration\)/);
  const bidi = (raw as any).EncryptAlpha1((() => { const m = new grpc.Metadata(); m.set('dapr-api-token', 'tok'); return m; })());
  const bidiErr = await new Promise<grpc.ServiceError>((resolve) => bidi.on('error', resolve));
  assert.equal(bidiErr.code, grpc.status.UNIMPLEMENTED);
  assert.match(bidiErr.details, /cryptography API yet \(gRPC .*\/EncryptAlpha1\)/);
  const streaming = (raw as any).SubscribeTopicEventsAlpha1((() => { const m = new grpc.Metadata(); m.set('dapr-api-token', 'tok'); return m; })());
  const streamingErr = await new Promise<grpc.ServiceError>((resolve) => streaming.on('error', resolve));
  assert.equal(streamingErr.code, grpc.status.UNIMPLEMENTED);
  assert.match(streamingErr.details, /^crossmesh does not implement streaming subscriptions yet \(gRPC \/dapr\.proto\.runtime\.v1\.Dapr\/SubscribeTopicEventsAlpha1\); subscribe through/);
  // A method the service does not have at all.
  const bogus = await new Promise<grpc.ServiceError>((resolve) => raw.makeUnaryRequest(`/${DAPR_SERVICE}/NoSuchMethod`, (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e!)));
  assert.equal(bogus.code, grpc.status.UNIMPLEMENTED);
  assert.match(bogus.details, /NoSuchMethod/);
  // InvokeService without an invoker (this server has none).
  await fails(call('InvokeService', { id: 'x', message: { method: 'm' } }), grpc.status.UNIMPLEMENTED, /^service invocation is not configured$/);
});

test('gRPC: a message over 4 MB is RESOURCE_EXHAUSTED, the connection and the server keep serving', async () => {
  const big = Buffer.alloc(5 << 20, 120);
  await fails(call('SaveState', { storeName: 'memstore', states: [{ key: 'big', value: big }] }), grpc.status.RESOURCE_EXHAUSTED, /larger than max/);
  await call('SaveState', { storeName: 'memstore', states: [{ key: 'small', value: Buffer.from('1') }] });
  assert.equal((await call('GetState', { storeName: 'memstore', key: 'small' })).data.toString(), '1');
  assert.equal((await call('GetState', { storeName: 'memstore', key: 'big' })).data.length, 0, 'nothing was written');
  assert.equal(await dapr.state.get('memstore', 'small'), 1, 'another connection too');
});

test('gRPC: bytes that are not HTTP/2 (an HTTP/1.1 request, garbage, a reset) close that connection only', async () => {
  for (const payload of ['GET / HTTP/1.1\r\nhost: x\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff', '']) {
    await new Promise<void>((resolve) => {
      const s = connect(grpcApi.port, '127.0.0.1', () => {
        if (payload) s.write(Buffer.from(payload, 'latin1'));
        else s.resetAndDestroy();
      });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
  }
  assert.equal((await call('GetMetadata', {})).id, 'nodeapp');
  assert.equal((await dapr.metadata.get()).id, 'nodeapp');
});
