import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as undiciRequest } from 'undici';
import { MemoryStore } from '../store/index.js';
import { ApiServer } from './server.js';
import type { KubeObject } from '../api/types.js';
import { testApiTls } from '../../test/support/cluster-fixtures.js';
import { compileLabelSelector } from './selectors.js';
import { compileFieldSelector } from './field-selectors.js';
import { compileJsonPath } from './jsonpath.js';
import { humanDuration } from './table.js';
import { negotiate } from './negotiate.js';

const TOKEN = 'r'.repeat(64);
const SVC = 'core/services';
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

function service(name: string, ns: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns, labels }, spec: { ports: [{ port: 80 }] } };
}

describe('API read side (Kubernetes semantics)', () => {
  // A small event log, so old revisions are compacted quickly.
  const store = new MemoryStore({ eventLogSize: 8 });
  let server: ApiServer;
  let base: string;
  let dispatcher: Agent;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await undiciRequest(`${base}${path}`, { headers: { ...auth, ...headers }, dispatcher } as Parameters<typeof undiciRequest>[1]);
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text.split('\n')[0]) : undefined, text };
  };

  before(async () => {
    const { tls, ca } = await testApiTls();
    dispatcher = new Agent({ connect: { ca } });
    server = new ApiServer({ store, token: TOKEN, clusterName: 'read', tls, bookmarkIntervalMs: 50 });
    await server.listen();
    base = server.url;
    store.create({ storageKey: 'core/namespaces', name: 'a' }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } });
    for (const [ns, name, tier] of [['a', 's1', 'x'], ['a', 's2', 'y'], ['a', 's3', 'x']]) store.create({ storageKey: SVC, namespace: ns, name }, service(name, ns, { tier }));
  });
  after(async () => {
    await dispatcher.close();
    await server.close();
    store.close();
  });

  it('Table for a list and one object: Name first, the printer columns, PartialObjectMetadata rows, includeObject', async () => {
    const list = await get('/api/v1/namespaces/a/services', { accept: TABLE });
    assert.equal(list.status, 200);
    assert.equal(list.body.kind, 'Table');
    assert.equal(list.body.apiVersion, 'meta.k8s.io/v1');
    assert.deepEqual(list.body.columnDefinitions.map((c: { name: string }) => c.name), ['Name', 'Type', 'Port(s)', 'Age']);
    assert.equal(list.body.columnDefinitions[0].format, 'name');
    assert.equal(list.body.columnDefinitions[3].type, 'date');
    assert.deepEqual(list.body.rows[0].cells.slice(0, 3), ['s1', 'ClusterIP', '80/TCP']);
    assert.equal(list.body.rows[0].object.kind, 'PartialObjectMetadata');
    assert.equal(list.body.metadata.resourceVersion, String(store.revision()));
    const full = await get('/api/v1/namespaces/a/services/s2?includeObject=Object', { accept: TABLE });
    assert.equal(full.body.rows.length, 1);
    assert.equal(full.body.rows[0].object.kind, 'Service');
    const none = await get('/api/v1/namespaces/a/services?includeObject=None', { accept: TABLE });
    assert.equal(none.body.rows[0].object, undefined);
    // as=Table of an unknown group falls back to JSON; only protobuf = 406.
    assert.equal((await get('/api/v1/namespaces/a/services', { accept: 'application/json;as=Table;g=example.com;v=v1,application/json' })).body.kind, 'ServiceList');
    const refused = await get('/api/v1/namespaces/a/services', { accept: 'application/vnd.kubernetes.protobuf' });
    assert.equal(refused.status, 406);
    assert.equal(refused.body.reason, 'NotAcceptable');
  });

  it('limit/continue pages at one revision, remainingItemCount, and a compacted token is 410 with an inconsistent continuation', async () => {
    const p1 = await get('/api/v1/namespaces/a/services?limit=2');
    assert.deepEqual(p1.body.items.map((o: KubeObject) => o.metadata.name), ['s1', 's2']);
    assert.equal(p1.body.metadata.remainingItemCount, 1);
    const rv = p1.body.metadata.resourceVersion;
    // A change between pages does not show in the next page: it is read at the first page's revision.
    store.create({ storageKey: SVC, namespace: 'a', name: 's4' }, service('s4', 'a'));
    const p2 = await get(`/api/v1/namespaces/a/services?limit=2&continue=${p1.body.metadata.continue}`);
    assert.deepEqual(p2.body.items.map((o: KubeObject) => o.metadata.name), ['s3']);
    assert.equal(p2.body.metadata.resourceVersion, rv);
    assert.equal(p2.body.metadata.continue, undefined);
    // Compact past that revision: the token is too old.
    for (let i = 0; i < 10; i++) store.update({ storageKey: SVC, namespace: 'a', name: 's1' }, { ...service('s1', 'a', { tier: 'x' }), spec: { ports: [{ port: 100 + i }] } });
    const gone = await get(`/api/v1/namespaces/a/services?limit=2&continue=${p1.body.metadata.continue}`);
    assert.equal(gone.status, 410);
    assert.equal(gone.body.reason, 'Expired');
    assert.match(gone.body.message, /^The provided continue parameter is too old to display a consistent list result/);
    const rest = await get(`/api/v1/namespaces/a/services?limit=5&continue=${gone.body.metadata.continue}`);
    assert.deepEqual(rest.body.items.map((o: KubeObject) => o.metadata.name), ['s3', 's4']);
    const bad = await get('/api/v1/namespaces/a/services?continue=garbage');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^continue key is not valid/);
  });

  it('resourceVersion rules: Exact of a compacted revision 410, invalid combinations 422, a future one 504', async () => {
    const now = store.revision();
    assert.equal((await get(`/api/v1/namespaces/a/services?resourceVersion=${now}&resourceVersionMatch=Exact`)).body.metadata.resourceVersion, String(now));
    const old = await get('/api/v1/namespaces/a/services?resourceVersion=1&resourceVersionMatch=Exact');
    assert.equal(old.status, 410);
    assert.match(old.body.message, /^The resourceVersion for the provided list is too old/);
    assert.equal((await get('/api/v1/namespaces/a/services?resourceVersion=1&resourceVersionMatch=NotOlderThan')).status, 200);
    const noRv = await get('/api/v1/namespaces/a/services?resourceVersionMatch=Exact');
    assert.equal(noRv.status, 422);
    assert.match(noRv.body.message, /resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided/);
    assert.match((await get('/api/v1/namespaces/a/services?resourceVersion=0&resourceVersionMatch=Exact')).body.message, /forbidden for resourceVersion "0"/);
    assert.match((await get('/api/v1/namespaces/a/services?watch=true&resourceVersionMatch=NotOlderThan')).body.message, /forbidden for watch unless sendInitialEvents is provided/);
    const cont = await get(`/api/v1/namespaces/a/services?resourceVersion=${now}&continue=abc`);
    assert.equal(cont.status, 400);
    assert.match(cont.body.message, /specifying resource version is not allowed when using continue/);
    const future = await get(`/api/v1/namespaces/a/services?resourceVersion=${now + 100}`);
    assert.equal(future.status, 504);
    assert.match(future.body.message, /Too large resource version/);
  });

  it('field selectors (=, ==, !=) and set-based label selectors; unsupported fields are 400', async () => {
    const names = async (q: string) => (await get(`/api/v1/services?${q}`)).body.items.map((o: KubeObject) => o.metadata.name);
    assert.deepEqual(await names('fieldSelector=metadata.name%3Ds2'), ['s2']);
    assert.deepEqual(await names('fieldSelector=metadata.name%3D%3Ds2'), ['s2']);
    assert.deepEqual(await names('fieldSelector=metadata.name!%3Ds2,metadata.namespace%3Da'), ['s1', 's3', 's4']);
    assert.deepEqual(await names(`labelSelector=${encodeURIComponent('tier in (x),tier notin (y)')}`), ['s1', 's3']);
    const bad = await get('/api/v1/services?fieldSelector=spec.type%3DClusterIP');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^field label not supported: spec\.type/);
    assert.equal((await get(`/api/v1/services?labelSelector=${encodeURIComponent('tier in x')}`)).status, 400);
  });

  it('watch: sendInitialEvents ends with the initial-events-end bookmark; Table events; a compacted revision is an ERROR 410', async () => {
    const stream = await get('/api/v1/namespaces/a/services?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1');
    const events = stream.text.trim().split('\n').map((l) => JSON.parse(l));
    const initial = events.findIndex((e) => e.type === 'BOOKMARK');
    assert.deepEqual(events.slice(0, initial).map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED s1', 'ADDED s2', 'ADDED s3', 'ADDED s4']);
    assert.equal(events[initial].object.metadata.annotations['k8s.io/initial-events-end'], 'true');
    assert.equal(events[initial].object.kind, 'Service');
    assert.equal(events[initial].object.metadata.resourceVersion, String(store.revision()));
    const table = await get('/api/v1/namespaces/a/services?watch=true&fieldSelector=metadata.name%3Ds2&timeoutSeconds=1', { accept: TABLE });
    assert.equal(table.headers['content-type'], 'application/json;as=Table;g=meta.k8s.io;v=v1');
    const ev = JSON.parse(table.text.trim().split('\n')[0]);
    assert.equal(ev.object.kind, 'Table');
    assert.equal(ev.object.rows.length, 1);
    assert.equal(ev.object.rows[0].cells[0], 's2');
    const gone = await get('/api/v1/namespaces/a/services?watch=true&resourceVersion=1');
    assert.equal(gone.body.type, 'ERROR');
    assert.equal(gone.body.object.code, 410);
    // A namespace that does not exist (yet) is watched, not refused.
    assert.equal((await get('/api/v1/namespaces/nowhere/services?watch=true&timeoutSeconds=1')).status, 200);
  });

  it('aggregated discovery v2 and v2beta1 with their Content-Type; plain JSON otherwise', async () => {
    const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';
    const apis = await get('/apis', { accept });
    assert.equal(apis.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    assert.equal(apis.body.kind, 'APIGroupDiscoveryList');
    const flomesh = apis.body.items.find((g: { metadata: { name: string } }) => g.metadata.name === 'flomesh.io');
    const sexp = flomesh.versions[0].resources.find((r: { resource: string }) => r.resource === 'serviceexports');
    assert.deepEqual({ scope: sexp.scope, singular: sexp.singularResource, short: sexp.shortNames, kind: sexp.responseKind.kind, sub: sexp.subresources[0].subresource }, { scope: 'Namespaced', singular: 'serviceexport', short: ['sexp'], kind: 'ServiceExport', sub: 'status' });
    const core = await get('/api', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json' });
    assert.equal(core.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList');
    assert.equal(core.body.items[0].metadata.name, '');
    assert.equal((await get('/apis')).body.kind, 'APIGroupList');
  });
});

describe('read-side compilers', () => {
  it('label selectors: equality, sets, existence; bad ones name the term', () => {
    const o = (labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', labels } }) as KubeObject;
    const sel = compileLabelSelector('env in (prod, dev),tier notin (db),!legacy,app')!;
    assert.equal(sel(o({ env: 'prod', app: 'web' })), true);
    assert.equal(sel(o({ env: 'prod', app: 'web', tier: 'db' })), false);
    assert.equal(sel(o({ env: 'qa', app: 'web' })), false);
    assert.equal(sel(o({ env: 'dev', app: 'web', legacy: '1' })), false);
    assert.throws(() => compileLabelSelector('a b c'), /unable to parse requirement/);
  });

  it('field selectors pin a name for watches; jsonpath filters and wildcards; ages as kubectl prints them', () => {
    assert.equal(compileFieldSelector('metadata.name=nodeapp', 'Service')!.name, 'nodeapp');
    assert.throws(() => compileFieldSelector('status.phase=Active', 'Service'), /field label not supported: status\.phase/);
    assert.ok(compileFieldSelector('status.phase=Active', 'Namespace'));
    const doc = { status: { conditions: [{ type: 'A', status: 'False' }, { type: 'Valid', status: 'True' }] }, spec: { rules: [{ path: '/a' }, { path: '/b' }] } };
    assert.deepEqual(compileJsonPath('.status.conditions[?(@.type=="Valid")].status')(doc), ['True']);
    assert.deepEqual(compileJsonPath('.spec.rules[*].path')(doc), ['/a', '/b']);
    assert.deepEqual(compileJsonPath('.spec.rules[1].path')(doc), ['/b']);
    assert.deepEqual([5_000, 150_000, 3_600_000, 9 * 3_600_000, 3 * 86_400_000].map(humanDuration), ['5s', '2m30s', '60m', '9h', '3d']);
    assert.deepEqual(negotiate('application/json;as=Table;g=meta.k8s.io;v=v1beta1'), { as: 'Table', apiVersion: 'meta.k8s.io/v1beta1' });
  });
});
