import { describe, it, type TestContext } from 'node:test';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, Socket } from 'node:net';
import { forward, UpstreamRegistry as PoolRegistry, buildRequestHead, isValidTraceparent, newTraceparent, ensureTraceparent, type ForwardResult } from './index.js';
import { startBackend, listen, call, rawRequest, statusOf, waitFor, type Backend, type Handler } from '../../test/support/http-backend.js';
import { CrossmeshError } from '../errors.js';

/** The upstream of every test: /echo streams the body back, /slow never answers in time, /hop sends hop-by-hop headers, anything else echoes the request as JSON. */
const upstream: Handler = (req, res) => {
  if (req.url === '/echo') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
    return;
  }
  if (req.url?.startsWith('/slow')) {
    req.resume();
    const t = setTimeout(() => res.end('late'), 3000);
    res.on('close', () => clearTimeout(t));
    return;
  }
  if (req.url === '/hop') {
    req.resume();
    res.writeHead(200, { 'keep-alive': 'timeout=99, max=7', connection: 'x-hop-resp', 'x-hop-resp': '1', 'proxy-authenticate': 'Basic', 'x-kept': 'yes', 'set-cookie': ['a=1', 'b=2'] });
    res.end('ok');
    return;
  }
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ url: req.url, headers: req.headers, raw: req.rawHeaders }));
};

interface Harness {
  proxy: Awaited<ReturnType<typeof listen>>;
  backend: Backend;
  pools: PoolRegistry;
  /** What forward() resolved to, per request, in order. */
  results: ForwardResult[];
}

/**
 * A proxy of its own per test (its own upstream, pools and results): `origin` defaults to the
 * test's backend; `respondOnError: false` leaves failures to the caller, who answers 299.
 */
async function harness(t: TestContext, opts: { origin?: string; timeoutMs?: number; respondOnError?: boolean } = {}): Promise<Harness> {
  const backend = await startBackend('b1', upstream);
  const pools = new PoolRegistry();
  const results: ForwardResult[] = [];
  const origin = opts.origin ?? `http://127.0.0.1:${backend.port}`;
  const respondOnError = opts.respondOnError ?? true;
  const proxy = await listen((req, res) => {
    void forward(req, res, {
      origin,
      path: req.url ?? '/',
      pools,
      timeoutMs: opts.timeoutMs,
      respondOnError,
      extraHeaders: ['x-extra', 'set-by-proxy'],
      responseHeaders: ['x-via', 'test-proxy'],
    }).then((r) => {
      results.push(r);
      if (!respondOnError && !r.responseStarted) {
        res.writeHead(299);
        res.end('caller handled');
      }
    });
  });
  t.after(async () => {
    await proxy.close();
    await backend.close();
    await pools.close();
  });
  return { proxy, backend, pools, results };
}

/** The results of exactly `n` forwards (waits for the last to settle). */
async function resultsOf(h: Harness, n: number): Promise<ForwardResult[]> {
  await waitFor(() => h.results.length >= n, `${n} forward() results`);
  assert.equal(h.results.length, n);
  return h.results;
}

/** One request on a keep-alive connection (call() uses Connection: close). */
function callKeepAlive(port: number, path: string): Promise<{ status: number; headers: IncomingMessage['headers'] }> {
  const agent = new Agent({ keepAlive: true });
  return new Promise<{ status: number; headers: IncomingMessage['headers'] }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  }).finally(() => agent.destroy());
}

/** A port nothing listens on (a backend started and closed). */
async function deadPort(): Promise<number> {
  const down = await startBackend('down');
  await down.close();
  return down.port;
}

describe('proxy forward()', () => {
  it('forwards method, path and query; adds response headers; reuses one pool per origin', async (t) => {
    const h = await harness(t);
    for (let i = 0; i < 3; i++) {
      const r = await call(h.proxy.port, `/a/b?x=${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.json().url, `/a/b?x=${i}`);
      assert.equal(r.headers['x-via'], 'test-proxy');
      assert.equal(r.json().headers['x-extra'], 'set-by-proxy');
    }
    assert.equal(h.pools.size, 1);
    assert.deepEqual(h.backend.hits.map((x) => x.url), ['/a/b?x=0', '/a/b?x=1', '/a/b?x=2']);
    for (const r of await resultsOf(h, 3)) {
      assert.equal(r.status, 200);
      assert.equal(r.upstreamStatus, 200);
      assert.equal(r.error, undefined);
      assert.equal(r.failedBeforeSend, false);
      assert.equal(r.responseStarted, true);
    }
  });

  it('keeps upstream connections alive across requests', async (t) => {
    const h = await harness(t);
    let connections = 0;
    h.backend.server.on('connection', () => connections++);
    for (let i = 0; i < 5; i++) assert.equal((await call(h.proxy.port, '/k')).status, 200);
    assert.equal(h.backend.hits.length, 5);
    assert.equal(connections, 1, 'the pooled connection is reused');
  });

  it('strips hop-by-hop request headers, including those named in Connection', async (t) => {
    const h = await harness(t);
    const r = await call(h.proxy.port, '/h', {
      headers: {
        connection: 'keep-alive, x-secret',
        'x-secret': 'must-not-pass',
        'keep-alive': 'timeout=5',
        'proxy-connection': 'keep-alive',
        te: 'trailers',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'x-normal': 'passes',
        'x-extra': 'client-value',
      },
    });
    const got = r.json();
    const hdr = got.headers;
    for (const name of ['x-secret', 'keep-alive', 'proxy-connection', 'te', 'proxy-authorization']) {
      assert.equal(hdr[name], undefined, `${name} must be stripped`);
    }
    // No Connection header goes upstream: the client's is hop-by-hop, and the hop's own HTTP/1.1
    // connection is persistent by default, so it sends none.
    const raw = got.raw as string[];
    const connection = raw.filter((_, i) => i % 2 === 1 && raw[i - 1].toLowerCase() === 'connection');
    assert.deepEqual(connection, []);
    assert.equal(hdr['x-normal'], 'passes');
    assert.equal(hdr['x-extra'], 'set-by-proxy', 'extraHeaders replace the incoming value');
    assert.equal(raw.filter((_, i) => i % 2 === 0 && raw[i].toLowerCase() === 'x-extra').length, 1);
    // The head the lean hop writes (buildRequestHead), for a chunked request: the client's
    // framing and everything hop-by-hop go; the hop states its own chunked framing once.
    const rawHeaders = ['Trailer', 'x-t', 'Upgrade', 'websocket', 'Connection', 'Upgrade, X-Named', 'X-Named', '1', 'Transfer-Encoding', 'chunked', 'Expect', '100-continue', 'X-Ok', '1'];
    const namesOf = (head: string) => head.split('\r\n').slice(1).filter((l) => l !== '').map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
    const names = namesOf(buildRequestHead({ method: 'POST', path: '/p', rawHeaders, clientIp: '1.1.1.1', proto: 'http', defaultHost: 'up:80', chunked: true }));
    for (const n of ['trailer', 'upgrade', 'connection', 'x-named', 'expect']) assert.ok(!names.includes(n), n);
    assert.deepEqual(names.filter((n) => n === 'transfer-encoding'), ['transfer-encoding'], 'the hop\'s own chunked framing, once');
    assert.ok(names.includes('x-ok'));
    const unchunked = namesOf(buildRequestHead({ method: 'POST', path: '/p', rawHeaders, clientIp: '1.1.1.1', proto: 'http', defaultHost: 'up:80', chunked: false }));
    assert.ok(!unchunked.includes('transfer-encoding'), 'the client\'s Transfer-Encoding is never passed as received');
  });

  it('strips hop-by-hop response headers and keeps repeated ones', async (t) => {
    const h = await harness(t);
    // A client asking to close: no Keep-Alive at all, Connection is the proxy's own "close".
    const r = await call(h.proxy.port, '/hop');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
    assert.equal(r.headers['x-hop-resp'], undefined);
    assert.equal(r.headers['proxy-authenticate'], undefined);
    assert.equal(r.headers['keep-alive'], undefined);
    assert.equal(r.headers.connection, 'close');
    assert.equal(r.headers['x-kept'], 'yes');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    // A keep-alive client: Keep-Alive is the proxy listener's own (its keepAliveTimeout), never the upstream's.
    const k = await callKeepAlive(h.proxy.port, '/hop');
    assert.equal(k.status, 200);
    assert.equal(k.headers['keep-alive'], `timeout=${h.proxy.server.keepAliveTimeout / 1000}`);
    assert.equal(k.headers.connection, 'keep-alive');
    assert.equal(k.headers['x-hop-resp'], undefined);
  });

  it('appends x-forwarded-for and sets x-forwarded-host/-proto', async (t) => {
    const h = await harness(t);
    let hdr = (await call(h.proxy.port, '/x', { headers: { host: 'svc.example:81' } })).json().headers;
    assert.equal(hdr['x-forwarded-for'], '127.0.0.1');
    assert.equal(hdr['x-forwarded-host'], 'svc.example:81');
    assert.equal(hdr['x-forwarded-proto'], 'http');
    assert.equal(hdr.host, 'svc.example:81', 'Host is passed through');
    hdr = (await call(h.proxy.port, '/x', { headers: { 'x-forwarded-for': '10.1.1.1', 'x-forwarded-host': 'orig', 'x-forwarded-proto': 'https' } })).json().headers;
    assert.equal(hdr['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
    assert.equal(hdr['x-forwarded-host'], 'orig');
    assert.equal(hdr['x-forwarded-proto'], 'https');
  });

  it('creates a traceparent when absent, propagates a valid one, replaces an invalid one', async (t) => {
    const h = await harness(t);
    let hdr = (await call(h.proxy.port, '/t')).json().headers;
    assert.match(hdr.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    hdr = (await call(h.proxy.port, '/t', { headers: { traceparent: tp, tracestate: 'k=v' } })).json().headers;
    assert.equal(hdr.traceparent, tp);
    assert.equal(hdr.tracestate, 'k=v');
    hdr = (await call(h.proxy.port, '/t', { headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', tracestate: 'k=v' } })).json().headers;
    assert.match(hdr.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.notEqual(hdr.traceparent.slice(3, 35), '00000000000000000000000000000000');
    assert.equal(hdr.tracestate, undefined, 'tracestate of an invalid parent is dropped');
  });

  it('streams a 5 MB POST body both ways', async (t) => {
    const h = await harness(t);
    const body = randomBytes(5 * 1024 * 1024);
    const r = await call(h.proxy.port, '/echo', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(body).digest('hex'));
  });

  it('sends the request head and a body node:http hands over after the request event in ONE socket write', async (t) => {
    const upstreamBackend = await startBackend('one-write', (req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    t.after(() => upstreamBackend.close());
    const h = await harness(t, { origin: `http://127.0.0.1:${upstreamBackend.port}` });
    // Every write the proxy's sockets make to the upstream's port, counted at Node's socket API.
    const writes: number[] = [];
    const original = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      if (this.remotePort === upstreamBackend.port) writes.push(typeof chunk === 'string' ? Buffer.byteLength(chunk, 'latin1') : (chunk as Buffer).length);
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof Socket.prototype.write;
    t.after(() => void (Socket.prototype.write = original));
    const body = 'x'.repeat(1024);
    const r = await call(h.proxy.port, '/up', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 200);
    assert.equal(writes.length, 1, `one write of head + body (writes of ${writes.join(', ')} bytes)`);
    assert.ok(writes[0] > body.length);
  });

  it('forwards a request whose body comes in a later packet than its head', async (t) => {
    const h = await harness(t);
    const sock = netConnect(h.proxy.port, '127.0.0.1');
    t.after(() => void sock.destroy());
    let reply = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (reply += d));
    const ended = new Promise<void>((r) => sock.on('end', () => r()));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    await new Promise<void>((r) => sock.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\n', () => r()));
    // The head was flushed to the proxy on its own; the body follows in another segment.
    sock.write('hello world');
    await ended;
    assert.match(reply, /^HTTP\/1\.1 200/);
    assert.match(reply, /\r\nhello world\r\n0\r\n\r\n$/, reply);
  });

  it('streams a chunked request body', async (t) => {
    const h = await harness(t);
    const r = await rawRequest(h.proxy.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    assert.equal(statusOf(r), 200);
    assert.match(r, /hello/);
    assert.match(r, / world/);
  });

  /** A well-formed request after refused ones: once it got through, the upstream saw only it. */
  async function onlySentinelArrived(h: Harness): Promise<void> {
    assert.equal((await call(h.proxy.port, '/sentinel')).status, 200);
    assert.deepEqual(h.backend.hits.map((x) => x.url), ['/sentinel'], 'nothing refused reached the upstream');
  }

  it('refuses Content-Length together with Transfer-Encoding (never reaches the upstream)', async (t) => {
    const h = await harness(t);
    const r = await rawRequest(h.proxy.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(statusOf(r), 400);
    await onlySentinelArrived(h);
    // The second line of defence, for callers whose parser is lenient.
    assert.throws(
      () => buildRequestHead({ method: 'POST', path: '/echo', rawHeaders: ['Content-Length', '5', 'Transfer-Encoding', 'chunked'], clientIp: '1.1.1.1', proto: 'http', defaultHost: 'up:80', chunked: true }),
      (e: unknown) => e instanceof CrossmeshError && e.code === 'CM_ERR_BAD_REQUEST',
    );
  });

  it('refuses invalid header values and names (node parser)', async (t) => {
    const h = await harness(t);
    assert.equal(statusOf(await rawRequest(h.proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n')), 400);
    assert.equal(statusOf(await rawRequest(h.proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nX Bad: a\r\n\r\n')), 400);
    assert.equal(statusOf(await rawRequest(h.proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab')), 400);
    await onlySentinelArrived(h);
  });

  it('maps a refused connection to 502 JSON, failed before any byte was sent', async (t) => {
    const port = await deadPort();
    const h = await harness(t, { origin: `http://127.0.0.1:${port}` });
    const r = await call(h.proxy.port, '/x');
    assert.equal(r.status, 502);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-via'], 'test-proxy');
    const body = r.json();
    assert.equal(body.errorCode, 'CM_ERR_BAD_GATEWAY');
    assert.match(body.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(body.message, /refused/);
    assert.match(body.message, /before any byte was sent/);
    const [res] = await resultsOf(h, 1);
    assert.equal(res.failedBeforeSend, true);
    assert.equal(res.status, 502);
    assert.equal(res.upstreamStatus, undefined);
    assert.equal(res.error?.code, 'CM_ERR_BAD_GATEWAY');
    assert.equal(res.responseStarted, true);
  });

  it('respondOnError: false leaves the answer to the caller', async (t) => {
    const port = await deadPort();
    const h = await harness(t, { origin: `http://127.0.0.1:${port}`, respondOnError: false });
    const r = await call(h.proxy.port, '/x');
    assert.equal(r.status, 299);
    assert.equal(r.text, 'caller handled');
    const [res] = await resultsOf(h, 1);
    assert.equal(res.responseStarted, false);
    assert.equal(res.status, 502, 'the status sendError() would have sent');
    assert.equal(res.error?.code, 'CM_ERR_BAD_GATEWAY');
    assert.equal(res.failedBeforeSend, true);
  });

  it('maps an upstream that does not answer in time to 504 JSON', async (t) => {
    const h = await harness(t, { timeoutMs: 100 });
    const t0 = Date.now();
    const r = await call(h.proxy.port, '/slow');
    assert.equal(r.status, 504);
    assert.equal(r.json().errorCode, 'CM_ERR_TIMEOUT');
    assert.match(r.json().message, /did not answer within 100 ms/);
    assert.ok(Date.now() - t0 < 2500, 'timed out well before the upstream answered');
    const [res] = await resultsOf(h, 1);
    assert.equal(res.status, 504);
    assert.equal(res.error?.code, 'CM_ERR_TIMEOUT');
    assert.equal(res.failedBeforeSend, false);
    assert.deepEqual(h.backend.hits.map((x) => x.url), ['/slow'], 'the request did reach the upstream');
  });

  it('maps a connection reset before the response to 502', async (t) => {
    const rude = await listen((req) => req.socket.destroy());
    t.after(() => rude.close());
    const h = await harness(t, { origin: `http://127.0.0.1:${rude.port}` });
    const r = await call(h.proxy.port, '/x');
    assert.equal(r.status, 502);
    assert.equal(r.json().errorCode, 'CM_ERR_BAD_GATEWAY');
    assert.match(r.json().message, /closed the connection before responding/);
    const [res] = await resultsOf(h, 1);
    assert.equal(res.status, 502);
    assert.equal(res.error?.code, 'CM_ERR_BAD_GATEWAY');
  });
});

describe('trace context', () => {
  it('validates traceparent per W3C', () => {
    assert.ok(isValidTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'));
    assert.ok(!isValidTraceparent('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'), 'uppercase');
    assert.ok(!isValidTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), 'version ff');
    assert.ok(!isValidTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'), 'zero parent');
    assert.ok(!isValidTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'), 'v00 with extra');
    assert.ok(isValidTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'), 'future version may extend');
    assert.ok(!isValidTraceparent('garbage'));
  });
  it('creates distinct valid ids', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = newTraceparent();
      assert.ok(isValidTraceparent(t), t);
      seen.add(t);
    }
    assert.equal(seen.size, 2000);
    assert.equal(ensureTraceparent(undefined).length, 55);
  });
});
