/**
 * A gRPC app for the `--app-protocol grpc` tests (`node dist/test/support/grpc-app.js`): serves
 * dapr.proto.runtime.v1.AppCallback from @dapr/dapr's protos with raw grpc-js on
 * 127.0.0.1:$APP_PORT and answers OnInvoke with what it received, as JSON:
 * {method, verb, querystring, contentType, typeUrl, data (base64), metadata, cluster}.
 *  - method `status/<code>`: fails with that gRPC code, message `app says <code>`, after sending
 *    the response header `x-app-header: before-error`
 *  - method `proto`: answers data with a type URL and no content type
 * Every answer also carries the response headers `x-app-header: yes` and `grpc-app: 1`.
 * Prints `listening <port>` once bound, and `connections <n>` whenever the number of open
 * connections changes.
 */
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { loadDaprProto } from '../../src/dapr/grpc/protos.js';
import { APP_CALLBACK_SERVICE } from '../../src/dapr/grpc/app-channel.js';

const def = loadDaprProto('dapr/proto/runtime/v1/appcallback.proto');
const server = new grpc.Server();
const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'not served by the test app' });
const impl: grpc.UntypedServiceImplementation = {};
for (const name of Object.keys(def[APP_CALLBACK_SERVICE] as grpc.ServiceDefinition)) impl[name] = unimplemented as grpc.handleUnaryCall<unknown, unknown>;
impl.OnInvoke = ((call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
  const r = call.request as { method: string; data: { type_url: string; value: Buffer } | null; contentType: string; httpExtension: { verb: number; querystring: string } | null };
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = Buffer.isBuffer(v) ? `bin:${v.toString('hex')}` : v;
  const head = new grpc.Metadata();
  head.set('x-app-header', 'yes');
  head.set('grpc-app', '1');
  const status = /^status\/(\d+)$/.exec(r.method);
  if (status) {
    head.set('x-app-header', 'before-error');
    call.sendMetadata(head);
    return cb({ code: Number(status[1]), details: `app says ${status[1]}` });
  }
  call.sendMetadata(head);
  const seen = {
    method: r.method, verb: r.httpExtension?.verb ?? -1, querystring: r.httpExtension?.querystring ?? '', contentType: r.contentType,
    typeUrl: r.data?.type_url ?? '', data: (r.data?.value ?? Buffer.alloc(0)).toString('base64'), metadata: md, cluster: process.env.CLUSTER_NAME,
  };
  if (r.method === 'proto') return cb(null, { data: { type_url: 'type.googleapis.com/google.protobuf.StringValue', value: Buffer.from([10, 2, 104, 105]) } });
  cb(null, { contentType: 'application/json', data: { type_url: '', value: Buffer.from(JSON.stringify(seen)) } });
}) as grpc.handleUnaryCall<unknown, unknown>;
server.addService(def[APP_CALLBACK_SERVICE] as grpc.ServiceDefinition, impl);
// A net front listener hands each connection to grpc-js (as src/dapr/grpc/listener.ts does), so
// the app can say how many connections it holds: `connections N` on every change.
let open = 0;
const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
const front = createServer((socket) => {
  open++;
  process.stdout.write(`connections ${open}\n`);
  socket.once('close', () => {
    open--;
    process.stdout.write(`connections ${open}\n`);
  });
  injector.injectConnection(socket);
});
front.once('error', (err) => {
  process.stderr.write(`cannot listen: ${err.message}\n`);
  process.exit(1);
});
front.listen(Number(process.env.APP_PORT), '127.0.0.1', () => process.stdout.write(`listening ${(front.address() as { port: number }).port}\n`));
process.once('SIGTERM', () => {
  front.close();
  server.tryShutdown(() => process.exit(0));
});
