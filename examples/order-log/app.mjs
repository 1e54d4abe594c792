// A Dapr subscriber, plain node:http: subscribes to topic `orders` of pubsub `pubsub`
// (programmatically, GET /dapr/subscribe) and logs every order nodeapp publishes.
//   POST /orders    <- the sidecar delivers each order as a CloudEvent; answers SUCCESS
//   GET  /received  -> the last 100 orders received, with the cluster that received them
// Env (set by `crossmesh run`): APP_PORT, CLUSTER_NAME.
import { createServer } from 'node:http';

const port = Number(process.env.APP_PORT ?? 3000);
const cluster = process.env.CLUSTER_NAME ?? 'unknown';
const received = [];

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && path === '/dapr/subscribe') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify([{ pubsubname: 'pubsub', topic: 'orders', route: '/orders' }]));
    }
    if (req.method === 'POST' && path === '/orders') {
      let event;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        // Not a CloudEvent: nothing retrying would fix.
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"status":"DROP"}');
      }
      received.push({ order: event.data, id: event.id, cluster });
      if (received.length > 100) received.shift();
      console.log(`order-log in ${cluster} received order ${JSON.stringify(event.data)} (event ${event.id})`);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"status":"SUCCESS"}');
    }
    if (req.method === 'GET' && path === '/received') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(received));
    }
    res.writeHead(404).end('not found\n');
  });
});

server.listen(port, '127.0.0.1', () => console.log(`order-log listening on ${port} in cluster ${cluster}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
