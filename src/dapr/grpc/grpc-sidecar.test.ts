/**
 * The Dapr gRPC API of real sidecars (startSidecar, in-process, with a cluster): InvokeService
 * through the mesh to an app by app id (verb, query, body, headers, the app's status as daprd maps
 * it), Shutdown stopping the sidecar as the HTTP /v1.0/shutdown does, and close() leaving nothing
 * of the gRPC server running.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CommunicationProtocolEnum, DaprClient, HttpMethod, LogLevel } from '@dapr/dapr';
import { kindFor } from '../../api/index.js';
import type { ApiClient } from '../../client/api-client.js';
import type { RunningCluster } from '../../cluster/cluster.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/sidecar.js';
import { DAPR_SERVICE, daprServiceDefinition } from './server.js';
import { clusterWithNamespace, eventually, NS, RESILIENCY } from '../../../test/support/dapr-fixtures.js';

let cluster: RunningCluster;
let client: ApiClient;
let app: Server;
let echo: RunningSidecar;
let caller: RunningSidecar;
let raw: grpc.Client & Record<string, Function>;

/** Answers with what it received; `/status/N` answers N. */
function startApp(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url?.startsWith('/sleep/')) return void setTimeout(() => res.end('late'), Number(req.url.slice(7)));
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-echo', 'yes');
      res.statusCode = req.url?.startsWith('/status/') ? Number(req.url.slice(8, 11)) : 200;
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

function invoke(req: object): Promise<{ res: any; headers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    const c = (raw.InvokeService as Function).call(raw, req, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(Object.assign(err, { headers })) : resolve({ res, headers })));
    c.on('metadata', (md: grpc.Metadata) => (headers = md));
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

before(async () => {
  ({ cluster, client } = await clusterWithNamespace());
  await client.create(kindFor('v1', 'Service'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: NS }, spec: { ports: [{ port: 3000 }] } });
  const a = await startApp();
  app = a.server;
  echo = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'echo' }, api: cluster.endpoint, servicePort: 3000, appPort: a.port });
  caller = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'caller' }, api: cluster.endpoint });
  const Ctor = grpc.makeGenericClientConstructor(daprServiceDefinition(), DAPR_SERVICE);
  raw = new Ctor(`127.0.0.1:${caller.ports.grpc}`, grpc.credentials.createInsecure()) as never;
  await eventually(async () => (await fetch(`http://127.0.0.1:${caller.ports.http}/v1.0/invoke/echo/method/ready`)).status === 200, 10_000, 'the route to echo');
});

after(async () => {
  raw?.close();
  await caller?.close();
  await echo?.close();
  app?.close();
  await client?.close();
  await cluster?.close();
});

test('InvokeService with the SDK in gRPC mode: the app by app id through the mesh, with Dapr\'s caller headers', async () => {
  const dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(caller.ports.grpc), communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error } });
  const got = (await dapr.invoker.invoke('echo', 'orders/42', HttpMethod.POST, { orderId: 42 })) as any;
  assert.equal(got.method, 'POST');
  assert.equal(got.url, '/orders/42');
  assert.deepEqual(JSON.parse(got.body), { orderId: 42 });
  assert.equal(got.headers['content-type'], 'application/json');
  assert.equal(got.headers['dapr-caller-app-id'], 'caller');
  assert.equal(got.headers['dapr-callee-app-id'], 'echo');
  assert.equal(got.headers['dapr-api-token'], undefined);
  assert.equal(((await dapr.invoker.invoke(`echo.${NS}`, 'x', HttpMethod.GET)) as any).method, 'GET');
});

test('InvokeService raw: verb, querystring, metadata as headers, the app\'s headers back, dapr-http-status', async () => {
  const md = { id: 'echo', message: { method: 'path/../hello', data: { value: Buffer.from('payload') }, contentType: 'text/plain', httpExtension: { verb: 4 /* PUT */, querystring: 'x=1&y=2' } } };
  const meta = new grpc.Metadata();
  meta.set('x-custom', 'kept');
  meta.set('dapr-caller-app-id', 'spoofed');
  const { res, headers } = await new Promise<{ res: any; headers: grpc.Metadata }>((resolve, reject) => {
    let h = new grpc.Metadata();
    const c = (raw.InvokeService as Function).call(raw, md, meta, (err: Error | null, r: unknown) => (err ? reject(err) : resolve({ res: r, headers: h })));
    c.on('metadata', (m: grpc.Metadata) => (h = m));
  });
  assert.equal(res.contentType, 'application/json');
  const echoed = JSON.parse(res.data.value.toString());
  assert.equal(echoed.method, 'PUT');
  assert.equal(echoed.url, '/hello?x=1&y=2', 'method normalised, query kept');
  assert.equal(echoed.body, 'payload');
  assert.equal(echoed.headers['content-type'], 'text/plain');
  assert.equal(echoed.headers['x-custom'], 'kept');
  assert.equal(echoed.headers['dapr-caller-app-id'], 'caller', 'not spoofable');
  assert.deepEqual(headers.get('dapr-http-status'), ['200']);
  assert.deepEqual(headers.get('x-echo'), ['yes']);
  assert.deepEqual(headers.get('dapr-content-type'), ['application/json'], 'permanent HTTP headers prefixed as daprd does');
  assert.match(String(headers.get('x-crossmesh-served-by')[0]), /^cluster-1\/echo-/);
});

test('InvokeService: data with a type URL and no content type reaches the app as application/x-protobuf, as daprd sends it', async () => {
  // google.protobuf.Any decodes with its proto field name type_url (protobufjs's built-in type).
  const { res } = await invoke({ id: 'echo', message: { method: 'typed', data: { type_url: 'type.googleapis.com/example.Msg', value: Buffer.from([8, 1]) }, contentType: '', httpExtension: { verb: 3 /* POST */, querystring: '' } } });
  const echoed = JSON.parse(res.data.value.toString());
  assert.equal(echoed.headers['content-type'], 'application/x-protobuf');
});

test('InvokeService: the app\'s non-2xx status is daprd\'s gRPC error (code from the HTTP status, ErrorInfo with the body); invocation failures', async () => {
  const err = await invoke({ id: 'echo', message: { method: 'status/404', httpExtension: { verb: 1 } } }).then(() => assert.fail('succeeded'), (e) => e as grpc.ServiceError & { headers: grpc.Metadata });
  assert.equal(err.code, grpc.status.NOT_FOUND);
  assert.equal(err.details, 'Not Found');
  const details = (err.metadata.get('grpc-status-details-bin')[0] as Buffer).toString('latin1');
  assert.ok(details.includes('http.code') && details.includes('404') && details.includes('{"method":"GET"'), details);
  assert.deepEqual(err.headers.get('dapr-http-status'), ['404']);
  const e500 = await invoke({ id: 'echo', message: { method: 'status/500', httpExtension: { verb: 1 } } }).catch((e) => e);
  assert.equal(e500.code, grpc.status.UNKNOWN);
  // A POST: a bodyless GET answered 503 is retried by the mesh router elsewhere first (as on the HTTP API).
  const e503 = await invoke({ id: 'echo', message: { method: 'status/503', data: { value: Buffer.from('x') }, httpExtension: { verb: 3 } } }).catch((e) => e);
  assert.equal(e503.code, grpc.status.UNAVAILABLE, e503.details);

  const cases: [object, RegExp][] = [
    [{ id: 'nope', message: { method: 'x', httpExtension: { verb: 1 } } }, /^failed to invoke, id: nope, err: .*no service "nope"/],
    [{ id: 'a.b.c', message: { method: 'x', httpExtension: { verb: 1 } } }, /^failed to invoke, id: a\.b\.c, err: invalid app id/],
    [{ id: 'echo', message: { method: 'x' } }, /^failed to invoke, id: echo, err: rpc error: code = InvalidArgument desc = missing HTTP extension field$/],
    [{ id: 'echo', message: { method: 'x', httpExtension: { verb: 0 } } }, /invalid HTTP verb$/],
    [{ id: 'echo', message: { method: 'bad%23hash', httpExtension: { verb: 1 } } }, /forbidden character/],
  ];
  for (const [req, message] of cases) {
    const e = await invoke(req).then(() => assert.fail('succeeded'), (x) => x as grpc.ServiceError);
    assert.equal(e.code, grpc.status.INTERNAL, e.details);
    assert.match(e.details, message);
  }
});

test('InvokeService runs inside the app\'s Resiliency policy (a per-app timeout), as the HTTP form', async () => {
  await client.create(RESILIENCY, {
    apiVersion: 'dapr.io/v1alpha1', kind: 'Resiliency', metadata: { name: 'echo-timeout', namespace: NS },
    spec: { policies: { timeouts: { fast: '300ms' } }, targets: { apps: { echo: { timeout: 'fast' } } } },
  });
  const slow = () => invoke({ id: 'echo', message: { method: 'sleep/3000', httpExtension: { verb: 1 } } });
  const e = await eventually(async () => {
    const t0 = Date.now();
    const err = await slow().then(() => undefined, (x) => x as grpc.ServiceError);
    return err && Date.now() - t0 < 2500 ? err : undefined;
  }, 10_000, 'the 300ms timeout to apply');
  assert.equal(e.code, grpc.status.INTERNAL);
  assert.match(e.details, /^failed to invoke, id: echo, err: .*(timed out|timeout)/i);
});

test('Shutdown over gRPC stops the sidecar as /v1.0/shutdown does; nothing of the gRPC server is left', async () => {
  const victim = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'victim' }, api: cluster.endpoint });
  const dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(victim.ports.grpc), communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error } });
  assert.equal((await dapr.metadata.get()).id, 'victim');
  await dapr.sidecar.shutdown();
  await eventually(async () => (await refused(victim.ports.http)) && (await refused(victim.ports.grpc)), 10_000, 'the sidecar to close its listeners');
  await victim.close(); // the same close the shutdown ran: resolves once everything is closed
});

test('close() ends open gRPC connections and calls', async () => {
  const other = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'closer' }, api: cluster.endpoint });
  const Ctor = grpc.makeGenericClientConstructor(daprServiceDefinition(), DAPR_SERVICE);
  const c = new Ctor(`127.0.0.1:${other.ports.grpc}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  try {
    const md = await new Promise<any>((resolve, reject) => c.GetMetadata({}, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));
    assert.equal(md.id, 'closer');
    const t0 = Date.now();
    await other.close();
    assert.ok(Date.now() - t0 < 2500, 'the idle connection does not hold the close');
    assert.ok(await refused(other.ports.grpc));
    const after = await new Promise<grpc.ServiceError>((resolve) => c.GetMetadata({}, { deadline: Date.now() + 2000 }, (e: grpc.ServiceError) => resolve(e)));
    assert.equal(after.code, grpc.status.UNAVAILABLE);
  } finally {
    c.close();
  }
});
