// The gRPC orders app (the walkthrough's nodeapp in `crossmesh demo --grpc`, the bench's gRPC
// rows). Run it beside a sidecar with
//   crossmesh run -n dapr-test --app-id nodeapp --app-port 3000 --app-protocol grpc -- node examples/grpc-orders/server.mjs
// It serves crossmesh.examples.orders.Orders (orders.proto) with h2c on 127.0.0.1:$APP_PORT and
// says in every reply which cluster and instance served it (CLUSTER_NAME, CROSSMESH_INSTANCE_ID,
// both set by `crossmesh run`).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = fileURLToPath(new URL('./orders.proto', import.meta.url));
const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: String, defaults: true });
const { Orders } = grpc.loadPackageDefinition(def).crossmesh.examples.orders;
const cluster = process.env.CLUSTER_NAME ?? 'unknown';
const instance = process.env.CROSSMESH_INSTANCE_ID ?? String(process.pid);
const port = Number(process.env.APP_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('orders: APP_PORT is not set to a port; run me with `crossmesh run --app-port 3000 --app-protocol grpc -- node server.mjs` (or set APP_PORT)');
  process.exit(2);
}
/** Upper bounds of WatchOrders, so one call cannot hold the server for ever. */
const MAX_WATCH = 1000;
const MAX_INTERVAL_MS = 10_000;

const reply = (id, message) => ({ cluster, instance, id, message });
const server = new grpc.Server();
server.addService(Orders.service, {
  // No log line per order: the bench drives thousands of calls a second through this app, and
  // a synchronous write per call to app.log would be what it measures.
  NewOrder(call, callback) {
    const { id, item, quantity } = call.request;
    if (quantity <= 0) {
      return callback({ code: grpc.status.INVALID_ARGUMENT, details: `quantity must be at least 1 (got ${quantity}) for order "${id}"` });
    }
    const what = item.length > 40 ? `${item.slice(0, 40)}...` : item || 'item';
    callback(null, reply(id, `order ${id} placed in ${cluster}: ${quantity} x ${what}`));
  },
  WatchOrders(call) {
    const { count, intervalMs } = call.request;
    if (count <= 0 || count > MAX_WATCH || intervalMs < 0 || intervalMs > MAX_INTERVAL_MS) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `count must be 1..${MAX_WATCH} (got ${count}) and intervalMs 0..${MAX_INTERVAL_MS} (got ${intervalMs})` });
      return;
    }
    let n = 0;
    let timer;
    call.on('cancelled', () => clearTimeout(timer));
    const tick = () => {
      if (call.cancelled) return;
      call.write(reply(`w${n}`, `update ${n + 1} of ${count} from ${cluster}`));
      if (++n >= count) return call.end();
      timer = setTimeout(tick, intervalMs);
    };
    tick();
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`orders: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  console.log(`orders (gRPC) listening on ${port} in cluster ${cluster}`);
});
// Graceful: calls in flight (a WatchOrders stream too) finish, new ones are refused. A stream
// that would outlast the sidecar's 5 s before SIGKILL is cut then; nothing to clean up here.
const stop = () => server.tryShutdown(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
