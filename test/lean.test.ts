import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { runCli, tempDir } from './helpers.js';
import { DAPR_SERVICE, daprServiceDefinition } from '../src/dapr/grpc/server.js';

/**
 * Lean processes: a detached sidecar is its own entry point (bin/crossmesh-sidecar.js) and loads
 * only what a sidecar runs; a state store backend is loaded only when a Component needs it; the
 * CLI loads a command's modules only when that command runs. Which modules a real process
 * loaded is recorded by test/support/module-trace.ts (passed down in NODE_OPTIONS).
 */
const SIDECAR_BIN = fileURLToPath(new URL('../../bin/crossmesh-sidecar.js', import.meta.url));
const TRACE = fileURLToPath(new URL('./support/module-trace.js', import.meta.url));

/** Never in a sidecar process (its own modules and packages). */
const NOT_IN_SIDECAR = [
  '/dist/src/cli/', '/dist/src/store/', '/dist/src/apiserver/', '/dist/src/cluster/', '/dist/src/api/validation.js', '/dist/src/api/schemas.js',
  '/node_modules/commander/', '/node_modules/zod/', '/node_modules/yaml/', '/node_modules/undici/', '/node_modules/safe-regex2/',
];
const SQLITE = ['/node_modules/better-sqlite3/', '/dist/src/state/sqlite.js'];
const REDIS = ['/node_modules/ioredis/', '/dist/src/state/redis.js'];
/** The Dapr gRPC API: imported on DAPR_GRPC_PORT's first connection. */
const GRPC = ['/node_modules/@grpc/grpc-js/', '/node_modules/@grpc/proto-loader/', '/dist/src/dapr/grpc/server.js'];

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

function loaded(traceDir: string, pid: number): string[] {
  const file = join(traceDir, `${pid}.log`);
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

function matching(urls: string[], parts: string[]): string[] {
  return [...new Set(urls.filter((u) => parts.some((p) => u.includes(p))))];
}

async function getJson(port: number, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe('lean processes', () => {
  const { dir: home, cleanup } = tempDir();
  const traceDir = join(home, 'trace');
  const traced = { NODE_OPTIONS: `--import ${TRACE}`, CROSSMESH_TRACE_MODULES: traceDir };
  const cli = (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) => runCli(args, { home, ...opts });
  const c1 = (...args: string[]) => cli(['--cluster', 'cluster-1', ...args]);

  function record(appId: string): { pid: number; ports: { http: number; grpc: number } } {
    const dir = join(home, 'apps', 'cluster-1', 'lean', appId);
    return JSON.parse(readFileSync(join(dir, readdirSync(dir)[0], 'sidecar.json'), 'utf8'));
  }

  before(async () => {
    mkdirSync(traceDir);
    const up = await cli(['up', '--clusters', 'cluster-1', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    assert.equal((await c1('create', 'namespace', 'lean')).code, 0);
  });

  after(async () => {
    await cli(['down', '--purge']);
    cleanup();
  });

  it('run --detach starts bin/crossmesh-sidecar.js, which serves and loads no CLI, API server, store, zod, yaml, undici or state backend', async () => {
    const run = await cli(['--cluster', 'cluster-1', 'run', '-n', 'lean', '--app-id', 'plain', '--detach', '--', 'sleep', '600'], { env: traced });
    assert.equal(run.code, 0, run.stderr);
    const rec = record('plain');
    const cmdline = readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline.includes(SIDECAR_BIN), cmdline.join(' '));
    const meta = await getJson(rec.ports.http, '/v1.0/metadata');
    assert.equal(meta.status, 200);
    assert.equal(meta.body.id, 'plain');
    const urls = loaded(traceDir, rec.pid);
    assert.ok(urls.some((u) => u.endsWith('/dist/src/sidecar/main.js')), `trace of ${rec.pid}: ${urls.length} modules`);
    assert.deepEqual(matching(urls, [...NOT_IN_SIDECAR, ...SQLITE, ...REDIS, ...GRPC]), []);
  });

  it('the first connection to DAPR_GRPC_PORT loads grpc-js and proto-loader (not before); the Dapr gRPC API answers', async () => {
    const rec = record('plain');
    assert.deepEqual(matching(loaded(traceDir, rec.pid), GRPC), [], 'nothing of gRPC before a gRPC client connects');
    const idle = rssKb(rec.pid);
    const Ctor = grpc.makeGenericClientConstructor(daprServiceDefinition(), DAPR_SERVICE);
    const c = new Ctor(`127.0.0.1:${rec.ports.grpc}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    try {
      const md = await new Promise<{ id: string }>((resolve, reject) => c.GetMetadata({}, (e: Error | null, r: { id: string }) => (e ? reject(e) : resolve(r))));
      assert.equal(md.id, 'plain');
    } finally {
      c.close();
    }
    const urls = loaded(traceDir, rec.pid);
    assert.deepEqual(matching(urls, GRPC).map((u) => GRPC.find((g) => u.includes(g))).filter((g, i, a) => a.indexOf(g) === i).sort(), [...GRPC].sort(), urls.join('\n'));
    assert.deepEqual(matching(urls, NOT_IN_SIDECAR), []);
    console.log(`sidecar VmRSS: ${idle} kB idle, ${rssKb(rec.pid)} kB after its first Dapr gRPC call`);
  });

  it('a state.sqlite Component loads better-sqlite3 in the sidecars of its namespace (and still no ioredis); the store serves', async () => {
    const apply = await cli(['--cluster', 'cluster-1', 'apply', '-n', 'lean', '-f', '-'], { input: `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.sqlite
  version: v1
  metadata: [{name: connectionString, value: ${join(home, 'lean-state.db')}}]
` });
    assert.equal(apply.code, 0, apply.stderr);
    const run = await cli(['--cluster', 'cluster-1', 'run', '-n', 'lean', '--app-id', 'stateful', '--detach', '--', 'sleep', '600'], { env: traced });
    assert.equal(run.code, 0, run.stderr);
    const rec = record('stateful');
    const save = await fetch(`http://127.0.0.1:${rec.ports.http}/v1.0/state/statestore`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'k', value: { n: 1 } }]) });
    assert.equal(save.status, 204, await save.text());
    assert.deepEqual((await getJson(rec.ports.http, '/v1.0/state/statestore/k')).body, { n: 1 });
    const urls = loaded(traceDir, rec.pid);
    assert.equal(matching(urls, SQLITE).length, 2, urls.join('\n'));
    assert.deepEqual(matching(urls, [...NOT_IN_SIDECAR, ...REDIS]), []);
  });

  it('crossmesh-sidecar refuses bad arguments and an unreadable config (exit 2)', () => {
    const none = spawnSync(process.execPath, [SIDECAR_BIN], { encoding: 'utf8', env: { ...process.env, CROSSMESH_HOME: home } });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /usage: crossmesh-sidecar --config FILE/);
    const missing = spawnSync(process.execPath, [SIDECAR_BIN, '--config', join(home, 'nope.json')], { encoding: 'utf8', env: { ...process.env, CROSSMESH_HOME: home } });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /cannot read the config file .*nope\.json/);
  });

  it('the CLI loads a command\'s modules only when it runs: --help and get load no zod, yaml or undici; get -o yaml loads yaml', async () => {
    const trace = async (args: string[]): Promise<string[]> => {
      const dir = join(home, `trace-${args.join('-').replace(/[^a-z0-9-]/gi, '')}`);
      mkdirSync(dir);
      const res = await cli(args, { env: { ...traced, CROSSMESH_TRACE_MODULES: dir } });
      assert.equal(res.code, 0, res.stderr);
      return readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
    };
    const heavy = ['/node_modules/zod/', '/node_modules/yaml/', '/node_modules/undici/', '/dist/src/api/validation.js', '/dist/src/sidecar/sidecar.js', '/node_modules/prom-client/'];
    const help = await trace(['--help']);
    assert.ok(help.some((u) => u.endsWith('/dist/src/cli/main.js')));
    assert.deepEqual(matching(help, [...heavy, '/dist/src/cli/commands/', '/dist/src/client/']), []);
    assert.deepEqual(matching(await trace(['--cluster', 'cluster-1', 'get', 'svc', '-n', 'lean']), heavy), []);
    assert.deepEqual(matching(await trace(['status']), heavy), []);
    const yaml = matching(await trace(['--cluster', 'cluster-1', 'get', 'ns', 'lean', '-o', 'yaml']), heavy);
    assert.equal(yaml.length, 1, yaml.join(', '));
    assert.match(yaml[0], /\/node_modules\/yaml\//);
  });
});
