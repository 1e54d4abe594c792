/**
 * The lean proxy core's framing, end to end: a real node:http app behind a real H1Server hop,
 * driven by fetch and by raw sockets (to see the bytes on the wire).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { H1Server } from './server.js';
import { proxy } from './proxy.js';
import { UpstreamRegistry } from './upstream.js';
import { HTTPParser, METHODS } from './llhttp.js';

interface Seen { method: string; url: string; body: string; trailers: string[]; aborted: boolean }

async function listen(s: Server | H1Server): Promise<number> {
  if (s instanceof H1Server) return s.listen(0, '127.0.0.1');
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

/** Sends raw bytes, resolves with everything received until the server closes (or `until` matches). */
function raw(port: number, bytes: string | Buffer[], until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (until && until.test(got)) { s.destroy(); resolve(got); }
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    if (typeof bytes === 'string') s.write(bytes);
    else for (const b of bytes) s.write(b);
  });
}

describe('h1 proxy core', () => {
  const seen: Seen[] = [];
  let app: Server;
  let hop: H1Server;
  let port = 0;
  let appPort = 0;
  const registry = new UpstreamRegistry();
  let midBodyReq: Promise<IncomingMessage> | undefined;
  let resolveMidBody: (r: IncomingMessage) => void = () => undefined;

  before(async () => {
    app = createServer((req, res) => {
      const s: Seen = { method: req.method!, url: req.url!, body: '', trailers: [], aborted: false };
      seen.push(s);
      req.on('error', () => undefined);
      if (req.url === '/slow-upload') { resolveMidBody(req); req.on('aborted', () => { s.aborted = true; }); req.on('close', () => { if (!req.complete) s.aborted = true; }); return; }
      req.on('data', (d) => { s.body += d; });
      req.on('end', () => {
        s.trailers = req.rawTrailers;
        switch (req.url) {
          case '/chunked':
            res.writeHead(200, { trailer: 'x-sum' });
            res.write('ab');
            res.write('cde');
            res.addTrailers({ 'x-sum': '5' });
            res.end();
            return;
          case '/early':
            res.writeEarlyHints({ link: '</a.css>; rel=preload' });
            res.end('after hints');
            return;
          case '/204':
            res.writeHead(204).end();
            return;
          case '/304':
            res.writeHead(304, { etag: '"x"' }).end();
            return;
          case '/cut':
            res.writeHead(200, { 'content-length': '100' });
            res.write('only part');
            setImmediate(() => res.socket?.destroy());
            return;
          default:
            res.setHeader('x-upstream', 'yes');
            res.end(JSON.stringify({ method: req.method, url: req.url, body: s.body, te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null, xff: req.headers['x-forwarded-for'], connection: req.headers.connection ?? null, secret: req.headers['x-secret'] ?? null, keepAlive: req.headers['keep-alive'] ?? null }));
        }
      });
    });
    appPort = await listen(app);
    hop = new H1Server({
      onRequest: (req) => void proxy(req, registry, { key: `127.0.0.1:${appPort}`, target: { host: '127.0.0.1', port: appPort }, label: 'test app' }, { path: req.url, responseHeaders: ['x-hop', '1'] }),
    });
    port = await listen(hop);
  });
  after(() => closeAll(hop, registry, app));

  it('the llhttp binding is what the adapter expects (fails loudly if a Node upgrade changes it)', () => {
    assert.equal(typeof HTTPParser, 'function');
    assert.equal(METHODS[1], 'GET');
    assert.equal(METHODS[3], 'POST');
    assert.equal(METHODS[5], 'CONNECT');
  });

  it('content-length bodies both ways, hop-by-hop headers removed, x-forwarded-for appended', async () => {
    const res = await raw(port, 'POST /len HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\nKeep-Alive: timeout=5\r\nConnection: close, x-secret\r\nX-Secret: 1\r\nContent-Length: 11\r\n\r\nhello world');
    assert.match(res, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(res, /\r\nx-hop: 1\r\n/);
    assert.match(res, /\r\nx-upstream: yes\r\n/i);
    assert.match(res, /\r\nconnection: close\r\n/i, 'the client asked to close: the hop says so and closes');
    const j = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4));
    assert.deepEqual({ ...j, xff: undefined }, { method: 'POST', url: '/len', body: 'hello world', te: null, cl: '11', xff: undefined, connection: null, secret: null, keepAlive: null });
    assert.equal(j.xff, '10.9.9.9, 127.0.0.1');
  });

  it('chunked request with chunk extensions and trailers reaches the app whole', async () => {
    const n = seen.length;
    const res = await raw(port, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Check: 7\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(seen[n].body, 'abcde');
    assert.deepEqual(seen[n].trailers, ['X-Check', '7']);
    assert.match(res, /"te":"chunked"/);
  });

  it('chunked response with trailers is passed on chunked, trailers included', async () => {
    const res = await raw(port, 'GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [head, body] = res.split('\r\n\r\n', 2).length === 2 ? [res.slice(0, res.indexOf('\r\n\r\n')), res.slice(res.indexOf('\r\n\r\n') + 4)] : ['', ''];
    assert.match(head, /transfer-encoding: chunked/i);
    assert.equal(body, '2\r\nab\r\n3\r\ncde\r\n0\r\nx-sum: 5\r\n\r\n');
  });

  it('1xx informational answers (103 Early Hints) are passed before the final answer', async () => {
    const res = await raw(port, 'GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 103 Early Hints\r\n(.*\r\n)*link: <\/a\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/i);
    assert.ok(res.endsWith('after hints'));
  });

  it('HEAD, 204 and 304 carry no body; the next request on the connection still parses', async () => {
    const res = await raw(port, 'HEAD /len HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const statuses = [...res.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '204', '304', '200']);
    assert.match(res, /"url":"\/after"/);
    // HEAD: a head and no body (the 204 status line follows the blank line directly).
    const headPart = res.slice(0, res.indexOf('HTTP/1.1 204'));
    assert.ok(headPart.endsWith('\r\n\r\n'));
    assert.doesNotMatch(headPart, /"method"/);
  });

  it('pipelined requests are answered in order on one connection', async () => {
    const res = await raw(port, 'GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyzGET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const urls = [...res.matchAll(/"url":"(\/p\d)"/g)].map((m) => m[1]);
    assert.deepEqual(urls, ['/p1', '/p2', '/p3']);
    assert.match(res, /"body":"xyz"/);
  });

  it('an upstream that closes mid-body cuts the client off (no complete answer is faked)', async () => {
    const res = await raw(port, 'GET /cut HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(res, /content-length: 100/i);
    assert.ok(res.endsWith('only part'), 'the client got the part that was sent, then the close');
  });

  it('a client that closes mid-body aborts the upstream request', async () => {
    midBodyReq = new Promise((r) => { resolveMidBody = r; });
    const s = connect(port, '127.0.0.1');
    s.write('POST /slow-upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial');
    const upstreamReq = await midBodyReq;
    const closed = new Promise((r) => upstreamReq.once('close', r));
    s.destroy();
    await closed;
    assert.equal(upstreamReq.complete, false);
    assert.equal(seen.at(-1)!.aborted, true);
  });

  it('Content-Length with Transfer-Encoding is refused with 400 and never forwarded', async () => {
    const n = seen.length;
    const res = await raw(port, 'POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 400 /);
    // A sentinel on a new connection proves the app was reachable and saw only the sentinel.
    await fetch(`http://127.0.0.1:${port}/sentinel`);
    assert.deepEqual(seen.slice(n).map((s) => s.url), ['/sentinel']);
  });

  it('a head followed by a malformed chunk in one read never reaches the app', async () => {
    const n = seen.length;
    const res = await raw(port, 'POST /badchunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 400 /);
    await fetch(`http://127.0.0.1:${port}/sentinel2`);
    assert.deepEqual(seen.slice(n).map((s) => s.url), ['/sentinel2']);
  });

  it('Expect: 100-continue is answered by the hop, and the body follows', async () => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.write('POST /cont HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    while (!got.includes('100 Continue')) await once(s, 'data');
    s.write('body');
    await once(s, 'close');
    assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    assert.match(got, /"body":"body"/);
  });

  it('an unreachable upstream answers 502 with a CM_ERR_BAD_GATEWAY body naming it', async () => {
    const dead = new H1Server({ onRequest: (req) => void proxy(req, registry, { key: '127.0.0.1:1', target: { host: '127.0.0.1', port: 1 }, label: 'nothing at port 1' }, { path: req.url }) });
    const p = await dead.listen(0, '127.0.0.1');
    try {
      const r = await fetch(`http://127.0.0.1:${p}/x`);
      assert.equal(r.status, 502);
      const j = await r.json();
      assert.equal(j.errorCode, 'CM_ERR_BAD_GATEWAY');
      assert.match(j.message, /nothing at port 1 refused the connection.*before any byte was sent/);
    } finally {
      await dead.close(100);
    }
  });

  it('keep-alive: sequential requests reuse one upstream connection', async () => {
    const before = registry.peek(`127.0.0.1:${appPort}`)!.size;
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`http://127.0.0.1:${port}/ka`)).status, 200);
    assert.ok(registry.peek(`127.0.0.1:${appPort}`)!.size <= before + 1);
  });
});

/**
 * The listener reads with llhttp consuming the socket's handle; a paused socket (a last or
 * pipelined request waiting for its answer) must still notice its client going away, or the
 * upstream exchange and both sockets stay until the upstream's timeout (chaos scenario 7).
 */
describe('h1 listener: a client that goes away while its answer is pending', () => {
  let app: Server;
  let hop: H1Server;
  let port = 0;
  const registry = new UpstreamRegistry();
  let arrived: (req: IncomingMessage) => void = () => undefined;

  before(async () => {
    app = createServer((req) => { req.on('error', () => undefined); arrived(req); /* never answers */ });
    const appPort = await listen(app);
    hop = new H1Server({
      onRequest: (req) => void proxy(req, registry, { key: `127.0.0.1:${appPort}`, target: { host: '127.0.0.1', port: appPort }, label: 'hanging app' }, { path: req.url }),
    });
    port = await listen(hop);
  });
  after(() => closeAll(hop, registry, app));

  async function abandon(request: string, leave: 'end' | 'reset'): Promise<void> {
    const reached = new Promise<IncomingMessage>((r) => { arrived = r; });
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.write(request);
    const upstreamReq = await reached;
    assert.equal(hop.connections, 1);
    const upstreamClosed = new Promise<void>((r) => upstreamReq.once('close', () => r()));
    if (leave === 'end') s.end();
    else s.resetAndDestroy();
    // The hop aborts the upstream exchange only once it saw its client's socket close, so
    // the app seeing its request close means the listener has let go of the connection.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((r) => { timer = setTimeout(r, 3000, 'still open'); });
    const first = await Promise.race([upstreamClosed.then(() => 'closed'), deadline]);
    clearTimeout(timer);
    assert.equal(first, 'closed', 'the upstream request was not aborted within 3 s of the client leaving');
    assert.equal(hop.connections, 0);
    const n = await new Promise<number>((r, j) => hop.net.getConnections((e, c) => (e ? j(e) : r(c))));
    assert.equal(n, 0);
  }

  it('Connection: close request, client closes (FIN)', () => abandon('GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'end'));
  it('Connection: close request, client resets', () => abandon('GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'reset'));
  it('HTTP/1.0 request, client closes', () => abandon('GET /c HTTP/1.0\r\nHost: x\r\n\r\n', 'end'));
  it('a pipelined request waiting behind the pending one, client closes', () => abandon('GET /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.1\r\nHost: x\r\n\r\n', 'end'));
  it('kept-alive request, client closes (control: never paused, passed before the fix too)', () => abandon('GET /f HTTP/1.1\r\nHost: x\r\n\r\n', 'end'));
});

/** Tears down a hop, its upstream pools and the app behind it (both fixtures above). */
async function closeAll(hop: H1Server, registry: UpstreamRegistry, app: Server): Promise<void> {
  await hop.close(100);
  await registry.close(100);
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
}
