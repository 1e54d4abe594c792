import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { startDaprApiServer } from './server.js';
import { http } from '../../test/support/dapr-fixtures.js';
import type { InvokeHandler } from './types.js';

test('healthz 204 / 500 ERR_HEALTH_NOT_READY, outbound, metadata, PUT metadata, shutdown, metrics', async () => {
  let ready = false;
  let shutdowns = 0;
  const api = await startDaprApiServer({
    appId: 'nodeapp', namespace: 'ns', appPort: 5000, isReady: () => ready, isOutboundReady: () => true,
    onShutdown: () => { shutdowns++; },
    metrics: { render: async () => ({ contentType: 'text/plain', body: 'm 1\n' }) },
  });
  const base = `http://127.0.0.1:${api.port}`;
  try {
    const h = await http(base, 'GET', '/v1.0/healthz');
    assert.equal(h.status, 500);
    assert.deepEqual(h.json, { errorCode: 'ERR_HEALTH_NOT_READY', message: 'dapr is not ready' });
    assert.equal((await http(base, 'GET', '/v1.0/healthz/outbound')).status, 204);
    ready = true;
    assert.equal((await http(base, 'GET', '/v1.0/healthz')).status, 204);
    assert.equal((await http(base, 'PUT', '/v1.0/metadata/cliPID', '1234')).status, 204);
    const m = await http(base, 'GET', '/v1.0/metadata');
    assert.equal(m.status, 200);
    assert.equal(m.json.id, 'nodeapp');
    assert.deepEqual(m.json.enabledFeatures, []);
    assert.deepEqual(m.json.actors, []);
    assert.deepEqual(m.json.components, []);
    assert.deepEqual(m.json.extended, { cliPID: '1234' });
    assert.deepEqual(m.json.appConnectionProperties, { port: 5000, protocol: 'http', channelAddress: '127.0.0.1' });
    assert.equal((await http(base, 'GET', '/metrics')).text, 'm 1\n');
    assert.equal((await http(base, 'POST', '/v1.0/shutdown')).status, 204);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(shutdowns, 1);
  } finally {
    await api.close();
  }
});

test('API token: 401 "invalid api token" without it, healthz exempt, accepted with it', async () => {
  const api = await startDaprApiServer({ appId: 'a', apiToken: 's3cret' });
  const base = `http://127.0.0.1:${api.port}`;
  try {
    const r = await http(base, 'GET', '/v1.0/metadata');
    assert.equal(r.status, 401);
    assert.equal(r.text.trim(), 'invalid api token');
    assert.equal((await http(base, 'GET', '/v1.0/metadata', undefined, { 'dapr-api-token': 'wrong' })).status, 401);
    assert.equal((await http(base, 'GET', '/v1.0/state/s/k')).status, 401);
    assert.equal((await http(base, 'GET', '/v1.0/healthz')).status, 204);
    assert.equal((await http(base, 'GET', '/v1.0/healthz/outbound')).status, 204);
    assert.equal((await http(base, 'GET', '/v1.0/metadata', undefined, { 'dapr-api-token': 's3cret' })).status, 200);
  } finally {
    await api.close();
  }
});

test("Dapr APIs not built yet answer 501 with the block's code, built ones daprd's not-configured answer, never as an invocation (even with dapr-app-id)", async () => {
  const api = await startDaprApiServer({ appId: 'a', invoke: { handle: (_req, res) => res.writeHead(200).end('invoked') } });
  const base = `http://127.0.0.1:${api.port}`;
  try {
    const cases = [
      ['POST', '/v1.0/bindings/queue', 'ERR_INVOKE_OUTPUT_BINDING', /bindings API/],
      ['GET', '/v1.0/configuration/config?key=a', 'ERR_CONFIGURATION_STORE_NOT_CONFIGURED', /configuration API/],
      ['POST', '/v1.0/actors/counter/1/method/inc', 'ERR_ACTOR_RUNTIME_NOT_FOUND', /actors API/],
      ['PUT', '/v1.0-alpha1/crypto/encrypt', 'ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED', /cryptography API/],
      ['POST', '/v1.0-beta1/workflows/dapr/orders/start', 'ERR_API_UNIMPLEMENTED', /workflow API/],
      ['POST', '/v1.0-alpha1/jobs/nightly', 'ERR_API_UNIMPLEMENTED', /jobs API/],
      ['POST', '/v1.0-alpha1/conversation/llm/converse', 'ERR_API_UNIMPLEMENTED', /conversation API/],
    ] as const;
    for (const [m, p, code, message] of cases) {
      const r = await http(base, m, p, m === 'GET' ? undefined : '{}', { 'dapr-app-id': 'b' });
      assert.equal(r.status, 501, `${m} ${p}: ${r.text}`);
      assert.equal(r.json.errorCode, code, `${m} ${p}`);
      assert.match(r.json.message, message);
      assert.match(r.json.message, new RegExp(`\\(${m} ${p.split('?')[0].replace(/[/.]/g, '\\$&')}\\)`));
    }
    // Built blocks without a store answer daprd's "not configured", never as an invocation either.
    const built = [
      ['GET', '/v1.0/secrets/kubernetes/redis', 500, 'ERR_SECRET_STORES_NOT_CONFIGURED', 'secret store is not configured'],
      ['GET', '/v1.0/secrets/kubernetes/bulk', 500, 'ERR_SECRET_STORES_NOT_CONFIGURED', 'secret store is not configured'],
      ['POST', '/v1.0-alpha1/lock/lockstore', 500, 'ERR_LOCK_STORE_NOT_CONFIGURED', 'lock store is not configured'],
      ['POST', '/v1.0-alpha1/unlock/lockstore', 500, 'ERR_LOCK_STORE_NOT_CONFIGURED', 'lock store is not configured'],
      ['POST', '/v1.0/publish/pubsub/orders', 400, 'ERR_PUBSUB_NOT_CONFIGURED', 'pubsub is not configured'],
      ['POST', '/v1.0-alpha1/publish/bulk/pubsub/orders', 400, 'ERR_PUBSUB_NOT_CONFIGURED', 'pubsub is not configured'],
      ['PUT', '/v1.0/publish/bulk/pubsub/orders', 400, 'ERR_PUBSUB_NOT_CONFIGURED', 'pubsub is not configured'],
    ] as const;
    for (const [m, p, status, code, message] of built) {
      const r = await http(base, m, p, m === 'GET' ? undefined : '{"resourceId":"r","lockOwner":"o","expiryInSeconds":5}', { 'dapr-app-id': 'b' });
      assert.equal(r.status, status, `${m} ${p}: ${r.text}`);
      assert.deepEqual(r.json, { errorCode: code, message }, `${m} ${p}`);
    }
    // A path outside those areas with dapr-app-id is still an invocation.
    assert.equal((await http(base, 'GET', '/v1.0/orders', undefined, { 'dapr-app-id': 'b' })).text, 'invoked');
  } finally {
    await api.close();
  }
});

test('unknown routes → 404 ERR_DIRECT_INVOKE; invocation without a handler → 501', async () => {
  const api = await startDaprApiServer({ appId: 'a' });
  const base = `http://127.0.0.1:${api.port}`;
  try {
    for (const [m, p] of [['GET', '/nope'], ['GET', '/v1.0/state/s/a/b'], ['PATCH', '/v1.0/state/s'], ['GET', '/v2/x']] as const) {
      const r = await http(base, m, p);
      assert.equal(r.status, 404, `${m} ${p}`);
      assert.deepEqual(r.json, { errorCode: 'ERR_DIRECT_INVOKE', message: 'failed getting app id either from the URL path or the header dapr-app-id' });
    }
    const r = await http(base, 'POST', '/v1.0/invoke/b/method/x', 'hi');
    assert.equal(r.status, 501);
    assert.deepEqual(r.json, { errorCode: 'ERR_DIRECT_INVOKE', message: 'service invocation is not configured' });
    assert.equal((await http(base, 'GET', '/anything', undefined, { 'dapr-app-id': 'b' })).status, 501);
  } finally {
    await api.close();
  }
});

test('InvokeHandler dispatch: URL form, dapr-app-id header, basic auth; API routes still win', async () => {
  const calls: Array<[string | undefined, string, string]> = [];
  const invoke: InvokeHandler = {
    handle(req: IncomingMessage, res: ServerResponse, appId: string | undefined, method: string) {
      calls.push([appId, method, req.url ?? '']);
      res.writeHead(200).end('invoked');
    },
  };
  const api = await startDaprApiServer({ appId: 'a', invoke });
  const base = `http://127.0.0.1:${api.port}`;
  try {
    assert.equal((await http(base, 'PUT', '/v1.0/invoke/nodeapp.dapr-test/method/neworder/x%20y?q=1', '{}')).text, 'invoked');
    await http(base, 'GET', '/v1.0/invoke/b%2Ec/method/m');
    await http(base, 'GET', '/v1.0/invoke/onlyapp');
    await http(base, 'GET', '/orders/7?x=1', undefined, { 'dapr-app-id': 'orders' });
    await http(base, 'GET', '/ping', undefined, { authorization: 'Basic ' + Buffer.from('dapr-app-id:pinger').toString('base64') });
    assert.deepEqual(calls, [
      ['nodeapp.dapr-test', 'neworder/x%20y', '/v1.0/invoke/nodeapp.dapr-test/method/neworder/x%20y?q=1'],
      ['b.c', 'm', '/v1.0/invoke/b%2Ec/method/m'],
      [undefined, '', '/v1.0/invoke/onlyapp'],
      ['orders', 'orders/7', '/orders/7?x=1'],
      ['pinger', 'ping', '/ping'],
    ]);
    // A Dapr API route is served by the API even with the header (as daprd's router does).
    const r = await http(base, 'GET', '/v1.0/metadata', undefined, { 'dapr-app-id': 'orders' });
    assert.equal(r.json.id, 'a');
  } finally {
    await api.close();
  }
});
