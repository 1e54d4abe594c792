import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { forward, PoolRegistry, upstreamRequestHeaders, isValidTraceparent, newTraceparent, ensureTraceparent, type ForwardResult } from './index.js';
import { startBackend, listen, call, rawRequest, statusOf, type Backend } from './test-helpers.js';
import { CrossmeshError } from '../errors.js';

describe('proxy forward()', () => {
  let backend: Backend;
  let proxy: Awaited<ReturnType<typeof listen>>;
  const pools = new PoolRegistry();
  let target = '';
  let timeoutMs: number | undefined;
  let respondOnError = true;
  let last: ForwardResult | undefined;

  before(async () => {
    backend = await startBackend('b1', (req, res) => {
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
        res.writeHead(200, { 'keep-alive': 'timeout=5', connection: 'x-hop-resp', 'x-hop-resp': '1', 'proxy-authenticate': 'Basic', 'x-kept': 'yes', 'set-cookie': ['a=1', 'b=2'] });
        res.end('ok');
        return;
      }
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, headers: req.headers, raw: req.rawHeaders }));
    });
    target = `http://127.0.0.1:${backend.port}`;
    proxy = await listen((req, res) => {
      void forward(req, res, {
        origin: target,
        path: req.url ?? '/',
        pools,
        timeoutMs,
        respondOnError,
        extraHeaders: ['x-extra', 'set-by-proxy'],
        responseHeaders: ['x-via', 'test-proxy'],
      }).then((r) => {
        last = r;
        if (!respondOnError && !r.responseStarted) {
          res.writeHead(299);
          res.end('caller handled');
        }
      });
    });
  });
  after(async () => {
    await proxy.close();
    await backend.close();
    await pools.close();
  });

  it('forwards method, path and query; adds response headers; reuses one pool per origin', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await call(proxy.port, `/a/b?x=${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.json().url, `/a/b?x=${i}`);
      assert.equal(r.headers['x-via'], 'test-proxy');
      assert.equal(r.json().headers['x-extra'], 'set-by-proxy');
    }
    assert.equal(pools.size, 1);
    assert.equal(last?.status, 200);
    assert.equal(last?.failedBeforeSend, false);
  });

  it('keeps upstream connections alive across requests', async () => {
    let connections = 0;
    const onConn = () => connections++;
    backend.server.on('connection', onConn);
    try {
      for (let i = 0; i < 5; i++) assert.equal((await call(proxy.port, '/k')).status, 200);
    } finally {
      backend.server.off('connection', onConn);
    }
    assert.ok(connections <= 1, `expected the pooled connection to be reused, saw ${connections} new connections`);
  });

  it('strips hop-by-hop request headers, including those named in Connection', async () => {
    const r = await call(proxy.port, '/h', {
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
    const h = r.json().headers;
    for (const name of ['x-secret', 'keep-alive', 'proxy-connection', 'te', 'proxy-authorization']) {
      assert.equal(h[name], undefined, `${name} must be stripped`);
    }
    assert.notEqual(h.connection, 'keep-alive, x-secret');
    assert.equal(h['x-normal'], 'passes');
    assert.equal(h['x-extra'], 'set-by-proxy', 'extraHeaders replace the incoming value');
    const u = upstreamRequestHeaders({
      rawHeaders: ['Trailer', 'x-t', 'Upgrade', 'websocket', 'Connection', 'Upgrade, X-Named', 'X-Named', '1', 'Transfer-Encoding', 'chunked', 'Expect', '100-continue', 'X-Ok', '1'],
      clientIp: '1.1.1.1',
      proto: 'http',
    });
    const names = u.headers.filter((_, i) => i % 2 === 0);
    for (const n of ['trailer', 'upgrade', 'connection', 'x-named', 'transfer-encoding', 'expect']) assert.ok(!names.includes(n), n);
    assert.ok(names.includes('x-ok'));
    assert.equal(u.hasBody, true);
  });

  it('strips hop-by-hop response headers and keeps repeated ones', async () => {
    const r = await call(proxy.port, '/hop');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-hop-resp'], undefined);
    assert.equal(r.headers['proxy-authenticate'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=5');
    assert.equal(r.headers['x-kept'], 'yes');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  });

  it('appends x-forwarded-for and sets x-forwarded-host/-proto', async () => {
    let h = (await call(proxy.port, '/x', { headers: { host: 'svc.example:81' } })).json().headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-host'], 'svc.example:81');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h.host, 'svc.example:81', 'Host is passed through');
    h = (await call(proxy.port, '/x', { headers: { 'x-forwarded-for': '10.1.1.1', 'x-forwarded-host': 'orig', 'x-forwarded-proto': 'https' } })).json().headers;
    assert.equal(h['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
    assert.equal(h['x-forwarded-host'], 'orig');
    assert.equal(h['x-forwarded-proto'], 'https');
  });

  it('creates a traceparent when absent, propagates a valid one, replaces an invalid one', async () => {
    let h = (await call(proxy.port, '/t')).json().headers;
    assert.match(h.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    h = (await call(proxy.port, '/t', { headers: { traceparent: tp, tracestate: 'k=v' } })).json().headers;
    assert.equal(h.traceparent, tp);
    assert.equal(h.tracestate, 'k=v');
    h = (await call(proxy.port, '/t', { headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', tracestate: 'k=v' } })).json().headers;
    assert.match(h.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.notEqual(h.traceparent.slice(3, 35), '00000000000000000000000000000000');
    assert.equal(h.tracestate, undefined, 'tracestate of an invalid parent is dropped');
  });

  it('streams a 5 MB POST body both ways', async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const r = await call(proxy.port, '/echo', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(body).digest('hex'));
  });

  it('streams a chunked request body', async () => {
    const r = await rawRequest(proxy.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    assert.equal(statusOf(r), 200);
    assert.match(r, /hello/);
    assert.match(r, / world/);
  });

  it('refuses Content-Length together with Transfer-Encoding (never reaches the upstream)', async () => {
    const before = backend.hits.length;
    const r = await rawRequest(proxy.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(statusOf(r), 400);
    assert.equal(backend.hits.length, before);
    // The second line of defence, for callers whose parser is lenient.
    assert.throws(
      () => upstreamRequestHeaders({ rawHeaders: ['Content-Length', '5', 'Transfer-Encoding', 'chunked'], clientIp: '1.1.1.1', proto: 'http' }),
      (e: unknown) => e instanceof CrossmeshError && e.code === 'CM_ERR_BAD_REQUEST',
    );
  });

  it('refuses invalid header values and names (node parser)', async () => {
    const before = backend.hits.length;
    assert.equal(statusOf(await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n')), 400);
    assert.equal(statusOf(await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nX Bad: a\r\n\r\n')), 400);
    assert.equal(statusOf(await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab')), 400);
    assert.equal(backend.hits.length, before);
  });

  it('maps a refused connection to 502 JSON, failed before any byte was sent', async () => {
    const down = await startBackend('down');
    const port = down.port;
    await down.close();
    const saved = target;
    target = `http://127.0.0.1:${port}`;
    try {
      const r = await call(proxy.port, '/x');
      assert.equal(r.status, 502);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['x-via'], 'test-proxy');
      const body = r.json();
      assert.equal(body.errorCode, 'CM_ERR_BAD_GATEWAY');
      assert.match(body.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(body.message, /refused/);
      assert.match(body.message, /before any byte was sent/);
      assert.equal(last?.failedBeforeSend, true);
      assert.equal(last?.status, 502);
    } finally {
      target = saved;
    }
  });

  it('respondOnError: false leaves the answer to the caller', async () => {
    const down = await startBackend('down');
    const port = down.port;
    await down.close();
    const saved = target;
    target = `http://127.0.0.1:${port}`;
    respondOnError = false;
    try {
      const r = await call(proxy.port, '/x');
      assert.equal(r.status, 299);
      assert.equal(last?.responseStarted, false);
      assert.equal(last?.error?.code, 'CM_ERR_BAD_GATEWAY');
      assert.equal(last?.failedBeforeSend, true);
    } finally {
      target = saved;
      respondOnError = true;
    }
  });

  it('maps an upstream that does not answer in time to 504 JSON', async () => {
    timeoutMs = 100;
    const t0 = Date.now();
    try {
      const r = await call(proxy.port, '/slow');
      assert.equal(r.status, 504);
      assert.equal(r.json().errorCode, 'CM_ERR_TIMEOUT');
      assert.match(r.json().message, /did not answer within 100 ms/);
      assert.ok(Date.now() - t0 < 2500, 'timed out well before the upstream answered');
      assert.equal(last?.failedBeforeSend, false);
    } finally {
      timeoutMs = undefined;
    }
  });

  it('maps a connection reset before the response to 502', async () => {
    const rude = await listen((req) => req.socket.destroy());
    const saved = target;
    target = `http://127.0.0.1:${rude.port}`;
    try {
      const r = await call(proxy.port, '/x');
      assert.equal(r.status, 502);
      assert.equal(r.json().errorCode, 'CM_ERR_BAD_GATEWAY');
      assert.match(r.json().message, /closed the connection before responding/);
    } finally {
      target = saved;
      await rude.close();
    }
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
