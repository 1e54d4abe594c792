import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ApiClient } from '../client/api-client.js';
import type { RunningCluster } from '../cluster/cluster.js';
import { ComponentRegistry } from './components.js';
import { startDaprApiServer } from './server.js';
import { clusterWithNamespace, COMPONENT, component, eventually, http, NS, SECRET, secret } from '../../test/support/dapr-fixtures.js';

let cluster: RunningCluster;
let client: ApiClient;
let dataDir: string;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cm-dapr-comp-'));
  ({ cluster, client } = await clusterWithNamespace());
});
after(async () => {
  await client?.close();
  await cluster?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const byName = (r: ComponentRegistry) => Object.fromEntries(r.status().map((s) => [s.name, s]));

test('components from the cluster: scopes, secretKeyRef, failures recorded but not fatal, reload on change, removal', async () => {
  await client.create(SECRET, secret('sqlite-secret', { file: 'from-secret.db', 'sqlite-secret': 'default-key.db' }));
  await client.create(COMPONENT, component('mine', 'state.in-memory', [], { scopes: ['nodeapp'] }));
  await client.create(COMPONENT, component('theirs', 'state.in-memory', [], { scopes: ['otherapp'] }));
  await client.create(COMPONENT, component('everyone', 'state.in-memory'));
  await client.create(COMPONENT, component('secretive', 'state.sqlite', [{ name: 'connectionString', secretKeyRef: { name: 'sqlite-secret', key: 'file' } }]));
  await client.create(COMPONENT, component('keyless', 'state.sqlite', [{ name: 'connectionString', secretKeyRef: { name: 'sqlite-secret' } }]));
  await client.create(COMPONENT, component('nosecret', 'state.sqlite', [{ name: 'connectionString', secretKeyRef: { name: 'absent', key: 'x' } }]));
  await client.create(COMPONENT, component('badtype', 'state.cassandra'));
  await client.create(COMPONENT, component('pubsub', 'pubsub.redis'));
  await client.create(COMPONENT, component('redis-down', 'state.redis', [{ name: 'redisHost', value: '127.0.0.1:1' }, { name: 'dialTimeout', value: '300ms' }], { spec: { type: 'state.redis', version: 'v1', initTimeout: '2s', metadata: [{ name: 'redisHost', value: '127.0.0.1:1' }, { name: 'dialTimeout', value: '300ms' }] } }));

  const reg = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir, client });
  const t0 = Date.now();
  await reg.start(8000);
  assert.ok(Date.now() - t0 < 8000, 'start does not hang on a bad component');
  const api = await startDaprApiServer({ appId: 'nodeapp', namespace: NS, components: reg });
  const base = `http://127.0.0.1:${api.port}`;
  try {
    const s = byName(reg);
    assert.equal(s.theirs, undefined, 'scoped to another app: not loaded');
    for (const n of ['mine', 'everyone', 'secretive', 'keyless']) assert.equal(s[n]?.state, 'loaded', `${n}: ${s[n]?.error}`);
    // daprd's answer for state.in-memory: its features, then ACTOR (etag + transactions); no QUERY_API.
    assert.deepEqual(s.mine.capabilities, ['ETAG', 'TRANSACTIONAL', 'TTL', 'ACTOR']);
    assert.equal(s.nosecret.state, 'failed');
    assert.match(s.nosecret.error!, /^nosecret: .*secret "absent" not found/);
    assert.equal(s.badtype.state, 'failed');
    assert.match(s.badtype.error!, /^badtype: .*state\.cassandra/);
    assert.equal(s.pubsub.state, 'failed');
    assert.equal(s['redis-down'].state, 'failed', 'unreachable redis is reported');
    assert.match(s['redis-down'].error!, /^redis-down: /);

    // The good ones serve; /v1.0/metadata lists the loaded ones and reports the failures.
    assert.equal((await http(base, 'POST', '/v1.0/state/secretive', [{ key: 'k', value: 1 }])).status, 204);
    const md = (await http(base, 'GET', '/v1.0/metadata')).json;
    // ... and the built-in kubernetes secret store, as daprd on Kubernetes lists it.
    assert.deepEqual(md.components.map((c: any) => c.name).sort(), ['everyone', 'keyless', 'kubernetes', 'mine', 'secretive']);
    assert.deepEqual(md.components.find((c: any) => c.name === 'kubernetes'), { name: 'kubernetes', type: 'secretstores.kubernetes', version: 'v1', capabilities: [] });
    assert.equal(md.components.find((c: any) => c.name === 'mine').type, 'state.in-memory');
    assert.ok(md.crossmesh.components.find((c: any) => c.name === 'badtype').error);
    assert.equal((await http(base, 'GET', '/v1.0/state/nosecret/k')).status, 400, 'a failed store is not found');

    // A secret appears → the component that needed it loads.
    await client.create(SECRET, secret('absent', { x: 'late.db' }));
    await eventually(() => byName(reg).nosecret?.state === 'loaded', 5000, 'nosecret loads');

    // A secret changes → the store using it reloads (new file: the key written before is gone).
    const before = reg.getStateStore('secretive')!.store;
    await client.replace(SECRET, { ...secret('sqlite-secret', { file: 'other.db', 'sqlite-secret': 'default-key.db' }), metadata: { name: 'sqlite-secret', namespace: NS } });
    await eventually(() => reg.getStateStore('secretive')!.store !== before, 5000, 'secretive reloads');
    assert.equal((await http(base, 'GET', '/v1.0/state/secretive/k')).status, 204);
    assert.equal(reg.getStateStore('keyless')!.store !== undefined, true);

    // Scope changes and deletions.
    await client.mergePatch(COMPONENT, 'theirs', NS, { scopes: ['otherapp', 'nodeapp'] });
    await eventually(() => byName(reg).theirs?.state === 'loaded', 5000, 'theirs in scope');
    await client.delete(COMPONENT, 'everyone', NS);
    await eventually(() => byName(reg).everyone === undefined, 5000, 'everyone removed');
    const gone = await http(base, 'GET', '/v1.0/state/everyone/k');
    assert.equal(gone.status, 400);
    assert.equal(gone.json.errorCode, 'ERR_STATE_STORE_NOT_FOUND');

    // A bad edit of a working component: reported, the old store closed, the sidecar serves the rest.
    await client.mergePatch(COMPONENT, 'mine', NS, { spec: { type: 'state.nosuch' } });
    await eventually(() => byName(reg).mine?.state === 'failed', 5000, 'mine fails');
    assert.equal((await http(base, 'POST', '/v1.0/state/theirs', [{ key: 'k', value: 2 }])).status, 204);
  } finally {
    await api.close();
    await reg.close();
  }
});

test("/v1.0/metadata capabilities per store type are daprd's (features in components-contrib's order, then ACTOR)", async () => {
  const { createStateStore } = await import('../state/factory.js');
  const { daprCapabilities } = await import('./components.js');
  const dir = mkdtempSync(join(tmpdir(), 'cm-caps-'));
  try {
    const expected: Record<string, Record<string, string>> = {
      'state.in-memory': {},
      'state.sqlite': { connectionString: 'caps.db' },
      'state.redis': { redisHost: '127.0.0.1:1' },
    };
    for (const [type, metadata] of Object.entries(expected)) {
      // Not initialised: features are what the type declares, no connection is made.
      const store = await createStateStore(type, { name: 'caps', metadata, dataDir: dir });
      // The @dapr/dapr SDK's own e2e test expects ETAG, TRANSACTIONAL and ACTOR for state.redis.
      assert.deepEqual(daprCapabilities(store.features), ['ETAG', 'TRANSACTIONAL', 'TTL', 'ACTOR'], type);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
