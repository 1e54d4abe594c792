/**
 * `crossmesh run --app-protocol grpc` with real cluster and sidecar processes: apps that speak
 * gRPC (the official SDK's DaprServer in gRPC mode, examples/grpcapp, and the raw grpc-js
 * AppCallback of test/support/grpc-app.ts) invoked by app id over HTTP with the official
 * @dapr/dapr client from an app of another cluster, where cluster-2's GlobalTrafficPolicy
 * decides as for HTTP apps; what arrives in OnInvoke and what the caller gets back; a bad
 * --app-protocol is a usage error that changes nothing.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommunicationProtocolEnum, DaprClient, HttpMethod, LogLevel } from '@dapr/dapr';
import { eventually, exportManifest, runCli, tempDir } from './helpers.js';

const GRPCAPP = fileURLToPath(new URL('../../examples/grpcapp/app.mjs', import.meta.url));
const GRPC_ECHO = fileURLToPath(new URL('./support/grpc-app.js', import.meta.url));

const GTP = `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: grpcapp}
spec:
  lbType: ActiveActive
  targets:
  - {clusterKey: default/default/default/cluster-1, weight: 100}
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: gecho}
spec: {lbType: FailOver, targets: [{clusterKey: default/default/default/cluster-1}]}
`;

describe('Dapr apps that speak gRPC (--app-protocol grpc) across clusters', () => {
  const { dir: home, cleanup } = tempDir('crossmesh-grpcapp-');
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  let dapr: DaprClient;
  let daprPort = '';

  async function envOf(cluster: string, appId: string, name: string): Promise<string> {
    const r = await cli(['--cluster', cluster, 'exec', '-n', 'dapr-test', '--app-id', appId, '--', process.execPath, '-e', `console.log(process.env.${name})`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  }

  before(async () => {
    const up = await cli(['up', '--clusters', 'control-plane,cluster-1,cluster-2', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    await Promise.all(['cluster-1', 'cluster-2'].map(async (c) => assert.equal((await cli(['--cluster', c, 'create', 'namespace', 'dapr-test'])).code, 0)));
    const grpc = ['--app-port', '3000', '--app-protocol', 'grpc', '--detach', '--'];
    const runs = await Promise.all([
      cli(['--cluster', 'cluster-1', 'run', '-n', 'dapr-test', '--app-id', 'grpcapp', ...grpc, process.execPath, GRPCAPP]),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'grpcapp', ...grpc, process.execPath, GRPCAPP]),
      cli(['--cluster', 'cluster-1', 'run', '-n', 'dapr-test', '--app-id', 'gecho', ...grpc, process.execPath, GRPC_ECHO]),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'client', '--detach', '--', 'sleep', '3600']),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const app of ['grpcapp', 'gecho']) assert.equal((await cli(['--cluster', 'cluster-1', 'apply', '-n', 'dapr-test', '-f', '-'], exportManifest(app))).code, 0);
    assert.equal((await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], GTP)).code, 0);
    daprPort = await envOf('cluster-2', 'client', 'DAPR_HTTP_PORT');
    dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort, communicationProtocol: CommunicationProtocolEnum.HTTP, logger: { level: LogLevel.Error } });
    let last = '';
    await eventually(async () => {
      const a = await cli(['--cluster', 'cluster-2', 'route', 'grpcapp.dapr-test:3000']);
      const b = await cli(['--cluster', 'cluster-2', 'route', 'gecho.dapr-test:3000']);
      last = a.stdout + a.stderr + b.stdout + b.stderr;
      return /cluster-1 via tunnel/.test(a.stdout) && /cluster-1 via tunnel/.test(b.stdout);
    }, 15_000, 'routes to cluster-1').catch((err) => assert.fail(`${err.message}\n${last}`));
  });

  after(async () => {
    await dapr?.stop().catch(() => undefined);
    await cli(['down', '--purge']);
    cleanup();
  });

  it('the official client over HTTP invokes the SDK\'s DaprServer (gRPC mode) by app id; cluster-2\'s ActiveActive policy sends calls to both clusters', async () => {
    const served = new Set<string>();
    for (let i = 0; i < 10 && served.size < 2; i++) {
      const r = (await dapr.invoker.invoke('grpcapp.dapr-test', 'hello', HttpMethod.POST, { n: i })) as { hello: { n: number }; contentType: string; cluster: string };
      assert.deepEqual(r.hello, { n: i });
      assert.equal(r.contentType, 'application/json');
      served.add(r.cluster);
    }
    assert.deepEqual([...served].sort(), ['cluster-1', 'cluster-2']);
    const where = (await dapr.invoker.invoke('grpcapp', 'where', HttpMethod.GET)) as { cluster: string };
    assert.match(where.cluster, /^cluster-[12]$/);
  });

  it('from another cluster, OnInvoke gets the method, verb, querystring, body bytes, content type and caller metadata as daprd delivers them', async () => {
    const body = Buffer.from([0xde, 0xad, 0, 0xbe, 0xef]);
    const res = await fetch(`http://127.0.0.1:${daprPort}/v1.0/invoke/gecho.dapr-test/method/a/b%20c?q=1&r=x%2Fy`, { method: 'PATCH', body, headers: { 'content-type': 'application/x-bytes', 'x-trace-me': 'yes' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.headers.get('x-app-header'), 'yes');
    const seen = (await res.json()) as { method: string; verb: number; querystring: string; contentType: string; data: string; metadata: Record<string, string>; cluster: string };
    assert.equal(seen.cluster, 'cluster-1');
    assert.equal(seen.method, 'a/b c');
    assert.equal(seen.verb, 9); // PATCH
    assert.equal(seen.querystring, 'q=1&r=x%2Fy');
    assert.equal(seen.contentType, 'application/x-bytes');
    assert.deepEqual(Buffer.from(seen.data, 'base64'), body);
    assert.equal(seen.metadata['x-trace-me'], 'yes');
    assert.equal(seen.metadata['dapr-caller-app-id'], 'client');
    assert.equal(seen.metadata['dapr-callee-app-id'], 'gecho');
    assert.match(seen.metadata.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  });

  it('an error status of the app in another cluster comes back as daprd maps it (NOT_FOUND → 404, the status as JSON)', async () => {
    const res = await fetch(`http://127.0.0.1:${daprPort}/v1.0/invoke/gecho.dapr-test/method/status/5`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { code: 5, message: 'app says 5' });
    await assert.rejects(dapr.invoker.invoke('gecho.dapr-test', 'status/7', HttpMethod.POST, {}));
  });

  it('a bad --app-protocol is a usage error naming the allowed values; nothing is created', async () => {
    for (const bad of ['h2c', 'websocket']) {
      const r = await cli(['--cluster', 'cluster-1', 'run', '-n', 'dapr-test', '--app-id', 'badproto', '--app-port', '3000', '--app-protocol', bad, '--detach', '--', process.execPath, GRPCAPP]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--app-protocol "${bad}" is not one of the allowed values: http, grpc`));
    }
    const svc = await cli(['--cluster', 'cluster-1', 'get', 'svc', '-n', 'dapr-test']);
    assert.equal(svc.code, 0, svc.stderr);
    assert.doesNotMatch(svc.stdout, /badproto/);
    const apps = join(home, 'apps', 'cluster-1', 'dapr-test');
    assert.equal(existsSync(join(apps, 'badproto')), false, readdirSync(apps).join(','));
  });
});
