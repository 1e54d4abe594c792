import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisServer } from '../support/redis-server.js';
import { eventually, exportManifest, runCli, tempDir } from '../helpers.js';
import { baselineSlowMs, fixedRateLoad, ms, nodeappPolicy, percentile, proxyGet, recoveryMs, rssMb, sleep, socketCount, type Sample } from './load.js';
import { printTable, record } from './report.js';

const NODEAPP = fileURLToPath(new URL('../../../examples/nodeapp/app.mjs', import.meta.url));
const NODEAPP_URL = 'http://nodeapp.dapr-test:3000/ports';

/** An app that answers after 30 s (the slow upstream), counting the requests it got. */
const SLOW_APP = `import { createServer } from 'node:http';
let hits = 0;
createServer((req, res) => {
  if (req.url === '/hits') return void res.end(String(hits));
  hits++;
  setTimeout(() => res.end('late'), 30_000).unref();
}).listen(Number(process.env.APP_PORT), '127.0.0.1');
`;

const EXPORT = exportManifest;

const gtp = nodeappPolicy;

/** A GET on its own connection (closed after), so the caller leaves no keep-alive socket behind. */
function oneShotGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}


/**
 * Faults under bounded load, with real processes on loopback: four cluster processes
 * (`crossmesh up`), nodeapp beside its sidecar in cluster-1 and cluster-3, a client app in
 * cluster-2 whose sidecar is the HTTP proxy the load goes through, Redis for state.
 * Each scenario records sent / failed / recovery time; the table is printed at the end.
 */
describe('chaos: faults under load', () => {
  const { dir: home, cleanup } = tempDir('crossmesh-chaos-');
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let proxyPort = 0;
  let daprPort2 = '';
  let daprPort3 = '';
  let redis: RedisServer;

  const clusterPid = (name: string) => JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')).pid as number;
  function sidecarRecord(cluster: string, ns: string, appId: string): { pid: number; appPid: number; env: Record<string, string> } {
    const dir = join(home, 'apps', cluster, ns, appId);
    const [instance] = readdirSync(dir);
    return JSON.parse(readFileSync(join(dir, instance, 'sidecar.json'), 'utf8'));
  }
  const get = () => proxyGet(agent, proxyPort, NODEAPP_URL);
  async function apply(cluster: string, yaml: string): Promise<void> {
    const r = await cli(['--cluster', cluster, 'apply', '-n', 'dapr-test', '-f', '-'], yaml);
    assert.equal(r.code, 0, r.stderr);
  }
  async function routeIs(...res: RegExp[]): Promise<void> {
    let last = '';
    await eventually(async () => {
      const r = await cli(['--cluster', 'cluster-2', 'route', 'nodeapp.dapr-test:3000']);
      last = r.stdout + r.stderr;
      return res.every((re) => re.test(last));
    }, 15_000, `route ${res.join(' ')}`).catch((err) => {
      throw new Error(`${(err as Error).message}; last: ${last}`);
    });
  }

  before(async () => {
    redis = await RedisServer.start({ appendOnly: true });
    const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    writeFileSync(join(home, 'slow.mjs'), SLOW_APP);
    const component = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "${redis.address}"}
  - {name: redisPassword, secretKeyRef: {name: redis, key: redis-password}}
`;
    await Promise.all(['cluster-1', 'cluster-2', 'cluster-3'].map(async (c) => {
      assert.equal((await cli(['--cluster', c, 'create', 'namespace', 'dapr-test'])).code, 0);
      const sec = await cli(['--cluster', c, 'create', 'secret', 'generic', 'redis', '-n', 'dapr-test', `--from-literal=redis-password=${redis.password}`]);
      assert.equal(sec.code, 0, sec.stderr);
      await apply(c, component);
    }));
    const runs = await Promise.all([
      ...['cluster-1', 'cluster-3'].map((c) => cli(['--cluster', c, 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, NODEAPP])),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'client', '--detach', '--', 'sleep', '3600']),
      cli(['--cluster', 'cluster-3', 'run', '-n', 'dapr-test', '--app-id', 'client', '--detach', '--', 'sleep', '3600']),
      cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'slow', '--app-port', '3000', '--detach', '--', process.execPath, join(home, 'slow.mjs')]),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const c of ['cluster-1', 'cluster-3']) await apply(c, EXPORT('nodeapp'));
    const client2 = sidecarRecord('cluster-2', 'dapr-test', 'client');
    proxyPort = Number(new URL(client2.env.HTTP_PROXY).port);
    daprPort2 = client2.env.DAPR_HTTP_PORT;
    daprPort3 = sidecarRecord('cluster-3', 'dapr-test', 'client').env.DAPR_HTTP_PORT;
  });

  after(async () => {
    printTable();
    agent.destroy();
    // A stopped process must run again to be stopped cleanly.
    for (const c of ['control-plane', 'cluster-1', 'cluster-2', 'cluster-3']) {
      try { process.kill(clusterPid(c), 'SIGCONT'); } catch { /* gone */ }
    }
    await cli(['down', '--purge']);
    await redis?.close();
    cleanup();
  });

  it('1. ActiveActive cluster-1 + cluster-3, cluster-3\'s cluster process SIGKILLed under load: no failed GET, traffic on cluster-1 within 1 s, back on cluster-3 within 5 s of its restart', async () => {
    await apply('cluster-2', gtp('ActiveActive', ['cluster-1', 'cluster-3']));
    await routeIs(/cluster-1 via tunnel/, /cluster-3 via tunnel/);
    await eventually(async () => (await get()).cluster === 'cluster-3' && (await get()).cluster === 'cluster-1', 5000, 'both answer');
    const slowMs = await baselineSlowMs(get);
    let killAt = 0;
    let restartAt = 0;
    let upAt = 0;
    const res = await fixedRateLoad({
      total: 1300, ratePerSec: 100, send: get,
      during: async (at) => {
        await sleep(2000);
        killAt = at();
        process.kill(clusterPid('cluster-3'), 'SIGKILL');
        await sleep(3000);
        restartAt = at();
        const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
        assert.equal(up.code, 0, up.stderr);
        upAt = at();
      },
    });
    const moved = recoveryMs(res.samples, killAt, restartAt, slowMs, (s) => s.cluster === 'cluster-1');
    const back = res.samples.find((s) => s.t0 >= upAt && s.cluster === 'cluster-3');
    const backMs = back ? back.t1 - upAt : Infinity;
    const onlyC1 = res.samples.filter((s) => s.t0 > killAt + 1000 && s.t1 < restartAt);
    record({
      scenario: '1 ActiveActive, cluster-3 gateway SIGKILL + restart', sent: res.sent, failed: res.failed.length,
      recovery: `moved ${ms(moved)}; back ${ms(backMs)} after up (${ms(backMs + upAt - restartAt)} after restart began)`,
      notes: `up took ${ms(upAt - restartAt)}`,
    });
    assert.equal(res.failed.length, 0, JSON.stringify(res.failed.slice(0, 3)));
    assert.ok(moved <= 1000, `traffic moved to cluster-1 in ${moved} ms`);
    assert.ok(onlyC1.length > 0 && onlyC1.every((s) => s.cluster === 'cluster-1'), 'only cluster-1 between kill + 1 s and the restart');
    assert.ok(backMs <= 5000, `cluster-3 took traffic again ${backMs} ms after its restart`);
  });

  it('2. FailOver with a local nodeapp in cluster-2, the app process (not its sidecar) SIGKILLed under load: no failed GET', async () => {
    const r = await cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, NODEAPP]);
    assert.equal(r.code, 0, r.stderr);
    await apply('cluster-2', gtp('FailOver', ['cluster-1']));
    await eventually(async () => (await get()).cluster === 'cluster-2', 10_000, 'local nodeapp preferred');
    const slowMs = await baselineSlowMs(get);
    const local = sidecarRecord('cluster-2', 'dapr-test', 'nodeapp');
    let killAt = 0;
    const res = await fixedRateLoad({
      total: 600, ratePerSec: 100, send: get,
      during: async (at) => {
        await sleep(2000);
        killAt = at();
        process.kill(local.appPid, 'SIGKILL');
      },
    });
    const recovery = recoveryMs(res.samples, killAt, Infinity, slowMs, (s) => s.cluster === 'cluster-1');
    const served = new Map<string, number>();
    for (const s of res.samples) served.set(s.cluster ?? '?', (served.get(s.cluster ?? '?') ?? 0) + 1);
    record({ scenario: '2 FailOver, local app SIGKILL', sent: res.sent, failed: res.failed.length, recovery: `all on cluster-1 after ${ms(recovery)}`, notes: `served ${JSON.stringify(Object.fromEntries(served))}` });
    assert.equal(res.failed.length, 0, JSON.stringify(res.failed.slice(0, 3)));
    assert.ok((served.get('cluster-2') ?? 0) > 0 && (served.get('cluster-1') ?? 0) > 0);
  });

  it('3. the control-plane cluster down for 10 s under load: no failed request; an export applied meanwhile propagates after it returns', async () => {
    await apply('cluster-2', gtp('ActiveActive', ['cluster-1', 'cluster-3']));
    await routeIs(/local endpoints: none/);
    await eventually(async () => (await get()).cluster === 'cluster-3', 5000, 'cluster-3 answers');
    const slowMs = await baselineSlowMs(get);
    let downAt = 0;
    let upAt = 0;
    let propagatedMs = Infinity;
    const extra = `apiVersion: v1
kind: Service
metadata: {name: extra}
spec: {ports: [{port: 3000}]}
---
${EXPORT('extra')}`;
    const res = await fixedRateLoad({
      total: 800, ratePerSec: 50, send: get,
      during: async (at) => {
        await sleep(1500);
        downAt = at();
        process.kill(clusterPid('control-plane'), 'SIGKILL');
        await sleep(1000);
        await apply('cluster-1', extra);
        await sleep(Math.max(0, 10_000 - (at() - downAt)));
        const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
        assert.equal(up.code, 0, up.stderr);
        upAt = at();
        await eventually(async () => /^extra\s/m.test((await cli(['--cluster', 'cluster-2', 'get', 'simp', '-n', 'dapr-test'])).stdout), 10_000, 'extra imported in cluster-2');
        propagatedMs = at() - upAt;
      },
    });
    const recovery = recoveryMs(res.samples, downAt, Infinity, slowMs);
    record({ scenario: '3 control plane down 10 s (SIGKILL, up again)', sent: res.sent, failed: res.failed.length, recovery: `data plane ${ms(recovery)}; export made while down imported ${ms(propagatedMs)} after it returned` });
    assert.equal(res.failed.length, 0, JSON.stringify(res.failed.slice(0, 3)));
    assert.ok(propagatedMs < 10_000);
  });

  it('4. cluster-2\'s own cluster process (the sidecar\'s API) stopped for 10 s under load: no failed request', async () => {
    const slowMs = await baselineSlowMs(get);
    let stopAt = 0;
    let contAt = 0;
    const res = await fixedRateLoad({
      total: 700, ratePerSec: 50, send: get,
      during: async (at) => {
        await sleep(1500);
        stopAt = at();
        process.kill(clusterPid('cluster-2'), 'SIGSTOP');
        await sleep(10_000);
        process.kill(clusterPid('cluster-2'), 'SIGCONT');
        contAt = at();
      },
    });
    const recovery = recoveryMs(res.samples, stopAt, Infinity, slowMs);
    record({ scenario: '4 cluster-2 process frozen 10 s (SIGSTOP/SIGCONT)', sent: res.sent, failed: res.failed.length, recovery: `${ms(recovery)}`, notes: `resumed at ${ms(contAt - stopAt)}` });
    assert.equal(res.failed.length, 0, JSON.stringify(res.failed.slice(0, 3)));
    // The sidecar's API is back: a new policy reaches it.
    await apply('cluster-2', gtp('ActiveActive', ['cluster-1']));
    await routeIs(/cluster-1 via tunnel/);
    await eventually(async () => {
      const seen = new Set<string | undefined>();
      for (let i = 0; i < 6; i++) seen.add((await get()).cluster);
      return seen.size === 1 && seen.has('cluster-1');
    }, 10_000, 'the sidecar follows the new policy');
  });

  it('5. Redis (appendonly) restarted while writes run: every write answered 204 is readable; writes during the outage fail with a clear error', async () => {
    const url = `http://127.0.0.1:${daprPort2}/v1.0/state/statestore`;
    await eventually(async () => (await fetch(url, { method: 'POST', body: JSON.stringify([{ key: 'probe', value: 1 }]) })).status === 204, 10_000, 'redis store loaded');
    let i = 0;
    const keys = new Map<number, string>();
    let restartAt = 0;
    let backAt = 0;
    const res = await fixedRateLoad({
      total: 400, ratePerSec: 50,
      send: async () => {
        const n = i++;
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: `w${n}`, value: { n } }]) });
        const body = await r.text();
        keys.set(n, String(r.status));
        return { status: r.status, body: `${n} ${body}` };
      },
      ok: (s) => s.status === 204,
      during: async (at) => {
        await sleep(2000);
        restartAt = at();
        // Down for 2 s (SIGTERM: Redis flushes its append-only file), then up on the same port and dir.
        await redis.stop();
        await sleep(2000);
        await redis.restart();
        backAt = at();
      },
    });
    const first = res.samples.find((s) => s.t0 >= backAt && s.status === 204);
    const recovery = first ? first.t1 - backAt : Infinity;
    const accepted = [...keys].filter(([, st]) => st === '204').map(([n]) => n);
    let lost = 0;
    for (const n of accepted) {
      const got = await fetch(`${url}/w${n}`);
      const text = await got.text();
      if (got.status !== 200 || text !== JSON.stringify({ n })) lost++;
    }
    const unclear = res.failed.filter((s) => !(s.status === 500 && /ERR_STATE_SAVE/.test(s.body) && /redis|unavailable/i.test(s.body)));
    record({
      scenario: '5 Redis restart during writes', sent: res.sent, failed: res.failed.length,
      recovery: `${ms(recovery)} after Redis answered again`,
      notes: `outage ${ms(backAt - restartAt)}; ${accepted.length} writes got 204, ${lost} of them unreadable; failed ones: ${res.failed[0]?.status} ${res.failed[0]?.body.slice(0, 200).replace(/\|/g, '/') ?? 'none'}`,
    });
    assert.equal(lost, 0, `${lost} acknowledged writes lost`);
    assert.deepEqual(unclear.slice(0, 3), [], 'every failed write says the store is unavailable');
    assert.ok(res.failed.length > 0, 'writes during a 2 s outage fail');
    assert.ok(recovery < 5000, `writes succeed again ${recovery} ms after Redis is back`);
  });

  it('6. 50 concurrent clients increment one counter with first-write etags through cluster-2\'s and cluster-3\'s sidecars: final value = successful saves', async () => {
    const urls = [daprPort2, daprPort3].map((p) => `http://127.0.0.1:${p}/v1.0/state/statestore`);
    const init = await fetch(urls[0], { method: 'POST', body: JSON.stringify([{ key: 'counter', value: 0 }]) });
    assert.equal(init.status, 204);
    let saves = 0;
    let conflicts = 0;
    let sent = 0;
    const errors: string[] = [];
    const started = performance.now();
    await Promise.all(Array.from({ length: 50 }, async (_, c) => {
      const url = urls[c % 2];
      for (let attempt = 0; attempt < 12; attempt++) {
        const got = await fetch(`${url}/counter`);
        const value = Number(await got.text());
        const etag = got.headers.get('etag')!;
        sent++;
        const put = await fetch(url, { method: 'POST', body: JSON.stringify([{ key: 'counter', value: value + 1, etag, options: { concurrency: 'first-write' } }]) });
        const text = await put.text();
        if (put.status === 204) saves++;
        else if (put.status === 409) conflicts++;
        else errors.push(`${put.status} ${text}`);
      }
    }));
    const final = Number(await (await fetch(`${urls[1]}/counter`)).text());
    record({ scenario: '6 counter, 50 clients, first-write etags, 2 sidecars', sent, failed: errors.length, recovery: '-', notes: `${saves} saves, ${conflicts} etag conflicts, final value ${final}, ${ms(performance.now() - started)}` });
    assert.deepEqual(errors.slice(0, 3), []);
    assert.equal(final, saves);
  });

  it('7. a slow upstream (answers after 30 s): callers get a timeout at the Resiliency deadline; the sidecars\' sockets and memory return to baseline', async () => {
    await apply('cluster-2', `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: slow-timeout}
spec:
  policies: {timeouts: {oneSecond: 1s}}
  targets: {apps: {slow: {timeout: oneSecond}}}
`);
    const dapr = `http://127.0.0.1:${daprPort2}`;
    const client = sidecarRecord('cluster-2', 'dapr-test', 'client');
    const slow = sidecarRecord('cluster-2', 'dapr-test', 'slow');
    // Applied once the timeout answers.
    await eventually(async () => {
      const t = performance.now();
      const r = await oneShotGet(`${dapr}/v1.0/invoke/slow/method/x`);
      return r.status === 500 && performance.now() - t < 2500;
    }, 15_000, 'the 1 s timeout to apply');
    await sleep(1500);
    const before = { client: socketCount(client.pid), slow: socketCount(slow.pid), rss: rssMb(client.pid) };
    const N = 40;
    const t0 = performance.now();
    const replies = await Promise.all(Array.from({ length: N }, async () => {
      const t = performance.now();
      const r = await oneShotGet(`${dapr}/v1.0/invoke/slow/method/work`);
      return { status: r.status, body: JSON.parse(r.body) as { errorCode: string; message: string }, ms: performance.now() - t };
    }));
    // The outbound proxy path: the app gives up after 1 s (its own deadline); the sidecar must let go too.
    const proxied = await Promise.all(Array.from({ length: 10 }, () => new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxyPort, path: 'http://slow.dapr-test:3000/work', timeout: 1000, agent: false }, () => resolve('answered'));
      req.on('timeout', () => { req.destroy(); resolve('client timeout'); });
      req.on('error', () => resolve('client timeout'));
      req.end();
    })));
    const wall = performance.now() - t0;
    const timedOut = replies.filter((r) => r.status === 500 && r.body.errorCode === 'ERR_DIRECT_INVOKE' && /timed out|timeout|did not answer/i.test(r.body.message));
    const latencies = replies.map((r) => r.ms);
    let after = { client: 0, slow: 0, rss: 0 };
    const settle = performance.now();
    const settled = await eventually(() => {
      after = { client: socketCount(client.pid), slow: socketCount(slow.pid), rss: rssMb(client.pid) };
      return after.client <= before.client + 2 && after.slow <= before.slow + 2;
    }, 10_000, 'sockets back to baseline').then(() => true, () => false);
    const settleMs = performance.now() - settle;
    const hits = (await oneShotGet(`http://127.0.0.1:${slow.env.APP_PORT}/hits`)).body;
    record({
      scenario: '7 slow upstream (30 s), Resiliency timeout 1 s', sent: N + proxied.length, failed: N - timedOut.length,
      recovery: `sockets back in ${ms(settleMs)}`,
      notes: `invoke answered in ${ms(percentile(latencies, 0))}..${ms(percentile(latencies, 100))} with "${replies[0].body.message.slice(0, 90)}"; sockets client ${before.client}->${after.client}, slow app sidecar ${before.slow}->${after.slow}; client sidecar RSS ${before.rss}->${after.rss} MB; app got ${hits} requests; wall ${ms(wall)}`,
    });
    assert.equal(timedOut.length, N, JSON.stringify(replies.find((r) => !timedOut.includes(r))));
    assert.ok(percentile(latencies, 100) < 2500, `every invoke answered by ~1 s (max ${percentile(latencies, 100)} ms)`);
    assert.ok(proxied.every((p) => p === 'client timeout'));
    assert.ok(settled, `sockets: client sidecar ${before.client} -> ${after.client}, slow sidecar ${before.slow} -> ${after.slow}`);
    assert.ok(after.rss <= before.rss + 40, `client sidecar RSS ${before.rss} -> ${after.rss} MB`);
  });
});

export type { Sample };
