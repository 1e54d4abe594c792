/**
 * The pub/sub rows of `npm run bench`: publish from cluster-2 → delivered to a subscriber app in
 * cluster-3, through the sidecars' Dapr APIs, per broker (the embedded pubsub.sqlite, and
 * pubsub.redis when redis-server is installed). Its own CROSSMESH_HOME and clusters.
 *
 *  - throughput: N messages published by 16 concurrent publishers; msgs/s from the first publish
 *    to the last delivery;
 *  - latency: messages at a fixed rate, each carrying its send time (performance.timeOrigin +
 *    now(): one clock on one host); the subscriber keeps delivered - sent; p50/p90/p99.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisServer } from '../test/support/redis-server.js';

export interface PubSubRow {
  broker: string;
  available: boolean;
  note?: string;
  messages?: number;
  msgsPerSecond?: number;
  latencyMs?: { rate: number; count: number; p50: number; p90: number; p99: number };
}

const SUBSCRIBER = `import { createServer } from 'node:http';
const lat = [];
let delivered = 0;
let lastAt = 0;
createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    if (req.url === '/dapr/subscribe') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify([{ pubsubname: 'benchbus', topic: 'bench', route: '/bench' }]));
    }
    if (req.url === '/stats') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ delivered, lastAt, lat }));
    }
    if (req.url === '/reset') { lat.length = 0; delivered = 0; return res.end(); }
    const now = performance.timeOrigin + performance.now();
    const ev = JSON.parse(body);
    delivered++;
    lastAt = now;
    if (ev.data.sentAt) lat.push(now - ev.data.sentAt);
    res.setHeader('content-type', 'application/json');
    res.end('{"status":"SUCCESS"}');
  });
}).listen(Number(process.env.APP_PORT), '127.0.0.1');
`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2)) : NaN;
};

function cli(bin: string, home: string, argv: string[], input = ''): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...argv], { env: { ...process.env, CROSSMESH_HOME: home }, input, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(bin: string, home: string, argv: string[], input = ''): void {
  const r = cli(bin, home, argv, input);
  if (r.code !== 0) throw new Error(`crossmesh ${argv.join(' ')}: ${r.stderr || r.stdout}`);
}

function record(home: string, cluster: string, appId: string): { env: Record<string, string> } {
  const dir = join(home, 'apps', cluster, 'bench', appId);
  const [instance] = readdirSync(dir);
  return JSON.parse(readFileSync(join(dir, instance, 'sidecar.json'), 'utf8'));
}

function post(agent: Agent, port: number, path: string, body = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: body ? 'POST' : 'GET', path, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function measureBroker(bin: string, broker: string, metadata: string, opts: { messages: number; rate: number; seconds: number }): Promise<PubSubRow> {
  const home = mkdtempSync(join(tmpdir(), 'crossmesh-bench-pubsub-'));
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  try {
    must(bin, home, ['up', '--api-port', '0', '--gateway-port', '0']);
    writeFileSync(join(home, 'sub.mjs'), SUBSCRIBER);
    const component = `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: benchbus}\nspec:\n  type: ${broker}\n  version: v1\n  metadata:\n${metadata}`;
    for (const c of ['cluster-2', 'cluster-3']) {
      must(bin, home, ['--cluster', c, 'create', 'namespace', 'bench']);
      must(bin, home, ['--cluster', c, 'apply', '-n', 'bench', '-f', '-'], component);
    }
    must(bin, home, ['--cluster', 'cluster-3', 'run', '-n', 'bench', '--app-id', 'sub', '--app-port', '3000', '--detach', '--', process.execPath, join(home, 'sub.mjs')]);
    must(bin, home, ['--cluster', 'cluster-2', 'run', '-n', 'bench', '--app-id', 'pub', '--detach', '--', 'sleep', '3600']);
    const pubPort = Number(record(home, 'cluster-2', 'pub').env.DAPR_HTTP_PORT);
    const sub = record(home, 'cluster-3', 'sub').env;
    const subDapr = Number(sub.DAPR_HTTP_PORT);
    const subApp = Number(sub.APP_PORT);
    await until('the subscription', async () => /"state":"subscribed"/.test((await post(agent, subDapr, '/v1.0/metadata')).text), 20_000);
    const stats = async () => JSON.parse((await post(agent, subApp, '/stats')).text) as { delivered: number; lastAt: number; lat: number[] };
    const publish = (data: object) => post(agent, pubPort, '/v1.0/publish/benchbus/bench', JSON.stringify(data));

    // Throughput: 16 publishers, N messages, until the last is delivered.
    await post(agent, subApp, '/reset');
    let next = 0;
    const t0 = performance.timeOrigin + performance.now();
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < opts.messages) {
        const n = next++;
        const r = await publish({ n });
        if (r.status !== 204) throw new Error(`publish ${n}: ${r.status} ${r.text}`);
      }
    }));
    await until(`${opts.messages} deliveries`, async () => (await stats()).delivered >= opts.messages, 120_000);
    const s = await stats();
    const msgsPerSecond = Math.round(opts.messages / ((s.lastAt - t0) / 1000));

    // Latency at a fixed rate.
    await post(agent, subApp, '/reset');
    const total = opts.rate * opts.seconds;
    const start = performance.now();
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / opts.rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      sends.push(publish({ n: i, sentAt: performance.timeOrigin + performance.now() }));
    }
    await Promise.all(sends);
    await until(`${total} timed deliveries`, async () => (await stats()).lat.length >= total, 60_000);
    const lat = (await stats()).lat;
    return { broker, available: true, messages: opts.messages, msgsPerSecond, latencyMs: { rate: opts.rate, count: lat.length, p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99) } };
  } finally {
    agent.destroy();
    cli(bin, home, ['down', '--purge']);
    rmSync(home, { recursive: true, force: true });
  }
}

export async function pubsubRows(bin: string, smoke: boolean): Promise<PubSubRow[]> {
  const opts = smoke ? { messages: 300, rate: 100, seconds: 1 } : { messages: 3000, rate: 200, seconds: 5 };
  const rows: PubSubRow[] = [];
  rows.push(await measureBroker(bin, 'pubsub.sqlite', '  - {name: pollInterval, value: 250ms}\n', opts));
  let redis: RedisServer | undefined;
  try {
    redis = await RedisServer.start();
  } catch (err) {
    rows.push({ broker: 'pubsub.redis', available: false, note: (err as Error).message });
  }
  if (redis) {
    try {
      rows.push(await measureBroker(bin, 'pubsub.redis', `  - {name: redisHost, value: "${redis.address}"}\n  - {name: redisPassword, value: "${redis.password}"}\n`, opts));
    } finally {
      await redis.close();
    }
  }
  return rows;
}

export function pubsubTable(rows: PubSubRow[]): string {
  const head = 'pub/sub: publish in cluster-2 → delivered to a subscriber in cluster-3 (through both sidecars)';
  const lines = rows.map((r) => r.available
    ? `  ${r.broker.padEnd(14)} ${String(r.msgsPerSecond).padStart(6)} msgs/s (${r.messages} messages, 16 publishers)   at ${r.latencyMs!.rate} msgs/s: p50 ${r.latencyMs!.p50} ms  p90 ${r.latencyMs!.p90} ms  p99 ${r.latencyMs!.p99} ms`
    : `  ${r.broker.padEnd(14)} not measured: ${r.note}`);
  return [head, ...lines].join('\n');
}
