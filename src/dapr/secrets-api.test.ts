/**
 * The secrets API over a real in-process cluster: the built-in kubernetes store (the cluster's
 * Secrets), secretstores.local.env, secretstores.local.file; component secretKeyRefs through
 * auth.secretStore; component scopes and a Configuration's secrets scopes. Codes, statuses and
 * messages as daprd answers them (src/dapr/secrets-api.ts names the sources).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kindFor } from '../api/index.js';
import type { ApiClient } from '../client/api-client.js';
import type { RunningCluster } from '../cluster/cluster.js';
import { ComponentRegistry } from './components.js';
import { startDaprApiServer, type RunningDaprApi } from './server.js';
import { clusterWithNamespace, COMPONENT, component, eventually, http, NS, SECRET, secret } from '../../test/support/dapr-fixtures.js';

const CONFIGURATION = kindFor('dapr.io/v1alpha1', 'Configuration');

let cluster: RunningCluster;
let client: ApiClient;
let registry: ComponentRegistry;
let api: RunningDaprApi;
let base: string;
let dir: string;
const ENV_PREFIX = `CMTEST${process.pid}_`;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cm-dapr-secrets-'));
  mkdirSync(join(dir, 'app', 'conf'), { recursive: true });
  writeFileSync(join(dir, 'app', 'conf', 'secrets.json'), JSON.stringify({ db: { password: 'pw1', user: 'admin' }, list: ['a', 'b'], token: 'tok', n: 5 }));
  writeFileSync(join(dir, 'multi.json'), JSON.stringify({ db: { password: 'pw2', nested: { x: 'y' } }, token: 'tok2', skipped: 7 }));
  process.env[`${ENV_PREFIX}API_KEY`] = 'from-env';
  process.env[`${ENV_PREFIX}DAPR_SECRET`] = 'given';
  process.env[`DAPR_${ENV_PREFIX}X`] = 'never';
  ({ cluster, client } = await clusterWithNamespace());
  await client.create(kindFor('v1', 'Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
  await client.create(SECRET, { ...secret('elsewhere', { k: 'v' }), metadata: { name: 'elsewhere', namespace: 'other' } });
  await client.create(SECRET, secret('redis', { 'redis-password': 's3cret', host: 'localhost' }));
  await client.create(SECRET, secret('plain', { plain: 'p' }));
  for (const c of [
    // Relative to the app's working dir (dir/app), as daprd resolves it against its own.
    component('localfile', 'secretstores.local.file', [{ name: 'secretsFile', value: 'conf/secrets.json' }]),
    component('multi', 'secretstores.local.file', [{ name: 'secretsFile', value: join(dir, 'multi.json') }, { name: 'multiValued', value: 'true' }, { name: 'nestedSeparator', value: '.' }]),
    component('dirfile', 'secretstores.local.file', [{ name: 'secretsFile', value: dir }]),
    component('env', 'secretstores.local.env', [{ name: 'prefix', value: ENV_PREFIX }]),
    component('envall', 'secretstores.local.env'),
    component('forothers', 'secretstores.local.env', [], { scopes: ['someone-else'] }),
    // State stores whose metadata comes from the secret stores.
    component('fromfile', 'state.in-memory', [{ name: 'keyPrefix', secretKeyRef: { name: 'token' } }], { auth: { secretStore: 'localfile' } } as any),
    component('fromk8s', 'state.in-memory', [{ name: 'keyPrefix', secretKeyRef: { name: 'redis', key: 'host' } }]),
    component('fromnowhere', 'state.in-memory', [{ name: 'keyPrefix', secretKeyRef: { name: 'x' } }], { auth: { secretStore: 'vault' } } as any),
  ]) await client.create(COMPONENT, c);
  await client.create(CONFIGURATION, {
    apiVersion: 'dapr.io/v1alpha1', kind: 'Configuration', metadata: { name: 'appconfig', namespace: NS },
    spec: { secrets: { scopes: [
      { storeName: 'kubernetes', defaultAccess: 'deny', allowedSecrets: ['redis', 'plain', 'missing'] },
      { storeName: 'env', defaultAccess: 'allow', deniedSecrets: ['HIDDEN'] },
      { storeName: 'multi', defaultAccess: 'deny' },
    ] } },
  });
  registry = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir: dir, client, config: 'appconfig', workingDir: join(dir, 'app') });
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
  rmSync(dir, { recursive: true, force: true });
  delete process.env[`${ENV_PREFIX}API_KEY`];
  delete process.env[`${ENV_PREFIX}DAPR_SECRET`];
  delete process.env[`DAPR_${ENV_PREFIX}X`];
});

const get = (path: string) => http(base, 'GET', path);

describe('secret stores load as components', () => {
  test('kubernetes is built in; scopes, failures and secretKeyRef through auth.secretStore', () => {
    const s = Object.fromEntries(registry.status().map((c) => [c.name, c]));
    assert.deepEqual(s.kubernetes, { name: 'kubernetes', type: 'secretstores.kubernetes', version: 'v1', state: 'loaded', capabilities: [] });
    assert.equal(s.localfile.state, 'loaded', s.localfile.error);
    assert.deepEqual(s.multi.capabilities, ['MULTIPLE_KEY_VALUES_PER_SECRET']);
    assert.equal(s.forothers, undefined, 'scoped to another app: not loaded');
    assert.equal(s.dirfile.state, 'failed');
    assert.match(s.dirfile.error!, /secretsFile .* is not a file \(it is a directory\)/);
    // keyPrefix from the file store's secret "token" and from the Kubernetes Secret's key "host".
    assert.equal(s.fromfile.state, 'loaded', s.fromfile.error);
    assert.equal(registry.getStateStore('fromfile')!.keyPrefix, 'tok||');
    assert.equal(registry.getStateStore('fromk8s')!.keyPrefix, 'localhost||');
    assert.equal(s.fromnowhere.state, 'failed');
    assert.match(s.fromnowhere.error!, /secret store "vault" \(auth\.secretStore\) is not loaded/);
  });
});

describe('GET /v1.0/secrets/{store}/{key}', () => {
  test('kubernetes: the Secret of the app namespace, decoded; metadata.namespace may not leave it', async () => {
    const r = await get('/v1.0/secrets/kubernetes/redis');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(r.json, { 'redis-password': 's3cret', host: 'localhost' });
    assert.deepEqual((await get(`/v1.0/secrets/kubernetes/redis?metadata.namespace=${NS}`)).json, { 'redis-password': 's3cret', host: 'localhost' });
    const missing = await get('/v1.0/secrets/kubernetes/missing');
    assert.equal(missing.status, 500);
    assert.deepEqual(missing.json, { errorCode: 'ERR_SECRET_GET', message: 'failed getting secret with key missing from secret store kubernetes: secrets "missing" not found' });
    const escape = await get('/v1.0/secrets/kubernetes/redis?metadata.namespace=other');
    assert.equal(escape.status, 500);
    assert.equal(escape.json.errorCode, 'ERR_SECRET_GET');
    assert.match(escape.json.message, /^failed getting secret with key redis from secret store kubernetes: secrets "redis" is forbidden: User "system:serviceaccount:dapr-test:default" cannot get resource "secrets" in API group "" in the namespace "other"/);
  });

  test('a Secret created after start is read live', async () => {
    await client.apply(SECRET, secret('plain', { plain: 'changed' }));
    assert.deepEqual((await get('/v1.0/secrets/kubernetes/plain')).json, { plain: 'changed' });
  });

  test('Configuration scopes: denied → 403 ERR_PERMISSION_DENIED (checked after the store lookup)', async () => {
    const r = await get('/v1.0/secrets/kubernetes/elsewhere');
    assert.equal(r.status, 403);
    assert.deepEqual(r.json, { errorCode: 'ERR_PERMISSION_DENIED', message: 'access denied by policy to get "elsewhere" from "kubernetes"' });
    assert.equal((await get(`/v1.0/secrets/env/HIDDEN`)).status, 403);
    assert.equal((await get('/v1.0/secrets/multi/db')).status, 403, 'defaultAccess deny without allowedSecrets');
    assert.equal((await get('/v1.0/secrets/nostore/db')).status, 401, 'store lookup first');
  });

  test('local.file: nested keys flattened with ":", arrays by index, relative path from the app dir', async () => {
    assert.deepEqual((await get('/v1.0/secrets/localfile/db:password')).json, { 'db:password': 'pw1' });
    assert.deepEqual((await get(`/v1.0/secrets/localfile/${encodeURIComponent('list:1')}`)).json, { 'list:1': 'b' });
    assert.deepEqual((await get('/v1.0/secrets/localfile/n')).json, { n: '5' });
    const r = await get('/v1.0/secrets/localfile/db');
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { errorCode: 'ERR_SECRET_GET', message: 'failed getting secret with key db from secret store localfile: secret db not found' });
  });

  test('local.env: prefix added, a variable not set is "", DAPR_* (the full variable name) never given out', async () => {
    assert.deepEqual((await get('/v1.0/secrets/env/API_KEY')).json, { API_KEY: 'from-env' });
    assert.deepEqual((await get('/v1.0/secrets/env/NOT_SET')).json, { NOT_SET: '' });
    // As the component: the DAPR_ check is on prefix + name.
    assert.deepEqual((await get('/v1.0/secrets/env/DAPR_SECRET')).json, { DAPR_SECRET: 'given' });
    assert.deepEqual((await get(`/v1.0/secrets/envall/DAPR_${ENV_PREFIX}X`)).json, { [`DAPR_${ENV_PREFIX}X`]: '' });
    assert.deepEqual((await get('/v1.0/secrets/envall/app_api_token')).json, { app_api_token: '' });
  });

  test('unknown store → 401 ERR_SECRET_STORE_NOT_FOUND; a failed one is not found either', async () => {
    for (const store of ['nostore', 'dirfile', 'forothers']) {
      const r = await get(`/v1.0/secrets/${store}/x`);
      assert.equal(r.status, 401, store);
      assert.deepEqual(r.json, { errorCode: 'ERR_SECRET_STORE_NOT_FOUND', message: `failed finding secret store with key ${store}` });
    }
  });
});

describe('GET /v1.0/secrets/{store}/bulk', () => {
  test('kubernetes: every Secret of the namespace the scopes allow', async () => {
    const r = await get('/v1.0/secrets/kubernetes/bulk');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { redis: { 'redis-password': 's3cret', host: 'localhost' }, plain: { plain: 'changed' } });
    assert.equal((await get('/v1.0/secrets/kubernetes/bulk?metadata.namespace=other')).json.errorCode, 'ERR_SECRET_GET');
    assert.match((await get('/v1.0/secrets/kubernetes/bulk?metadata.namespace=other')).json.message, /^failed getting secrets from secret store kubernetes: secrets is forbidden/);
  });

  test('local.file single- and multi-valued; local.env with its prefix stripped', async () => {
    assert.deepEqual((await get('/v1.0/secrets/localfile/bulk')).json, {
      'db:password': { 'db:password': 'pw1' }, 'db:user': { 'db:user': 'admin' }, 'list:0': { 'list:0': 'a' }, 'list:1': { 'list:1': 'b' }, token: { token: 'tok' }, n: { n: '5' },
    });
    assert.deepEqual((await get('/v1.0/secrets/multi/bulk')).json, {}, 'multi: every secret denied by defaultAccess deny');
    const env = (await get('/v1.0/secrets/env/bulk')).json;
    assert.deepEqual(env.API_KEY, { API_KEY: 'from-env' });
    assert.deepEqual(env.DAPR_SECRET, { DAPR_SECRET: 'given' });
    assert.ok(Object.keys(env).every((k) => !k.startsWith(ENV_PREFIX)));
    const all = (await get('/v1.0/secrets/envall/bulk')).json;
    assert.deepEqual(all[`${ENV_PREFIX}API_KEY`], { [`${ENV_PREFIX}API_KEY`]: 'from-env' });
    assert.ok(Object.keys(all).every((k) => !k.toUpperCase().startsWith('DAPR_')), 'no DAPR_* variable');
  });
});

test('multiValued local.file without scopes: an object is one secret with its keys flattened', async () => {
  const reg = new ComponentRegistry({ appId: 'nodeapp', namespace: NS, dataDir: dir, client });
  await reg.start();
  await eventually(() => reg.getSecretStore('multi'), 5000, 'multi loads');
  const a = await startDaprApiServer({ appId: 'nodeapp', namespace: NS, components: reg });
  try {
    const b = `http://127.0.0.1:${a.port}`;
    assert.deepEqual((await http(b, 'GET', '/v1.0/secrets/multi/db')).json, { password: 'pw2', 'nested.x': 'y' });
    assert.deepEqual((await http(b, 'GET', '/v1.0/secrets/multi/bulk')).json, { db: { password: 'pw2', 'nested.x': 'y' }, token: { token: 'tok2' } });
    assert.deepEqual((await http(b, 'GET', '/v1.0/secrets/kubernetes/elsewhere')).status, 500, 'no Configuration: not denied, just not in this namespace');
  } finally {
    await a.close();
    await reg.close();
  }
});

test('no secret store at all → 500 ERR_SECRET_STORES_NOT_CONFIGURED', async () => {
  const a = await startDaprApiServer({ appId: 'nodeapp' });
  try {
    const r = await http(`http://127.0.0.1:${a.port}`, 'GET', '/v1.0/secrets/kubernetes/x');
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { errorCode: 'ERR_SECRET_STORES_NOT_CONFIGURED', message: 'secret store is not configured' });
  } finally {
    await a.close();
  }
});
