/**
 * The benchmark's upstream: a minimal node:http server on $APP_PORT (or argv[2]) that answers
 * every request with a fixed ~1 KB body after reading the request body (POST 1 KB in the bench).
 * Prints "listening <port>" once it listens.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const BODY = Buffer.from(JSON.stringify({ ok: true, pad: 'x'.repeat(1000) }));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

const server = createServer((req, res) => {
  req.on('data', noop);
  req.on('end', () => {
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
});
function noop(): void {}
server.keepAliveTimeout = 60_000;
const port = Number(process.env.APP_PORT ?? process.argv[2] ?? 0);
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
