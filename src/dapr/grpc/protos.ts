/**
 * Where @dapr/dapr's .proto files are and how they are loaded (the options of server.ts's
 * daprServiceDefinition), for the other services crossmesh speaks: the app's AppCallback
 * (app-channel.ts). Imported only with grpc-js, never by a sidecar that does not speak gRPC.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

/** The `proto/` folder of the installed @dapr/dapr package. */
export function daprProtoRoot(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@dapr/dapr/package.json')), 'proto');
}

const cache = new Map<string, protoLoader.PackageDefinition>();

/** One of @dapr/dapr's protos (`dapr/proto/runtime/v1/appcallback.proto`), loaded once per process. */
export function loadDaprProto(file: string): protoLoader.PackageDefinition {
  let def = cache.get(file);
  if (!def) {
    const root = daprProtoRoot();
    def = protoLoader.loadSync(join(root, file), { includeDirs: [root], keepCase: false, longs: String, enums: Number, defaults: true, oneofs: true });
    cache.set(file, def);
  }
  return def;
}
