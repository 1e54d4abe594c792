import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers.js';

/** Processes whose command line mentions `needle` (our home dir), from /proc. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${d}/environ`, 'utf8');
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (cmd.includes(needle) || env.includes(needle)) pids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('crossmesh demo, end to end from a clean home', () => {
  const { dir: home, cleanup } = tempDir('crossmesh-demo-');
  after(async () => {
    await runCli(['down', '--purge'], { home });
    cleanup();
  });

  it('runs the walkthrough: every expectation holds, the Locality call fails, state is shared', async () => {
    const res = await runCli(['demo', '--api-port', '0', '--gateway-port', '0'], { home, timeoutMs: 120_000 });
    const out = res.stdout;
    assert.equal(res.code, 0, `${out}\n${res.stderr}`);
    for (const expected of [
      /✔ clusters up/,
      /✔ cluster-1, cluster-2, cluster-3 joined the ClusterSet/,
      /✔ statestore component applied/,
      /✔ pubsub component applied/,
      /✔ nodeapp runs in cluster-1 and cluster-3, curl in cluster-2, order-log in cluster-3/,
      /✔ cluster-2 imports nodeapp from cluster-1 and cluster-3/,
      /✔ GET \/ports fails under Locality/,
      /✔ GlobalTrafficPolicy nodeapp applied/,
      /✔ answers came from both cluster-1 and cluster-3/,
      /✔ POST \/neworder stores the order/,
      /✔ both clusters read the same order/,
      /\$ crossmesh --cluster cluster-2 exec -n curl --app-id curl -- curl -s/,
      /\{"orderId":"42"\}, from cluster: cluster-[13]/,
      /created order via cluster: cluster-[13], published to orders/,
      /✔ order-log in cluster-3 received \{"orderId":"42"\} from topic orders/,
    ]) assert.match(out, expected);
    assert.doesNotMatch(out, /✘/);
    // A step's output is shown in the order it was written: `up` prints its progress (stderr)
    // while it starts the clusters, and the table saying they started (stdout) after.
    const upStep = out.slice(out.indexOf('$ crossmesh up '), out.indexOf('✔ clusters up'));
    const table = upStep.search(/^ {2}NAME\s+STATE\s/m);
    assert.ok(table > 0, `up printed its table:\n${upStep}`);
    for (const name of ['control-plane', 'cluster-1', 'cluster-2', 'cluster-3']) {
      const progress = upStep.indexOf(`  starting ${name}...`);
      assert.ok(progress > 0 && progress < table, `"starting ${name}..." comes before up's table:\n${upStep}`);
    }
    const time = /Time from start to the last answer: ([\d.]+) s/.exec(out);
    assert.ok(time, 'the time to the last answer is printed');
    console.log(`# demo: time from start to the last answer ${time![1]} s`);
  });

  it('--grpc: the same walkthrough over gRPC (the orders app with --app-protocol grpc, its grpc-js client through http_proxy)', async () => {
    // -r first: the HTTP walkthrough's nodeapp is still running under the same app id.
    const res = await runCli(['demo', '-r', '-d', '--grpc'], { home, timeoutMs: 120_000 });
    const out = res.stdout;
    assert.equal(res.code, 0, `${out}\n${res.stderr}`);
    for (const expected of [
      /\$ crossmesh --cluster cluster-1 run -n dapr-test --app-id nodeapp --app-port 3000 --app-protocol grpc --detach -- \S+ examples\/grpc-orders\/server\.mjs/,
      /✔ nodeapp runs in cluster-1 and cluster-3, curl in cluster-2/,
      /\$ crossmesh --cluster cluster-2 exec -n curl --app-id curl -- \S+ examples\/grpc-orders\/client\.mjs nodeapp\.dapr-test:3000/,
      /NewOrder order-1: UNAVAILABLE: crossmesh: no local endpoint of dapr-test\/nodeapp:3000/,
      /✔ NewOrder fails with UNAVAILABLE under Locality/,
      /✔ GlobalTrafficPolicy nodeapp applied/,
      /NewOrder order-\d: served by cluster-1 /,
      /NewOrder order-\d: served by cluster-3 /,
      /✔ answers came from both cluster-1 and cluster-3/,
      /✔ WatchOrders streams 3 updates across clusters, in order, from one instance \(cluster-[13]\/nodeapp-\w+\)/,
    ]) assert.match(out, expected);
    assert.doesNotMatch(out, /✘/);
    assert.doesNotMatch(out, /statestore/, 'the gRPC app keeps no state: no store step');
  });

  it('-r removes the walkthrough, -u stops everything: no process left, no port held', async () => {
    const ports = readdirSync(join(home, 'clusters')).flatMap((c) => {
      const f = join(home, 'clusters', c, 'ports.json');
      return existsSync(f) ? Object.values(JSON.parse(readFileSync(f, 'utf8')) as Record<string, number>) : [];
    });
    assert.ok(ports.length >= 8);
    const reset = await runCli(['demo', '-r'], { home, timeoutMs: 60_000 });
    assert.equal(reset.code, 0, reset.stdout + reset.stderr);
    const ns = await runCli(['--cluster', 'cluster-1', 'get', 'ns'], { home });
    assert.doesNotMatch(ns.stdout, /dapr-test/);
    const status = await runCli(['status'], { home });
    assert.doesNotMatch(status.stdout, /nodeapp/);
    const un = await runCli(['demo', '-u'], { home, timeoutMs: 60_000 });
    assert.equal(un.code, 0, un.stdout + un.stderr);
    assert.deepEqual(processesMentioning(home), [], 'no process of this home is left');
    for (const p of ports) assert.ok(await portFree(p), `port ${p} is free`);
  });
});
