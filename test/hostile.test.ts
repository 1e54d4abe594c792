import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { meshClient } from './support/mesh-client.js';
import { kindFor } from '../src/api/index.js';
import { ApiClient } from '../src/client/api-client.js';
import { startCluster, type RunningCluster } from '../src/cluster/cluster.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/sidecar.js';
import { eventually, tempDir } from './helpers.js';

interface RawReply {
  status: number;
  head: string;
  body: string;
  /** The server closed the connection. */
  closed: boolean;
}

/** One HTTPS request to a cluster API (its CA trusted), like fetch's answer shape. */
function apiFetch(url: string, ca: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; json(): Promise<unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: init.method ?? 'GET', headers: init.headers, ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text, json: async () => JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/**
 * Sends raw bytes on a fresh TCP connection and collects what comes back until the server closes,
 * a complete response has arrived, or `timeoutMs` passes. `body` may be a stream of chunks
 * (huge bodies are written as far as the server lets us).
 */
function raw(port: number, bytes: string | Buffer, opts: { timeoutMs?: number; extra?: () => Iterable<Buffer>; tls?: ConnectionOptions } = {}): Promise<RawReply> {
  return new Promise((resolve) => {
    // TLS listeners (the API, mTLS inbound ports): the same bytes inside a verified session.
    const sock = opts.tls ? tlsConnect({ host: '127.0.0.1', port, ...opts.tls }) : connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const [head, ...rest] = text.split('\r\n\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : 0, head, body: rest.join('\r\n\r\n'), closed });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 3000);
    sock.on('data', (d) => {
      chunks.push(d);
      // A complete response with Content-Length: done without waiting for close.
      const text = Buffer.concat(chunks).toString('latin1');
      const i = text.indexOf('\r\n\r\n');
      const cl = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, i));
      if (i >= 0 && cl && text.length - i - 4 >= Number(cl[1])) finish(false);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on(opts.tls ? 'secureConnect' : 'connect', async () => {
      sock.write(bytes);
      if (opts.extra) {
        for (const chunk of opts.extra()) {
          if (done || sock.destroyed) break;
          if (!sock.write(chunk)) await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
        }
      }
    });
  });
}

const isClear4xx = (r: RawReply) => r.status >= 400 && r.status < 500;

/**
 * Hostile and malformed input against every listener crossmesh runs: the cluster API, the
 * gateway, a sidecar's outbound proxy, its inbound listener and its Dapr HTTP API. Each gets a
 * 4xx, and the backend app counts every request it receives: nothing refused may reach it.
 */
describe('hostile input on every listener', () => {
  const { cleanup } = tempDir('crossmesh-hostile-');
  let cluster: RunningCluster;
  let other: RunningCluster;
  let client: ApiClient;
  let app: Server;
  let appSidecar: RunningSidecar;
  let callerSidecar: RunningSidecar;
  const hits: string[] = [];
  let L: Record<'api' | 'gateway' | 'outbound' | 'inbound' | 'dapr', number>;
  let TLS: Partial<Record<keyof typeof L, ConnectionOptions>> = {};
  /** A path on each listener that reaches the app when the request is well-formed. */
  let good: Record<keyof typeof L, string>;

  before(async () => {
    app = createServer((req, res) => {
      // The sidecar reads the app's pub/sub subscriptions when it starts (as daprd): not a request of the tests.
      if (req.url === '/dapr/subscribe') return void res.writeHead(404).end();
      hits.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end(`app saw ${req.url}`));
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as { port: number }).port;
    cluster = await startCluster({ name: 'cluster-1', dataDir: null });
    other = await startCluster({ name: 'cluster-2', dataDir: null });
    client = new ApiClient(cluster.endpoint);
    await client.create(kindFor('v1', 'Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dapr-test' } });
    await client.create(kindFor('v1', 'Service'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, spec: { ports: [{ port: 3000 }] } });
    await client.create(kindFor('flomesh.io/v1alpha1', 'ServiceExport'), {
      apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'nodeapp', namespace: 'dapr-test' },
      spec: { pathRewrite: { from: '^/nodeapp/?', to: '/' }, rules: [{ portNumber: 3000, path: '/nodeapp', pathType: 'Prefix' }] },
    });
    const api = cluster.endpoint;
    appSidecar = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'nodeapp' }, api, servicePort: 3000, appPort, processMetrics: false });
    callerSidecar = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: 'dapr-test', appId: 'caller' }, api, processMetrics: false });
    L = { api: cluster.apiPort, gateway: cluster.gatewayPort, outbound: callerSidecar.ports.outbound, inbound: appSidecar.ports.inbound!, dapr: callerSidecar.ports.http };
    // The API is HTTPS and the inbound port mesh mTLS: the hostile bytes go inside a real session.
    TLS = { api: { ca: cluster.ca }, inbound: (await meshClient(cluster.pki)).tlsOptions };
    good = { api: '/api/v1/namespaces', gateway: '/nodeapp/ports', outbound: 'http://nodeapp.dapr-test:3000/ports', inbound: '/ports', dapr: '/v1.0/invoke/nodeapp/method/ports' };
    // Every listener's good path works (the API one with the token).
    await eventually(async () => (await fetch(`http://127.0.0.1:${L.gateway}${good.gateway}`)).status === 200, 5000, 'gateway route');
    await eventually(async () => (await raw(L.outbound, `GET ${good.outbound} HTTP/1.1\r\nHost: nodeapp.dapr-test:3000\r\nConnection: close\r\n\r\n`)).status === 200, 5000, 'outbound route');
    assert.equal((await raw(L.inbound, 'GET /ports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { tls: TLS.inbound })).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${L.dapr}${good.dapr}`)).status, 200);
    hits.length = 0;
  });

  after(async () => {
    await callerSidecar?.close();
    await appSidecar?.close();
    await client?.close();
    await cluster?.close();
    await other?.close();
    app?.close();
    cleanup();
  });

  let sentinels = 0;
  /**
   * Sends a well-formed request along the same path (listener → proxy hops → app) and waits for
   * its answer, which the app gives only after recording it. Returns what the app saw since
   * `from`, the sentinel last: a request the listener let through before it arrives first.
   * The cluster API never forwards to the app: nothing can reach the app from it.
   */
  async function viaSentinel(name: keyof typeof L, from: number): Promise<string[]> {
    if (name === 'api') return hits.slice(from);
    const path = `/sentinel-${++sentinels}`;
    const target = { gateway: `/nodeapp${path}`, outbound: `http://nodeapp.dapr-test:3000${path}`, inbound: path, dapr: `/v1.0/invoke/nodeapp/method${path}` }[name];
    const host = name === 'outbound' ? 'nodeapp.dapr-test:3000' : 'x';
    const r = await raw(L[name], `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, { tls: TLS[name] });
    assert.equal(r.status, 200, `${name}: the sentinel ${path} answered ${r.status || 'nothing'}`);
    assert.equal(r.body, `app saw ${path}`);
    const seen = hits.slice(from);
    assert.equal(seen.at(-1), `GET ${path}`, `${name}: the app saw ${seen.join(', ')}`);
    return seen.slice(0, -1);
  }

  /** Sends `bytes` to a listener; asserts a 4xx and that the app got nothing (the sentinel sent after it arrives alone). */
  async function refused(name: keyof typeof L, bytes: string | Buffer, expect?: number | RegExp, opts?: Parameters<typeof raw>[2]): Promise<RawReply> {
    const before = hits.length;
    const r = await raw(L[name], bytes, { ...opts, tls: TLS[name] });
    const what = `${name}: ${JSON.stringify(bytes.toString().slice(0, 120))}`;
    assert.ok(isClear4xx(r), `${what} answered ${r.status || 'nothing'} (${r.head.slice(0, 80)})`);
    if (typeof expect === 'number') assert.equal(r.status, expect, what);
    else if (expect) assert.match(`${r.head}\r\n\r\n${r.body}`, expect, what);
    assert.deepEqual(await viaSentinel(name, before), [], `${what} reached the app`);
    return r;
  }

  const names = ['api', 'gateway', 'outbound', 'inbound', 'dapr'] as const;

  it('malformed request lines, versions and header syntax: 400, nothing reaches the app', async () => {
    for (const n of names) {
      const target = good[n];
      await refused(n, 'GARBAGE\r\n\r\n', 400);
      await refused(n, `GET ${target} HTTP/9.9\r\nHost: x\r\n\r\n`);
      await refused(n, `GET ${target} HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n`, 400);
      await refused(n, `GET ${target} HTTP/1.1\r\nHost: x\r\nX-A: a\rInjected: 1\r\n\r\n`, 400);
      await refused(n, `GET ${target} HTTP/1.1\r\nHost: x\r\nX-A: a\nInjected: 1\r\n\r\n`.replace('\r\nX-A', '\nX-A'), 400);
      await refused(n, `GET ${target} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n`, 400);
      await refused(n, `GET ${target}\x00 HTTP/1.1\r\nHost: x\r\n\r\n`, 400);
      await refused(n, `GET ${target}\x7f HTTP/1.1\r\nHost: x\r\n\r\n`, 400);
    }
  });

  it('huge headers: 431; huge bodies on the APIs: 413 without reading them', async () => {
    for (const n of names) {
      await refused(n, `GET ${good[n]} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`, 431);
      const many = Array.from({ length: 2000 }, (_, i) => `X-H${i}: ${'v'.repeat(20)}\r\n`).join('');
      await refused(n, `GET ${good[n]} HTTP/1.1\r\nHost: x\r\n${many}\r\n`, 431);
    }
    const body = function* () {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(1024 * 1024, 0x61);
    };
    const api = await refused('api', `POST /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cluster.token}\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`, 413, { extra: body, timeoutMs: 10_000 });
    assert.match(api.body, /too large|limit/i);
    const dapr = await refused('dapr', `POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`, 413, { extra: body, timeoutMs: 10_000 });
    assert.match(dapr.body, /ERR_BODY_READ/);
    // A chunked body past the limit too.
    const chunked = function* () {
      for (let i = 0; i < 16; i++) yield Buffer.concat([Buffer.from(`100000\r\n`), Buffer.alloc(0x100000, 0x61), Buffer.from('\r\n')]);
    };
    await refused('api', `POST /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cluster.token}\r\nTransfer-Encoding: chunked\r\n\r\n`, 413, { extra: chunked, timeoutMs: 10_000 });
  });

  it('request smuggling shapes (Content-Length with Transfer-Encoding, duplicate lengths, bad chunks): 400, the smuggled request never runs', async () => {
    for (const n of names) {
      const t = good[n];
      const smuggled = `GET ${n === 'gateway' ? '/nodeapp/admin' : n === 'outbound' ? 'http://nodeapp.dapr-test:3000/admin' : n === 'dapr' ? '/v1.0/invoke/nodeapp/method/admin' : '/admin'} HTTP/1.1\r\nHost: x\r\n\r\n`;
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nContent-Length: ${4 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n${smuggled}`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc${smuggled}`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n`, 400);
      await refused(n, `POST ${t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, 400);
    }
  });

  it('path traversal out of an export (gateway), out of the mesh name (outbound) and on the inbound listener: 400', async () => {
    const bad = ['/../admin', '/%2e%2e/admin', '/%2E%2E/admin', '/..%2fadmin', '/%2e%2e%2fadmin', '/.%2e/admin', '//admin', '/..\\admin', '/%5c..%5cadmin', '/./admin', '/%00/admin', '/%0d%0aX-Injected:%201'];
    for (const p of bad) {
      await refused('gateway', `GET /nodeapp${p} HTTP/1.1\r\nHost: x\r\n\r\n`, 400);
      await refused('outbound', `GET http://nodeapp.dapr-test:3000${p} HTTP/1.1\r\nHost: nodeapp.dapr-test:3000\r\n\r\n`, 400);
      await refused('outbound', `GET ${p} HTTP/1.1\r\nHost: nodeapp.dapr-test:3000\r\n\r\n`, 400);
      await refused('inbound', `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`, 400);
      await refused('inbound', `GET http://x${p} HTTP/1.1\r\nHost: x\r\n\r\n`, 400);
    }
    // Not exported: 404 that reveals nothing.
    const r = await refused('gateway', 'GET /admin HTTP/1.1\r\nHost: x\r\n\r\n', 404);
    assert.doesNotMatch(r.body, /nodeapp|dapr-test/);
    await refused('gateway', 'GET /nodeapp.. HTTP/1.1\r\nHost: x\r\n\r\n', 404);
  });

  it('Dapr invoke methods cannot climb out of the app: dot segments stay inside it, controls and bad encodings are refused', async () => {
    // Raw bytes: fetch() would resolve the dot segments itself before sending.
    for (const m of ['..%2F..%2Fadmin', '%2e%2e/%2e%2e/admin', '../../../admin', 'x/../../v1.0/state/statestore/admin']) {
      const before = hits.length;
      const r = await raw(L.dapr, `GET /v1.0/invoke/nodeapp/method/${m} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const seen = await viaSentinel('dapr', before);
      if (r.status === 200) assert.ok(seen.length === 1 && /^GET \/(v1\.0\/state\/statestore\/)?admin$/.test(seen[0]), `${m}: the app saw ${seen}`);
      else assert.ok(isClear4xx(r) && seen.length === 0, `${m}: ${r.status} ${seen}`);
      assert.ok(seen.every((h) => !h.includes('..')), `${m}: the app saw ${seen}`);
    }
    // daprd answers invocation errors 500 ERR_DIRECT_INVOKE (kept for SDK compatibility): refused, never sent.
    for (const m of ['x%0d%0aInjected:%201', 'x%00', 'x%23frag', 'x%3Fq', '%E0%A4%A']) {
      const before = hits.length;
      const r = await raw(L.dapr, `GET /v1.0/invoke/nodeapp/method/${m} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 500, m);
      assert.match(r.body, /"errorCode":"ERR_DIRECT_INVOKE".*(forbidden character|malformed percent-encoding)/, m);
      assert.deepEqual(await viaSentinel('dapr', before), [], `${m} reached the app`);
    }
  });

  it('absolute-form requests to hosts outside the mesh: a clear 4xx, never proxied', async () => {
    let outside = 0;
    const decoy = createServer((_req, res) => { outside++; res.end('decoy'); });
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r));
    const decoyPort = (decoy.address() as { port: number }).port;
    try {
      for (const url of [`http://127.0.0.1:${decoyPort}/`, `http://localhost:${decoyPort}/`, 'http://example.com/', `http://[::1]:${decoyPort}/`, `http://127.0.0.1:${L.api}/api/v1/secrets`, 'http://nodeapp.dapr-test.evil.com:3000/', 'http://nodeapp.dapr-test:3000@127.0.0.1/', 'https://nodeapp.dapr-test:3000/', 'ftp://nodeapp.dapr-test:3000/']) {
        const r = await refused('outbound', `GET ${url} HTTP/1.1\r\nHost: nodeapp.dapr-test:3000\r\n\r\n`);
        assert.match(r.body, /not a mesh service|plain http|not an open proxy|no service/, url);
      }
      const connectReply = await refused('outbound', `CONNECT 127.0.0.1:${decoyPort} HTTP/1.1\r\nHost: 127.0.0.1:${decoyPort}\r\n\r\n`);
      assert.match(connectReply.body, /CONNECT/);
      for (const n of ['gateway', 'inbound', 'dapr', 'api'] as const) {
        // The inbound listener serves only its own app: an absolute-form target keeps its path, never its host.
        if (n === 'inbound') {
          hits.length = 0;
          const r = await raw(L.inbound, `GET http://127.0.0.1:${decoyPort}/ports HTTP/1.1\r\nHost: 127.0.0.1:${decoyPort}\r\nConnection: close\r\n\r\n`, { tls: TLS.inbound });
          assert.equal(r.status, 200);
          assert.deepEqual(hits, ['GET /ports']);
          hits.length = 0;
        } else {
          await refused(n, `GET http://127.0.0.1:${decoyPort}/ HTTP/1.1\r\nHost: 127.0.0.1:${decoyPort}\r\n\r\n`);
        }
        const c = await refused(n, `CONNECT 127.0.0.1:${decoyPort} HTTP/1.1\r\nHost: x\r\n\r\n`, 405);
        assert.match(c.body, /does not tunnel/);
      }
      assert.equal(outside, 0, 'nothing reached the host outside the mesh');
    } finally {
      decoy.close();
    }
  });

  it('the cluster API: no token, a wrong token, another cluster\'s token, a malformed header: 401', async () => {
    const url = `${cluster.apiUrl}/api/v1/namespaces`;
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${other.token}`, `Bearer ${cluster.token}x`, `Bearer ${cluster.token.slice(0, -1)}`, `Basic ${Buffer.from(`admin:${cluster.token}`).toString('base64')}`, cluster.token, 'Bearer', `bearer  ${'a'.repeat(5000)}`]) {
      const res = await apiFetch(url, cluster.ca, { headers: auth === undefined ? {} : { authorization: auth } });
      assert.equal(res.status, 401, String(auth).slice(0, 40));
      const body = (await res.json()) as { kind: string; message: string };
      assert.equal(body.kind, 'Status');
    }
    const ok = await apiFetch(url, cluster.ca, { headers: { authorization: `Bearer ${cluster.token}` } });
    assert.equal(ok.status, 200);
    // The other cluster refuses this one's token as well.
    assert.equal((await apiFetch(`${other.apiUrl}/api/v1/namespaces`, other.ca, { headers: { authorization: `Bearer ${cluster.token}` } })).status, 401);
    assert.equal((await apiFetch(`${cluster.apiUrl}/metrics`, cluster.ca)).status, 401);
  });

  it('a catastrophic pathRewrite regex is refused at apply time through the API, and the gateway keeps serving', async () => {
    const before = await client.get(kindFor('flomesh.io/v1alpha1', 'ServiceExport'), 'nodeapp', 'dapr-test');
    const res = await apiFetch(`${cluster.apiUrl}/apis/flomesh.io/v1alpha1/namespaces/dapr-test/serviceexports/nodeapp`, cluster.ca, {
      method: 'PUT',
      headers: { authorization: `Bearer ${cluster.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...before, spec: { ...before!.spec, pathRewrite: { from: '^/nodeapp/(a+)+$', to: '/' } } }),
    });
    assert.equal(res.status, 422);
    const status = (await res.json()) as { message: string };
    assert.match(status.message, /spec\.pathRewrite\.from.*catastrophically/);
    const after = await client.get(kindFor('flomesh.io/v1alpha1', 'ServiceExport'), 'nodeapp', 'dapr-test');
    assert.equal(after!.metadata.resourceVersion, before!.metadata.resourceVersion, 'the store is unchanged');
    const t = Date.now();
    const r = await fetch(`http://127.0.0.1:${L.gateway}/nodeapp/${'a'.repeat(40)}!`);
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t < 1000);
  });
});
