// A Dapr app that speaks gRPC, written with the official SDK's DaprServer in gRPC mode (the
// AppCallback service over h2c on $APP_PORT). Run it beside a sidecar with
//   crossmesh run -n dapr-test --app-id grpcapp --app-port 3000 --app-protocol grpc -- node examples/grpcapp/app.mjs
// and invoke it by app id from any app: POST /v1.0/invoke/grpcapp.dapr-test/method/hello
import { CommunicationProtocolEnum, DaprServer, HttpMethod, LogLevel } from '@dapr/dapr';

const server = new DaprServer({
  serverHost: '127.0.0.1',
  serverPort: process.env.APP_PORT,
  communicationProtocol: CommunicationProtocolEnum.GRPC,
  clientOptions: { daprHost: '127.0.0.1', daprPort: process.env.DAPR_GRPC_PORT, communicationProtocol: CommunicationProtocolEnum.GRPC },
  logger: { level: LogLevel.Error },
});

const cluster = process.env.CLUSTER_NAME;
// The SDK hands a handler the body as text, the query string and the content type.
await server.invoker.listen('hello', async ({ body, query, metadata }) => ({ hello: body ? JSON.parse(body) : null, query, contentType: metadata?.contentType, cluster }), { method: HttpMethod.POST });
await server.invoker.listen('where', async () => ({ cluster, instance: process.env.CROSSMESH_INSTANCE_ID }), { method: HttpMethod.GET });
await server.start();
console.log(`grpcapp listening on ${process.env.APP_PORT} (gRPC) in ${cluster}`);
process.once('SIGTERM', () => server.stop().then(() => process.exit(0)));
