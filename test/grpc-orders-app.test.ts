/**
 * examples/grpc-orders on its own, no mesh: server.mjs as a child process on a free APP_PORT,
 * called through test/support/grpc-orders.ts (NewOrder, WatchOrders, INVALID_ARGUMENT) and with
 * the example's client.mjs, directly and through a plain HTTP CONNECT proxy given in `http_proxy`
 * (what `crossmesh run` gives an app): that shows the client needs no proxy code of its own.
 * SIGTERM ends the server with exit code 0.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { eventually } from './helpers.js';
import { freePort } from '../src/util/net.js';
import { ORDERS_PROTO, ordersClient, type OrderReply } from './support/grpc-orders.js';

const SERVER = fileURLToPath(new URL('../../examples/grpc-orders/server.mjs', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../examples/grpc-orders/client.mjs', import.meta.url));

/** The environment of this test without any proxy setting (a developer's shell may have one). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|grpc|no|no_grpc)_proxy$/i.test(k)) delete env[k];
  return { ...env, ...extra };
}

function runClient(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // The client's calls carry deadlines of their own (10 s); this only bounds a broken test.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('examples/grpc-orders: server.mjs and client.mjs without the mesh', () => {
  let server: ChildProcess;
  let port: number;
  let out = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let client: ReturnType<typeof ordersClient>;

  before(async () => {
    port = await freePort();
    server = spawn(process.execPath, [SERVER], {
      env: cleanEnv({ APP_PORT: String(port), CLUSTER_NAME: 'cluster-t', CROSSMESH_INSTANCE_ID: 'inst1' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d) => (out += d));
    server.stderr!.on('data', (d) => (out += d));
    server.on('exit', (code, signal) => (exit = { code, signal }));
    await eventually(() => {
      if (exit) throw new Error(`server.mjs exited ${exit.code}: ${out}`);
      return out.includes(`listening on ${port}`);
    }, 15_000, 'server.mjs to listen').catch((err) => assert.fail(`${(err as Error).message}\n${out}`));
    client = ordersClient(`127.0.0.1:${port}`);
  });

  after(() => {
    client?.close();
    if (server && !exit) server.kill('SIGKILL');
  });

  it('the support client finds orders.proto from dist/test/support', () => {
    assert.ok(existsSync(ORDERS_PROTO), ORDERS_PROTO);
    assert.match(ORDERS_PROTO, /examples\/grpc-orders\/orders\.proto$/);
  });

  it('NewOrder answers with the cluster and instance from the environment', async () => {
    const r = await client.newOrder({ id: 'o1', item: 'book', quantity: 2 }, { deadlineMs: 5000 });
    assert.deepEqual(r, { cluster: 'cluster-t', instance: 'inst1', id: 'o1', message: 'order o1 placed in cluster-t: 2 x book' });
  });

  it('WatchOrders streams the requested number of replies, in order', async () => {
    const seen: OrderReply[] = [];
    for await (const m of client.watch(3, 10, { deadlineMs: 5000 })) seen.push(m);
    assert.deepEqual(seen.map((m) => m.message), ['update 1 of 3 from cluster-t', 'update 2 of 3 from cluster-t', 'update 3 of 3 from cluster-t']);
    assert.deepEqual(seen.map((m) => m.id), ['w0', 'w1', 'w2']);
  });

  it('a quantity <= 0 is INVALID_ARGUMENT naming the field and the order; a bad watch too', async () => {
    await assert.rejects(client.newOrder({ id: 'bad', item: 'book', quantity: 0 }, { deadlineMs: 5000 }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(err.details, 'quantity must be at least 1 (got 0) for order "bad"');
      return true;
    });
    await assert.rejects(async () => {
      for await (const _ of client.watch(0, 10, { deadlineMs: 5000 })) assert.fail('no message expected');
    }, (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /count must be 1\.\.1000 \(got 0\)/);
      return true;
    });
  });

  it('client.mjs prints one line per reply and exits 0; a usage error exits 2', async () => {
    const r = await runClient([`127.0.0.1:${port}`, '--count', '2', '--watch', '3'], cleanEnv());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'NewOrder order-1: served by cluster-t (instance inst1): order order-1 placed in cluster-t: 1 x book',
      'NewOrder order-2: served by cluster-t (instance inst1): order order-2 placed in cluster-t: 1 x book',
      'WatchOrders: update 1 of 3 from cluster-t (instance inst1)',
      'WatchOrders: update 2 of 3 from cluster-t (instance inst1)',
      'WatchOrders: update 3 of 3 from cluster-t (instance inst1)',
    ]);
    const bad = await runClient([`127.0.0.1:${port}`, '--count', 'many'], cleanEnv());
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--count takes a whole number/);
  });

  it('client.mjs reaches a mesh-style name through the CONNECT proxy in http_proxy, with no proxy code of its own', async () => {
    // A plain HTTP CONNECT proxy that maps the one name to the server: the part of the sidecar's
    // outbound listener that grpc-js relies on.
    const asked: string[] = [];
    const proxy: Server = createServer((sock) => {
      let head = '';
      const onData = (d: Buffer) => {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        const line = head.slice(0, head.indexOf('\r\n'));
        asked.push(line);
        if (line !== 'CONNECT nodeapp.dapr-test:3000 HTTP/1.1') return sock.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        const up = connect(port, '127.0.0.1', () => {
          sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          const rest = Buffer.from(head.slice(end + 4), 'latin1');
          if (rest.length) up.write(rest);
          sock.pipe(up).pipe(sock);
        });
        up.on('error', () => sock.destroy());
        sock.on('error', () => up.destroy());
      };
      sock.on('data', onData);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const proxyPort = (proxy.address() as { port: number }).port;
      const env = cleanEnv({ http_proxy: `http://127.0.0.1:${proxyPort}`, NO_PROXY: 'localhost,127.0.0.1,::1' });
      const r = await runClient(['nodeapp.dapr-test:3000', '--count', '1', '--watch', '2'], env);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^NewOrder order-1: served by cluster-t /m);
      assert.match(r.stdout, /^WatchOrders: update 2 of 2 from cluster-t/m);
      assert.ok(asked.length >= 1 && asked.every((l) => l === 'CONNECT nodeapp.dapr-test:3000 HTTP/1.1'), asked.join('; '));
    } finally {
      proxy.close();
    }
  });

  it('SIGTERM shuts the server down gracefully: exit code 0', async () => {
    server.kill('SIGTERM');
    const e = await eventually(() => exit, 10_000, 'server.mjs to exit after SIGTERM');
    assert.deepEqual(e, { code: 0, signal: null }, out);
  });
});
