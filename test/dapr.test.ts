import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommunicationProtocolEnum, DaprClient, HttpMethod, LogLevel, StateConcurrencyEnum, StateConsistencyEnum } from '@dapr/dapr';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { DAPR_SERVICE, daprServiceDefinition } from '../src/dapr/grpc/server.js';
import { RedisServer } from './support/redis-server.js';
import { eventually, exportManifest, runCli, tempDir } from './helpers.js';

const NODEAPP = fileURLToPath(new URL('../../examples/nodeapp/app.mjs', import.meta.url));
const MANIFESTS = fileURLToPath(new URL('../../examples/manifests/', import.meta.url));

/** An app that answers with the headers it received (to check Dapr's header rules). */
const ECHO_APP = `import { createServer } from 'node:http';
createServer((req, res) => {
  if (req.url.startsWith('/sleep/')) return void setTimeout(() => res.end('late'), Number(req.url.slice(7)));
  res.setHeader('content-type', 'application/json');
  res.setHeader('x-echo', 'yes');
  res.statusCode = req.url.startsWith('/status/') ? Number(req.url.slice(8)) : 200;
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body, cluster: process.env.CLUSTER_NAME })));
}).listen(Number(process.env.APP_PORT), '127.0.0.1');
`;

const GTP = `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: nodeapp}
spec:
  lbType: ActiveActive
  targets:
  - {clusterKey: default/default/default/cluster-1, weight: 100}
  - {clusterKey: default/default/default/cluster-3, weight: 100}
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: echo}
spec: {lbType: FailOver, targets: [{clusterKey: default/default/default/cluster-1}]}
`;

const EXPORT = exportManifest;

/**
 * The Dapr runtime of the sidecar, driven by the official @dapr/dapr client and raw HTTP,
 * across real cluster processes: invocation by app id lands where cluster-2's policy says,
 * the state API works with etags, and nodeapp's order is shared through sqlite and Redis.
 */
describe('Dapr runtime across clusters with the official @dapr/dapr client', () => {
  const { dir: home, cleanup } = tempDir('crossmesh-dapr-');
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  let daprPort = '';
  let dapr: DaprClient;
  let redis: RedisServer;
  const base = () => `http://127.0.0.1:${daprPort}`;

  async function envOf(cluster: string, ns: string, appId: string, name: string): Promise<string> {
    const r = await cli(['--cluster', cluster, 'exec', '-n', ns, '--app-id', appId, '--', process.execPath, '-e', `console.log(process.env.${name})`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  }

  before(async () => {
    redis = await RedisServer.start();
    const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    writeFileSync(join(home, 'echo.mjs'), ECHO_APP);
    await Promise.all(['cluster-1', 'cluster-2', 'cluster-3'].map(async (c) => {
      assert.equal((await cli(['--cluster', c, 'create', 'namespace', 'dapr-test'])).code, 0);
      const store = await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', join(MANIFESTS, 'statestore-sqlite.yaml')]);
      assert.equal(store.code, 0, store.stderr);
    }));
    const runs = await Promise.all([
      ...['cluster-1', 'cluster-3'].map((c) => cli(['--cluster', c, 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, NODEAPP])),
      cli(['--cluster', 'cluster-1', 'run', '-n', 'dapr-test', '--app-id', 'echo', '--app-port', '3000', '--detach', '--', process.execPath, join(home, 'echo.mjs')]),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'client', '--detach', '--', 'sleep', '3600']),
      cli(['--cluster', 'cluster-3', 'run', '-n', 'dapr-test', '--app-id', 'client', '--detach', '--', 'sleep', '3600']),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const c of ['cluster-1', 'cluster-3']) assert.equal((await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], EXPORT('nodeapp'))).code, 0);
    assert.equal((await cli(['--cluster', 'cluster-1', 'apply', '-n', 'dapr-test', '-f', '-'], EXPORT('echo'))).code, 0);
    assert.equal((await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], GTP)).code, 0);
    daprPort = await envOf('cluster-2', 'dapr-test', 'client', 'DAPR_HTTP_PORT');
    dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort, communicationProtocol: CommunicationProtocolEnum.HTTP, logger: { level: LogLevel.Error } });
    await eventually(async () => {
      const r = await cli(['--cluster', 'cluster-2', 'route', 'nodeapp.dapr-test:3000']);
      return /cluster-1 via tunnel/.test(r.stdout) && /cluster-3 via tunnel/.test(r.stdout);
    }, 10_000, 'routes to both exporters');
  });

  after(async () => {
    await dapr?.stop().catch(() => undefined);
    await cli(['down', '--purge']);
    await redis?.close();
    cleanup();
  });

  it('invokes nodeapp by app id across clusters; the GlobalTrafficPolicy of cluster-2 decides where it lands', async () => {
    const served = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const reply = String(await dapr.invoker.invoke('nodeapp.dapr-test', 'ports', HttpMethod.GET));
      assert.match(reply, /"DAPR_HTTP_PORT":"\d+"/);
      served.add(/from cluster: (\S+)/.exec(reply)![1]);
    }
    assert.deepEqual([...served].sort(), ['cluster-1', 'cluster-3']);
    // A one-part id is the caller's namespace (dapr-test).
    assert.match(String(await dapr.invoker.invoke('nodeapp', 'ports', HttpMethod.GET)), /from cluster: cluster-[13]/);
  });

  it('invokes apps of other clusters by app id over the Dapr gRPC API (DAPR_GRPC_PORT): the official client in gRPC mode, and raw grpc-js under cluster-2\'s policy', async () => {
    const grpcPort = await envOf('cluster-2', 'dapr-test', 'client', 'DAPR_GRPC_PORT');
    const g = new DaprClient({ daprHost: '127.0.0.1', daprPort: grpcPort, communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error } });
    // echo runs in cluster-1 only (FailOver to cluster-1); the caller is in cluster-2.
    const echo = (await g.invoker.invoke('echo.dapr-test', 'hello', HttpMethod.POST, { n: 1 })) as { cluster: string; url: string; body: string; headers: Record<string, string> };
    assert.equal(echo.cluster, 'cluster-1');
    assert.equal(echo.url, '/hello');
    assert.deepEqual(JSON.parse(echo.body), { n: 1 });
    assert.equal(echo.headers['dapr-caller-app-id'], 'client');
    // nodeapp (ActiveActive over cluster-1 and cluster-3) answers text, which the SDK's gRPC
    // invoker cannot parse: raw grpc-js calls show where each call landed.
    const Ctor = grpc.makeGenericClientConstructor(daprServiceDefinition(), DAPR_SERVICE);
    const raw = new Ctor(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    try {
      const served = new Set<string>();
      for (let i = 0; i < 8 && served.size < 2; i++) {
        const res = await new Promise<{ data: { value: Buffer } }>((resolve, reject) => raw.InvokeService({ id: 'nodeapp.dapr-test', message: { method: 'ports', httpExtension: { verb: 1 } } }, (e: Error | null, r: any) => (e ? reject(e) : resolve(r))));
        const text = res.data.value.toString();
        assert.match(text, /"DAPR_GRPC_PORT":"\d+"/);
        served.add(/from cluster: (\S+)/.exec(text)![1]);
      }
      assert.deepEqual([...served].sort(), ['cluster-1', 'cluster-3']);
    } finally {
      raw.close();
    }
  });

  it('keeps nodeapp\'s order in the shared sqlite store: POST /neworder in one cluster, GET /order from both', async () => {
    const created = String(await dapr.invoker.invoke('nodeapp.dapr-test', 'neworder', HttpMethod.POST, { data: { orderId: '42' } }));
    assert.match(created, /created order via cluster: cluster-[13]/);
    const readers = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const got = String(await dapr.invoker.invoke('nodeapp.dapr-test', 'order', HttpMethod.GET));
      assert.match(got, /^\{"orderId":"42"\}, from cluster: cluster-[13]/);
      readers.add(/from cluster: (\S+)/.exec(got)![1]);
    }
    assert.equal(readers.size, 2);
    await assert.rejects(dapr.invoker.invoke('nodeapp.dapr-test', 'neworder', HttpMethod.POST, { nodata: true }), /400|data/, 'a body without data is a 400, not a hang');
  });

  it('passes the target\'s status, headers and body through, and applies Dapr\'s header rules', async () => {
    const res = await fetch(`${base()}/v1.0/invoke/echo.dapr-test/method/path/../hello?x=1&y=2`, {
      method: 'PUT',
      headers: { 'dapr-caller-app-id': 'spoofed', 'dapr-api-token': 'leak', 'x-custom': 'kept', 'content-type': 'text/plain' },
      body: 'payload',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-echo'), 'yes');
    const echo = (await res.json()) as { method: string; url: string; headers: Record<string, string>; body: string; cluster: string };
    assert.equal(echo.cluster, 'cluster-1');
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.url, '/hello?x=1&y=2', 'method normalised, query kept');
    assert.equal(echo.body, 'payload');
    assert.equal(echo.headers['x-custom'], 'kept');
    assert.equal(echo.headers['dapr-caller-app-id'], 'client');
    assert.equal(echo.headers['dapr-caller-namespace'], 'dapr-test');
    assert.equal(echo.headers['dapr-callee-app-id'], 'echo');
    assert.equal(echo.headers['dapr-api-token'], undefined);
    assert.match(echo.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.ok(echo.headers['x-forwarded-for']);
    const status = await fetch(`${base()}/v1.0/invoke/echo.dapr-test/method/status/418`);
    assert.equal(status.status, 418, 'the target status passes through');

    const viaHeader = await fetch(`${base()}/some/method`, { headers: { 'dapr-app-id': 'echo.dapr-test' } });
    assert.equal(((await viaHeader.json()) as { url: string; headers: Record<string, string> }).url, '/some/method');
    const viaBasic = await fetch(`${base()}/basic`, { headers: { authorization: `Basic ${Buffer.from('dapr-app-id:echo.dapr-test').toString('base64')}` } });
    const basicEcho = (await viaBasic.json()) as { url: string; headers: Record<string, string> };
    assert.equal(basicEcho.url, '/basic');
    assert.equal(basicEcho.headers.authorization, undefined, 'the basic-auth form is not passed on');
  });

  it('answers invocation errors in Dapr\'s shape', async () => {
    const cases: [string, number, RegExp][] = [
      ['/v1.0/invoke/nope.dapr-test/method/x', 500, /^failed to invoke, id: nope\.dapr-test, err: .*no service "nope"/],
      ['/v1.0/invoke/a.b.c/method/x', 500, /^failed to invoke, id: a\.b\.c, err: invalid app id/],
      ['/v1.0/invoke/echo.dapr-test/method/bad%23hash', 500, /forbidden character/],
      ['/no-app-id-here', 404, /failed getting app id either from the URL path or the header dapr-app-id/],
    ];
    for (const [path, status, message] of cases) {
      const res = await fetch(`${base()}${path}`);
      assert.equal(res.status, status, path);
      const body = (await res.json()) as { errorCode: string; message: string };
      assert.equal(body.errorCode, 'ERR_DIRECT_INVOKE', path);
      assert.match(body.message, message, path);
    }
  });

  it('applies Dapr Resiliency to invocations: per-app timeout, retries and a circuit breaker that fails fast', async () => {
    const resiliency = `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: invocations}
spec:
  policies:
    timeouts: {fast: 700ms}
    retries: {twice: {policy: constant, duration: 10ms, maxRetries: 2}}
    circuitBreakers: {cb: {maxRequests: 1, interval: 30s, timeout: 60s, trip: "consecutiveFailures > 2"}}
  targets:
    apps:
      echo: {timeout: fast}
      ghost: {retry: twice, circuitBreaker: cb}
---
apiVersion: v1
kind: Service
metadata: {name: ghost}
spec: {ports: [{port: 3000}]}
`;
    const applied = await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], resiliency);
    assert.equal(applied.code, 0, applied.stderr);
    await eventually(async () => {
      const started = Date.now();
      const res = await fetch(`${base()}/v1.0/invoke/echo.dapr-test/method/sleep/3000`);
      await res.arrayBuffer();
      return res.status === 500 && Date.now() - started < 2500;
    }, 10_000, 'the 700ms timeout to apply');
    const timedOut = await fetch(`${base()}/v1.0/invoke/echo.dapr-test/method/sleep/3000`);
    assert.match(((await timedOut.json()) as { message: string }).message, /^failed to invoke, id: echo\.dapr-test, err: .*(timed out|timeout|did not answer)/i);
    // ghost has no endpoint anywhere: each call fails (3 attempts each); the breaker opens after 3 failures.
    const messages: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base()}/v1.0/invoke/ghost.dapr-test/method/x`);
      assert.equal(res.status, 500);
      messages.push(((await res.json()) as { message: string }).message);
    }
    assert.match(messages[0], /no local endpoint of dapr-test\/ghost/);
    assert.match(messages[2], /circuit breaker|open/i, messages.join(' | '));
  });

  it('state with the client: save/get/delete with etags, first-write conflicts, bulk, transaction', async () => {
    await dapr.state.save('statestore', [{ key: 'k1', value: { a: 1 } }, { key: 'k2', value: 'two' }]);
    assert.deepEqual(await dapr.state.get('statestore', 'k1'), { a: 1 });
    const first = await fetch(`${base()}/v1.0/state/statestore/k1`);
    const etag = first.headers.get('etag')!;
    assert.ok(etag);
    // first-write with the current etag succeeds; with the now stale one: 409 ERR_STATE_SAVE.
    const firstWrite = { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE, consistency: StateConsistencyEnum.CONSISTENCY_STRONG };
    const ok = await dapr.state.save('statestore', [{ key: 'k1', value: { a: 2 }, etag, options: firstWrite }]);
    assert.equal(ok.error, undefined);
    const stale = await fetch(`${base()}/v1.0/state/statestore`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'k1', value: { a: 3 }, etag, options: { concurrency: 'first-write' } }]) });
    assert.equal(stale.status, 409);
    assert.equal(((await stale.json()) as { errorCode: string }).errorCode, 'ERR_STATE_SAVE');
    // The SDK reports a failed save in the result (it does not throw).
    const conflict = await dapr.state.save('statestore', [{ key: 'k1', value: 1, etag, options: firstWrite }]);
    assert.match(String(conflict.error), /409|etag mismatch/);
    const bulk = await dapr.state.getBulk('statestore', ['k1', 'k2', 'missing']);
    const byKey = new Map((bulk as { key: string; data?: unknown }[]).map((b) => [b.key, b.data]));
    assert.deepEqual(byKey.get('k1'), { a: 2 });
    assert.equal(byKey.get('k2'), 'two');
    assert.equal(byKey.get('missing') ?? '', '');
    await dapr.state.transaction('statestore', [
      { operation: 'upsert', request: { key: 't1', value: 'x' } },
      { operation: 'delete', request: { key: 'k2' } },
    ]);
    assert.equal(await dapr.state.get('statestore', 't1'), 'x');
    assert.equal(await dapr.state.get('statestore', 'k2'), '');
    const cur = (await fetch(`${base()}/v1.0/state/statestore/k1`)).headers.get('etag')!;
    // Same format as the real etag, another value.
    const other = cur.slice(0, -1) + (cur.endsWith('1') ? '2' : '1');
    const wrongDelete = await fetch(`${base()}/v1.0/state/statestore/k1`, { method: 'DELETE', headers: { 'if-match': other } });
    assert.equal(wrongDelete.status, 409);
    await dapr.state.delete('statestore', 'k1', { etag: cur } as never);
    assert.equal(await dapr.state.get('statestore', 'k1'), '');
  });

  it('concurrent first-write increments through two sidecars (cluster-2 and cluster-3) lose no update', async () => {
    const other = await envOf('cluster-3', 'dapr-test', 'client', 'DAPR_HTTP_PORT');
    const ports = [daprPort, other];
    await fetch(`${base()}/v1.0/state/statestore`, { method: 'POST', body: JSON.stringify([{ key: 'counter', value: 0 }]) });
    let saves = 0;
    let conflicts = 0;
    const clients = Array.from({ length: 40 }, async (_, i) => {
      const url = `http://127.0.0.1:${ports[i % 2]}/v1.0/state/statestore`;
      for (let n = 0; n < 5; n++) {
        for (;;) {
          const got = await fetch(`${url}/counter`);
          const value = Number(await got.text());
          const etag = got.headers.get('etag')!;
          const put = await fetch(url, { method: 'POST', body: JSON.stringify([{ key: 'counter', value: value + 1, etag, options: { concurrency: 'first-write' } }]) });
          await put.arrayBuffer();
          if (put.status === 204) { saves++; break; }
          assert.equal(put.status, 409);
          conflicts++;
        }
      }
    });
    await Promise.all(clients);
    const final = Number(await (await fetch(`${base()}/v1.0/state/statestore/counter`)).text());
    console.log(`# dapr counter: ${saves} successful first-write saves, ${conflicts} etag conflicts retried, final value ${final}`);
    assert.equal(final, saves);
    assert.equal(saves, 200);
  });

  it('reports a component that fails to load on crossmesh status, and the sidecar keeps serving', async () => {
    const bad = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: brokenstore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "127.0.0.1:1"}
  - {name: redisPassword, secretKeyRef: {name: missing-secret, key: pw}}
`;
    assert.equal((await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], bad)).code, 0);
    const st = await eventually(async () => {
      const r = await cli(['status']);
      return /cluster-2\s+dapr-test\s+client\s+brokenstore\s+state\.redis\s+failed\s+\S.*missing-secret/.test(r.stdout) ? r.stdout : undefined;
    }, 10_000, 'the failed component on status');
    assert.match(st, /cluster-2\s+dapr-test\s+client\s+statestore\s+state\.sqlite\s+loaded/);
    const health = await fetch(`${base()}/v1.0/healthz`);
    assert.equal(health.status, 204);
    const notLoaded = await fetch(`${base()}/v1.0/state/brokenstore/x`);
    assert.equal(notLoaded.status, 400);
    assert.equal(((await notLoaded.json()) as { errorCode: string }).errorCode, 'ERR_STATE_STORE_NOT_FOUND');
  });

  it('switches nodeapp to state.redis (password from a Secret) and shares the order through Redis', async () => {
    const yaml = readFileSync(join(MANIFESTS, 'statestore-redis.yaml'), 'utf8').replace('127.0.0.1:6379', redis.address);
    for (const c of ['cluster-1', 'cluster-3']) {
      const sec = await cli(['--cluster', c, 'create', 'secret', 'generic', 'redis', '-n', 'dapr-test', `--from-literal=redis-password=${redis.password}`]);
      assert.equal(sec.code, 0, sec.stderr);
      assert.equal((await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], yaml)).code, 0);
    }
    const db = new Redis({ host: '127.0.0.1', port: Number(redis.address.split(':')[1]), password: redis.password, lazyConnect: true });
    try {
      await db.connect();
      await eventually(async () => {
        await dapr.invoker.invoke('nodeapp.dapr-test', 'neworder', HttpMethod.POST, { data: { orderId: '43' } });
        return (await db.hget('nodeapp||order', 'data')) !== null;
      }, 10_000, 'nodeapp writes to Redis once the component reloaded');
      await dapr.invoker.invoke('nodeapp.dapr-test', 'neworder', HttpMethod.POST, { data: { orderId: '43' } });
      const hash = await db.hgetall('nodeapp||order');
      assert.equal(hash.data, '{"orderId":"43"}');
      assert.match(hash.version, /^\d+$/);
      const readers = new Set<string>();
      await eventually(async () => {
        const got = String(await dapr.invoker.invoke('nodeapp.dapr-test', 'order', HttpMethod.GET));
        assert.match(got, /^\{"orderId":"43"\}, from cluster: cluster-[13]/);
        readers.add(/from cluster: (\S+)/.exec(got)![1]);
        return readers.size === 2;
      }, 10_000, 'both clusters read the order from Redis');
    } finally {
      db.disconnect();
    }
  });
});
