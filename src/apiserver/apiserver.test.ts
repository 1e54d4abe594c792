import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as undiciRequest } from 'undici';
import { MemoryStore } from '../store/index.js';
import { ApiServer } from './server.js';
import { ApiClient } from '../client/api-client.js';
import { Informer } from '../client/informer.js';
import { kindFor } from '../api/index.js';
import type { KubeObject, WatchEvent } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { testApiTls } from '../../test/support/cluster-fixtures.js';
import type { ApiTlsCredentials } from './server.js';

const TOKEN = 'a'.repeat(64);
const SVC = () => kindFor('v1', 'Service');
const SEXP = () => kindFor('flomesh.io/v1alpha1', 'ServiceExport');

function service(name: string, port = 3000, ns = 'default'): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ port }] } };
}

describe('API server', () => {
  let store: MemoryStore;
  let server: ApiServer;
  let client: ApiClient;
  let base: string;
  let tls: ApiTlsCredentials;
  let ca: string;
  let dispatcher: Agent;
  const auth = { authorization: `Bearer ${TOKEN}` };
  // The API is HTTPS only: raw requests trust the test cluster's CA.
  const request = (url: string, opts: Parameters<typeof undiciRequest>[1] = {}) => undiciRequest(url, { ...opts, dispatcher } as Parameters<typeof undiciRequest>[1]);

  before(async () => {
    store = new MemoryStore();
    ({ tls, ca } = await testApiTls());
    dispatcher = new Agent({ connect: { ca } });
    server = new ApiServer({ store, token: TOKEN, clusterName: 'test', tls });
    await server.listen();
    base = server.url;
    client = new ApiClient({ name: 'test', server: base, token: TOKEN, ca });
  });
  after(async () => {
    await dispatcher.close();
    await client.close();
    await server.close();
    store.close();
  });

  it('serves /healthz without a token and refuses everything else without a valid one', async () => {
    const health = await request(`${base}/healthz`);
    assert.equal(health.statusCode, 200);
    assert.equal(await health.body.text(), 'ok');
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${'b'.repeat(64)}` }]) {
      const res = await request(`${base}/api/v1/namespaces/default/services`, { headers });
      assert.equal(res.statusCode, 401);
      const body = (await res.body.json()) as { kind: string; reason: string; code: number };
      assert.equal(body.kind, 'Status');
      assert.equal(body.reason, 'Unauthorized');
      assert.equal(body.code, 401);
    }
  });

  it('creates, gets, lists, replaces and deletes with resourceVersion and generation bookkeeping', async () => {
    const created = await client.create(SVC(), service('web'));
    assert.ok(created.metadata.uid);
    assert.ok(created.metadata.creationTimestamp);
    assert.equal(created.metadata.generation, 1);
    assert.equal((created.spec as { ports: { targetPort: number }[] }).ports[0].targetPort, 3000, 'defaults applied');
    const got = await client.get(SVC(), 'web', 'default');
    assert.deepEqual(got, created);
    const list = await client.list(SVC(), 'default');
    assert.deepEqual(list.items.map((o) => o.metadata.name), ['web']);
    assert.ok(Number(list.resourceVersion) >= Number(created.metadata.resourceVersion));

    const changed = { ...created, spec: { ports: [{ port: 4000 }] } };
    const replaced = await client.replace(SVC(), changed);
    assert.equal(replaced.metadata.generation, 2);
    assert.ok(Number(replaced.metadata.resourceVersion) > Number(created.metadata.resourceVersion));

    // A write based on a stale resourceVersion is a 409 Conflict.
    await assert.rejects(client.replace(SVC(), { ...created, spec: { ports: [{ port: 5000 }] } }), (e: CrossmeshError) => e.code === 'CM_ERR_CONFLICT');
    await assert.rejects(client.create(SVC(), service('web')), (e: CrossmeshError) => e.code === 'CM_ERR_ALREADY_EXISTS');

    const deleted = await client.delete(SVC(), 'web', 'default');
    assert.equal(deleted?.metadata.name, 'web');
    assert.equal(await client.get(SVC(), 'web', 'default'), undefined);
    assert.equal(await client.delete(SVC(), 'web', 'default'), undefined);
  });

  it('server-side apply creates then updates and keeps status; the status subresource writes only status', async () => {
    await client.create(SVC(), service('nodeapp'));
    const exp: KubeObject = { apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'nodeapp', namespace: 'default' }, spec: { rules: [{ portNumber: 3000, path: '/nodeapp', pathType: 'Prefix' }] } };
    const a = await client.apply(SEXP(), exp);
    const withStatus = await client.patchStatus(SEXP(), 'nodeapp', 'default', { conditions: [{ type: 'Valid', status: 'True', reason: 'Success', message: 'ok', lastTransitionTime: new Date().toISOString() }] });
    assert.equal(withStatus.metadata.generation, a.metadata.generation, 'status writes do not bump generation');
    const b = await client.apply(SEXP(), { ...exp, spec: { ...exp.spec, sessionSticky: true } });
    assert.equal(b.status?.conditions?.[0]?.type, 'Valid', 'apply keeps the status');
    assert.equal(b.metadata.generation, 2);
    // The alias group serves the same object.
    const alias = await request(`${base}/apis/multicluster.flomesh.io/v1alpha1/namespaces/default/serviceexports/nodeapp`, { headers: auth });
    assert.equal(alias.statusCode, 200);
    assert.equal(((await alias.body.json()) as KubeObject).metadata.uid, a.metadata.uid);
  });

  it('answers bad requests with a Status object and the right 4xx', async () => {
    const cases: { method: string; path: string; body?: string; type?: string; status: number; match: RegExp }[] = [
      { method: 'GET', path: '/api/v1/namespaces/default/widgets', status: 404, match: /widgets/ },
      { method: 'GET', path: '/apis/flomesh.io/v1alpha1/namespaces/default/serviceexports/nope', status: 404, match: /not found/ },
      { method: 'POST', path: '/api/v1/namespaces/default/services', body: '{not json', status: 400, match: /not valid JSON/ },
      { method: 'POST', path: '/api/v1/namespaces/default/services', body: JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'Bad_Name' }, spec: { ports: [{ port: 70000 }] } }), status: 422, match: /metadata\.name|spec\.ports/ },
      { method: 'POST', path: '/api/v1/namespaces/missing-ns/services', body: JSON.stringify(service('x', 80, 'missing-ns')), status: 404, match: /namespaces "missing-ns" not found/ },
      { method: 'POST', path: '/api/v1/namespaces/default/services', body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' } }), status: 400, match: /Secret/ },
      { method: 'DELETE', path: '/api/v1/namespaces/default/services', status: 405, match: /not allowed/ },
      { method: 'PATCH', path: '/api/v1/namespaces/default/services/x', body: '{}', type: 'text/plain', status: 415, match: /unknown format - accepted media types include: application\/json-patch\+json/ },
      { method: 'DELETE', path: '/api/v1/namespaces/default', status: 403, match: /default/ },
    ];
    for (const c of cases) {
      const res = await request(`${base}${c.path}`, { method: c.method as 'GET', headers: { ...auth, 'content-type': c.type ?? 'application/json' }, body: c.body });
      const body = (await res.body.json()) as { kind: string; message: string; code: number };
      assert.equal(res.statusCode, c.status, `${c.method} ${c.path}: ${body.message}`);
      assert.equal(body.kind, 'Status');
      assert.equal(body.code, c.status);
      assert.match(body.message, c.match);
    }
  });

  it('a watch from a resourceVersion that is no revision number is refused with a 400 before it starts, as Kubernetes does', async () => {
    const res = await request(`${base}/api/v1/namespaces/default/services?watch=true&resourceVersion=abc`, { headers: auth });
    assert.equal(res.statusCode, 400);
    const body = (await res.body.json()) as { kind: string; code: number; message: string; details: { errorCode: string } };
    assert.equal(body.kind, 'Status');
    assert.equal(body.details.errorCode, 'CM_ERR_BAD_REQUEST');
    assert.match(body.message, /invalid resource version "abc": a resourceVersion is the number from a list's or an object's metadata.resourceVersion/);
  });

  it('validation errors carry every field problem as a cause', async () => {
    const res = await request(`${base}/apis/flomesh.io/v1alpha1/namespaces/default/globaltrafficpolicies`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'flomesh.io/v1alpha1', kind: 'GlobalTrafficPolicy', metadata: { name: 'nodeapp' }, spec: { lbType: 'Sideways', targets: [{ clusterKey: 'x', weight: -1 }] } }),
    });
    assert.equal(res.statusCode, 422);
    const body = (await res.body.json()) as { details: { causes: { field: string }[] } };
    const fields = body.details.causes.map((c) => c.field);
    assert.ok(fields.some((f) => f.includes('lbType')), JSON.stringify(fields));
    assert.equal(store.get({ storageKey: 'flomesh.io/globaltrafficpolicies', namespace: 'default', name: 'nodeapp' }), undefined, 'nothing stored');
  });

  it('refuses oversize bodies with 413 before reading them', async () => {
    const small = new ApiServer({ store, token: TOKEN, clusterName: 'small', maxBodyBytes: 1024, tls });
    await small.listen();
    try {
      const res = await request(`${small.url}/api/v1/namespaces/default/services`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ ...service('big'), metadata: { name: 'big', annotations: { a: 'x'.repeat(5000) } } }) });
      assert.equal(res.statusCode, 413);
      assert.equal(((await res.body.json()) as { reason: string }).reason, 'RequestEntityTooLarge');
    } finally {
      await small.close();
    }
  });

  it('serves discovery for core and every group, including the alias group', async () => {
    for (const path of ['/api', '/api/v1', '/apis', '/apis/flomesh.io/v1alpha1', '/apis/multicluster.flomesh.io/v1alpha1', '/apis/dapr.io/v1alpha1']) {
      const res = await request(`${base}${path}`, { headers: auth });
      assert.equal(res.statusCode, 200, path);
      await res.body.json();
    }
  });

  it('deleting a namespace deletes what is in it', async () => {
    const ns = kindFor('v1', 'Namespace');
    await client.create(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } });
    await client.create(SVC(), service('a', 80, 'doomed'));
    await client.delete(ns, 'doomed');
    assert.equal((await client.list(SVC(), 'doomed')).items.length, 0);
  });

  it('watch from a list revision misses nothing under concurrent writes', async () => {
    const ns = kindFor('v1', 'Namespace');
    await client.create(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'watched' } });
    const writes = 300;
    const writer = (async () => {
      for (let i = 0; i < writes; i++) {
        const name = `s${i % 40}`;
        const existing = await client.get(SVC(), name, 'watched');
        if (!existing) await client.create(SVC(), service(name, 1000 + i, 'watched'));
        else if (i % 3 === 0) await client.delete(SVC(), name, 'watched');
        else await client.replace(SVC(), { ...existing, spec: { ports: [{ port: 1000 + i }] } });
      }
    })();
    // Start watchers at different moments while the writer runs; each rebuilds the state
    // from its list plus its watch events and must end equal to the final list.
    const watchers: Promise<Map<string, string | undefined>>[] = [];
    for (let w = 0; w < 4; w++) {
      await new Promise((r) => setTimeout(r, 15 * w));
      watchers.push((async () => {
        const list = await client.list(SVC(), 'watched');
        const state = new Map(list.items.map((o) => [o.metadata.name, o.metadata.resourceVersion]));
        let lastSeen = Number(list.resourceVersion);
        const ac = new AbortController();
        const done = client.watch(SVC(), {
          namespace: 'watched', resourceVersion: list.resourceVersion, signal: ac.signal,
          onEvent: (ev: WatchEvent) => {
            lastSeen = Number(ev.object.metadata.resourceVersion);
            if (ev.type === 'DELETED') state.delete(ev.object.metadata.name);
            else if (ev.type !== 'BOOKMARK') state.set(ev.object.metadata.name, ev.object.metadata.resourceVersion);
          },
        });
        await writer;
        const finalRv = Number((await client.list(SVC(), 'watched')).resourceVersion);
        await waitFor(() => lastSeen >= finalRv, 5000);
        ac.abort();
        await done;
        return state;
      })());
    }
    const states = await Promise.all(watchers);
    const final = await client.list(SVC(), 'watched');
    const expected = new Map(final.items.map((o) => [o.metadata.name, o.metadata.resourceVersion]));
    assert.ok(expected.size > 0);
    for (const s of states) assert.deepEqual(s, expected);
  });

  it('informer syncs, follows changes, and resumes after the API server restarts', async () => {
    const ns = kindFor('v1', 'Namespace');
    await client.create(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'inf' } });
    await client.create(SVC(), service('one', 80, 'inf'));
    const own = new ApiServer({ store, token: TOKEN, clusterName: 'restartable', tls });
    const port = await own.listen();
    const c2 = new ApiClient({ name: 'restartable', server: own.url, token: TOKEN, ca });
    const inf = new Informer(c2, SVC(), { namespace: 'inf', minBackoffMs: 20, maxBackoffMs: 100 }).start();
    try {
      await inf.waitForSync();
      assert.deepEqual(inf.list().map((o) => o.metadata.name), ['one']);
      await client.create(SVC(), service('two', 80, 'inf'));
      await waitFor(() => inf.get('two', 'inf') !== undefined);
      await own.close();
      // Changes made while the informer's server is down reach it after the restart.
      await client.create(SVC(), service('three', 80, 'inf'));
      await client.delete(SVC(), 'one', 'inf');
      assert.ok(inf.get('one', 'inf'), 'last known state kept while the API is away');
      const again = new ApiServer({ store, token: TOKEN, clusterName: 'restartable', port, tls });
      await again.listen();
      try {
        await waitFor(() => inf.get('three', 'inf') !== undefined && inf.get('one', 'inf') === undefined, 5000);
      } finally {
        inf.stop();
        await again.close();
      }
    } finally {
      inf.stop();
      await c2.close();
    }
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
