// The seed's nodeapp, written for crossmesh: plain node:http, no dependencies.
//   GET  /ports     -> {"DAPR_HTTP_PORT":"...","DAPR_GRPC_PORT":"..."}, from cluster: <CLUSTER_NAME>
//   POST /neworder  -> saves body.data as state key "order" via the sidecar's Dapr state API,
//                      then publishes it to topic `orders` of pubsub `pubsub` (examples/order-log logs it)
//   GET  /order     -> the saved order, from cluster: <CLUSTER_NAME>
// Env (set by `crossmesh run`): APP_PORT, DAPR_HTTP_PORT, DAPR_GRPC_PORT, CLUSTER_NAME.
import { createServer } from 'node:http';

const port = Number(process.env.APP_PORT ?? 3000);
const daprPort = process.env.DAPR_HTTP_PORT ?? '3500';
const cluster = process.env.CLUSTER_NAME ?? 'unknown';
const stateUrl = `http://127.0.0.1:${daprPort}/v1.0/state/statestore`;
const publishUrl = `http://127.0.0.1:${daprPort}/v1.0/publish/pubsub/orders`;
const MAX_BODY = 1024 * 1024;

function reply(res, status, body, type = 'text/plain') {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw Object.assign(new Error('body is not JSON'), { status: 400 });
  }
}

const server = createServer(async (req, res) => {
  try {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/ports') {
      const body = JSON.stringify({ DAPR_HTTP_PORT: process.env.DAPR_HTTP_PORT, DAPR_GRPC_PORT: process.env.DAPR_GRPC_PORT });
      return reply(res, 200, `${body}, from cluster: ${cluster}\n`);
    }
    if (req.method === 'POST' && path === '/neworder') {
      const body = await readJson(req);
      // The original app hangs on a body without `data`; answer instead.
      if (!body || typeof body !== 'object' || body.data === undefined) {
        return reply(res, 400, JSON.stringify({ message: 'body must be JSON like {"data":{"orderId":"42"}}' }), 'application/json');
      }
      const saved = await fetch(stateUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'order', value: body.data }]) });
      if (!saved.ok) {
        console.error(`state save failed: ${saved.status} ${await saved.text()}`);
        return reply(res, 500, JSON.stringify({ message: 'Failed to persist state.' }), 'application/json');
      }
      console.log(`Successfully persisted state: ${JSON.stringify(body.data)}`);
      // The order is saved either way; a missing or failing pubsub is logged, not the caller's error.
      const published = await fetch(publishUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body.data) });
      if (!published.ok) console.error(`publish to orders failed: ${published.status} ${await published.text()}`);
      else console.log(`Published order to topic orders: ${JSON.stringify(body.data)}`);
      return reply(res, 200, `created order via cluster: ${cluster}${published.ok ? ', published to orders' : ''}\n`);
    }
    if (req.method === 'GET' && path === '/order') {
      const got = await fetch(`${stateUrl}/order`);
      if (!got.ok) return reply(res, 500, JSON.stringify({ message: `Could not get state: ${got.status} ${await got.text()}` }), 'application/json');
      const text = await got.text();
      return reply(res, 200, `${text}, from cluster: ${cluster}\n`);
    }
    reply(res, 404, 'not found\n');
  } catch (err) {
    if (!res.headersSent) reply(res, err.status ?? 500, JSON.stringify({ message: err.message }), 'application/json');
  }
});

server.listen(port, '127.0.0.1', () => console.log(`nodeapp listening on ${port} in cluster ${cluster}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
