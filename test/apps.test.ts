import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, eventually, runCli, tempDir } from './helpers.js';
import { meshClientVia } from './support/mesh-client.js';
import { contextEndpoint, readConfig } from '../src/util/home.js';

/**
 * `crossmesh run / exec / stop / status / down` with real processes: a cluster process from
 * `up`, detached and foreground sidecars, a tiny node app that replies with its environment.
 */
const APP = `import http from 'node:http';
const keys = ['APP_PORT', 'DAPR_HTTP_PORT', 'DAPR_GRPC_PORT', 'APP_ID', 'NAMESPACE', 'CLUSTER_NAME', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, path: req.url, env: Object.fromEntries(keys.map((k) => [k, process.env[k]])) }));
}).listen(Number(process.env.APP_PORT), '127.0.0.1', () => console.log('app pid ' + process.pid + ' listening on ' + process.env.APP_PORT));
`;

interface Rec {
  pid: number;
  appPid: number;
  instanceId: string;
  ports: { inbound: number; outbound: number; http: number; grpc: number; app: number };
}

/** Zombies (exited, reparented, not reaped) count as gone. */
function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
  try { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return !'ZX'.includes(st.charAt(st.lastIndexOf(')') + 2)); } catch { return true; }
}

describe('crossmesh run / exec / stop', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[]) => runCli(args, { home });
  const c1 = (...args: string[]) => cli(['--cluster', 'cluster-1', ...args]);
  const appFile = join(home, 'app.mjs');
  const pids = new Set<number>();

  function records(appId = 'nodeapp'): Rec[] {
    const dir = join(home, 'apps', 'cluster-1', 'dapr-test', appId);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .map((i) => join(dir, i, 'sidecar.json'))
      .filter((f) => existsSync(f))
      .map((f) => JSON.parse(readFileSync(f, 'utf8')) as Rec);
  }
  function remember(rs: Rec[]): void {
    for (const r of rs) { pids.add(r.pid); pids.add(r.appPid); }
  }
  async function endpointPorts(): Promise<number[]> {
    const res = await c1('get', 'endpoints', 'nodeapp', '-n', 'dapr-test', '-o', 'json');
    if (res.code !== 0) return [];
    return ((JSON.parse(res.stdout).subsets ?? []) as Array<{ ports: Array<{ port: number }> }>).map((s) => s.ports[0].port).sort();
  }

  before(async () => {
    writeFileSync(appFile, APP);
    const up = await cli(['up', '--clusters', 'cluster-1', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    assert.equal((await c1('create', 'namespace', 'dapr-test')).code, 0);
  });

  after(async () => {
    await cli(['down', '--purge']);
    for (const pid of pids) if (alive(pid)) { process.kill(pid, 'SIGKILL'); assert.fail(`process ${pid} outlived down`); }
    cleanup();
  });

  it('run --detach: Service created, endpoint registered, the app gets its env through the inbound hop; a second instance is a second subset', async () => {
    const res = await c1('run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--detach', '--', process.execPath, appFile);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /service\/nodeapp created/);
    assert.match(res.stdout, /logs: .*app\.log/);
    const [r1] = records();
    remember([r1]);
    const svc = JSON.parse((await c1('get', 'svc', 'nodeapp', '-n', 'dapr-test', '-o', 'json')).stdout);
    assert.deepEqual(svc.spec.ports.map((p: { port: number; targetPort: number }) => [p.port, p.targetPort]), [[3000, 3000]]);
    assert.deepEqual(await endpointPorts(), [r1.ports.inbound]);

    // The inbound port speaks mesh mTLS only: call it as a workload of cluster-1 would.
    const mesh = await meshClientVia(contextEndpoint(readConfig(home), 'cluster-1')!, 'dapr-test');
    const reply = await mesh.request(r1.ports.inbound!, '/ports');
    assert.match(String(reply.headers['x-crossmesh-served-by'] ?? ''), new RegExp(`^cluster-1/nodeapp-${r1.instanceId}$`));
    const body = JSON.parse(reply.text) as { pid: number; path: string; env: Record<string, string> };
    assert.equal(body.pid, r1.appPid);
    assert.equal(body.path, '/ports');
    const proxy = `http://127.0.0.1:${r1.ports.outbound}`;
    assert.deepEqual(body.env, {
      APP_PORT: String(r1.ports.app), DAPR_HTTP_PORT: String(r1.ports.http), DAPR_GRPC_PORT: String(r1.ports.grpc),
      APP_ID: 'nodeapp', NAMESPACE: 'dapr-test', CLUSTER_NAME: 'cluster-1',
      HTTP_PROXY: proxy, http_proxy: proxy, NO_PROXY: 'localhost,127.0.0.1,::1', no_proxy: 'localhost,127.0.0.1,::1',
    });
    assert.equal((await fetch(`http://127.0.0.1:${r1.ports.http}/v1.0/healthz`)).status, 204);

    const second = await c1('run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '-d', '--', process.execPath, appFile);
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stdout, /created/, 'the Service exists already');
    const rs = records();
    remember(rs);
    assert.equal(rs.length, 2);
    assert.deepEqual(await endpointPorts(), rs.map((r) => r.ports.inbound).sort());
    const st = await cli(['status']);
    assert.equal((st.stdout.match(/cluster-1\s+dapr-test\s+nodeapp\s+\w+\s+running/g) ?? []).length, 2, st.stdout);
  });

  it('exec runs a command with the app\'s sidecar env and returns its exit code', async () => {
    const [r] = records().sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    const res = await c1('exec', '-n', 'dapr-test', '--app-id', 'nodeapp', '--', process.execPath, '-e', 'console.log(process.env.DAPR_HTTP_PORT, process.env.HTTP_PROXY, process.env.APP_ID); process.exit(3)');
    assert.equal(res.code, 3, res.stderr);
    assert.equal(res.stdout.trim(), `${r.ports.http} http://127.0.0.1:${r.ports.outbound} nodeapp`);
    const none = await c1('exec', '-n', 'dapr-test', '--app-id', 'nope', '--', 'true');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no running app nope in cluster-1\/dapr-test/);
  });

  it('a SIGKILLed sidecar loses its endpoint by lease; stop removes the rest at once and leaves no process', async () => {
    const [victim, other] = records();
    process.kill(victim.pid, 'SIGKILL');
    const t0 = Date.now();
    await eventually(async () => (await endpointPorts()).join() === String(other.ports.inbound), 6000, 'the dead sidecar\'s endpoint to expire');
    assert.ok(Date.now() - t0 < 5000, `expired after ${Date.now() - t0} ms`);
    const st = await cli(['status']);
    assert.match(st.stdout, new RegExp(`nodeapp\\s+${victim.instanceId}\\s+dead`));

    const stop = await c1('stop', '-n', 'dapr-test', '--app-id', 'nodeapp');
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, new RegExp(`stopped nodeapp instance ${other.instanceId}`));
    assert.match(stop.stdout, new RegExp(`stopped nodeapp instance ${victim.instanceId} .*had died`));
    assert.deepEqual(await endpointPorts(), []);
    for (const pid of [victim.pid, victim.appPid, other.pid, other.appPid]) assert.equal(alive(pid), false, `pid ${pid} still runs`);
    assert.deepEqual(records(), []);
    const again = await c1('stop', '-n', 'dapr-test', '--app-id', 'nodeapp');
    assert.equal(again.code, 1);
  });

  it('foreground run streams the app output and stops both on SIGINT', async () => {
    const child = spawn(process.execPath, [BIN, '--cluster', 'cluster-1', 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '--', process.execPath, appFile], {
      env: { ...process.env, CROSSMESH_HOME: home, CROSSMESH_CLUSTER: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const appPid = Number(await eventually(() => /app pid (\d+) listening/.exec(stdout)?.[1], 10_000, `app output (stderr: ${stderr})`));
    const [r] = await eventually(() => { const rs = records(); return rs.length === 1 && rs; }, 5000, 'the ready file');
    remember([r]);
    assert.equal(r.pid, child.pid);
    assert.equal(r.appPid, appPid);
    assert.deepEqual(await endpointPorts(), [r.ports.inbound]);
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.equal(alive(appPid), false);
    assert.deepEqual(await endpointPorts(), []);
    assert.deepEqual(records(), []);
    assert.match(stderr, /deregistered/);
  });

  it('refuses bad input clearly', async () => {
    let res = await c1('run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000');
    assert.equal(res.code, 2);
    assert.match(res.stderr, /give the command after --/);
    res = await cli(['--cluster', 'cluster-9', 'run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--', 'true']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown cluster "cluster-9"/);
    res = await c1('run', '-n', 'nowhere', '--app-id', 'nodeapp', '--app-port', '3000', '-d', '--', 'true');
    assert.equal(res.code, 1);
    assert.match(res.stderr, /namespace "nowhere" not found in cluster cluster-1; create it first with `crossmesh --cluster cluster-1 create namespace nowhere`/);
    res = await c1('run', '-n', 'dapr-test', '--app-id', 'Node_App', '--', 'true');
    assert.equal(res.code, 2);
    res = await c1('run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '-d', '--', join(home, 'no-such-binary'));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /did not become ready \(the sidecar exited with code 127\)/);
    assert.match(res.stderr, /cannot start the app/);
    assert.deepEqual(records(), []);
  });

  it('a client-only app (no --app-port) gets no Service and no endpoint; down stops every app and cluster', async () => {
    const res = await c1('run', '-n', 'dapr-test', '--app-id', 'curl', '-d', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)');
    assert.equal(res.code, 0, res.stderr);
    const app = await c1('run', '-n', 'dapr-test', '--app-id', 'nodeapp', '--app-port', '3000', '-d', '--', process.execPath, appFile);
    assert.equal(app.code, 0, app.stderr);
    const [client] = records('curl');
    const [server] = records('nodeapp');
    remember([client, server]);
    assert.equal((await c1('get', 'svc', 'curl', '-n', 'dapr-test')).code, 1);
    assert.equal((await c1('get', 'ep', 'curl', '-n', 'dapr-test')).code, 1);
    const down = await cli(['down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /stopped app cluster-1\/dapr-test\/curl/);
    assert.match(down.stdout, /stopped app cluster-1\/dapr-test\/nodeapp/);
    assert.match(down.stdout, /stopped cluster-1/);
    for (const pid of [client.pid, client.appPid, server.pid, server.appPid]) assert.equal(alive(pid), false, `pid ${pid} still runs`);
  });
});
