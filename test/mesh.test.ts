import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, exportManifest, runCli, tempDir } from './helpers.js';

const NODEAPP = fileURLToPath(new URL('../../examples/nodeapp/app.mjs', import.meta.url));

const EXPORT = exportManifest('nodeapp');

function gtp(lbType: string, targets: [string, number | undefined][]): string {
  const lines = targets.map(([c, w]) => `    - clusterKey: default/default/default/${c}\n${w === undefined ? '' : `      weight: ${w}\n`}`).join('');
  return `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: nodeapp
spec:
  lbType: ${lbType}
  targets:
${lines}`;
}

interface Reply { status: number; body: string; cluster?: string }

/**
 * The seed's key moment and the data plane's failure handling, with four real cluster processes,
 * real sidecars and real nodeapp processes: the curl app in cluster-2 calls
 * http://nodeapp.dapr-test:3000 through its sidecar.
 */
describe('sidecar mesh across four clusters (reference scenario steps 3-8)', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[], input?: string) => runCli(args, { home, input });
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let proxyPort = 0;

  /** One GET through the curl app's sidecar, as its HTTP client would send it. */
  function call(path = '/ports', method = 'GET', body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxyPort, method, path: `http://nodeapp.dapr-test:3000${path}`, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, cluster: /from cluster: (\S+)/.exec(text)?.[1] }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Bounded load: `total` GETs from `concurrency` loops; returns the failures and who answered. */
  async function load(total: number, concurrency: number, during?: (sent: () => number) => Promise<void>): Promise<{ failed: Reply[]; byCluster: Map<string, number> }> {
    let sent = 0;
    const failed: Reply[] = [];
    const byCluster = new Map<string, number>();
    const loops = Array.from({ length: concurrency }, async () => {
      while (sent < total) {
        sent++;
        const r = await call().catch((err) => ({ status: 0, body: String(err) }) as Reply);
        if (r.status !== 200) failed.push(r);
        else byCluster.set(r.cluster!, (byCluster.get(r.cluster!) ?? 0) + 1);
        await new Promise((res) => setTimeout(res, 2));
      }
    });
    await Promise.all([...loops, during?.(() => sent)]);
    return { failed, byCluster };
  }

  const clusterPid = (name: string) => JSON.parse(readFileSync(join(home, 'clusters', name, 'cluster.json'), 'utf8')).pid as number;

  before(async () => {
    const up = await cli(['up', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    for (const [c, ns] of [['cluster-1', 'dapr-test'], ['cluster-3', 'dapr-test'], ['cluster-2', 'curl'], ['cluster-2', 'dapr-test']]) {
      const r = await cli(['--cluster', c, 'create', 'namespace', ns]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const c of ['cluster-1', 'cluster-3']) {
      const r = await cli(['--cluster', c, 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, NODEAPP]);
      assert.equal(r.code, 0, r.stderr);
    }
    const curl = await cli(['--cluster', 'cluster-2', 'run', '-n', 'curl', '--app-id', 'curl', '--detach', '--', 'sleep', '3600']);
    assert.equal(curl.code, 0, curl.stderr);
    const env = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', process.execPath, '-e', 'console.log(process.env.HTTP_PROXY)']);
    assert.equal(env.code, 0, env.stderr);
    proxyPort = Number(new URL(env.stdout.trim()).port);
    for (const c of ['cluster-1', 'cluster-3']) {
      const r = await cli(['--cluster', c, 'apply', '-n', 'dapr-test', '-f', '-'], EXPORT);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    agent.destroy();
    const down = await cli(['down', '--purge']);
    assert.equal(down.code, 0, down.stderr);
    cleanup();
  });

  it('step 5: cluster-2 sees the ServiceImport of nodeapp from cluster-1 and cluster-3', async () => {
    const out = await eventually(async () => {
      const r = await cli(['get', 'simp', '-A', '--cluster', 'cluster-2']);
      return /dapr-test\s+nodeapp\s+ClusterSetIP\s+3000\s+cluster-1,cluster-3/.test(r.stdout) ? r.stdout : undefined;
    }, 5000, 'import with both clusters');
    assert.match(out, /nodeapp/);
  });

  it('step 6: without a policy the call fails (Locality), with a message that says why', async () => {
    const r = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', 'curl', '-s', '-w', '\\n%{http_code}', 'http://nodeapp.dapr-test:3000/ports']);
    assert.equal(r.code, 0, r.stderr);
    const [body, code] = r.stdout.trim().split('\n');
    assert.equal(code, '503');
    assert.match(body, /no local endpoint of dapr-test\/nodeapp:3000 in cluster cluster-2/);
    assert.match(body, /GlobalTrafficPolicy/);
    const failing = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', 'curl', '-sf', 'http://nodeapp.dapr-test:3000/ports']);
    assert.notEqual(failing.code, 0, 'curl -f fails, as in the seed');
  });

  it('steps 7-8: after the ActiveActive policy, cluster-1 and cluster-3 answer in turn', async () => {
    const applied = await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], gtp('ActiveActive', [['cluster-1', 100], ['cluster-3', 100]]));
    assert.equal(applied.code, 0, applied.stderr);
    await eventually(async () => (await call()).status === 200, 5000, 'policy applied');
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', 'curl', '-s', '-i', 'http://nodeapp.dapr-test:3000/ports']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\{"DAPR_HTTP_PORT":"\d+","DAPR_GRPC_PORT":"\d+"\}, from cluster: cluster-[13]/);
      const served = /from cluster: (\S+)/.exec(r.stdout)![1];
      assert.match(r.stdout, new RegExp(`x-crossmesh-cluster: ${served}`, 'i'), 'the response names the cluster that served it');
      seen.push(served);
    }
    assert.ok(seen.includes('cluster-1') && seen.includes('cluster-3'), `answered by both: ${seen}`);
    for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `in turn: ${seen}`);
  });

  it('crossmesh route explains where a name goes', async () => {
    const r = await cli(['--cluster', 'cluster-2', 'route', 'nodeapp.dapr-test:3000', '-n', 'curl']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /policy ActiveActive/);
    assert.match(r.stdout, /cluster-1 via tunnel to nodeapp\.dapr-test:3000 through gateway mesh port 127\.0\.0\.1:\d+ \(weight 100, mTLS end to end\)/);
  });

  it('ActiveActive weights 100/300 are observed within tolerance over 400 calls', async () => {
    await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], gtp('ActiveActive', [['cluster-1', 100], ['cluster-3', 300]]));
    await eventually(async () => {
      const r = await cli(['--cluster', 'cluster-2', 'route', 'nodeapp.dapr-test:3000', '-n', 'curl']);
      return /weight 300/.test(r.stdout);
    }, 5000, 'weights applied');
    const { failed, byCluster } = await load(400, 4);
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
    const c1 = byCluster.get('cluster-1') ?? 0;
    const c3 = byCluster.get('cluster-3') ?? 0;
    console.log(`# weights 100/300 over 400 calls: cluster-1 ${c1}, cluster-3 ${c3}`);
    assert.ok(Math.abs(c1 - 100) <= 20 && Math.abs(c3 - 300) <= 20, `cluster-1 ${c1}, cluster-3 ${c3}`);
  });

  it('FailOver without a local nodeapp goes to the targets; with one it stays local; a killed local endpoint fails over with no failed request', async () => {
    await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], gtp('FailOver', [['cluster-1', undefined]]));
    await eventually(async () => (await call()).cluster === 'cluster-1', 5000, 'failover to cluster-1');
    const r = await cli(['--cluster', 'cluster-2', 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, NODEAPP]);
    assert.equal(r.code, 0, r.stderr);
    await eventually(async () => (await call()).cluster === 'cluster-2', 5000, 'local nodeapp preferred');
    const local = readdirSync(join(home, 'apps', 'cluster-2', 'dapr-test', 'nodeapp'));
    const record = JSON.parse(readFileSync(join(home, 'apps', 'cluster-2', 'dapr-test', 'nodeapp', local[0], 'sidecar.json'), 'utf8'));
    const { failed, byCluster } = await load(300, 4, async (sent) => {
      await eventually(() => sent() > 60, 5000, 'load running');
      process.kill(record.appPid, 'SIGKILL');
      process.kill(record.pid, 'SIGKILL');
    });
    console.log(`# FailOver, local endpoint killed under load: 300 sent, ${failed.length} failed, served ${JSON.stringify([...byCluster])}`);
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
    assert.ok((byCluster.get('cluster-1') ?? 0) > 0 && (byCluster.get('cluster-2') ?? 0) > 0);
  });

  it('ActiveActive: a killed remote gateway under GET load fails no request, and the control plane stopped mid-traffic fails none', async () => {
    await cli(['--cluster', 'cluster-2', 'apply', '-n', 'dapr-test', '-f', '-'], gtp('ActiveActive', [['cluster-1', 100], ['cluster-3', 100]]));
    await eventually(async () => {
      const r = await cli(['--cluster', 'cluster-2', 'route', 'nodeapp.dapr-test:3000', '-n', 'curl']);
      return /ActiveActive/.test(r.stdout) && !/weight 300/.test(r.stdout) && /local endpoints: none/.test(r.stdout);
    }, 8000, 'AA policy with no local endpoint');
    const gw = await load(400, 4, async (sent) => {
      await eventually(() => sent() > 80, 5000, 'load running');
      process.kill(clusterPid('cluster-3'), 'SIGKILL');
    });
    console.log(`# ActiveActive, cluster-3 gateway killed under load: 400 sent, ${gw.failed.length} failed, served ${JSON.stringify([...gw.byCluster])}`);
    assert.equal(gw.failed.length, 0, JSON.stringify(gw.failed.slice(0, 3)));

    const cp = await load(300, 4, async (sent) => {
      await eventually(() => sent() > 60, 5000, 'load running');
      process.kill(clusterPid('control-plane'), 'SIGKILL');
    });
    console.log(`# control plane killed under load: 300 sent, ${cp.failed.length} failed`);
    assert.equal(cp.failed.length, 0, JSON.stringify(cp.failed.slice(0, 3)));

    // The caller's own cluster process (its sidecar's API) goes away: last-known routes keep serving.
    assert.ok(existsSync(join(home, 'clusters', 'cluster-2', 'cluster.json')));
    const own = await load(200, 4, async (sent) => {
      await eventually(() => sent() > 40, 5000, 'load running');
      process.kill(clusterPid('cluster-2'), 'SIGKILL');
    });
    console.log(`# cluster-2 (the caller's cluster API) killed under load: 200 sent, ${own.failed.length} failed`);
    assert.equal(own.failed.length, 0, JSON.stringify(own.failed.slice(0, 3)));
  });

  it('the gateway reports mesh tunnels by source cluster on its cluster API /metrics', async () => {
    const cfg = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as { contexts: Record<string, { server: string; token: string; ca: string }> };
    const c1 = cfg.contexts['cluster-1'];
    // The cluster API is HTTPS with the cluster's CA (kept in the context).
    const apiGet = (headers: Record<string, string>) => new Promise<{ status: number; text: string }>((resolve, reject) => {
      httpsRequest(`${c1.server}/metrics`, { ca: c1.ca, headers }, (r) => {
        let text = '';
        r.on('data', (d) => (text += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
      }).on('error', reject).end();
    });
    const res = await apiGet({ authorization: `Bearer ${c1.token}` });
    assert.equal(res.status, 200);
    const text = res.text;
    // Mesh calls go through the gateway's mesh port as L4 tunnels (the app sidecar behind it counts the requests).
    assert.match(text, /crossmesh_gateway_tunnels_total\{[^}]*source_cluster="cluster-2"[^}]*result="established"[^}]*\} [1-9]\d*/);
    assert.match(text, /crossmesh_gateway_tunnels_active\{[^}]*\} \d+/);
    assert.match(text, /crossmesh_gateway_request_duration_seconds/);
    const anonymous = await apiGet({});
    assert.equal(anonymous.status, 401);

    const env = await cli(['--cluster', 'cluster-2', 'exec', '-n', 'curl', '--app-id', 'curl', '--', process.execPath, '-e', 'console.log(process.env.DAPR_HTTP_PORT)']);
    const sidecar = await (await fetch(`http://127.0.0.1:${env.stdout.trim()}/metrics`)).text();
    assert.match(sidecar, /crossmesh_sidecar_requests_total\{direction="outbound",source_cluster="cluster-2",destination_cluster="cluster-1",code="200"[^}]*\} \d+/);
    assert.match(sidecar, /crossmesh_sidecar_retries_total\{[^}]*\} [1-9]\d*/, 'retries after the killed gateway are counted');
    assert.match(sidecar, /crossmesh_sidecar_ejections_total\{[^}]*\} [1-9]\d*/, 'ejections are counted');
  });
});
