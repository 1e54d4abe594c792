/**
 * The grpc-js hook of Dapr's gRPC proxying, against a real grpc-js server and client on
 * loopback: a call with dapr-app-id to another service reaches the proxy (and never grpc-js's
 * UNIMPLEMENTED), a call to a registered method or without dapr-app-id does not, the token is
 * checked first. If a grpc-js upgrade renames what the hook wraps, installing it throws.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { installUnknownServiceHandler } from './app-proxy.js';
import { loadDaprProto } from './protos.js';

const def = loadDaprProto('dapr/proto/runtime/v1/appcallback.proto');
const AppCallback = grpc.makeGenericClientConstructor(def['dapr.proto.runtime.v1.AppCallback'] as grpc.ServiceDefinition, 'AppCallback');
const Health = grpc.makeGenericClientConstructor(def['dapr.proto.runtime.v1.AppCallbackHealthCheck'] as grpc.ServiceDefinition, 'Health');

describe('Dapr gRPC proxying hook (installUnknownServiceHandler)', () => {
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  const proxied: string[] = [];
  server.addService(def['dapr.proto.runtime.v1.AppCallbackHealthCheck'] as grpc.ServiceDefinition, {
    HealthCheck: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
  });
  installUnknownServiceHandler(server, (stream, headers, appId) => {
    proxied.push(`${appId} ${headers[':path']}`);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '9', 'grpc-message': 'proxied' }, { endStream: true });
  }, (headers) => (headers['dapr-api-token'] === 'secret' ? undefined : { code: grpc.status.UNAUTHENTICATED, details: 'Unauthorized' }));
  let port = 0;
  const clients: grpc.Client[] = [];
  const client = <T extends grpc.Client>(C: new (a: string, c: grpc.ChannelCredentials) => T): T => {
    const c = new C(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };
  const md = (m: Record<string, string>) => {
    const x = new grpc.Metadata();
    for (const [k, v] of Object.entries(m)) x.set(k, v);
    return x;
  };
  const call = (c: grpc.Client, method: string, m: Record<string, string>) => new Promise<grpc.ServiceError | null>((resolve) => {
    (c as unknown as Record<string, (req: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void>)[method]({}, md(m), (e) => resolve(e));
  });

  after(() => {
    for (const c of clients) c.close();
    server.forceShutdown();
  });

  it('installs on a grpc-js server with channelz off, and refuses one with channelz on (the hook would be bypassed)', async () => {
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    assert.throws(() => installUnknownServiceHandler(new grpc.Server(), () => undefined, () => undefined), /grpc-js changed its server internals/);
  });

  it('a call with dapr-app-id to an unregistered service reaches the proxy, after the token check', async () => {
    const c = client(AppCallback);
    const ok = await call(c, 'OnInvoke', { 'dapr-app-id': 'nodeapp.dapr-test', 'dapr-api-token': 'secret' });
    assert.equal(ok?.code, 9);
    assert.equal(ok?.details, 'proxied');
    assert.deepEqual(proxied, ['nodeapp.dapr-test /dapr.proto.runtime.v1.AppCallback/OnInvoke']);
    const denied = await call(c, 'OnInvoke', { 'dapr-app-id': 'nodeapp' });
    assert.equal(denied?.code, grpc.status.UNAUTHENTICATED);
    assert.equal(proxied.length, 1);
  });

  it('without dapr-app-id, or for a registered method, grpc-js serves the call itself', async () => {
    const none = await call(client(AppCallback), 'OnInvoke', {});
    assert.equal(none?.code, grpc.status.UNIMPLEMENTED);
    const registered = await call(client(Health), 'HealthCheck', { 'dapr-app-id': 'x' });
    assert.equal(registered, null);
    assert.equal(proxied.length, 1);
  });
});
