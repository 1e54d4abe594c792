/**
 * Pub/sub across clusters with real cluster processes, sidecars and apps (crossmesh up / run):
 * instances of one app id in cluster-1 and cluster-3 subscribed to one topic of a shared broker
 * form one consumer group. 2,000 messages are published from cluster-2 while cluster-1's app is
 * SIGKILLed mid-stream: every acknowledged publish is delivered at least once, no message goes to
 * both instances unless cluster-1 was holding it when it died, and what cluster-1 held is
 * reclaimed by cluster-3 within the configured processingTimeout. Once with the embedded broker
 * (pubsub.sqlite, one file for every cluster on the host), once with Redis.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { RedisServer } from './support/redis-server.js';
import { eventually, runCli, tempDir } from './helpers.js';

/** Appends "<cluster> <n> <event id>" per delivery to the file it is given, then answers SUCCESS. */
const SUBSCRIBER = `import { createServer } from 'node:http';
import { appendFileSync } from 'node:fs';
const log = process.argv[2];
createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    if (req.url === '/dapr/subscribe') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify([{ pubsubname: 'orderbus', topic: 'orders', route: '/orders' }]));
    }
    const ev = JSON.parse(body);
    appendFileSync(log, process.env.CLUSTER_NAME + ' ' + ev.data.n + ' ' + ev.id + '\\n');
    res.setHeader('content-type', 'application/json');
    res.end('{"status":"SUCCESS"}');
  });
}).listen(Number(process.env.APP_PORT), '127.0.0.1');
`;

const PROCESSING_TIMEOUT_MS = 2000;

function component(type: string, extra: string): string {
  return `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: orderbus}
spec:
  type: ${type}
  version: v1
  metadata:
  - {name: processingTimeout, value: "${PROCESSING_TIMEOUT_MS}ms"}
  - {name: redeliverInterval, value: 500ms}
${extra}`;
}

for (const broker of ['pubsub.sqlite', 'pubsub.redis'] as const) {
  describe(`pub/sub across clusters on ${broker}: one consumer group over cluster-1 and cluster-3, nothing lost when an instance is killed`, () => {
    const { dir: home, cleanup } = tempDir('crossmesh-pubsub-');
    const cli = (args: string[], input?: string) => runCli(args, { home, input });
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let redis: RedisServer | undefined;
    let daprPort = 0;
    const logOf = (c: string) => join(home, `${c}.log`);
    const lines = (c: string) => (existsSync(logOf(c)) ? readFileSync(logOf(c), 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')) : []);

    function sidecarRecord(cluster: string, appId: string): { pid: number; appPid: number; env: Record<string, string> } {
      const dir = join(home, 'apps', cluster, 'dapr-test', appId);
      const [instance] = readdirSync(dir);
      return JSON.parse(readFileSync(join(dir, instance, 'sidecar.json'), 'utf8'));
    }

    function publish(n: number): Promise<number> {
      return new Promise((resolve) => {
        const body = JSON.stringify({ n });
        const req = request({ host: '127.0.0.1', port: daprPort, method: 'POST', path: '/v1.0/publish/orderbus/orders', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.end(body);
      });
    }

    before(async () => {
      const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
      assert.equal(up.code, 0, up.stderr);
      writeFileSync(join(home, 'subscriber.mjs'), SUBSCRIBER);
      let extra = '  - {name: pollInterval, value: 100ms}\n';
      if (broker === 'pubsub.redis') {
        redis = await RedisServer.start();
        extra = `  - {name: redisHost, value: "${redis.address}"}\n  - {name: redisPassword, value: "${redis.password}"}\n`;
      }
      for (const c of ['cluster-1', 'cluster-2', 'cluster-3']) {
        assert.equal((await cli(['--cluster', c, 'create', 'namespace', 'dapr-test'])).code, 0);
        const r = await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], component(broker, extra));
        assert.equal(r.code, 0, r.stderr);
      }
      const runs = await Promise.all([
        ...['cluster-1', 'cluster-3'].map((c) => cli(['--cluster', c, 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, join(home, 'subscriber.mjs'), logOf(c)])),
        cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'checkout', '--detach', '--', 'sleep', '3600']),
      ]);
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      daprPort = Number(sidecarRecord('cluster-2', 'checkout').env.DAPR_HTTP_PORT);
      // Both instances subscribed (their sidecars' metadata lists the subscription).
      for (const c of ['cluster-1', 'cluster-3']) {
        const port = sidecarRecord(c, 'nodeapp').env.DAPR_HTTP_PORT;
        await eventually(async () => {
          const md = await (await fetch(`http://127.0.0.1:${port}/v1.0/metadata`)).json() as { crossmesh: { subscriptions: { topic: string; state: string }[] } };
          return md.crossmesh.subscriptions.some((s) => s.topic === 'orders' && s.state === 'subscribed');
        }, 15_000, `${c}'s subscription`);
      }
    });

    after(async () => {
      agent.destroy();
      await cli(['down', '--purge']);
      await redis?.close();
      cleanup();
    });

    it('crossmesh status shows each sidecar\'s subscription: pubsub, topic, the shared consumer group', async () => {
      const st = await cli(['status']);
      assert.equal(st.code, 0, st.stderr);
      for (const c of ['cluster-1', 'cluster-3']) {
        assert.match(st.stdout, new RegExp(`${c}\\s+dapr-test\\s+nodeapp\\s+orderbus\\s+orders\\s+nodeapp\\s+programmatic\\s+-\\s+subscribed`), st.stdout);
      }
    });

    if (broker === 'pubsub.redis') {
      it('Redis down: a publish answers 500 ERR_PUBSUB_PUBLISH_MESSAGE naming it, at once; after it is back publishing works again', async () => {
        await redis!.stop();
        const t0 = Date.now();
        const r = await fetch(`http://127.0.0.1:${daprPort}/v1.0/publish/orderbus/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":-1}' });
        const body = await r.json() as { errorCode: string; message: string };
        assert.equal(r.status, 500);
        assert.equal(body.errorCode, 'ERR_PUBSUB_PUBLISH_MESSAGE');
        assert.match(body.message, new RegExp(`^error when publishing to topic orders in pubsub orderbus: pubsub orderbus: cannot publish to redis at ${redis!.address.replace(/\./g, '\\.')}: not connected`));
        assert.ok(Date.now() - t0 < 2000, 'fails fast, not after a timeout');
        await redis!.restart();
        await eventually(async () => (await publish(-2)) === 204, 15_000, 'publishing after Redis is back');
      });
    }

    it('2,000 messages from cluster-2, cluster-1 SIGKILLed mid-stream: all delivered, duplicates only of what cluster-1 held, its messages reclaimed by cluster-3 in time', async () => {
      const acked: number[] = [];
      const failed: number[] = [];
      let killedAt = 0;
      const { appPid, pid } = sidecarRecord('cluster-1', 'nodeapp');
      for (let n = 0; n < 2000; n++) {
        const status = await publish(n);
        if (status === 204) acked.push(n);
        else failed.push(n);
        if (n === 600) {
          // Mid-stream, while cluster-1 holds messages: the app and its sidecar die at once (no goodbye).
          await eventually(() => lines('cluster-1').length > 100, 10_000, 'cluster-1 to be handling messages');
          process.kill(appPid, 'SIGKILL');
          process.kill(pid, 'SIGKILL');
          killedAt = Date.now();
        }
      }
      assert.deepEqual(failed, [], 'every publish acknowledged (the broker and cluster-2 were up)');
      const delivered = () => new Set([...lines('cluster-1'), ...lines('cluster-3')].map((l) => Number(l[1])).filter((n) => n >= 0));
      await eventually(() => acked.every((n) => delivered().has(n)), 30_000, 'every acknowledged message delivered');
      const allDoneAt = Date.now();
      const c1 = lines('cluster-1').map((l) => Number(l[1]));
      const c3 = lines('cluster-3').map((l) => Number(l[1]));
      const inC1 = new Set(c1);
      const both = [...new Set(c3.filter((n) => inC1.has(n)))];
      console.log(`# ${broker}: cluster-1 handled ${c1.length}, cluster-3 ${c3.length}, in both ${both.length}; all delivered ${allDoneAt - killedAt} ms after the kill`);
      assert.ok(c1.length > 100 && c3.length > 100, 'both instances took a share');
      assert.equal(new Set(c3).size, c3.length, 'cluster-3 got no message twice');
      // Only messages cluster-1 had in its app when it died (at most its concurrency) reach both.
      assert.ok(both.length <= 16, `${both.length} messages in both: more than cluster-1 could hold`);
      assert.ok(both.every((n) => n <= 600 + 16), `duplicates are from before the kill: ${both.join(',')}`);
      // Reclaimed within processingTimeout (plus the reclaim loop's period and delivery).
      assert.ok(allDoneAt - killedAt < PROCESSING_TIMEOUT_MS + 8000, `took ${allDoneAt - killedAt} ms`);
    });
  });
}
