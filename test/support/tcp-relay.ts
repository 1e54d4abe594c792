/**
 * A TCP relay for the network-fault tests (the kernel here has no netem): listens on
 * `--listen host:port` (port 0 = a free one), pipes each connection to `--to host:port`, and
 * delivers every chunk, both ways, `delay` ms after it arrived (order kept). It prints
 * `listening PORT` once bound; a line `delay N` on stdin changes the delay for everything from
 * then on (chunks already queued keep their time) and is answered `delay N`.
 *
 *   node dist/test/support/tcp-relay.js --listen 10.77.0.3:0 --to 10.77.0.3:7443
 */
import { createServer, connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

function hostPort(flag: string): { host: string; port: number } {
  const i = process.argv.indexOf(flag);
  const v = i > 0 ? process.argv[i + 1] : undefined;
  const m = v ? /^(.+):(\d+)$/.exec(v) : null;
  if (!m) {
    process.stderr.write(`tcp-relay: ${flag} HOST:PORT is required\n`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
}

const listen = hostPort('--listen');
const to = hostPort('--to');
let delayMs = 0;

/** Copies `from` to `dest`, each chunk `delayMs` after it arrived; ends and errors pass through. */
function pipeDelayed(from: Socket, dest: Socket): void {
  const queue: { due: number; chunk: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length && queue[0].due <= now) {
      const { chunk } = queue.shift()!;
      if (chunk === null) dest.end();
      else dest.write(chunk);
    }
    if (queue.length) timer = setTimeout(flush, queue[0].due - now);
  };
  const push = (chunk: Buffer | null) => {
    if (delayMs === 0 && queue.length === 0) {
      if (chunk === null) dest.end();
      else dest.write(chunk);
      return;
    }
    queue.push({ due: performance.now() + delayMs, chunk });
    timer ??= setTimeout(flush, delayMs);
  };
  from.on('data', (d: Buffer) => push(d));
  from.on('end', () => push(null));
  from.on('close', () => {
    if (timer === undefined && queue.length === 0) dest.destroy();
  });
}

const server = createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
  const upstream = connect({ host: to.host, port: to.port, noDelay: true, allowHalfOpen: true });
  const kill = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', kill);
  upstream.on('error', kill);
  pipeDelayed(client, upstream);
  pipeDelayed(upstream, client);
});
server.listen(listen.port, listen.host, () => {
  const addr = server.address();
  process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : listen.port}\n`);
});
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = /^delay (\d+)$/.exec(line.trim());
  if (!m) return void process.stderr.write(`tcp-relay: unknown command ${JSON.stringify(line)} (want "delay N")\n`);
  delayMs = Number(m[1]);
  process.stdout.write(`delay ${delayMs}\n`);
}).on('close', () => process.exit(0));
