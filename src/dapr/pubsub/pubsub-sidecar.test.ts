/**
 * Pub/sub through a real sidecar (startSidecar with a cluster, in-process) and a real HTTP app:
 * the publish API's answers (daprd's codes), CloudEvents as delivered, the app's SUCCESS /
 * RETRY / DROP / status answers, dead-letter topics, the inbound Resiliency policy, raw
 * payloads, bulk publish and bulk subscribe, gRPC PublishEvent, /v1.0/metadata and /metrics.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { CommunicationProtocolEnum, DaprClient, LogLevel } from '@dapr/dapr';
import { kindFor } from '../../api/index.js';
import type { ApiClient } from '../../client/api-client.js';
import type { RunningCluster } from '../../cluster/cluster.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/sidecar.js';
import { clusterWithNamespace, COMPONENT, component, eventually, http, NS, RESILIENCY } from '../../../test/support/dapr-fixtures.js';

interface Received { path: string; headers: Record<string, string | string[] | undefined>; body: any }

let cluster: RunningCluster;
let client: ApiClient;
let app: Server;
let car: RunningSidecar;
let base = '';
const received: Received[] = [];
/** Deliveries per event id (to answer differently on a redelivery). */
const attempts = new Map<string, number>();

const SUBSCRIPTIONS = [
  { pubsubname: 'pubsub', topic: 'orders', route: '/orders', deadLetterTopic: 'orders-dead' },
  { pubsubname: 'pubsub', topic: 'orders-dead', route: '/dead' },
  { pubsubname: 'pubsub', topic: 'nodlq', route: '/nodlq' },
  { pubsubname: 'pubsub', topic: 'raw', route: '/raw', metadata: { rawPayload: 'true' } },
  { pubsubname: 'pubsub', topic: 'bulk', route: '/bulk', bulkSubscribe: { enabled: true, maxMessagesCount: 5, maxAwaitDurationMs: 200 } },
  { pubsubname: 'retrying', topic: 'flaky', route: '/flaky', deadLetterTopic: 'flaky-dead' },
  { pubsubname: 'retrying', topic: 'flaky-dead', route: '/dead' },
];

/** The app: records every delivery; answers what the event's data asks for (`answer`), on attempt `until` and before. */
function startApp(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/dapr/subscribe') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(SUBSCRIPTIONS));
        return;
      }
      const body = text ? JSON.parse(text) : undefined;
      received.push({ path: req.url ?? '', headers: req.headers, body });
      if (req.url === '/bulk') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ statuses: body.entries.map((e: any) => ({ entryId: e.entryId, status: 'SUCCESS' })) }));
        return;
      }
      const n = (attempts.get(body?.id) ?? 0) + 1;
      attempts.set(body?.id, n);
      const ask = body?.data?.answer as string | undefined;
      const until = Number(body?.data?.until ?? Infinity);
      if (ask && n <= until) {
        if (/^\d+$/.test(ask)) return void res.writeHead(Number(ask)).end('app says no');
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ask }));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"SUCCESS"}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

const at = (path: string) => received.filter((r) => r.path === path);
const publish = (topic: string, body: unknown, headers: Record<string, string> = {}, pubsub = 'pubsub', query = '') =>
  http(base, 'POST', `/v1.0/publish/${pubsub}/${topic}${query}`, body, headers);

before(async () => {
  ({ cluster, client } = await clusterWithNamespace());
  // Short redelivery so a retried message comes back within the test.
  const fast = [{ name: 'redeliverInterval', value: '200ms' }, { name: 'processingTimeout', value: '1s' }];
  await client.create(COMPONENT, component('pubsub', 'pubsub.in-memory', fast));
  await client.create(COMPONENT, component('retrying', 'pubsub.in-memory', fast));
  await client.create(COMPONENT, component('scoped', 'pubsub.in-memory', [{ name: 'publishingScopes', value: 'subscriber=allowed' }]));
  await client.create(RESILIENCY, {
    apiVersion: 'dapr.io/v1alpha1', kind: 'Resiliency', metadata: { name: 'inbound', namespace: NS },
    spec: { policies: { retries: { thrice: { policy: 'constant', duration: '10ms', maxRetries: 2 } } }, targets: { components: { retrying: { inbound: { retry: 'thrice' } } } } },
  });
  const a = await startApp();
  app = a.server;
  car = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'subscriber' }, api: cluster.endpoint, servicePort: 3000, appPort: a.port });
  base = `http://127.0.0.1:${car.ports.http}`;
  await car.startSubscriptions();
  await eventually(() => car.subscriber!.status().filter((s) => s.state === 'subscribed').length === SUBSCRIPTIONS.length, 10_000, 'every subscription made');
});

after(async () => {
  await car?.close();
  app?.close();
  await client?.close();
  await cluster?.close();
});

test('publish: 204, the app gets a CloudEvent 1.0 from the publishing app at its route', async () => {
  const r = await publish('orders', { orderId: 1 });
  assert.equal(r.status, 204, r.text);
  const [got] = await eventually(() => at('/orders').filter((x) => x.body.data?.orderId === 1).length === 1 && at('/orders').filter((x) => x.body.data?.orderId === 1), 5000, 'the delivery');
  assert.equal(got.headers['content-type'], 'application/cloudevents+json');
  assert.equal(got.body.specversion, '1.0');
  assert.equal(got.body.type, 'com.dapr.event.sent');
  assert.equal(got.body.source, 'subscriber');
  assert.equal(got.body.topic, 'orders');
  assert.equal(got.body.pubsubname, 'pubsub');
  assert.equal(got.body.datacontenttype, 'application/json');
  assert.match(got.body.id, /^[0-9a-f-]{36}$/);
});

test("publish errors: daprd's codes and messages, nothing published", async () => {
  const cases: [string, number, string, RegExp][] = [
    ['/v1.0/publish/nope/orders', 404, 'ERR_PUBSUB_NOT_FOUND', /^pubsub nope not found$/],
    ['/v1.0/publish/pubsub', 404, 'ERR_TOPIC_EMPTY', /^topic is empty in pubsub pubsub$/],
    ['/v1.0/publish/pubsub/orders?metadata.rawPayload=maybe', 400, 'ERR_PUBSUB_REQUEST_METADATA', /^failed deserializing metadata\. Error: rawPayload="maybe" is not a boolean/],
    ['/v1.0/publish/pubsub/orders?metadata.ttlInSeconds=soon', 400, 'ERR_PUBSUB_REQUEST_METADATA', /ttlInSeconds="soon" is not an integer/],
    ['/v1.0/publish/scoped/other', 403, 'ERR_PUBSUB_FORBIDDEN', /^topic other is not allowed for app id subscriber$/],
  ];
  for (const [path, status, code, message] of cases) {
    const r = await http(base, 'POST', path, { orderId: 'bad' });
    assert.equal(r.status, status, `${path}: ${r.text}`);
    assert.equal(r.json.errorCode, code, path);
    assert.match(r.json.message, message, path);
  }
  const ce = await publish('orders', '{not json', { 'content-type': 'application/cloudevents+json' });
  assert.equal(ce.status, 500);
  assert.equal(ce.json.errorCode, 'ERR_PUBSUB_CLOUD_EVENTS_SER');
  assert.equal((await http(base, 'POST', '/v1.0/publish/scoped/allowed', { ok: true })).status, 204, 'the scoped topic is allowed');
  // Wait for a later message: nothing of the refused ones was delivered before it.
  assert.equal((await publish('orders', { orderId: 'marker' })).status, 204);
  await eventually(() => at('/orders').some((x) => x.body.data?.orderId === 'marker'), 5000, 'the marker');
  assert.equal(at('/orders').filter((x) => x.body.data?.orderId === 'bad').length, 0);
});

test('a CloudEvent body is delivered as the app wrote it (its id, type and extensions), with topic and pubsub set', async () => {
  const event = { specversion: '1.0', id: 'my-event-1', type: 'order.created', source: 'shop', datacontenttype: 'application/json', data: { orderId: 2 }, tenant: 'acme' };
  assert.equal((await publish('orders', event, { 'content-type': 'application/cloudevents+json' })).status, 204);
  const got = await eventually(() => at('/orders').find((x) => x.body.id === 'my-event-1'), 5000, 'the event');
  assert.equal(got.body.type, 'order.created');
  assert.equal(got.body.source, 'shop');
  assert.equal(got.body.tenant, 'acme');
  assert.equal(got.body.topic, 'orders');
  assert.deepEqual(got.body.data, { orderId: 2 });
});

test('RETRY with a dead-letter topic and no retry policy: the message moves to the dead-letter topic, as it was published', async () => {
  assert.equal((await publish('orders', { orderId: 3, answer: 'RETRY' })).status, 204);
  const dead = await eventually(() => at('/dead').find((x) => x.body.data?.orderId === 3), 5000, 'the dead letter');
  const first = at('/orders').find((x) => x.body.data?.orderId === 3)!;
  assert.equal(dead.body.id, first.body.id, 'the same event');
  assert.equal(dead.body.topic, 'orders', 'the envelope as published');
  assert.equal(car.metrics.registry.getSingleMetric('crossmesh_sidecar_pubsub_deadlettered_total') !== undefined, true);
});

test('DROP and 404 are not redelivered; 500 and RETRY without a dead-letter topic are, until the app succeeds', async () => {
  for (const [id, answer] of [['drop', 'DROP'], ['nf', '404']]) assert.equal((await publish('nodlq', { id, answer })).status, 204);
  assert.equal((await publish('nodlq', { id: 'err', answer: '500', until: 1 })).status, 204);
  assert.equal((await publish('nodlq', { id: 'retry', answer: 'RETRY', until: 2 })).status, 204);
  const count = (id: string) => at('/nodlq').filter((x) => x.body.data?.id === id).length;
  // A retried message comes back (redeliverInterval 200ms) until its answer is SUCCESS.
  await eventually(() => count('err') === 2 && count('retry') === 3, 8000, 'the redeliveries');
  assert.equal(count('drop'), 1);
  assert.equal(count('nf'), 1);
  const errs = at('/nodlq').filter((x) => x.body.data?.id === 'err');
  assert.equal(errs[0].body.id, errs[1].body.id, 'the same event again');
  // Another round of redelivery time: nothing acknowledged comes back.
  assert.equal((await publish('nodlq', { id: 'after' })).status, 204);
  await eventually(() => count('after') === 1, 5000, 'a later message');
  await new Promise((r) => setTimeout(r, 600)); // > 2 redelivery intervals: a wrongly pending message would be back
  assert.deepEqual([count('drop'), count('nf'), count('err'), count('retry')], [1, 1, 2, 3]);
});

test('the inbound Resiliency policy retries a RETRY in the sidecar (maxRetries 2), then the dead-letter topic takes it', async () => {
  assert.equal((await publish('flaky', { id: 'f1', answer: 'RETRY' }, {}, 'retrying')).status, 204);
  const dead = await eventually(() => at('/dead').find((x) => x.body.data?.id === 'f1'), 5000, 'the dead letter');
  assert.equal(at('/flaky').filter((x) => x.body.data?.id === 'f1').length, 3, 'one try and two retries');
  assert.equal(dead.body.topic, 'flaky');
});

test('rawPayload: published as is, delivered to a raw subscription as a CloudEvent with data_base64', async () => {
  const r = await publish('raw', 'plain bytes \u0001', { 'content-type': 'application/octet-stream' }, 'pubsub', '?metadata.rawPayload=true');
  assert.equal(r.status, 204, r.text);
  const got = await eventually(() => at('/raw')[0], 5000, 'the raw delivery');
  assert.equal(Buffer.from(got.body.data_base64, 'base64').toString(), 'plain bytes \u0001');
  assert.equal(got.body.datacontenttype, 'application/octet-stream');
});

test('bulk publish: entries delivered, duplicate or missing entry ids refused (ERR_PUBSUB_EVENTS_SER)', async () => {
  const entries = [1, 2, 3].map((i) => ({ entryId: `e${i}`, event: { bulkOrder: i }, contentType: 'application/json' }));
  const ok = await http(base, 'POST', '/v1.0-alpha1/publish/bulk/pubsub/orders', entries);
  assert.equal(ok.status, 204, ok.text);
  await eventually(() => [1, 2, 3].every((i) => at('/orders').some((x) => x.body.data?.bulkOrder === i)), 5000, 'the bulk entries');
  const dup = await http(base, 'POST', '/v1.0-alpha1/publish/bulk/pubsub/orders', [entries[0], { ...entries[1], entryId: 'e1' }]);
  assert.equal(dup.status, 400);
  assert.equal(dup.json.errorCode, 'ERR_PUBSUB_EVENTS_SER');
  assert.match(dup.json.message, /entryId is duplicated or not present for entry/);
  const notArray = await http(base, 'POST', '/v1.0-alpha1/publish/bulk/pubsub/orders', { entryId: 'x' });
  assert.equal(notArray.status, 400);
  assert.equal(notArray.json.errorCode, 'ERR_PUBSUB_EVENTS_SER');
});

test('bulk subscribe: the app gets batches (com.dapr.event.sent.bulk) of at most maxMessagesCount, every message once', async () => {
  for (let i = 0; i < 12; i++) assert.equal((await publish('bulk', { n: i })).status, 204);
  await eventually(() => at('/bulk').flatMap((x) => x.body.entries).length >= 12, 5000, 'the batches');
  const batches = at('/bulk');
  assert.ok(batches.every((b) => b.body.type === 'com.dapr.event.sent.bulk' && b.body.entries.length <= 5), JSON.stringify(batches.map((b) => b.body.entries.length)));
  const ns = batches.flatMap((b) => b.body.entries.map((e: any) => e.event.data.n)).sort((x: number, y: number) => x - y);
  assert.deepEqual(ns, [...Array(12).keys()]);
});

test('gRPC PublishEvent (the SDK in gRPC mode) reaches the same subscription', async () => {
  const dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(car.ports.grpc), communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error } });
  try {
    const res = await dapr.pubsub.publish('pubsub', 'orders', { orderId: 'grpc-1' });
    assert.equal(res.error, undefined);
    const got = await eventually(() => at('/orders').find((x) => x.body.data?.orderId === 'grpc-1'), 5000, 'the gRPC-published event');
    assert.equal(got.body.source, 'subscriber');
    // The SDK's gRPC client throws the status (its HTTP client returns it as `error`).
    await assert.rejects(dapr.pubsub.publish('nope', 'orders', { x: 1 }), (e: any) => /\[invalid_argument\] pubsub nope not found/.test(String(e?.error?.error ?? e?.error ?? e)));
  } finally {
    await dapr.stop();
  }
});

test('/v1.0/metadata lists the subscriptions; /metrics counts published, delivered, retried, dropped and dead-lettered by topic', async () => {
  const md = await http(base, 'GET', '/v1.0/metadata');
  const orders = md.json.subscriptions.find((s: any) => s.topic === 'orders');
  assert.deepEqual(orders, { pubsubname: 'pubsub', topic: 'orders', metadata: {}, rules: { rules: [{ match: '', path: '/orders' }] }, deadLetterTopic: 'orders-dead', type: 'PROGRAMMATIC' });
  assert.equal(md.json.crossmesh.subscriptions.find((s: any) => s.topic === 'orders').group, 'subscriber');
  const text = (await http(base, 'GET', '/metrics')).text;
  const value = (name: string, topic: string) => Number(new RegExp(`^${name}\\{[^}]*pubsub="pubsub"[^}]*topic="${topic}"[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  assert.ok(value('crossmesh_sidecar_pubsub_published_total', 'orders') >= 5, text);
  assert.ok(value('crossmesh_sidecar_pubsub_delivered_total', 'orders') >= 3);
  assert.ok(value('crossmesh_sidecar_pubsub_deadlettered_total', 'orders') >= 1);
  assert.ok(value('crossmesh_sidecar_pubsub_retried_total', 'nodlq') >= 3);
  assert.ok(value('crossmesh_sidecar_pubsub_dropped_total', 'nodlq') >= 2);
  assert.match(text, /crossmesh_sidecar_pubsub_published_total\{[^}]*cluster="cluster-1"/);
});

test('declarative Subscriptions (dapr.io/v2alpha1) apply live, for the app ids of their scopes, with CEL routes', async () => {
  const SUB = kindFor('dapr.io/v2alpha1', 'Subscription');
  const sub = (name: string, topic: string, spec: object, scopes: string[]) => ({ apiVersion: 'dapr.io/v2alpha1', kind: 'Subscription', metadata: { name, namespace: NS }, spec: { pubsubname: 'pubsub', topic, ...spec }, scopes });
  await client.create(SUB, sub('declared', 'declared', { routes: { rules: [{ match: 'event.data.kind == "vip"', path: '/vip' }], default: '/declared' } }, ['subscriber']));
  await client.create(SUB, sub('not-mine', 'elsewhere', { routes: { default: '/elsewhere' } }, ['other-app']));
  await eventually(() => car.subscriber!.status().some((s) => s.topic === 'declared' && s.type === 'DECLARATIVE' && s.state === 'subscribed'), 10_000, 'the declarative subscription');
  assert.ok(!car.subscriber!.status().some((s) => s.topic === 'elsewhere'), 'a Subscription scoped to another app does not apply');
  assert.equal((await publish('declared', { kind: 'vip' })).status, 204);
  assert.equal((await publish('declared', { kind: 'plain' })).status, 204);
  await eventually(() => at('/vip').length === 1 && at('/declared').length === 1, 5000, 'both routes');
  // Deleting it unsubscribes.
  await client.delete(SUB, 'declared', NS);
  await eventually(() => !car.subscriber!.status().some((s) => s.topic === 'declared'), 10_000, 'the subscription removed');
});
