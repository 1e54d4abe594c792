/**
 * The gateway's mesh port (tunnel.ts), in-process: a Gateway over StoreCaches of a MemoryStore
 * (exports marked served by writing their status, as the export controller would) and real
 * node:http backends as the endpoints. Everything is spoken as raw bytes over real sockets.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { KubeObject } from '../api/index.js';
import { StoreCache } from '../client/cache.js';
import { MemoryStore } from '../store/index.js';
import { EPS, SEXP, SVC, endpoints, service } from '../../test/support/cluster-fixtures.js';
import { startBackend, waitFor, type Backend } from '../../test/support/http-backend.js';
import { RawConn, openTunnel, type RawResponse } from '../../test/support/tunnel-client.js';
import { Gateway } from './gateway.js';

const NS = 'dapr-test';
const CLUSTER = 'cluster-x';

/** A backend that also counts TCP connections (a refused tunnel must not even connect) and keeps its server sockets. */
async function backend(name: string): Promise<Backend & { connections: number; sockets: Set<Socket> }> {
  const b = await startBackend(name, (req, res) => {
    if (req.url === '/die') {
      // The endpoint side of the tunnel goes away mid-request.
      req.socket.destroy();
      return;
    }
    if (req.url === '/hold') {
      // Never answered: a request in flight until the connection goes.
      req.resume();
      return;
    }
    if (req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-backend': name });
      req.pipe(res);
      return;
    }
    req.resume();
    // A fixed answer with binary bytes and no Date header: the same request gets the same bytes.
    res.sendDate = false;
    const body = Buffer.concat([Buffer.from(`${name} ${req.method} ${req.url} `), Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10, 13, 10])]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-backend': name, 'content-length': body.length });
    res.end(body);
  });
  const out = Object.assign(b, { connections: 0, sockets: new Set<Socket>() });
  b.server.on('connection', (s: Socket) => {
    out.connections++;
    out.sockets.add(s);
    s.once('close', () => out.sockets.delete(s));
  });
  return out;
}

function exportOf(name: string, rules: { portNumber: number; path: string }[], spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'flomesh.io/v1alpha1',
    kind: 'ServiceExport',
    metadata: { name, namespace: NS },
    spec: { serviceAccountName: '*', rules: rules.map((r) => ({ ...r, pathType: 'Prefix' })), ...spec },
  };
}

function assertRefusal(a: RawResponse, status: number, code: string, message?: RegExp): void {
  assert.equal(a.status, status, a.raw.toString('latin1'));
  assert.equal(a.headers['content-type'], 'application/json');
  assert.equal(a.headers.connection, 'close');
  const body = JSON.parse(a.body.toString('utf8')) as { errorCode: string; message: string };
  assert.deepEqual(Object.keys(body).sort(), ['errorCode', 'message']);
  assert.equal(body.errorCode, code);
  if (message) assert.match(body.message, message);
}

/** A GET that keeps the connection open, as a sidecar sends it through a tunnel. */
const get = (path: string, host = 'nodeapp.dapr-test:3000') => `GET ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`;

describe('gateway mesh port (tunnels)', () => {
  const store = new MemoryStore();
  const caches = {
    services: new StoreCache(store, SVC.storageKey).start(),
    endpoints: new StoreCache(store, EPS.storageKey).start(),
    exports: new StoreCache(store, SEXP.storageKey).start(),
  };
  let gw: Gateway;
  let mesh = 0;
  let a: Awaited<ReturnType<typeof backend>>;
  let b: Awaited<ReturnType<typeof backend>>;
  const connections = () => a.connections + b.connections;
  const hits = () => a.hits.length + b.hits.length;

  const put = (kind: typeof SVC, obj: KubeObject): void => {
    const ref = { storageKey: kind.storageKey, namespace: obj.metadata.namespace, name: obj.metadata.name };
    if (store.get(ref)) store.update(ref, obj);
    else store.create(ref, obj);
  };
  /** Writes the export's status as the export controller (Valid) and the control plane (Conflict) would. */
  const setConditions = (name: string, conds: { type: string; status: string }[]): void => {
    const ref = { storageKey: SEXP.storageKey, namespace: NS, name };
    const cur = store.get(ref)!;
    const now = new Date().toISOString();
    const conditions = conds.map((c) => ({ ...c, reason: c.status === 'True' ? 'Success' : 'Failed', message: '', lastTransitionTime: now }));
    store.update(ref, { ...cur, status: { conditions } }, { statusOnly: true });
  };
  const tunnelEndpoints = (authority: string) => gw.routes.tunnel(authority)?.endpoints.length;
  const metrics = async () => (await gw.metrics.render()).body;

  before(async () => {
    a = await backend('A');
    b = await backend('B');
    // nodeapp: served export of port 3000; the Service also has port 4000, which no rule names.
    put(SVC, service('nodeapp', NS, [{ name: 'http', port: 3000 }, { name: 'admin', port: 4000 }]));
    put(EPS, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'nodeapp', namespace: NS }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: a.port }, { name: 'admin', port: b.port }] }] });
    put(SEXP, exportOf('nodeapp', [{ portNumber: 3000, path: '/nodeapp' }]));
    setConditions('nodeapp', [{ type: 'Valid', status: 'True' }]);
    // pending: Service and endpoints, but the export was never validated (no status at all).
    put(SVC, service('pending', NS));
    put(EPS, endpoints('pending', NS, [a.port]));
    put(SEXP, exportOf('pending', [{ portNumber: 3000, path: '/pending' }]));
    // invalid: Valid=False.
    put(SVC, service('invalid', NS));
    put(EPS, endpoints('invalid', NS, [a.port]));
    put(SEXP, exportOf('invalid', [{ portNumber: 3000, path: '/invalid' }]));
    setConditions('invalid', [{ type: 'Valid', status: 'False' }]);
    // conflicted: Valid=True but the control plane says Conflict=True.
    put(SVC, service('conflicted', NS));
    put(EPS, endpoints('conflicted', NS, [a.port]));
    put(SEXP, exportOf('conflicted', [{ portNumber: 3000, path: '/conflicted' }]));
    setConditions('conflicted', [{ type: 'Valid', status: 'True' }, { type: 'Conflict', status: 'True' }]);
    // empty: served, no endpoints at all.
    put(SVC, service('empty', NS));
    put(SEXP, exportOf('empty', [{ portNumber: 3000, path: '/empty' }]));
    setConditions('empty', [{ type: 'Valid', status: 'True' }]);

    gw = new Gateway({ clusterName: CLUSTER, ...caches, meshPort: 0 });
    await gw.listen();
    mesh = gw.meshPort!;
    assert.ok(mesh > 0 && mesh !== gw.port, 'the mesh port is a port of its own');
    await waitFor(() => tunnelEndpoints('nodeapp.dapr-test:3000') === 1, 'nodeapp tunnel route');
  });

  after(async () => {
    await gw.close(500);
    for (const c of Object.values(caches)) c.stop();
    await a.close();
    await b.close();
  });

  it('refuses a CONNECT to an unknown service with 404 CM_ERR_NOT_FOUND naming the authority, then closes; nothing reaches a backend', async () => {
    const before = connections();
    for (const authority of ['nosuch.dapr-test:3000', 'nodeapp.other-ns:3000', 'nodeapp:3000', 'nodeapp.dapr-test.svc.cluster.local:3000']) {
      const { conn, answer } = await openTunnel(mesh, authority, { source: 'cluster-y' });
      assertRefusal(answer, 404, 'CM_ERR_NOT_FOUND', new RegExp(`cluster ${CLUSTER} does not export "${authority.replace(/\./g, '\\.')}"`));
      assert.ok(await conn.waitClosed(), `${authority}: the connection is closed after the refusal`);
      assert.equal(conn.buf.length, 0, 'nothing after the refusal');
    }
    assert.equal(connections(), before, 'no refused tunnel opened a connection to an endpoint');
  });

  it('an export that is not served is 404: never validated, Valid=False, Conflict=True', async () => {
    const before = connections();
    for (const name of ['pending', 'invalid', 'conflicted']) {
      assert.equal(gw.routes.tunnel(`${name}.dapr-test:3000`), undefined, `${name} has no tunnel route`);
      const { conn, answer } = await openTunnel(mesh, `${name}.dapr-test:3000`);
      assertRefusal(answer, 404, 'CM_ERR_NOT_FOUND', new RegExp(`does not export "${name}\\.dapr-test:3000"`));
      assert.ok(await conn.waitClosed());
    }
    assert.equal(connections(), before);
    // Lifting the conflict serves it; putting it back stops new tunnels again.
    setConditions('conflicted', [{ type: 'Valid', status: 'True' }, { type: 'Conflict', status: 'False' }]);
    await waitFor(() => tunnelEndpoints('conflicted.dapr-test:3000') === 1, 'conflicted served');
    let t = await openTunnel(mesh, 'conflicted.dapr-test:3000');
    assert.equal(t.answer.status, 200);
    t.conn.destroy();
    setConditions('conflicted', [{ type: 'Valid', status: 'True' }, { type: 'Conflict', status: 'True' }]);
    await waitFor(() => gw.routes.tunnel('conflicted.dapr-test:3000') === undefined, 'conflicted unserved');
    t = await openTunnel(mesh, 'conflicted.dapr-test:3000');
    assertRefusal(t.answer, 404, 'CM_ERR_NOT_FOUND');
  });

  it('a port of the service that no export rule names is 404, as is a port the service does not have', async () => {
    const before = connections();
    for (const authority of ['nodeapp.dapr-test:4000', 'nodeapp.dapr-test:3001', 'nodeapp.dapr-test', 'nodeapp.dapr-test:']) {
      const { conn, answer } = await openTunnel(mesh, authority);
      assertRefusal(answer, 404, 'CM_ERR_NOT_FOUND');
      assert.ok(await conn.waitClosed());
    }
    assert.equal(connections(), before, 'port 4000 has a live endpoint (B), yet it was not reached');
  });

  it('anything but a CONNECT is 400 and closed: GET, POST, absolute-form GET, malformed bytes, a bad CONNECT line', async () => {
    const before = connections();
    const payloads = [
      get('/ports'),
      'POST /nodeapp HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi',
      'GET http://nodeapp.dapr-test:3000/ports HTTP/1.1\r\nhost: nodeapp.dapr-test:3000\r\n\r\n',
      'hello there\r\n\r\n',
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
      'CONNECT nodeapp.dapr-test:3000 HTTP/1.1\r\nbad header line\r\n\r\n',
      'CONNECT nodeapp.dapr-test:3000 HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n',
    ];
    for (const p of payloads) {
      const conn = await RawConn.open(mesh);
      conn.write(p);
      const answer = await conn.readResponse(JSON.stringify(p));
      assertRefusal(answer, 400, 'CM_ERR_BAD_REQUEST');
      assert.ok(await conn.waitClosed(), `${JSON.stringify(p)}: closed`);
    }
    const gr = await RawConn.open(mesh);
    gr.write(get('/ports'));
    assert.match(JSON.parse((await gr.readResponse()).body.toString()).message, /only opens tunnels: send CONNECT <service>\.<namespace>:<port>/);
    assert.equal(connections(), before);
    assert.equal(hits(), 0);
  });

  it('no ready endpoints → 503 CM_ERR_UNAVAILABLE naming the service port, then closed', async () => {
    const { conn, answer } = await openTunnel(mesh, 'empty.dapr-test:3000');
    assertRefusal(answer, 503, 'CM_ERR_UNAVAILABLE', /dapr-test\/empty port 3000 has no ready endpoints/);
    assert.ok(await conn.waitClosed());
  });

  it('an endpoint that refuses the connection → 502 CM_ERR_BAD_GATEWAY naming the endpoint', async () => {
    const gone = await startBackend('gone');
    const port = gone.port;
    await gone.close();
    put(SVC, service('dead', NS));
    put(EPS, endpoints('dead', NS, [port]));
    put(SEXP, exportOf('dead', [{ portNumber: 3000, path: '/dead' }]));
    setConditions('dead', [{ type: 'Valid', status: 'True' }]);
    await waitFor(() => tunnelEndpoints('dead.dapr-test:3000') === 1, 'dead routed');
    const { conn, answer } = await openTunnel(mesh, 'dead.dapr-test:3000');
    assertRefusal(answer, 502, 'CM_ERR_BAD_GATEWAY', new RegExp(`endpoint 127\\.0\\.0\\.1:${port} of dapr-test/dead:3000 cannot be reached \\(ECONNREFUSED\\)`));
    assert.ok(await conn.waitClosed());
  });

  it('an established tunnel carries keep-alive requests to the endpoint; the bytes are exactly what the endpoint sends', async () => {
    const before = a.hits.length;
    const { conn, answer } = await openTunnel(mesh, 'nodeapp.dapr-test:3000', { source: 'cluster-y' });
    assert.equal(answer.raw.toString('latin1'), 'HTTP/1.1 200 Connection Established\r\n\r\n');
    conn.write(get('/first'));
    const r1 = await conn.readResponse('first response');
    conn.write(get('/second?x=1'));
    const r2 = await conn.readResponse('second response');
    assert.equal(r1.status, 200);
    assert.equal(r2.headers['x-backend'], 'A', 'port 3000 is endpoint A (port name http)');
    assert.deepEqual(a.hits.slice(before).map((h) => h.url), ['/first', '/second?x=1']);
    assert.equal(a.hits[before].headers.host, 'nodeapp.dapr-test:3000', 'the request is passed as sent (the gateway does not parse it)');
    // The same requests sent straight to the endpoint give byte-identical answers.
    const direct = await RawConn.open(a.port);
    direct.write(get('/first'));
    assert.deepEqual((await direct.readResponse()).raw, r1.raw);
    direct.write(get('/second?x=1'));
    assert.deepEqual((await direct.readResponse()).raw, r2.raw);
    direct.destroy();
    assert.equal(conn.ended, false, 'the tunnel stays open between requests');
    conn.destroy();
  });

  it('streams a 2 MB body both ways through the tunnel unchanged', async () => {
    const { conn, answer } = await openTunnel(mesh, 'nodeapp.dapr-test:3000');
    assert.equal(answer.status, 200);
    const body = randomBytes(2 * 1024 * 1024);
    conn.write(`POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n`);
    conn.write(body);
    const head = await conn.until((buf) => { const i = buf.indexOf('\r\n\r\n'); return i < 0 ? undefined : i + 4; }, 'echo head');
    assert.match(head.toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.match(head.toString('latin1'), /transfer-encoding: chunked/i);
    // Chunked: decode until the last chunk.
    const chunks: Buffer[] = [];
    for (;;) {
      const sizeLine = await conn.until((buf) => { const i = buf.indexOf('\r\n'); return i < 0 ? undefined : i + 2; }, 'chunk size', 5000);
      const size = parseInt(sizeLine.toString('latin1'), 16);
      const data = await conn.until((buf) => (buf.length >= size + 2 ? size + 2 : undefined), 'chunk data', 5000);
      if (size === 0) break;
      chunks.push(data.subarray(0, size));
    }
    const got = Buffer.concat(chunks);
    assert.equal(got.length, body.length);
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'));
    conn.destroy();
  });

  it('bytes written in the same write as the CONNECT head are delivered to the endpoint', async () => {
    const before = a.hits.length;
    const { conn, answer } = await openTunnel(mesh, 'nodeapp.dapr-test:3000', { early: get('/early') + get('/early2') });
    assert.equal(answer.status, 200);
    const r1 = await conn.readResponse('answer to the early request');
    const r2 = await conn.readResponse('answer to the second early request');
    assert.match(r1.body.toString('latin1'), /^A GET \/early /);
    assert.match(r2.body.toString('latin1'), /^A GET \/early2 /);
    assert.deepEqual(a.hits.slice(before).map((h) => h.url), ['/early', '/early2']);
    conn.destroy();
  });

  it('a CONNECT head that arrives a few bytes at a time is still understood', async () => {
    const conn = await RawConn.open(mesh);
    const head = Buffer.from('CONNECT nodeapp.dapr-test:3000 HTTP/1.1\r\nhost: nodeapp.dapr-test:3000\r\nx-crossmesh-source-cluster: slow-src\r\n\r\n', 'latin1');
    for (let i = 0; i < head.length; i += 7) {
      conn.write(head.subarray(i, i + 7));
      // Let each piece go out as its own segment.
      await new Promise((r) => setImmediate(r));
    }
    assert.equal((await conn.readResponse()).status, 200);
    conn.write(get('/pieces'));
    assert.match((await conn.readResponse()).body.toString('latin1'), /^A GET \/pieces /);
    conn.destroy();
  });

  it('the authority is matched case-insensitively', async () => {
    const { conn, answer } = await openTunnel(mesh, 'NodeApp.Dapr-Test:3000');
    assert.equal(answer.status, 200);
    conn.write(get('/case'));
    assert.equal((await conn.readResponse()).status, 200);
    conn.destroy();
  });

  it('counts tunnels by source cluster and result, and shows the open ones', async () => {
    const established = async () => Number(new RegExp(`crossmesh_gateway_tunnels_total\\{[^}]*source_cluster="metrics-src"[^}]*result="established"[^}]*\\} (\\d+)`).exec(await metrics())?.[1] ?? 0);
    const active = async () => Number(/^crossmesh_gateway_tunnels_active(?:\{[^}]*\})? (\d+)/m.exec(await metrics())?.[1] ?? -1);
    await waitFor(() => gw.activeTunnels === 0, 'no tunnel open from earlier tests');
    assert.equal(await active(), 0);
    const t1 = await openTunnel(mesh, 'nodeapp.dapr-test:3000', { source: 'metrics-src' });
    const t2 = await openTunnel(mesh, 'nodeapp.dapr-test:3000', { source: 'metrics-src' });
    const refused = await openTunnel(mesh, 'nosuch.dapr-test:3000', { source: 'metrics-src' });
    assert.equal(refused.answer.status, 404);
    await refused.conn.waitClosed();
    assert.equal(await established(), 2);
    const text = await metrics();
    assert.match(text, /crossmesh_gateway_tunnels_total\{[^}]*source_cluster="metrics-src"[^}]*result="404"[^}]*\} 1/);
    assert.match(text, new RegExp(`crossmesh_gateway_tunnels_total\\{[^}]*cluster="${CLUSTER}"`), 'labelled with the gateway cluster');
    await waitFor(() => gw.activeTunnels === 2, 'two open tunnels');
    assert.equal(await active(), 2);
    // A tunnel without the source header counts as "unknown".
    const anon = await openTunnel(mesh, 'nodeapp.dapr-test:3000');
    assert.match(await metrics(), /crossmesh_gateway_tunnels_total\{[^}]*source_cluster="unknown"[^}]*result="established"/);
    for (const t of [t1, t2, anon]) t.conn.destroy();
    await waitFor(() => gw.activeTunnels === 0, 'tunnels gone');
    assert.equal(await active(), 0);
  });

  it('the endpoint closing its side closes the client side', async () => {
    const { conn, answer } = await openTunnel(mesh, 'nodeapp.dapr-test:3000');
    assert.equal(answer.status, 200);
    conn.write(get('/die'));
    assert.ok(await conn.waitClosed(), 'the client side is closed when the endpoint drops the connection');
    assert.equal(conn.buf.length, 0);
    await waitFor(() => gw.activeTunnels === 0, 'the gateway forgot the tunnel');
  });

  it('the client closing its side closes the endpoint side', async () => {
    const { conn, answer } = await openTunnel(mesh, 'nodeapp.dapr-test:3000');
    assert.equal(answer.status, 200);
    conn.write(get('/held'));
    await conn.readResponse();
    await waitFor(() => a.sockets.size > 0, 'endpoint connection');
    const open = a.sockets.size;
    conn.destroy();
    await waitFor(() => a.sockets.size === open - 1, 'the endpoint connection closed');
  });

  // FAILS (product): the mesh port's sockets are not half-open (net.createServer / connect without
  // allowHalfOpen) and either side's 'close' destroys the other, so a client's FIN ends the tunnel
  // both ways and the endpoint's answer after it is lost. A TCP splice must pass a FIN on and keep
  // the other direction open until that side ends too.
  it('a client that half-closes (sends FIN after its request) still gets the endpoint\'s answer (the splice carries half-close)', async () => {
    // An endpoint that reads until EOF and then answers: what a TCP splice must carry (TLS close_notify, HTTP/1.0 style clients).
    const { createServer } = await import('node:net');
    const srv = createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => s.end(`got ${n}`));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      put(SVC, service('halfclose', NS));
      put(EPS, endpoints('halfclose', NS, [port]));
      put(SEXP, exportOf('halfclose', [{ portNumber: 3000, path: '/halfclose' }]));
      setConditions('halfclose', [{ type: 'Valid', status: 'True' }]);
      await waitFor(() => tunnelEndpoints('halfclose.dapr-test:3000') === 1, 'halfclose routed');
      const { conn, answer } = await openTunnel(mesh, 'halfclose.dapr-test:3000');
      assert.equal(answer.status, 200);
      conn.write(Buffer.alloc(1000, 1));
      conn.socket.end();
      assert.ok(await conn.waitClosed(), 'closed in the end');
      assert.equal(conn.buf.toString('latin1'), 'got 1000', 'the answer sent after the client\'s FIN reaches the client');
    } finally {
      srv.close();
    }
  });

  it('round robin spreads tunnels over the endpoints, one endpoint per tunnel', async () => {
    put(EPS, endpoints('nodeapp', NS, [a.port, b.port]));
    await waitFor(() => tunnelEndpoints('nodeapp.dapr-test:3000') === 2, 'two endpoints');
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { conn } = await openTunnel(mesh, 'nodeapp.dapr-test:3000');
      conn.write(get('/rr1'));
      const first = (await conn.readResponse()).headers['x-backend'];
      conn.write(get('/rr2'));
      assert.equal((await conn.readResponse()).headers['x-backend'], first, 'a tunnel stays on its endpoint');
      names.push(first);
      conn.destroy();
    }
    assert.deepEqual(names.sort(), ['A', 'A', 'B', 'B'], names.join());
    put(EPS, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'nodeapp', namespace: NS }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: a.port }, { name: 'admin', port: b.port }] }] });
    await waitFor(() => tunnelEndpoints('nodeapp.dapr-test:3000') === 1, 'back to one endpoint');
  });

  it('an open tunnel keeps its endpoint after the export stops being served; new tunnels are refused', async () => {
    const { conn, answer } = await openTunnel(mesh, 'nodeapp.dapr-test:3000');
    assert.equal(answer.status, 200);
    setConditions('nodeapp', [{ type: 'Valid', status: 'False' }]);
    await waitFor(() => gw.routes.tunnel('nodeapp.dapr-test:3000') === undefined, 'nodeapp unserved');
    assertRefusal((await openTunnel(mesh, 'nodeapp.dapr-test:3000')).answer, 404, 'CM_ERR_NOT_FOUND');
    conn.write(get('/still'));
    assert.equal((await conn.readResponse()).status, 200);
    conn.destroy();
    setConditions('nodeapp', [{ type: 'Valid', status: 'True' }]);
    await waitFor(() => tunnelEndpoints('nodeapp.dapr-test:3000') === 1, 'nodeapp served again');
  });

  it('gateway.close() cuts open tunnels and frees the mesh port', async () => {
    const g2 = new Gateway({ clusterName: 'cluster-z', ...caches, meshPort: 0 });
    await g2.listen();
    const port = g2.meshPort!;
    await waitFor(() => g2.routes.tunnel('nodeapp.dapr-test:3000') !== undefined, 'g2 routes');
    const idle = await openTunnel(port, 'nodeapp.dapr-test:3000');
    const busy = await openTunnel(port, 'nodeapp.dapr-test:3000');
    assert.equal(idle.answer.status, 200);
    busy.conn.write(get('/hold'));
    await waitFor(() => a.hits.some((h) => h.url === '/hold'), 'held request at the endpoint');
    const started = Date.now();
    await g2.close(200);
    assert.ok(await idle.conn.waitClosed(1000), 'an idle tunnel is cut');
    assert.ok(await busy.conn.waitClosed(1000), 'a tunnel with a request in flight is cut');
    assert.ok(Date.now() - started < 1500, `close took ${Date.now() - started} ms`);
    await assert.rejects(RawConn.open(port), /ECONNREFUSED/, 'nothing listens on the mesh port any more');
  });
});
