import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiClient } from '../client/api-client.js';
import type { RunningCluster } from '../cluster/cluster.js';
import { ComponentRegistry } from './components.js';
import { startDaprApiServer, type RunningDaprApi } from './server.js';
import { clusterWithNamespace, COMPONENT, component, http, NS, RESILIENCY, eventually } from '../../test/support/dapr-fixtures.js';

let cluster: RunningCluster;
let client: ApiClient;
let registry: ComponentRegistry;
let api: RunningDaprApi;
let base: string;
let dataDir: string;
const STORES = ['statestore', 'sqlstore'];

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cm-dapr-state-'));
  ({ cluster, client } = await clusterWithNamespace());
  for (const c of [
    component('statestore', 'state.in-memory'),
    component('sqlstore', 'state.sqlite', [{ name: 'connectionString', value: 'shared.db' }]),
    component('byname', 'state.in-memory', [{ name: 'keyPrefix', value: 'name' }]),
    component('byns', 'state.in-memory', [{ name: 'keyPrefix', value: 'namespace' }]),
    component('noprefix', 'state.in-memory', [{ name: 'keyPrefix', value: 'none' }]),
    component('literal', 'state.in-memory', [{ name: 'keyPrefix', value: 'MyPrefix' }]),
  ]) await client.create(COMPONENT, c);
  registry = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir, client });
  await registry.start();
  assert.deepEqual(registry.status().map((s) => [s.name, s.state]), [
    ['byname', 'loaded'], ['byns', 'loaded'], ['kubernetes', 'loaded'], ['literal', 'loaded'], ['noprefix', 'loaded'], ['sqlstore', 'loaded'], ['statestore', 'loaded'],
  ]);
  api = await startDaprApiServer({ appId: 'nodeapp', namespace: NS, components: registry, appPort: 4321 });
  base = `http://127.0.0.1:${api.port}`;
});

after(async () => {
  await api?.close();
  await registry?.close();
  await client?.close();
  await cluster?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

for (const store of STORES) {
  describe(`state API over ${store}`, () => {
    test('save keeps the value bytes as sent; get returns them with an ETag; missing key → 204', async () => {
      const body = `[{"key":"order","value": {"b": 1,  "a":"x", "n": 12345678901234567890}}, {"key":"s","value":"abc"}]`;
      const r = await http(base, 'POST', `/v1.0/state/${store}`, body);
      assert.equal(r.status, 204, r.text);
      const g = await http(base, 'GET', `/v1.0/state/${store}/order`);
      assert.equal(g.status, 200);
      assert.equal(g.text, '{"b": 1,  "a":"x", "n": 12345678901234567890}');
      assert.ok(g.headers.get('etag'));
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/s`)).text, '"abc"');
      const m = await http(base, 'GET', `/v1.0/state/${store}/missing`);
      assert.equal(m.status, 204);
      assert.equal(m.text, '');
      assert.equal((await http(base, 'PUT', `/v1.0/state/${store}`, [{ key: 'p', value: 1 }])).status, 204);
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/p`)).text, '1');
      assert.equal((await http(base, 'POST', `/v1.0/state/${store}`, [])).status, 204);
    });

    test('etags: mismatch 409, right etag 204, first-write on an existing key 409, a given etag is checked under last-write too (daprd)', async () => {
      await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'e', value: 'v1' }]);
      const etag = (await http(base, 'GET', `/v1.0/state/${store}/e`)).headers.get('etag')!;
      const wrong = store === 'sqlstore' ? String(Number.isNaN(Number(etag)) ? randomUUID() : Number(etag) + 100) : randomUUID();
      const bad = await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'e', value: 'v2', etag: wrong }]);
      assert.equal(bad.status, 409, bad.text);
      assert.equal(bad.json.errorCode, 'ERR_STATE_SAVE');
      assert.match(bad.json.message, new RegExp(`^failed saving state in state store ${store}: possible etag mismatch\\. error from state store: `));
      assert.equal((await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'e', value: 'v2', etag }])).status, 204);
      const etag2 = (await http(base, 'GET', `/v1.0/state/${store}/e`)).headers.get('etag')!;
      assert.notEqual(etag2, etag);
      const fw = await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'e', value: 'v3', options: { concurrency: 'first-write' } }]);
      assert.equal(fw.status, 409);
      assert.equal(fw.json.errorCode, 'ERR_STATE_SAVE');
      const lw = await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'e', value: 'v4', etag: wrong, options: { concurrency: 'last-write', consistency: 'strong' } }]);
      assert.equal(lw.status, 409, lw.text);
      const plain = await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'e', value: 'v4', options: { concurrency: 'last-write', consistency: 'strong' } }]);
      assert.equal(plain.status, 204, plain.text);
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/e`)).text, '"v4"');
    });

    test('delete with If-Match: mismatch 409 ERR_STATE_DELETE, right etag 204', async () => {
      await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'd', value: 1 }]);
      const etag = (await http(base, 'GET', `/v1.0/state/${store}/d`)).headers.get('etag')!;
      const wrong = store === 'sqlstore' && !Number.isNaN(Number(etag)) ? String(Number(etag) + 100) : randomUUID();
      const bad = await http(base, 'DELETE', `/v1.0/state/${store}/d`, undefined, { 'if-match': wrong });
      assert.equal(bad.status, 409, bad.text);
      assert.equal(bad.json.errorCode, 'ERR_STATE_DELETE');
      assert.match(bad.json.message, /^failed deleting state with key d: possible etag mismatch\. error from state store: /);
      assert.equal((await http(base, 'DELETE', `/v1.0/state/${store}/d`, undefined, { 'if-match': etag })).status, 204);
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/d`)).status, 204);
      assert.equal((await http(base, 'DELETE', `/v1.0/state/${store}/never`)).status, 204);
    });

    test('metadata.ttlInSeconds expires a value', async () => {
      assert.equal((await http(base, 'POST', `/v1.0/state/${store}?metadata.ttlInSeconds=1`, [{ key: 't', value: 1 }])).status, 204);
      const g = await http(base, 'GET', `/v1.0/state/${store}/t`);
      assert.equal(g.status, 200);
      assert.ok(g.headers.get('metadata.ttlexpiretime'));
      await eventually(async () => (await http(base, 'GET', `/v1.0/state/${store}/t`)).status === 204, 4000, 'ttl expiry');
    });

    test("the URL's metadata wins over an item's and an operation's (daprd merges the query over the body)", async () => {
      // Expiry times say which TTL was applied: 1 s (the item's) or 300 s (the URL's).
      const expiresIn = async (key: string): Promise<number> => {
        const g = await http(base, 'GET', `/v1.0/state/${store}/${key}`);
        assert.equal(g.status, 200, key);
        return Date.parse(g.headers.get('metadata.ttlexpiretime')!) - Date.now();
      };
      const save = await http(base, 'POST', `/v1.0/state/${store}?metadata.ttlInSeconds=300`, [{ key: 'prec-save', value: 1, metadata: { ttlInSeconds: '1' } }]);
      assert.equal(save.status, 204, save.text);
      assert.ok((await expiresIn('prec-save')) > 100_000, 'save: the URL ttlInSeconds=300 applies');
      const tx = await http(base, 'POST', `/v1.0/state/${store}/transaction?metadata.ttlInSeconds=300`, {
        operations: [{ operation: 'upsert', request: { key: 'prec-tx', value: 1, metadata: { ttlInSeconds: '1' } } }],
      });
      assert.equal(tx.status, 204, tx.text);
      assert.ok((await expiresIn('prec-tx')) > 100_000, 'transaction: the URL ttlInSeconds=300 applies');
      // Without URL metadata the item's own applies; the body's transaction-level metadata is the
      // transaction's (daprd hands it to the store's Multi), not each operation's.
      const own = await http(base, 'POST', `/v1.0/state/${store}/transaction`, {
        operations: [{ operation: 'upsert', request: { key: 'prec-own', value: 1, metadata: { ttlInSeconds: '300' } } }, { operation: 'upsert', request: { key: 'prec-none', value: 1 } }],
        metadata: { ttlInSeconds: '1' },
      });
      assert.equal(own.status, 204, own.text);
      assert.ok((await expiresIn('prec-own')) > 100_000, "transaction: the operation's ttlInSeconds=300 applies");
      const none = await http(base, 'GET', `/v1.0/state/${store}/prec-none`);
      assert.equal(none.headers.get('metadata.ttlexpiretime'), null, 'transaction-level metadata does not give operations a TTL');
    });

    test('bulk get: raw data, etag, missing keys without data', async () => {
      await http(base, 'POST', `/v1.0/state/${store}`, `[{"key":"b1","value":{"x": [1, 2]}},{"key":"b2","value":"two"}]`);
      const r = await http(base, 'POST', `/v1.0/state/${store}/bulk`, { keys: ['b1', 'nope', 'b2'], parallelism: 2 });
      assert.equal(r.status, 200);
      assert.match(r.text, /^\[\{"key":"b1","data":\{"x": \[1, 2\]\},"etag":"[^"]+"\},\{"key":"nope"\},\{"key":"b2","data":"two","etag":"[^"]+"\}\]$/);
      const p = await http(base, 'PUT', `/v1.0/state/${store}/bulk`, { keys: [] });
      assert.deepEqual(p.json, []);
    });

    test('transaction: upsert + delete applied; unknown operation 400; etag mismatch 500 and nothing applied', async () => {
      await http(base, 'POST', `/v1.0/state/${store}`, [{ key: 'tx-del', value: 1 }]);
      const ok = await http(base, 'POST', `/v1.0/state/${store}/transaction`, `{"operations":[{"operation":"upsert","request":{"key":"tx-a","value": {"k": "v"}}},{"operation":"delete","request":{"key":"tx-del"}}],"metadata":null}`);
      assert.equal(ok.status, 204, ok.text);
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/tx-a`)).text, '{"k": "v"}');
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/tx-del`)).status, 204);

      const unk = await http(base, 'POST', `/v1.0/state/${store}/transaction`, { operations: [{ operation: 'merge', request: { key: 'x' } }] });
      assert.equal(unk.status, 400);
      assert.deepEqual(unk.json, { errorCode: 'ERR_NOT_SUPPORTED_STATE_OPERATION', message: 'operation type merge not supported' });

      const etag = (await http(base, 'GET', `/v1.0/state/${store}/tx-a`)).headers.get('etag')!;
      const wrong = store === 'sqlstore' && !Number.isNaN(Number(etag)) ? String(Number(etag) + 100) : randomUUID();
      const bad = await http(base, 'PUT', `/v1.0/state/${store}/transaction`, {
        operations: [
          { operation: 'upsert', request: { key: 'tx-b', value: 'b' } },
          { operation: 'upsert', request: { key: 'tx-a', value: 'changed', etag: wrong } },
        ],
      });
      assert.equal(bad.status, 500, bad.text);
      assert.equal(bad.json.errorCode, 'ERR_STATE_TRANSACTION');
      assert.match(bad.json.message, /^error while executing state transaction: /);
      assert.equal((await http(base, 'GET', `/v1.0/state/${store}/tx-b`)).status, 204, 'atomic: the first operation was not applied');
      assert.equal((await http(base, 'POST', `/v1.0/state/${store}/transaction`, { operations: [] })).status, 204);
    });

    test('query (alpha1): filter on values, keys without prefix, 204 when nothing matches', async () => {
      await http(base, 'POST', `/v1.0/state/${store}`, [
        { key: 'q1', value: { city: 'Seattle', n: 1 } },
        { key: 'q2', value: { city: 'Paris', n: 2 } },
        { key: 'q3', value: { city: 'Seattle', n: 3 } },
      ]);
      const r = await http(base, 'POST', `/v1.0-alpha1/state/${store}/query`, { filter: { EQ: { city: 'Seattle' } }, sort: [{ key: 'n', order: 'DESC' }] });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.results.map((x: any) => [x.key, x.data.n]), [['q3', 3], ['q1', 1]]);
      assert.ok(r.json.results.every((x: any) => typeof x.etag === 'string'));
      const none = await http(base, 'POST', `/v1.0-alpha1/state/${store}/query`, { filter: { EQ: { city: 'Nowhere' } } });
      assert.equal(none.status, 204);
      const bad = await http(base, 'POST', `/v1.0-alpha1/state/${store}/query`, '{nope');
      assert.equal(bad.status, 500);
      assert.equal(bad.json.errorCode, 'ERR_STATE_QUERY');
    });
  });
}

describe('state API errors', () => {
  test('malformed requests → 400 ERR_MALFORMED_REQUEST', async () => {
    for (const [body, what] of [
      ['{not json', 'bad JSON'],
      ['{"key":"a","value":1}', 'not an array'],
      ['[{"value":1}]', 'missing key'],
      ['[{"key":"","value":1}]', 'empty key'],
    ] as const) {
      const r = await http(base, 'POST', '/v1.0/state/statestore', body);
      assert.equal(r.status, 400, what);
      assert.equal(r.json.errorCode, 'ERR_MALFORMED_REQUEST', what);
      assert.match(r.json.message, /^failed deserializing HTTP body: /, what);
    }
    for (const r of [
      await http(base, 'POST', '/v1.0/state/statestore', [{ key: 'a||b', value: 1 }]),
      await http(base, 'GET', '/v1.0/state/statestore/a||b'),
      await http(base, 'DELETE', '/v1.0/state/statestore/a%7C%7Cb'),
      await http(base, 'POST', '/v1.0/state/statestore/bulk', { keys: ['ok', 'x||y'] }),
      await http(base, 'POST', '/v1.0/state/statestore/transaction', { operations: [{ operation: 'upsert', request: { key: 'x||y', value: 1 } }] }),
    ]) {
      assert.equal(r.status, 400);
      assert.equal(r.json.errorCode, 'ERR_MALFORMED_REQUEST');
      assert.match(r.json.message, /can't contain '\|\|'/);
    }
    const tx = await http(base, 'POST', '/v1.0/state/statestore/transaction', '[1]');
    assert.equal(tx.status, 400);
    assert.equal(tx.json.errorCode, 'ERR_MALFORMED_REQUEST');
  });

  test('unknown concurrency → 500 ERR_STATE_SAVE; an etag state.in-memory never issued → 409, as daprd compares it (redis: 400, in the store contract)', async () => {
    const c = await http(base, 'POST', '/v1.0/state/statestore', [{ key: 'a', value: 1, options: { concurrency: 'whenever' } }]);
    assert.equal(c.status, 500);
    assert.deepEqual(c.json, { errorCode: 'ERR_STATE_SAVE', message: "failed saving state in state store statestore: unrecognized concurrency model 'whenever'" });
    await http(base, 'POST', '/v1.0/state/statestore', [{ key: 'a', value: 1 }]);
    const e = await http(base, 'POST', '/v1.0/state/statestore', [{ key: 'a', value: 2, etag: 'not-a-uuid' }]);
    assert.equal(e.status, 409, e.text);
    assert.equal(e.json.errorCode, 'ERR_STATE_SAVE');
    assert.match(e.json.message, /^failed saving state in state store statestore: possible etag mismatch/);
    const d = await http(base, 'DELETE', '/v1.0/state/statestore/a', undefined, { 'if-match': 'not-a-uuid' });
    assert.equal(d.status, 409);
    assert.equal(d.json.errorCode, 'ERR_STATE_DELETE');
    // The Dapr JS SDK's e2e case on a missing key: daprd's state.in-memory refuses it (its state.redis saves it).
    const sdk = await http(base, 'POST', '/v1.0/state/statestore', [{ key: 'key-1', value: 'value-1', etag: '1234', options: { concurrency: 'first-write' } }]);
    assert.equal(sdk.status, 409, sdk.text);
  });

  test('unknown store → 400 ERR_STATE_STORE_NOT_FOUND; a sidecar without stores → 500 ERR_STATE_STORE_NOT_CONFIGURED', async () => {
    for (const [m, p, b] of [['GET', '/v1.0/state/nope/k'], ['POST', '/v1.0/state/nope', []], ['DELETE', '/v1.0/state/nope/k'], ['POST', '/v1.0/state/nope/bulk', { keys: [] }], ['POST', '/v1.0/state/nope/transaction', { operations: [] }], ['POST', '/v1.0-alpha1/state/nope/query', {}]] as const) {
      const r = await http(base, m, p, b);
      assert.equal(r.status, 400, `${m} ${p}`);
      assert.deepEqual(r.json, { errorCode: 'ERR_STATE_STORE_NOT_FOUND', message: 'state store nope is not found' });
    }
    const bare = await startDaprApiServer({ appId: 'x' });
    try {
      const r = await http(`http://127.0.0.1:${bare.port}`, 'GET', '/v1.0/state/statestore/k');
      assert.equal(r.status, 500);
      assert.deepEqual(r.json, { errorCode: 'ERR_STATE_STORE_NOT_CONFIGURED', message: 'state store is not configured' });
    } finally {
      await bare.close();
    }
  });

  test('a body over 4 MB → 413 with a Dapr-style body', async () => {
    const big = JSON.stringify([{ key: 'big', value: 'x'.repeat(4 * 1024 * 1024) }]);
    const r = await http(base, 'POST', '/v1.0/state/statestore', big);
    assert.equal(r.status, 413);
    assert.equal(r.json.errorCode, 'ERR_BODY_READ');
    assert.ok(r.json.message);
  });
});

describe('key prefixes', () => {
  test('appid (default), name, namespace, none, literal; stripped again on the way out', async () => {
    for (const s of ['statestore', 'byname', 'byns', 'noprefix', 'literal']) {
      assert.equal((await http(base, 'POST', `/v1.0/state/${s}`, [{ key: 'kp', value: { s } }])).status, 204);
    }
    const raw = async (s: string, k: string) => (await registry.getStateStore(s)!.store.get(k))?.data.toString();
    assert.equal(await raw('statestore', 'nodeapp||kp'), '{"s":"statestore"}');
    assert.equal(await raw('byname', 'byname||kp'), '{"s":"byname"}');
    assert.equal(await raw('byns', `${NS}.nodeapp||kp`), '{"s":"byns"}');
    assert.equal(await raw('noprefix', 'kp'), '{"s":"noprefix"}');
    assert.equal(await raw('literal', 'myprefix||kp'), '{"s":"literal"}');
    const q = await http(base, 'POST', '/v1.0-alpha1/state/byns/query', { filter: { EQ: { s: 'byns' } } });
    assert.deepEqual(q.json.results.map((r: any) => r.key), ['kp']);
  });

  test('two sidecars with the same app id share keys in a shared sqlite file; another app id does not see them', async () => {
    const same = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir, client });
    const other = new ComponentRegistry({ appId: 'otherapp', namespace: NS, dataDir, client });
    await Promise.all([same.start(), other.start()]);
    const a2 = await startDaprApiServer({ appId: 'nodeapp', components: same });
    const a3 = await startDaprApiServer({ appId: 'otherapp', components: other });
    try {
      await http(base, 'POST', '/v1.0/state/sqlstore', [{ key: 'shared', value: 'from-1' }]);
      assert.equal((await http(`http://127.0.0.1:${a2.port}`, 'GET', '/v1.0/state/sqlstore/shared')).text, '"from-1"');
      assert.equal((await http(`http://127.0.0.1:${a3.port}`, 'GET', '/v1.0/state/sqlstore/shared')).status, 204);
    } finally {
      await Promise.all([a2.close(), a3.close()]);
      await Promise.all([same.close(), other.close()]);
    }
  });
});

describe('resiliency on components', () => {
  test('a Resiliency targeting a component gives its store a policy', async () => {
    assert.equal(registry.getStateStore('statestore')!.policy, undefined);
    await client.create(RESILIENCY, {
      apiVersion: 'dapr.io/v1alpha1', kind: 'Resiliency', metadata: { name: 'res', namespace: NS },
      spec: {
        policies: { timeouts: { fast: '2s' }, retries: { three: { policy: 'constant', duration: '10ms', maxRetries: 3 } } },
        targets: { components: { statestore: { outbound: { timeout: 'fast', retry: 'three' } } } },
      },
    });
    const p = await eventually(() => registry.getStateStore('statestore')!.policy, 5000, 'policy');
    assert.equal(p.timeoutMs, 2000);
    assert.equal(p.retry?.maxRetries, 3);
    assert.equal((await http(base, 'POST', '/v1.0/state/statestore', [{ key: 'r', value: 1 }])).status, 204);
    assert.equal((await http(base, 'GET', '/v1.0/state/statestore/r')).text, '1');
  });
});
