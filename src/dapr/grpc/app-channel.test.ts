/**
 * `--app-protocol grpc` on real in-process sidecars with a cluster, and a real gRPC app process
 * (test/support/grpc-app.ts, raw grpc-js serving @dapr/dapr's AppCallback): a Dapr invocation
 * made over HTTP (raw, and with the official client) reaches the app as AppCallback/OnInvoke with
 * what daprd puts there, the app's answer and its errors come back as daprd maps them for an HTTP
 * caller, plain mesh HTTP calls are refused, and a killed app is daprd's 503 until it is back.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CommunicationProtocolEnum, DaprClient, HttpMethod, LogLevel } from '@dapr/dapr';
import { kindFor } from '../../api/index.js';
import type { ApiClient } from '../../client/api-client.js';
import type { RunningCluster } from '../../cluster/cluster.js';
import { freePort } from '../../util/net.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/sidecar.js';
import { clusterWithNamespace, eventually, http, NS } from '../../../test/support/dapr-fixtures.js';
import { DAPR_SERVICE, daprServiceDefinition } from './server.js';
import { answerHeaders, GrpcAppChannel, httpStatusFromGrpcCode, invokeMetadata, traceBinFromTraceparent } from './app-channel.js';

const GRPC_APP = fileURLToPath(new URL('../../../test/support/grpc-app.js', import.meta.url));

let cluster: RunningCluster;
let client: ApiClient;
let appPort: number;
let app: ChildProcess | undefined;
let callee: RunningSidecar;
let caller: RunningSidecar;
let dapr: DaprClient;

/** The app's open connections, as its last `connections N` line said. */
let appConnections = 0;
let onConnections: (() => void) | undefined;

function startApp(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [GRPC_APP], { env: { ...process.env, APP_PORT: String(port), CLUSTER_NAME: 'cluster-1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  appConnections = 0;
  return new Promise((resolve, reject) => {
    let err = '';
    let out = '';
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith('listening')) resolve(child);
        const m = /^connections (\d+)$/.exec(line);
        if (m) {
          appConnections = Number(m[1]);
          onConnections?.();
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`the gRPC app exited (${code}): ${err}`)));
  });
}

/** Resolves once the app reports `n` open connections. */
function connectionsReach(n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (appConnections !== n) return;
      onConnections = undefined;
      resolve();
    };
    onConnections = check;
    check();
  });
}

function stopApp(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const base = () => `http://127.0.0.1:${caller.ports.http}`;

before(async () => {
  ({ cluster, client } = await clusterWithNamespace());
  await client.create(kindFor('v1', 'Service'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'gapp', namespace: NS }, spec: { ports: [{ port: 3000 }] } });
  appPort = await freePort('127.0.0.1');
  app = await startApp(appPort);
  callee = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'gapp' }, api: cluster.endpoint, servicePort: 3000, appPort, appProtocol: 'grpc', appApiToken: 'app-secret' });
  caller = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'caller' }, api: cluster.endpoint });
  dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(caller.ports.http), communicationProtocol: CommunicationProtocolEnum.HTTP, logger: { level: LogLevel.Error } });
  await eventually(async () => (await http(base(), 'GET', '/v1.0/invoke/gapp/method/ready')).status === 200, 10_000, 'the route to gapp');
});

after(async () => {
  await dapr?.stop().catch(() => undefined);
  await caller?.close();
  await callee?.close();
  if (app) await stopApp(app);
  await client?.close();
  await cluster?.close();
});

test('a Dapr invocation over HTTP reaches the gRPC app as OnInvoke: method, verb, querystring, body bytes, content type and metadata as daprd sends them', async () => {
  const body = Buffer.from([0, 1, 2, 250, 255, 10]);
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const r = await http(base(), 'PUT', '/v1.0/invoke/gapp.dapr-test/method/orders%20new/sub?x=1&y=a%20b', body, {
    'content-type': 'application/octet-stream', 'x-custom': 'v1', accept: 'text/plain', traceparent: tp, 'x-data-bin': Buffer.from('raw').toString('base64'),
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json');
  // The app's response header metadata as HTTP headers; grpc-* prefixed dapr- as daprd does.
  assert.equal(r.headers.get('x-app-header'), 'yes');
  assert.equal(r.headers.get('dapr-grpc-app'), '1');
  const seen = r.json;
  assert.equal(seen.method, 'orders new/sub');
  assert.equal(seen.verb, 4); // PUT
  assert.equal(seen.querystring, 'x=1&y=a%20b');
  assert.equal(seen.contentType, 'application/octet-stream');
  assert.equal(seen.typeUrl, '');
  assert.deepEqual(Buffer.from(seen.data, 'base64'), body);
  const md = seen.metadata as Record<string, string>;
  assert.equal(md['x-custom'], 'v1');
  // IANA permanent headers go prefixed with dapr- (daprd's InternalMetadataToGrpcMetadata).
  assert.equal(md['dapr-accept'], 'text/plain');
  assert.equal(md['dapr-content-type'], 'application/octet-stream');
  assert.equal(md['dapr-caller-app-id'], 'caller');
  assert.equal(md['dapr-caller-namespace'], NS);
  assert.equal(md['dapr-callee-app-id'], 'gapp');
  assert.equal(md['x-data-bin'], `bin:${Buffer.from('raw').toString('hex')}`);
  assert.equal(md.traceparent, tp);
  assert.equal(md['grpc-trace-bin'], `bin:${traceBinFromTraceparent(tp)!.toString('hex')}`);
  // APP_API_TOKEN travels as dapr-api-token; the caller's own token never does.
  assert.equal(md['dapr-api-token'], 'app-secret');
  assert.equal(md.host, undefined);
  assert.equal(md['dapr-host'], undefined);
  assert.equal(r.headers.get('traceparent'), tp);
});

test('the official @dapr/dapr client over HTTP invokes the gRPC app by app id (GET, POST with JSON)', async () => {
  const got = (await dapr.invoker.invoke('gapp', 'hello', HttpMethod.POST, { n: 42 })) as { method: string; verb: number; contentType: string; data: string; cluster: string };
  assert.equal(got.method, 'hello');
  assert.equal(got.verb, 3);
  assert.equal(got.contentType, 'application/json');
  assert.deepEqual(JSON.parse(Buffer.from(got.data, 'base64').toString()), { n: 42 });
  const get = (await dapr.invoker.invoke('gapp.dapr-test', 'items', HttpMethod.GET)) as { verb: number; data: string };
  assert.equal(get.verb, 1);
  assert.equal(get.data, '');
});

test('an error status of the app comes back as daprd maps it for an HTTP caller: HTTPStatusFromCode and the status as JSON', async () => {
  for (const [code, status] of [[5, 404], [3, 400], [7, 403], [9, 400], [10, 409], [12, 501], [13, 500], [14, 503], [16, 401], [8, 429], [4, 504], [1, 408], [2, 500]]) {
    const r = await http(base(), 'POST', `/v1.0/invoke/gapp/method/status/${code}`, 'x', { 'content-type': 'text/plain' });
    assert.equal(r.status, status, `code ${code}: ${r.text}`);
    assert.equal(r.text, JSON.stringify({ code, message: `app says ${code}` }));
    assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
    // Headers the app sent before failing still come back (daprd sets rResp.Headers() first).
    assert.equal(r.headers.get('x-app-header'), 'before-error');
    assert.equal(httpStatusFromGrpcCode(code), status);
  }
  // The SDK surfaces it as a failed call.
  await assert.rejects(dapr.invoker.invoke('gapp', 'status/5', HttpMethod.GET));
});

test('a gRPC caller (InvokeService on the caller\'s DAPR_GRPC_PORT) reaches the gRPC app too; the app\'s own gRPC status and message come back (daprd ErrorFromInternalStatus), with no dapr-http-status', async () => {
  const g = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(caller.ports.grpc), communicationProtocol: CommunicationProtocolEnum.GRPC, logger: { level: LogLevel.Error } });
  try {
    const got = (await g.invoker.invoke('gapp', 'viagrpc', HttpMethod.POST, { k: 'v' })) as { method: string; verb: number; data: string };
    assert.equal(got.method, 'viagrpc');
    assert.equal(got.verb, 3);
    assert.deepEqual(JSON.parse(Buffer.from(got.data, 'base64').toString()), { k: 'v' });
  } finally {
    await g.stop().catch(() => undefined);
  }
  const Ctor = grpc.makeGenericClientConstructor(daprServiceDefinition(), DAPR_SERVICE);
  const raw = new Ctor(`127.0.0.1:${caller.ports.grpc}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  try {
    const call = (method: string) => new Promise<grpc.ServiceError>((resolve, reject) => raw.InvokeService({ id: 'gapp', message: { method, httpExtension: { verb: 3 }, data: { value: Buffer.from('x') } } }, (e: grpc.ServiceError | null) => (e ? resolve(e) : reject(new Error('no error')))));
    // Every code passes through, also those CodeFromHTTPStatus(HTTPStatusFromCode(c)) would change
    // (INVALID_ARGUMENT → 400 → INTERNAL, FAILED_PRECONDITION, OUT_OF_RANGE, ABORTED, DATA_LOSS).
    for (const code of [5, 3, 9, 11, 10, 15, 14]) {
      const e = await call(`status/${code}`);
      assert.equal(e.code, code, `status/${code}: ${e.details}`);
      assert.equal(e.details, `app says ${code}`);
      assert.equal(e.metadata.get('dapr-http-status').length, 0);
      assert.equal(e.metadata.get('x-crossmesh-grpc-status').length, 0);
    }
  } finally {
    raw.close();
  }
});

test('data with a type URL is served as application/x-protobuf (daprd InvokeMethodResponse.ContentType)', async () => {
  const res = await fetch(`${base()}/v1.0/invoke/gapp/method/proto`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-protobuf');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from([10, 2, 104, 105]));
});

test('a plain mesh HTTP call (not a Dapr invocation) to the gRPC app is refused 502 CM_ERR_BAD_GATEWAY saying it speaks gRPC', async () => {
  // A POST with a body: the router passes a 502 of a request it cannot replay straight through
  // (a bodyless GET's 502 would be held back for a retry if the app had another endpoint, src/sidecar/outbound.ts).
  const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: caller.ports.outbound, method: 'POST', path: 'http://gapp.dapr-test:3000/hello', headers: { host: 'gapp.dapr-test:3000', 'content-type': 'text/plain' } }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    req.end('hi');
  });
  assert.equal(r.status, 502, r.body);
  const j = JSON.parse(r.body);
  assert.equal(j.errorCode, 'CM_ERR_BAD_GATEWAY');
  assert.match(j.message, /speaks gRPC \(--app-protocol grpc\)/);
});

test('the metadata reports the app protocol, and the sidecar saw the app ready over HTTP/2', async () => {
  const m = await http(`http://127.0.0.1:${callee.ports.http}`, 'GET', '/v1.0/metadata');
  assert.equal(m.json.appConnectionProperties.protocol, 'grpc');
  assert.equal(m.json.appConnectionProperties.port, appPort);
  assert.equal(await callee.appReady(2000), true);
});

test('the app killed: the caller gets daprd\'s 503 with the UNAVAILABLE status; the sidecar recovers once the app is back on its port', async () => {
  await stopApp(app!);
  app = undefined;
  // POST with a body: the caller's router passes the 503 through (see the refusal test above).
  const down = await http(base(), 'POST', '/v1.0/invoke/gapp/method/where', 'x', { 'content-type': 'text/plain' });
  assert.equal(down.status, 503, down.text);
  assert.equal(down.json.code, 14);
  assert.equal(typeof down.json.message, 'string');
  // A bodyless GET is retried elsewhere on a 503 only when another target exists; the app has one
  // endpoint, so its 503 comes back as it is (daprd's pass-through).
  const get = await http(base(), 'GET', '/v1.0/invoke/gapp/method/where');
  assert.equal(get.status, 503, get.text);
  assert.equal(get.json.code, 14);
  assert.equal(await callee.appReady(300), false);
  app = await startApp(appPort);
  assert.equal(await callee.appReady(5000), true);
  const back = await eventually(async () => {
    const r = await http(base(), 'GET', '/v1.0/invoke/gapp/method/where');
    return r.status === 200 ? r : undefined;
  }, 5000, 'the app back');
  assert.equal(back.json.method, 'where');
});

test('the sidecar holds one channel (one connection) to the app, and close() ends it: nothing is left running', async () => {
  await Promise.all([1, 2, 3, 4].map(() => http(base(), 'POST', '/v1.0/invoke/gapp/method/x', 'y', { 'content-type': 'text/plain' })));
  assert.equal(appConnections, 1);
  await callee.close();
  await connectionsReach(0);
});

test('ready means an HTTP/2 connection: a port that accepts TCP but answers HTTP/1.1, or nothing, is not ready', async () => {
  const h1 = createHttpServer((_q, s) => s.end('hi'));
  const held = new Set<import('node:net').Socket>();
  const silent = createNetServer((sock) => {
    held.add(sock);
    sock.once('close', () => held.delete(sock));
  });
  await Promise.all([h1, silent].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))));
  try {
    for (const srv of [h1, silent]) {
      const ch = new GrpcAppChannel('127.0.0.1', (srv.address() as { port: number }).port);
      try {
        assert.equal(await ch.waitForReady(1000), false);
      } finally {
        ch.close();
      }
    }
  } finally {
    h1.closeAllConnections();
    for (const sock of held) sock.destroy();
    await Promise.all([h1, silent].map((srv) => new Promise((r) => srv.close(r))));
  }
});

test('metadata conversion units: permanent headers, hop headers and grpc-* names, the answer headers', () => {
  const md = invokeMetadata(['Host', 'h', 'Connection', 'keep-alive', 'Content-Length', '3', 'grpc-timeout', '1S', 'X-A', 'b', 'dapr-api-token', 'caller'], 'tok');
  assert.deepEqual(md.getMap(), { 'dapr-content-length': '3', 'x-a': 'b', 'dapr-api-token': 'tok' });
  assert.equal(invokeMetadata(['dapr-api-token', 'caller']).get('dapr-api-token').length, 0);
  assert.equal(traceBinFromTraceparent('nonsense'), undefined);
  assert.equal(traceBinFromTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')!.length, 29);
  const g = invokeMetadata([]);
  g.set('content-type', 'application/grpc');
  g.set('grpc-status-x', '1');
  g.set('x-b', 'c');
  g.set('d-bin', Buffer.from('x'));
  assert.deepEqual(answerHeaders(g, undefined), ['dapr-grpc-status-x', '1', 'x-b', 'c']);
});
