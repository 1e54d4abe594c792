/**
 * gRPC (HTTP/2) through the mesh with real processes: four clusters, the gRPC orders app
 * (examples/grpc-orders, `--app-protocol grpc`) in cluster-1, cluster-2 and cluster-3, exported
 * from 1 and 3, called from cluster-2 through its client sidecar's outbound listener, as h2c
 * with prior knowledge (grpc-js dialing the sidecar, `grpc.default_authority` naming the
 * service) and through a CONNECT tunnel (an unmodified grpc-js client under `crossmesh run`,
 * which honours the `http_proxy` the sidecar gives it). Covers: ActiveActive (both exporting
 * clusters answer), FailOver with the local app SIGKILLed under load (no call fails), server
 * streaming across clusters, status codes passing through, Dapr's gRPC proxying by dapr-app-id,
 * the gRPC metric, and hostile HTTP/2 (malformed frames, a stream flood, an oversized message,
 * oversized headers) refused without touching other connections.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { eventually, runCli, tempDir } from './helpers.js';
import { ordersClient } from './support/grpc-orders.js';

const SERVER = fileURLToPath(new URL('../../examples/grpc-orders/server.mjs', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../examples/grpc-orders/client.mjs', import.meta.url));
const SERVICE = 'orders.dapr-test:50051';

function gtp(lbType: string, targets: [string, number?][]): string {
  const t = targets.map(([c, w]) => `{clusterKey: default/default/default/${c}${w === undefined ? '' : `, weight: ${w}`}}`).join(', ');
  return `apiVersion: flomesh.io/v1alpha1\nkind: GlobalTrafficPolicy\nmetadata: {name: orders}\nspec: {lbType: ${lbType}, targets: [${t}]}\n`;
}

const EXPORT = `apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata: {name: orders}
spec:
  serviceAccountName: '*'
  rules: [{portNumber: 50051, path: '/', pathType: Prefix}]
`;

/** gRPC's retry policy (gRFC A6) for NewOrder: the client's declaration that the call may run twice. */
const RETRY_NEW_ORDER = {
  methodConfig: [{
    name: [{ service: 'crossmesh.examples.orders.Orders', method: 'NewOrder' }],
    retryPolicy: { maxAttempts: 3, initialBackoff: '0.05s', maxBackoff: '0.5s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
  }],
};

interface Reply { cluster: string; instance: string; id: string; message: string }

describe('gRPC across clusters through the mesh (h2c, CONNECT tunnels, L4 gateway tunnels, mTLS)', () => {
  const { dir: home, cleanup } = tempDir('crossmesh-grpc-mesh-');
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  let outbound = '';
  let daprGrpc = '';
  let client: ReturnType<typeof ordersClient>;

  async function envOf(cluster: string, ns: string, appId: string, name: string): Promise<string> {
    const r = await cli(['--cluster', cluster, 'exec', '-n', ns, '--app-id', appId, '--', process.execPath, '-e', `console.log(process.env.${name})`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  }

  async function policy(lbType: string, targets: [string, number?][], expect: RegExp): Promise<void> {
    assert.equal((await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], gtp(lbType, targets))).code, 0);
    let last = '';
    await eventually(async () => {
      const r = await cli(['--cluster', 'cluster-2', 'route', SERVICE, '-n', 'curl']);
      last = r.stdout + r.stderr;
      return expect.test(r.stdout);
    }, 15_000, `route ${lbType}`).catch((err) => assert.fail(`${err.message}\n${last}`));
  }

  /** `total` unary calls from `concurrency` loops; what failed and who answered. */
  async function metricOf(cluster: string, ns: string, app: string, re: RegExp): Promise<number> {
    const text = await fetch(`http://127.0.0.1:${await envOf(cluster, ns, app, 'DAPR_HTTP_PORT')}/metrics`).then((r) => r.text());
    return Number(re.exec(text)?.[1] ?? 0);
  }

  async function load(total: number, concurrency: number, during?: (sent: () => number) => Promise<void>, via?: ReturnType<typeof ordersClient>) {
    const c = via ?? client;
    let sent = 0;
    const failed: string[] = [];
    const byCluster = new Map<string, number>();
    const loops = Array.from({ length: concurrency }, async () => {
      while (sent < total) {
        const n = sent++;
        try {
          const r = (await c.newOrder({ id: `o${n}`, item: 'book', quantity: 1 }, { deadlineMs: 10_000 })) as Reply;
          byCluster.set(r.cluster, (byCluster.get(r.cluster) ?? 0) + 1);
        } catch (err) {
          failed.push(String((err as Error).message));
        }
      }
    });
    await Promise.all([...loops, during?.(() => sent)]);
    return { failed, byCluster };
  }

  before(async () => {
    const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    for (const [c, ns] of [['cluster-1', 'dapr-test'], ['cluster-3', 'dapr-test'], ['cluster-2', 'dapr-test'], ['cluster-2', 'curl']]) {
      assert.equal((await cli(['--cluster', c, 'create', 'namespace', ns])).code, 0);
    }
    const runs = await Promise.all([
      ...['cluster-1', 'cluster-2', 'cluster-3'].map((c) => cli(['--cluster', c, 'run', '-n', 'dapr-test', '--app-id', 'orders', '--app-port', '50051', '--app-protocol', 'grpc', '--detach', '--', process.execPath, SERVER])),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'curl', '--app-id', 'curl', '--service-account', 'curl', '--detach', '--', 'sleep', '3600']),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const c of ['cluster-1', 'cluster-3']) assert.equal((await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], EXPORT)).code, 0);
    outbound = (await envOf('cluster-2', 'curl', 'curl', 'http_proxy')).replace('http://', '');
    daprGrpc = await envOf('cluster-2', 'curl', 'curl', 'DAPR_GRPC_PORT');
    client = ordersClient(outbound, { authority: SERVICE });
  });

  after(async () => {
    client?.close();
    await cli(['down', '--purge']);
    cleanup();
  });

  it('ActiveActive: unary calls over h2c to the sidecar are answered by both exporting clusters', async () => {
    await policy('ActiveActive', [['cluster-1', 100], ['cluster-3', 100]], /cluster-1 via tunnel[\s\S]*cluster-3 via tunnel|cluster-3 via tunnel[\s\S]*cluster-1 via tunnel/);
    const { failed, byCluster } = await load(60, 4);
    assert.deepEqual(failed, []);
    assert.ok((byCluster.get('cluster-1') ?? 0) > 0 && (byCluster.get('cluster-3') ?? 0) > 0, JSON.stringify([...byCluster]));
  });

  it('an unmodified grpc-js client under `crossmesh run` reaches the service through a CONNECT tunnel (http_proxy)', async () => {
    const r = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', process.execPath, CLIENT, SERVICE, '--count', '9', '--watch', '2']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    // ActiveActive: the local instance and both exporting clusters, by weight.
    const served = new Set([...r.stdout.matchAll(/served by (cluster-\d)/g)].map((m) => m[1]));
    const route = await cli(['--cluster', 'cluster-2', 'route', SERVICE, '-n', 'curl']);
    assert.deepEqual([...served].sort(), ['cluster-1', 'cluster-2', 'cluster-3'], r.stdout + route.stdout);
    assert.match(r.stdout, /WatchOrders: update 2 of 2/);
  });

  it('server streaming across clusters: every message in order, from one instance', async () => {
    await policy('FailOver', [['cluster-3']], /FailOver[\s\S]*cluster-3 via tunnel/);
    const seen: Reply[] = [];
    for await (const m of client.watch(5, 20)) seen.push(m as Reply);
    assert.equal(seen.length, 5);
    assert.equal(new Set(seen.map((m) => `${m.cluster}/${m.instance}`)).size, 1);
    // The local instance of cluster-2 serves first under FailOver.
    assert.equal(seen[0].cluster, 'cluster-2');
  });

  it('the app\'s status codes and messages pass through unchanged; the sidecar counts them', async () => {
    await assert.rejects(client.newOrder({ id: 'bad', item: 'book', quantity: 0 }, { deadlineMs: 5000 }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /quantity/);
      return true;
    });
    const metrics = await fetch(`http://127.0.0.1:${await envOf('cluster-2', 'curl', 'curl', 'DAPR_HTTP_PORT')}/metrics`).then((r) => r.text());
    assert.match(metrics, /crossmesh_sidecar_outbound_grpc_total\{[^}]*grpc_status="OK"[^}]*\} [1-9]/);
    assert.match(metrics, /crossmesh_sidecar_outbound_grpc_total\{[^}]*grpc_status="INVALID_ARGUMENT"[^}]*\} [1-9]/);
  });

  it('an unknown mesh name or a path the mesh refuses is a clear gRPC status, not a hang', async () => {
    const other = ordersClient(outbound, { authority: 'nosuch.dapr-test:50051' });
    try {
      await assert.rejects(other.newOrder({ id: 'x', item: 'y', quantity: 1 }, { deadlineMs: 5000 }), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNIMPLEMENTED);
        assert.match(err.details, /no service "nosuch"/);
        return true;
      });
    } finally {
      other.close();
    }
  });

  it('Dapr gRPC proxying: a call to DAPR_GRPC_PORT with dapr-app-id reaches the app in another cluster', async () => {
    await policy('FailOver', [['cluster-1']], /FailOver[\s\S]*cluster-1 via tunnel/);
    const viaDapr = ordersClient(`127.0.0.1:${daprGrpc}`, { metadata: { 'dapr-app-id': 'orders.dapr-test' } });
    try {
      const r = (await viaDapr.newOrder({ id: 'd1', item: 'pen', quantity: 2 }, { deadlineMs: 5000 })) as Reply;
      assert.equal(r.id, 'd1');
      assert.match(r.cluster, /^cluster-[12]$/);
    } finally {
      viaDapr.close();
    }
  });

  it('FailOver: the local app SIGKILLed under load fails no unary call; cluster-1 takes over', async () => {
    await policy('FailOver', [['cluster-1']], /FailOver[\s\S]*local endpoints: 127[\s\S]*cluster-1 via tunnel/);
    const dir = join(home, 'apps', 'cluster-2', 'dapr-test', 'orders');
    const record = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0], 'sidecar.json'), 'utf8')) as { appPid: number };
    const unavailable = () => metricOf('cluster-2', 'curl', 'curl', /crossmesh_sidecar_outbound_grpc_total\{[^}]*grpc_status="UNAVAILABLE"[^}]*\} (\d+)/);
    const before = await unavailable();
    // Calls the mesh could not have delivered (the app took no connection, streams it refused)
    // are retried by the mesh. A call in flight inside the app when it dies may have run: the
    // mesh answers UNAVAILABLE and leaves the decision to the client, which declares NewOrder
    // retryable (its order id is the idempotency key) the gRPC way, in its service config.
    const retrying = ordersClient(outbound, { authority: SERVICE, channelOptions: { 'grpc.service_config': JSON.stringify(RETRY_NEW_ORDER) } });
    const { failed, byCluster } = await load(400, 4, async (sent) => {
      await eventually(() => sent() > 80, 10_000, 'load running');
      process.kill(record.appPid, 'SIGKILL');
    }, retrying).finally(() => retrying.close());
    const lostInFlight = (await unavailable()) - before;
    console.log(`# gRPC FailOver, local app killed under load: 400 sent, ${failed.length} failed, ${lostInFlight} answered UNAVAILABLE in flight (retried by the client), served ${JSON.stringify([...byCluster])}`);
    assert.deepEqual(failed, []);
    assert.ok((byCluster.get('cluster-2') ?? 0) > 0 && (byCluster.get('cluster-1') ?? 0) > 0, JSON.stringify([...byCluster]));
  });

  describe('hostile HTTP/2 on the outbound listener', () => {
    it('a malformed frame ends that connection with GOAWAY; calls on other connections go on', async () => {
      const sock = netConnect(Number(outbound.split(':')[1]), '127.0.0.1');
      const got: Buffer[] = [];
      sock.on('data', (d) => got.push(d));
      const closed = new Promise<void>((r) => sock.on('close', () => r()));
      sock.on('error', () => undefined);
      // The preface, then a SETTINGS frame whose length is no multiple of 6 (FRAME_SIZE_ERROR).
      sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 5, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5])]));
      const ok = client.newOrder({ id: 'during', item: 'x', quantity: 1 }, { deadlineMs: 5000 });
      await closed;
      const all = Buffer.concat(got);
      assert.ok(hasFrame(all, 0x7), `no GOAWAY among ${all.length} bytes`);
      assert.equal(((await ok) as Reply).id, 'during');
    });

    it('a flood of streams on one connection is refused beyond the stream limit and the connection closed; others are served', async () => {
      const sock = netConnect(Number(outbound.split(':')[1]), '127.0.0.1');
      sock.on('error', () => undefined);
      // Read what the server sends (else a paused socket never sees the server close it).
      let refusals = 0;
      sock.on('data', (d: Buffer) => { refusals += countFrames(d, 0x3); });
      const closed = new Promise<void>((r) => sock.on('close', () => r()));
      const authority = Buffer.from(SERVICE);
      // HEADERS (END_HEADERS, no END_STREAM): :method POST, :scheme http, :path /, :authority literal.
      const block = Buffer.concat([Buffer.from([0x83, 0x86, 0x84, 0x01, authority.length]), authority]);
      const frames: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])];
      for (let id = 1; id < 2 * 2000; id += 2) {
        const h = Buffer.alloc(9);
        h.writeUIntBE(block.length, 0, 3);
        h[3] = 1;
        h[4] = 4;
        h.writeUInt32BE(id, 5);
        frames.push(h, block);
      }
      sock.write(Buffer.concat(frames));
      const during = await load(20, 2);
      await closed;
      assert.ok(refusals > 0, 'no RST_STREAM for the streams beyond the limit');
      assert.deepEqual(during.failed, []);
      // The sidecar still serves afterwards.
      const after = await load(10, 2);
      assert.deepEqual(after.failed, []);
    });

    it('an oversized message gets the app\'s RESOURCE_EXHAUSTED and oversized headers are refused; the next call is served', async () => {
      await assert.rejects(client.newOrder({ id: 'big', item: 'x'.repeat(5 * 1024 * 1024), quantity: 1 }, { deadlineMs: 10_000 }), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.message);
        return true;
      });
      // Headers over the 16 KiB the HTTP/1.1 listeners allow: refused by the sidecar, not forwarded.
      const s = h2connect(`http://${outbound}`);
      s.on('error', () => undefined);
      const answer = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = s.request({ ':method': 'POST', ':path': '/crossmesh.examples.orders.Orders/NewOrder', ':authority': SERVICE, 'content-type': 'application/grpc', 'x-big': 'y'.repeat(20_000) });
        req.on('response', (h) => resolve(h as Record<string, unknown>));
        req.on('error', reject);
        req.end();
      });
      s.destroy();
      assert.equal(answer['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
      assert.equal(answer['x-crossmesh-error'], 'CM_ERR_TOO_LARGE');
      assert.match(String(answer['grpc-message']), /headers exceed 16384 bytes/);
      assert.equal(((await client.newOrder({ id: 'after', item: 'x', quantity: 1 }, { deadlineMs: 5000 })) as Reply).id, 'after');
    });
  });
});

/** RST_STREAM frames (or any `type`) in a chunk, counted loosely: a frame header split over reads is missed, not miscounted as many. */
function countFrames(buf: Buffer, type: number): number {
  let n = 0;
  for (let i = 0; i + 9 <= buf.length;) {
    const len = buf.readUIntBE(i, 3);
    if (buf[i + 3] === type) n++;
    i += 9 + len;
  }
  return n;
}

/** Whether `buf` (server → client bytes, from the first frame) holds a frame of `type`. */
function hasFrame(buf: Buffer, type: number): boolean {
  for (let i = 0; i + 9 <= buf.length;) {
    const len = buf.readUIntBE(i, 3);
    if (buf[i + 3] === type) return true;
    i += 9 + len;
  }
  return false;
}
