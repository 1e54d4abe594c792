/**
 * The distributed lock API over a real cluster's components: lock.sqlite (crossmesh's) and
 * lock.redis against a real redis-server; owners, expiry, key prefixes and daprd's validation
 * answers (src/dapr/lock-api.ts names the sources).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { ApiClient } from '../client/api-client.js';
import type { RunningCluster } from '../cluster/cluster.js';
import { ComponentRegistry } from './components.js';
import { startDaprApiServer, type RunningDaprApi } from './server.js';
import { clusterWithNamespace, COMPONENT, component, eventually, http, NS } from '../../test/support/dapr-fixtures.js';
import { RedisServer } from '../../test/support/redis-server.js';

let cluster: RunningCluster;
let client: ApiClient;
let registry: ComponentRegistry;
let api: RunningDaprApi;
let base: string;
let dir: string;
let redis: RedisServer;
let raw: Redis;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cm-dapr-lock-'));
  redis = await RedisServer.start();
  raw = new Redis({ host: '127.0.0.1', port: redis.port, password: redis.password });
  ({ cluster, client } = await clusterWithNamespace());
  const redisMd = [{ name: 'redisHost', value: redis.address }, { name: 'redisPassword', value: redis.password }];
  for (const c of [
    component('sqllock', 'lock.sqlite'),
    component('redislock', 'lock.redis', redisMd),
    component('byname', 'lock.redis', [...redisMd, { name: 'keyPrefix', value: 'name' }]),
    component('noprefix', 'lock.redis', [...redisMd, { name: 'keyPrefix', value: 'none' }]),
    component('literal', 'lock.redis', [...redisMd, { name: 'keyPrefix', value: 'MyPrefix' }]),
    component('badprefix', 'lock.redis', [...redisMd, { name: 'keyPrefix', value: 'a||b' }]),
    component('failover', 'lock.redis', [...redisMd, { name: 'failover', value: 'true' }]),
  ]) await client.create(COMPONENT, c);
  registry = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir: dir, client });
  await registry.start();
  await eventually(() => registry.status().every((s) => s.state !== 'loading'), 5000, 'components settle');
  api = await startDaprApiServer({ appId: 'nodeapp', namespace: NS, components: registry });
  base = `http://127.0.0.1:${api.port}`;
});

after(async () => {
  await api?.close();
  await registry?.close();
  await client?.close();
  await cluster?.close();
  raw?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const lock = (store: string, body: unknown) => http(base, 'POST', `/v1.0-alpha1/lock/${store}`, body);
const unlock = (store: string, body: unknown) => http(base, 'POST', `/v1.0-alpha1/unlock/${store}`, body);

test('lock components load; a keyPrefix with || and failover: true fail as in daprd', () => {
  const s = Object.fromEntries(registry.status().map((c) => [c.name, c]));
  for (const n of ['sqllock', 'redislock', 'byname', 'noprefix', 'literal']) assert.equal(s[n].state, 'loaded', `${n}: ${s[n].error}`);
  assert.deepEqual(s.sqllock.capabilities, []);
  assert.equal(s.badprefix.state, 'failed');
  assert.match(s.badprefix.error!, /input key\/keyPrefix 'a\|\|b' can't contain '\|\|'/);
  assert.equal(s.failover.state, 'failed');
  assert.match(s.failover.error!, /failover is not supported/);
});

for (const store of ['sqllock', 'redislock']) {
  describe(`lock API over ${store}`, () => {
    test('one owner at a time; unlock statuses 0, 1, 2; released locks can be taken again', async () => {
      const r = await lock(store, { resourceId: 'order-1', lockOwner: 'a', expiryInSeconds: 30 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.equal(r.text, '{"success":true}');
      assert.equal((await lock(store, { resourceId: 'order-1', lockOwner: 'b', expiryInSeconds: 30 })).text, '{"success":false}');
      assert.equal((await lock(store, { resourceId: 'order-1', lockOwner: 'a', expiryInSeconds: 30 })).text, '{"success":false}', 'not re-entrant (SET NX)');
      assert.equal((await unlock(store, { resourceId: 'order-1', lockOwner: 'b' })).text, '{"status":2}');
      assert.equal((await unlock(store, { resourceId: 'order-1', lockOwner: 'a' })).text, '{"status":0}');
      assert.equal((await unlock(store, { resourceId: 'order-1', lockOwner: 'a' })).text, '{"status":1}');
      assert.equal((await lock(store, { resourceId: 'order-1', lockOwner: 'b', expiryInSeconds: 30 })).text, '{"success":true}');
      // protojson field names and a numeric string for the int32.
      assert.equal((await lock(store, { resource_id: 'order-2', lock_owner: 'x', expiry_in_seconds: '30' })).text, '{"success":true}');
      assert.equal((await unlock(store, { resource_id: 'order-2', lock_owner: 'x' })).text, '{"status":0}');
    });

    test('a lock expires after expiryInSeconds, not before', async () => {
      const t0 = Date.now();
      assert.equal((await lock(store, { resourceId: 'short', lockOwner: 'a', expiryInSeconds: 1 })).text, '{"success":true}');
      await eventually(async () => (await lock(store, { resourceId: 'short', lockOwner: 'b', expiryInSeconds: 5 })).json?.success === true, 4000, 'the lock expires');
      assert.ok(Date.now() - t0 >= 900, `taken over after ${Date.now() - t0} ms, before its expiry`);
      assert.equal((await unlock(store, { resourceId: 'short', lockOwner: 'a' })).text, '{"status":2}', 'the old owner no longer holds it');
    });

    test("validation in daprd's order", async () => {
      const cases: Array<[unknown, string, number, string, string]> = [
        [{ resourceId: 'r', lockOwner: 'o' }, 'lock', 400, 'ERR_MALFORMED_REQUEST', `ExpiryInSeconds is not positive in lock store ${store}`],
        [{ resourceId: 'r', lockOwner: 'o', expiryInSeconds: -1 }, 'lock', 400, 'ERR_MALFORMED_REQUEST', `ExpiryInSeconds is not positive in lock store ${store}`],
        [{ lockOwner: 'o', expiryInSeconds: 5 }, 'lock', 400, 'ERR_MALFORMED_REQUEST', `ResourceId is empty in lock store ${store}`],
        [{ resourceId: 'r', expiryInSeconds: 5 }, 'lock', 400, 'ERR_MALFORMED_REQUEST', `LockOwner is empty in lock store ${store}`],
        [{ lockOwner: 'o' }, 'unlock', 400, 'ERR_MALFORMED_REQUEST', `ResourceId is empty in lock store ${store}`],
        [{ resourceId: 'r' }, 'unlock', 400, 'ERR_MALFORMED_REQUEST', `LockOwner is empty in lock store ${store}`],
        [{ resourceId: 'a||b', lockOwner: 'o', expiryInSeconds: 5 }, 'lock', 500, 'ERR_TRY_LOCK', "failed to try acquiring lock: input key/keyPrefix 'a||b' can't contain '||'"],
        [{ resourceId: 'a||b', lockOwner: 'o' }, 'unlock', 500, 'ERR_UNLOCK', "failed to release lock: input key/keyPrefix 'a||b' can't contain '||'"],
      ];
      for (const [body, verb, status, errorCode, message] of cases) {
        const r = verb === 'lock' ? await lock(store, body) : await unlock(store, body);
        assert.equal(r.status, status, `${verb} ${JSON.stringify(body)}: ${r.text}`);
        assert.deepEqual(r.json, { errorCode, message });
      }
      const bad = await lock(store, '{"resourceId":');
      assert.equal(bad.status, 400);
      assert.equal(bad.json.errorCode, 'ERR_MALFORMED_REQUEST');
      assert.match(bad.json.message, /^failed deserializing HTTP body: /);
    });
  });
}

test('unknown store → 400 ERR_LOCK_STORE_NOT_FOUND; expiry is checked even before that', async () => {
  const r = await lock('nolock', { resourceId: 'r', lockOwner: 'o', expiryInSeconds: 5 });
  assert.equal(r.status, 400);
  assert.deepEqual(r.json, { errorCode: 'ERR_LOCK_STORE_NOT_FOUND', message: 'lock store nolock not found' });
  assert.deepEqual((await unlock('badprefix', { resourceId: 'r', lockOwner: 'o' })).json, { errorCode: 'ERR_LOCK_STORE_NOT_FOUND', message: 'lock store badprefix not found' });
  assert.equal((await lock('nolock', { resourceId: 'r', lockOwner: 'o' })).json.message, 'ExpiryInSeconds is not positive in lock store nolock');
});

test("redis keys as daprd writes them: SET lock||<appId>||<id> <owner> with a TTL; keyPrefix name / none / literal", async () => {
  assert.equal((await lock('redislock', { resourceId: 'k1', lockOwner: 'me', expiryInSeconds: 100 })).json.success, true);
  assert.equal(await raw.get('lock||nodeapp||k1'), 'me');
  const ttl = await raw.ttl('lock||nodeapp||k1');
  assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
  await lock('byname', { resourceId: 'k2', lockOwner: 'me', expiryInSeconds: 100 });
  assert.equal(await raw.get('lock||byname||k2'), 'me');
  await lock('noprefix', { resourceId: 'k3', lockOwner: 'me', expiryInSeconds: 100 });
  assert.equal(await raw.get('lock||k3'), 'me');
  await lock('literal', { resourceId: 'k4', lockOwner: 'me', expiryInSeconds: 100 });
  assert.equal(await raw.get('lock||myprefix||k4'), 'me');
  // A lock taken by another daprd (same key layout) is honoured.
  await raw.set('lock||nodeapp||theirs', 'someone', 'EX', 100);
  assert.equal((await lock('redislock', { resourceId: 'theirs', lockOwner: 'me', expiryInSeconds: 5 })).json.success, false);
  assert.equal((await unlock('redislock', { resourceId: 'theirs', lockOwner: 'me' })).json.status, 2);
});

test('redis away → 500 ERR_TRY_LOCK / ERR_UNLOCK naming it; back → locks work again', async () => {
  await redis.stop();
  try {
    const r = await lock('redislock', { resourceId: 'down', lockOwner: 'o', expiryInSeconds: 5 });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json.errorCode, 'ERR_TRY_LOCK');
    assert.match(r.json.message, new RegExp(`^failed to try acquiring lock: redis at ${redis.address.replace(/\./g, '\\.')}`));
    const u = await unlock('redislock', { resourceId: 'down', lockOwner: 'o' });
    assert.equal(u.status, 500);
    assert.equal(u.json.errorCode, 'ERR_UNLOCK');
  } finally {
    await redis.restart();
  }
  await eventually(async () => (await lock('redislock', { resourceId: 'back', lockOwner: 'o', expiryInSeconds: 5 })).json?.success === true, 8000, 'redis back');
});

test('no lock store → 500 ERR_LOCK_STORE_NOT_CONFIGURED', async () => {
  const a = await startDaprApiServer({ appId: 'nodeapp' });
  try {
    const r = await http(`http://127.0.0.1:${a.port}`, 'POST', '/v1.0-alpha1/lock/x', { resourceId: 'r', lockOwner: 'o', expiryInSeconds: 5 });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { errorCode: 'ERR_LOCK_STORE_NOT_CONFIGURED', message: 'lock store is not configured' });
  } finally {
    await a.close();
  }
});
