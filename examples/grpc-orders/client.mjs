// A command-line client of the orders app:
//   node client.mjs SERVICE.NAMESPACE:PORT [--count N] [--watch N]
// e.g. `crossmesh --cluster cluster-2 exec -n curl --app-id curl -- node examples/grpc-orders/client.mjs nodeapp.dapr-test:3000 --count 2 --watch 3`.
// Makes N NewOrder calls (default 1), then one WatchOrders stream of N messages (default none),
// and prints one line per reply or error. Exit code 0 when every call succeeded, 1 otherwise,
// 2 on a usage error.
//
// Nothing here knows about the mesh: under `crossmesh run`/`exec` the environment has
// `http_proxy` (the sidecar's outbound listener), which grpc-js honours by itself: it sends
// `CONNECT nodeapp.dapr-test:3000` to the sidecar and speaks HTTP/2 inside the tunnel, and the
// mesh routes each call by the caller cluster's GlobalTrafficPolicy.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const usage = (why) => {
  console.error(`client: ${why}\nusage: node client.mjs SERVICE.NAMESPACE:PORT [--count N] [--watch N]`);
  process.exit(2);
};
const args = process.argv.slice(2);
const target = args[0];
if (!target || target.startsWith('--')) usage('the target is missing');
const flags = { '--count': 1, '--watch': 0 };
for (let i = 1; i < args.length; i += 2) {
  if (!(args[i] in flags)) usage(`unknown argument ${args[i]}`);
  const n = Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 0 || n > 1000) usage(`${args[i]} takes a whole number 0..1000 (got ${args[i + 1] ?? 'nothing'})`);
  flags[args[i]] = n;
}

const PROTO = fileURLToPath(new URL('./orders.proto', import.meta.url));
const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: String, defaults: true });
const { Orders } = grpc.loadPackageDefinition(def).crossmesh.examples.orders;
const client = new Orders(target, grpc.credentials.createInsecure());
// Every call has a deadline: a mesh (or app) that never answers is an error line, not a hang.
const deadline = (ms) => ({ deadline: Date.now() + ms });
const failure = (err) => `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`;

let failed = 0;
for (let i = 0; i < flags['--count']; i++) {
  const id = `order-${i + 1}`;
  await new Promise((resolve) => client.NewOrder({ id, item: 'book', quantity: 1 }, deadline(10_000), (err, r) => {
    if (err) {
      failed++;
      console.log(`NewOrder ${id}: ${failure(err)}`);
    } else console.log(`NewOrder ${id}: served by ${r.cluster} (instance ${r.instance}): ${r.message}`);
    resolve();
  }));
}
if (flags['--watch'] > 0) {
  await new Promise((resolve) => {
    const call = client.WatchOrders({ count: flags['--watch'], intervalMs: 100 }, deadline(10_000 + flags['--watch'] * 100));
    call.on('data', (r) => console.log(`WatchOrders: ${r.message} (instance ${r.instance})`));
    call.on('error', (err) => {
      failed++;
      console.log(`WatchOrders: ${failure(err)}`);
      resolve();
    });
    call.on('end', resolve);
  });
}
client.close();
process.exit(failed ? 1 : 0);
