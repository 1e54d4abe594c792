import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { describe, it } from 'node:test';
import { forward } from './forward.js';
import { UpstreamRegistry } from './h1/upstream.js';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

describe('UpstreamRegistry', () => {
  it('after close(), a request racing shutdown is answered 503 without reaching the upstream', async () => {
    let hits = 0;
    const upstream = createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    const pools = new UpstreamRegistry();
    const origin = `http://127.0.0.1:${await listen(upstream)}`;
    const front = createServer((req, res) => void forward(req, res, { origin, path: req.url ?? '/', pools }));
    const port = await listen(front);
    try {
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/a`)).text(), 'ok');
      await pools.close();
      const res = await fetch(`http://127.0.0.1:${port}/b`);
      assert.equal(res.status, 503);
      const body = (await res.json()) as { errorCode: string; message: string };
      assert.equal(body.errorCode, 'CM_ERR_SHUTTING_DOWN');
      assert.match(body.message, /was not sent: this proxy is shutting down/);
      assert.equal(hits, 1);
    } finally {
      for (const s of [front, upstream]) {
        const closed = new Promise((r) => s.close(r));
        s.closeAllConnections();
        await closed;
      }
    }
  });
});
