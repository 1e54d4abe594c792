import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { call, rawRequest, startBackend, statusOf, waitFor, type Backend } from '../../test/support/http-backend.js';
import { EPS, SEXP, SVC, endpoints, ensureNamespace, seedExport, service, startTestCluster, type TestCluster } from '../../test/support/cluster-fixtures.js';
import { isExportServed } from '../export/index.js';

const NS = 'dapr-test';

describe('gateway', () => {
  let tc: TestCluster;
  let a: Backend;
  let b: Backend;
  let gw = 0;

  const hits = () => a.hits.length + b.hits.length;
  /** Waits until the gateway serves `path` with a non-404 (the export is Valid and routed). */
  const routed = (path: string) => waitFor(async () => (await call(gw, path)).status !== 404, `route ${path}`);
  const unrouted = (path: string) => waitFor(async () => (await call(gw, path)).status === 404, `no route ${path}`);
  const setEndpoints = (name: string, ports: number[]) => tc.api.apply(EPS, endpoints(name, NS, ports));
  const served = (name: string) => waitFor(() => {
    const o = tc.cluster.store.get({ storageKey: SEXP.storageKey, namespace: NS, name });
    return o && isExportServed(o);
  }, `export ${name} served`);

  before(async () => {
    a = await startBackend('A');
    b = await startBackend('B');
    tc = await startTestCluster('cluster-1');
    gw = tc.cluster.gatewayPort;
    await ensureNamespace(tc.api, NS);
    await tc.api.apply(SVC, service('nodeapp', NS));
    await setEndpoints('nodeapp', [a.port]);
    await tc.api.apply(SEXP, seedExport());
    await served('nodeapp');
  });
  after(async () => {
    await tc.close();
    await a.close();
    await b.close();
  });
  beforeEach(async () => {
    // Every test starts from the seed's export on backend A.
    await tc.api.apply(SEXP, seedExport());
    await setEndpoints('nodeapp', [a.port]);
    await waitFor(async () => (await call(gw, '/nodeapp/ports')).headers['x-crossmesh-endpoint'] === `127.0.0.1:${a.port}`, 'seed state');
  });

  it('listens on a real port and reports it', () => {
    assert.ok(gw > 0);
    assert.notEqual(gw, tc.cluster.apiPort);
  });

  it("serves the seed's export: /nodeapp/ports → /ports, /nodeapp → /, query kept", async () => {
    let r = await call(gw, '/nodeapp/ports');
    assert.equal(r.status, 200);
    assert.equal(r.json().url, '/ports');
    assert.equal(r.json().name, 'A');
    assert.equal(r.headers['x-crossmesh-cluster'], 'cluster-1');
    assert.equal(r.headers['x-crossmesh-endpoint'], `127.0.0.1:${a.port}`);
    assert.equal((await call(gw, '/nodeapp')).json().url, '/');
    assert.equal((await call(gw, '/nodeapp/')).json().url, '/');
    r = await call(gw, '/nodeapp/order?id=42&x=%2F');
    assert.equal(r.json().url, '/order?id=42&x=%2F');
    assert.equal((await call(gw, '/nodeappx')).status, 404, 'Prefix matches on segment boundaries only');
    assert.equal((await call(gw, '/nodeappx/ports')).status, 404);
  });

  it('an export restricted to a service account is refused at the HTTP ingress (403 JSON naming the rule, nothing reaches the app); "*" serves again', async () => {
    await tc.api.apply(SEXP, seedExport('nodeapp', NS, { serviceAccountName: 'curl' }));
    await waitFor(async () => (await call(gw, '/nodeapp/ports')).status === 403, 'restricted export refused');
    const before = a.hits.length;
    const r = await call(gw, '/nodeapp/ports');
    assert.equal(r.status, 403);
    assert.equal(r.json().errorCode, 'CM_ERR_FORBIDDEN');
    assert.match(r.json().message, /ServiceExport dapr-test\/nodeapp admits only service account "curl".*HTTP ingress carries no caller identity/);
    assert.equal(a.hits.length, before, 'the app saw nothing');
    await tc.api.apply(SEXP, seedExport('nodeapp', NS, { serviceAccountName: '*' }));
    await waitFor(async () => (await call(gw, '/nodeapp/ports')).status === 200, 'served again');
  });

  it('Exact matches only itself; Prefix without rewrite passes the path as is', async () => {
    await tc.api.apply(SVC, service('exact', NS));
    await setEndpoints('exact', [b.port]);
    await tc.api.apply(SEXP, { ...seedExport('exact'), spec: { rules: [{ portNumber: 3000, path: '/exact/only', pathType: 'Exact' }, { portNumber: 3000, path: '/pre/', pathType: 'Prefix' }] } });
    await routed('/exact/only');
    assert.equal((await call(gw, '/exact/only')).json().url, '/exact/only');
    assert.equal((await call(gw, '/exact/only?q=1')).json().url, '/exact/only?q=1');
    assert.equal((await call(gw, '/exact/only/')).status, 404);
    assert.equal((await call(gw, '/exact/only/x')).status, 404);
    assert.equal((await call(gw, '/exact')).status, 404);
    assert.equal((await call(gw, '/pre')).json().url, '/pre', 'Prefix "/pre/" also matches /pre');
    assert.equal((await call(gw, '/pre/a/b')).json().url, '/pre/a/b');
    assert.equal((await call(gw, '/prefix')).status, 404);
    await tc.api.delete(SEXP, 'exact', NS);
    await unrouted('/exact/only');
  });

  it('answers 404 for any other path with a body that reveals nothing', async () => {
    const before = hits();
    for (const p of ['/', '/unknown', '/ports', '/dapr-test/nodeapp', '/NODEAPP/ports']) {
      const r = await call(gw, p);
      assert.equal(r.status, 404, p);
      assert.deepEqual(r.json(), { errorCode: 'CM_ERR_NOT_FOUND', message: 'not found' });
      assert.ok(!/nodeapp|dapr|127\.0\.0\.1/.test(r.text));
      assert.equal(r.headers['x-crossmesh-endpoint'], undefined);
    }
    assert.equal(hits(), before);
  });

  it('refuses traversal and odd request targets before matching; they never reach a backend', async () => {
    const before = hits();
    const targets = [
      '/nodeapp/../secret',
      '/nodeapp/..',
      '/nodeapp/./ports',
      '/nodeapp/.',
      '/nodeapp/%2e%2e/secret',
      '/nodeapp/%2E%2e/secret',
      '/nodeapp/.%2e/secret',
      '/nodeapp/%2e/ports',
      '/nodeapp%2f..%2fsecret',
      '/nodeapp/..%2Fsecret',
      '/nodeapp/..%5csecret',
      '/nodeapp/%00',
      '/nodeapp/a%0d%0ax',
      '//nodeapp/ports',
      '/nodeapp//ports',
      '/nodeapp\\..\\secret',
      'http://evil.example/nodeapp/ports',
      'nodeapp/ports',
    ];
    for (const t of targets) {
      const raw = await rawRequest(gw, `GET ${t} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(raw), 400, `${t} → ${raw.split('\r\n')[0]}`);
    }
    assert.equal(statusOf(await rawRequest(gw, 'OPTIONS * HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')), 400);
    assert.equal(statusOf(await rawRequest(gw, 'GET /nodeapp/\x01 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')), 400);
    assert.equal(hits(), before, 'no refused request reached a backend');
    // The same requests without the trick do get through.
    assert.equal((await call(gw, '/nodeapp/secret')).json().url, '/secret');
  });

  it('refuses a rewrite result that would escape (//x, absolute URL)', async () => {
    await tc.api.apply(SVC, service('rw', NS));
    await setEndpoints('rw', [b.port]);
    await tc.api.apply(SEXP, { ...seedExport('rw'), spec: { rules: [{ portNumber: 3000, path: '/rw', pathType: 'Prefix' }, { portNumber: 3000, path: '/abs', pathType: 'Prefix' }], pathRewrite: { from: '^/(rw|abs)', to: '/' } } });
    await routed('/rw');
    const before = hits();
    assert.equal((await call(gw, '/rw/x')).status, 400, '/rw/x rewrites to //x');
    await tc.api.apply(SEXP, { ...seedExport('rw'), spec: { rules: [{ portNumber: 3000, path: '/rw', pathType: 'Prefix' }], pathRewrite: { from: '^/rw', to: 'http://evil.example' } } });
    await waitFor(async () => (await call(gw, '/rw')).status === 400, 'new rewrite');
    assert.equal((await call(gw, '/rw/x')).status, 400);
    assert.equal(hits(), before);
    await tc.api.delete(SEXP, 'rw', NS);
    await unrouted('/rw');
  });

  it('answers 503 JSON when the service has no ready endpoints', async () => {
    await tc.api.apply(EPS, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'nodeapp', namespace: NS }, subsets: [{ notReadyAddresses: [{ ip: '127.0.0.1' }], ports: [{ port: a.port }] }] });
    const r = await waitFor(async () => {
      const x = await call(gw, '/nodeapp/ports');
      return x.status === 503 && x;
    }, '503');
    assert.equal(r.json().errorCode, 'CM_ERR_UNAVAILABLE');
    assert.match(r.json().message, /dapr-test\/nodeapp.*no ready endpoints/);
  });

  it('round robin alternates over 2 endpoints; removal and addition apply live', async () => {
    await setEndpoints('nodeapp', [a.port, b.port]);
    await waitFor(() => tc.cluster.gateway.routes.routes.some((r) => r.backend.endpoints.length === 2), 'B in rotation');
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push((await call(gw, '/nodeapp/x')).json().name);
    for (let i = 1; i < names.length; i++) assert.notEqual(names[i], names[i - 1], names.join(','));
    await setEndpoints('nodeapp', [b.port]);
    await waitFor(async () => (await call(gw, '/nodeapp/x')).json().name === 'B', 'only B');
    for (let i = 0; i < 4; i++) assert.equal((await call(gw, '/nodeapp/x')).json().name, 'B');
    await setEndpoints('nodeapp', [a.port, b.port]);
    await waitFor(async () => (await call(gw, '/nodeapp/x')).json().name === 'A', 'A back');
  });

  it('hashing without a hash header: the client address is the key, whatever the request headers', async () => {
    // Every test client is 127.0.0.1: this shows the key is the address (stickiness); the spread is shown below with a header.
    await setEndpoints('nodeapp', [a.port, b.port]);
    await tc.api.apply(SEXP, seedExport('nodeapp', NS, { loadBalancer: 'HashingLoadBalancer' }));
    await waitFor(() => tc.cluster.gateway.routes.routes.some((r) => r.backend.lb === 1 && r.backend.hashHeader === undefined && r.backend.endpoints.length === 2), 'hashing table');
    const first = (await call(gw, '/nodeapp/x')).headers['x-crossmesh-endpoint'];
    assert.match(String(first), new RegExp(`^127\\.0\\.0\\.1:(${a.port}|${b.port})$`));
    // The same keys spread over both endpoints when hashed (next test): here they must not matter.
    for (let u = 0; u < 12; u++) assert.equal((await call(gw, '/nodeapp/x', { headers: { 'x-user': `user-${u}` } })).headers['x-crossmesh-endpoint'], first);
  });

  it('hashing on a header (crossmesh.io/hash-header): each key keeps its endpoint, and keys spread over every endpoint', async () => {
    const c = await startBackend('C');
    try {
      await setEndpoints('nodeapp', [a.port, b.port, c.port]);
      const exp = seedExport('nodeapp', NS, { loadBalancer: 'HashingLoadBalancer' });
      exp.metadata.annotations = { 'crossmesh.io/hash-header': 'X-User' };
      await tc.api.apply(SEXP, exp);
      await waitFor(() => tc.cluster.gateway.routes.routes.some((r) => r.backend.lb === 1 && r.backend.hashHeader === 'x-user' && r.backend.endpoints.length === 3), 'header hashing table');
      const names = new Map([[`127.0.0.1:${a.port}`, 'A'], [`127.0.0.1:${b.port}`, 'B'], [`127.0.0.1:${c.port}`, 'C']]);
      const users = Array.from({ length: 30 }, (_, u) => `user-${u}`);
      const endpointOf = new Map<string, string>();
      for (const u of users) {
        const r = await call(gw, '/nodeapp/x', { headers: { 'x-user': u } });
        const ep = String(r.headers['x-crossmesh-endpoint']);
        assert.equal(r.json().name, names.get(ep), `${u}: answered by the endpoint the gateway names`);
        endpointOf.set(u, ep);
      }
      // Spread: every endpoint gets some of the keys.
      assert.deepEqual(new Set(endpointOf.values()), new Set(names.keys()), 'the keys reach all three endpoints');
      // Stickiness: two more rounds, in other orders (each key after different neighbours), every key on its endpoint.
      const odd = users.filter((_, i) => i % 2 === 1);
      const even = users.filter((_, i) => i % 2 === 0);
      for (const round of [[...users].reverse(), [...odd, ...even]]) {
        for (const u of round) {
          assert.equal((await call(gw, '/nodeapp/x', { headers: { 'x-user': u } })).headers['x-crossmesh-endpoint'], endpointOf.get(u), `${u} moved`);
        }
      }
    } finally {
      await setEndpoints('nodeapp', [a.port]);
      await c.close();
    }
  });

  it('least work prefers the idle endpoint while one request is held open', async () => {
    await setEndpoints('nodeapp', [a.port, b.port]);
    await tc.api.apply(SEXP, seedExport('nodeapp', NS, { loadBalancer: 'LeastWorkLoadBalancer' }));
    await waitFor(() => tc.cluster.gateway.routes.routes.some((r) => r.backend.lb === 2 && r.backend.endpoints.length === 2), 'least-work table');
    const slow = call(gw, '/nodeapp/slow?ms=700');
    await waitFor(() => a.hits.some((h) => h.url.startsWith('/slow')) || b.hits.some((h) => h.url.startsWith('/slow')), 'slow request arrived');
    const busy = a.hits.some((h) => h.url === '/slow?ms=700') ? 'A' : 'B';
    for (let i = 0; i < 6; i++) assert.notEqual((await call(gw, '/nodeapp/x')).json().name, busy);
    assert.equal((await slow).status, 200);
    a.hits.length = 0;
    b.hits.length = 0;
  });

  it('a sticky cookie pins a client to its endpoint while it exists', async () => {
    await setEndpoints('nodeapp', [a.port, b.port]);
    await tc.api.apply(SEXP, seedExport('nodeapp', NS, { sessionSticky: true }));
    await waitFor(() => tc.cluster.gateway.routes.routes.some((r) => r.backend.sticky && r.backend.endpoints.length === 2), 'sticky table');
    const r1 = await call(gw, '/nodeapp/x');
    const cookie = String(r1.headers['set-cookie']?.[0] ?? '');
    assert.match(cookie, /^cm-sticky=127\.0\.0\.1:\d+; Path=\/nodeapp; HttpOnly/);
    const pinned = r1.headers['x-crossmesh-endpoint'];
    const value = cookie.split(';')[0];
    for (let i = 0; i < 6; i++) {
      const r = await call(gw, '/nodeapp/x', { headers: { cookie: `other=1; ${value}` } });
      assert.equal(r.headers['x-crossmesh-endpoint'], pinned);
      assert.equal(r.headers['set-cookie'], undefined, 'no new cookie while the pin holds');
    }
    const stale = await call(gw, '/nodeapp/x', { headers: { cookie: 'cm-sticky=127.0.0.1:1' } });
    assert.equal(stale.status, 200);
    assert.match(String(stale.headers['set-cookie']?.[0]), /^cm-sticky=127\.0\.0\.1:\d+;/, 'a stale pin is replaced');
  });

  it('a route change while a slow request is in flight: it completes, new requests use the new route', async () => {
    const slow = call(gw, '/nodeapp/slow?ms=600');
    await waitFor(() => a.hits.some((h) => h.url === '/slow?ms=600'), 'slow request at A');
    await tc.api.apply(SEXP, seedExport('nodeapp', NS, { rules: [{ portNumber: 3000, path: '/v2', pathType: 'Prefix' }], pathRewrite: { from: '^/v2/?', to: '/' } }));
    await setEndpoints('nodeapp', [b.port]);
    await routed('/v2/ports');
    const r = await call(gw, '/v2/ports');
    assert.equal(r.json().url, '/ports');
    assert.equal(r.json().name, 'B');
    assert.equal((await call(gw, '/nodeapp/ports')).status, 404);
    const done = await slow;
    assert.equal(done.status, 200);
    assert.equal(done.json().name, 'A', 'the in-flight request kept its endpoint');
  });

  it('streams a 5 MB POST body both ways', async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const r = await call(gw, '/nodeapp/echo', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(body).digest('hex'));
  });

  it('strips hop-by-hop headers, sets x-forwarded-for, creates/propagates traceparent', async () => {
    let h = (await call(gw, '/nodeapp/h', { headers: { connection: 'keep-alive, x-hop', 'x-hop': '1', 'proxy-authorization': 'x', 'x-forwarded-for': '10.0.0.9' } })).json().headers;
    assert.equal(h['x-hop'], undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h['x-forwarded-for'], '10.0.0.9, 127.0.0.1');
    assert.match(h.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    h = (await call(gw, '/nodeapp/h', { headers: { traceparent: tp } })).json().headers;
    assert.equal(h.traceparent, tp);
  });

  it('refuses Content-Length with Transfer-Encoding', async () => {
    const before = hits();
    const raw = await rawRequest(gw, 'POST /nodeapp/echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(statusOf(raw), 400);
    assert.equal(hits(), before);
  });

  it('answers 502 JSON naming the endpoint when the backend is down', async () => {
    const down = await startBackend('down');
    const port = down.port;
    await down.close();
    await setEndpoints('nodeapp', [port]);
    const r = await waitFor(async () => {
      const x = await call(gw, '/nodeapp/ports');
      return x.status === 502 && x;
    }, '502');
    assert.equal(r.json().errorCode, 'CM_ERR_BAD_GATEWAY');
    assert.match(r.json().message, new RegExp(`dapr-test/nodeapp:3000 endpoint 127\\.0\\.0\\.1:${port} refused the connection`));
    assert.equal(r.headers['x-crossmesh-cluster'], 'cluster-1');
  });

  it('does not serve an export the control plane marked Conflict=True', async () => {
    const ref = { storageKey: SEXP.storageKey, namespace: NS, name: 'nodeapp' };
    const cur = tc.cluster.store.get(ref)!;
    const conditions = [...(cur.status?.conditions ?? []), { type: 'Conflict', status: 'True', reason: 'Conflict', message: 'ServiceExport dapr-test/nodeapp conflicts, ports differ', lastTransitionTime: new Date().toISOString() }];
    tc.cluster.store.update(ref, { ...cur, status: { ...cur.status, conditions } }, { statusOnly: true });
    await unrouted('/nodeapp/ports');
    const again = tc.cluster.store.get(ref)!;
    tc.cluster.store.update(ref, { ...again, status: { ...again.status, conditions: again.status.conditions.filter((c: { type: string }) => c.type !== 'Conflict') } }, { statusOnly: true });
    await routed('/nodeapp/ports');
  });
});
