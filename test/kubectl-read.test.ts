import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runCli, tempDir } from './helpers.js';
import { SEED, kubectlBinaries, run, spawnStreaming, withoutWorkloads } from './support/kubectl.js';

/**
 * The read side with the real kubectl (default 1.28, 1.27, 1.33) against a real cluster process:
 * server-side printing (Table with the columns of `crossmesh get`, -o wide), output formats,
 * pagination (--chunk-size), label and field selectors, `get -w` (one-row Table watch events),
 * api-resources from aggregated discovery, `wait --for=condition`, `describe`. Writes go through
 * `crossmesh apply -f`. No kubectl = a failing test with the install hint, never a skip.
 */
describe('kubectl reads from a crossmesh cluster', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[]) => runCli(['--cluster', 'control-plane', ...args], { home });
  const kubeconfig = join(home, 'kubeconfig');
  const env = { KUBECONFIG: kubeconfig };
  const binaries = kubectlBinaries();
  const apply = async (name: string, text: string, ns?: string) => {
    const file = join(home, name);
    writeFileSync(file, text);
    const res = await cli(['apply', '-f', file, ...(ns ? ['-n', ns] : [])]);
    assert.equal(res.code, 0, res.stderr);
  };
  const service = (name: string, port: number, labels: Record<string, string> = {}) =>
    `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  labels: ${JSON.stringify(labels)}\nspec:\n  ports: [{port: ${port}}]\n`;

  before(async () => {
    const up = await runCli(['up', '--clusters', 'control-plane', '--api-port', '0', '--gateway-port', '0'], { home });
    assert.equal(up.code, 0, up.stderr);
    const kc = await runCli(['kubeconfig', 'get', 'control-plane'], { home });
    assert.equal(kc.code, 0, kc.stderr);
    writeFileSync(kubeconfig, kc.stdout);
    for (const ns of ['dapr-test', 'curl']) assert.equal((await cli(['create', 'namespace', ns])).code, 0);
    // The seed's nodeapp Service (its Deployment is `crossmesh run`'s job), then its ServiceExport.
    await apply('04-nodeapp.yaml', withoutWorkloads(readFileSync(join(SEED, '04-nodeapp.yaml'), 'utf8').replace(/\$\{CLUSTER_NAME\}/g, 'cluster-1')), 'dapr-test');
    await apply('06-serviceexport.yaml', readFileSync(join(SEED, '06-serviceexport.yaml'), 'utf8'), 'dapr-test');
    await apply('more.yaml', [service('alpha', 81, { tier: 'a' }), service('beta', 82, { tier: 'b' }), service('gamma', 83, { tier: 'c' })].join('---\n'), 'curl');
  });

  after(async () => {
    await runCli(['down', '--purge'], { home });
    cleanup();
  });

  for (const [i, b] of binaries.entries()) {
    const k = (args: string[]) => run(b.path, ['--cache-dir', join(home, `cache-${i}`), ...args], env);

    it(`${b.name}: get -A and -o wide print the columns of crossmesh get from the server's Table`, async () => {
      const all = await k(['get', 'services', '-A']);
      assert.equal(all.code, 0, all.stderr);
      assert.match(all.stdout, /^NAMESPACE\s+NAME\s+TYPE\s+PORT\(S\)\s+AGE\n/);
      assert.match(all.stdout, /^dapr-test\s+nodeapp\s+ClusterIP\s+3000\/TCP\s+\d+s$/m);
      assert.match(all.stdout, /^curl\s+alpha\s+ClusterIP\s+81\/TCP\s+\d+s$/m);
      const sexp = await k(['get', 'serviceexports', '-A']);
      assert.equal(sexp.code, 0, sexp.stderr);
      assert.match(sexp.stdout, /^NAMESPACE\s+NAME\s+VALID\s+CONFLICT\s+AGE\n/);
      const wide = await k(['get', 'sexp', '-n', 'dapr-test', '-o', 'wide']);
      assert.equal(wide.code, 0, wide.stderr);
      assert.match(wide.stdout, /^NAME\s+VALID\s+CONFLICT\s+PATHS\s+AGE\n/);
      assert.match(wide.stdout, /^nodeapp\s+True\s+\/nodeapp\s+\d+s$/m);
      const one = await k(['get', 'svc', 'nodeapp', '-n', 'dapr-test']);
      assert.match(one.stdout, /^NAME\s+TYPE\s+PORT\(S\)\s+AGE\nnodeapp\s+ClusterIP\s+3000\/TCP\s+\d+s\n$/);
    });

    it(`${b.name}: get -o name|yaml|json|jsonpath`, async () => {
      const names = await k(['get', 'svc', '-n', 'curl', '-o', 'name']);
      assert.equal(names.stdout, 'service/alpha\nservice/beta\nservice/gamma\n');
      const yaml = parseYaml((await k(['get', 'sexp', 'nodeapp', '-n', 'dapr-test', '-o', 'yaml'])).stdout);
      assert.equal(yaml.kind, 'ServiceExport');
      assert.equal(yaml.spec.rules[0].path, '/nodeapp');
      const json = JSON.parse((await k(['get', 'svc', '-n', 'curl', '-o', 'json'])).stdout);
      assert.equal(json.kind, 'List');
      assert.deepEqual(json.items.map((o: { metadata: { name: string } }) => o.metadata.name), ['alpha', 'beta', 'gamma']);
      const jp = await k(['get', 'svc', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}:{.spec.ports[0].port} {end}']);
      assert.equal(jp.stdout.trim(), 'curl/alpha:81 curl/beta:82 curl/gamma:83 dapr-test/nodeapp:3000');
    });

    it(`${b.name}: get --chunk-size=1 pages through the list with continue tokens`, async () => {
      const res = await k(['get', 'svc', '-A', '--chunk-size=1', '-v=6']);
      assert.equal(res.code, 0, res.stderr);
      // kubectl logs requests as `GET https://... 200 OK` (≤ 1.32) or `"Response" verb="GET" url="..." status="200 OK"` (1.33).
      assert.match(res.stderr, /\/api\/v1\/services\?limit=1"? (status=")?200/);
      assert.equal((res.stderr.match(/\/api\/v1\/services\?continue=[^& ]+&limit=1"? (status=")?200/g) ?? []).length, 3, res.stderr);
      assert.deepEqual(res.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/).slice(0, 2).join('/')), ['curl/alpha', 'curl/beta', 'curl/gamma', 'dapr-test/nodeapp']);
      // The header once: every page is a Table with the same columns.
      assert.equal(res.stdout.match(/^NAMESPACE/gm)?.length, 1);
    });

    it(`${b.name}: get -l (set-based too) and --field-selector`, async () => {
      assert.equal((await k(['get', 'svc', '-n', 'curl', '-l', 'tier in (a,c)', '-o', 'name'])).stdout, 'service/alpha\nservice/gamma\n');
      assert.equal((await k(['get', 'svc', '-n', 'curl', '-l', 'tier!=a,tier', '-o', 'name'])).stdout, 'service/beta\nservice/gamma\n');
      assert.equal((await k(['get', 'svc', '-A', '--field-selector', 'metadata.name=nodeapp', '-o', 'name'])).stdout, 'service/nodeapp\n');
      assert.equal((await k(['get', 'svc', '-A', '--field-selector', 'metadata.namespace!=curl', '-o', 'name'])).stdout, 'service/nodeapp\n');
      const bad = await k(['get', 'svc', '-A', '--field-selector', 'spec.type=ClusterIP']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /field label not supported: spec\.type/);
    });

    it(`${b.name}: get -w prints the row of a change made after it started`, async () => {
      const w = spawnStreaming(b.path, ['--cache-dir', join(home, `cache-${i}`), 'get', 'svc', '-n', 'curl', '-w'], env);
      try {
        await w.waitFor(/^gamma\s+ClusterIP\s+83\/TCP/m);
        await apply(`watch-${i}.yaml`, service(`watched-${i}`, 9000 + i), 'curl');
        await w.waitFor(new RegExp(`^watched-${i}\\s+ClusterIP\\s+${9000 + i}/TCP\\s+\\d+s$`, 'm'));
        assert.equal(w.output().match(/^NAME/gm)?.length, 1, w.output());
      } finally {
        await w.stop();
      }
      assert.equal((await cli(['delete', 'svc', `watched-${i}`, '-n', 'curl'])).code, 0);
    });

    it(`${b.name}: api-resources lists the crossmesh kinds with their short names`, async () => {
      const res = await k(['api-resources']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^serviceexports\s+sexp\s+flomesh\.io\/v1alpha1\s+true\s+ServiceExport$/m);
      assert.match(res.stdout, /^globaltrafficpolicies\s+gtp\s+flomesh\.io\/v1alpha1\s+true\s+GlobalTrafficPolicy$/m);
      assert.match(res.stdout, /^services\s+svc\s+v1\s+true\s+Service$/m);
      assert.match(res.stdout, /^components\s+dapr\.io\/v1alpha1\s+true\s+Component$/m);
      assert.doesNotMatch(res.stderr, /error|unable/i);
    });

    it(`${b.name}: wait --for=condition=Valid and describe serviceexport nodeapp`, async () => {
      const wait = await k(['wait', '--for=condition=Valid', 'serviceexport/nodeapp', '-n', 'dapr-test', '--timeout=20s']);
      assert.equal(wait.code, 0, wait.stderr);
      assert.match(wait.stdout, /serviceexport\.flomesh\.io\/nodeapp condition met/);
      const d = await k(['describe', 'serviceexport', 'nodeapp', '-n', 'dapr-test']);
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /^Name:\s+nodeapp$/m);
      assert.match(d.stdout, /^Namespace:\s+dapr-test$/m);
      assert.match(d.stdout, /^Kind:\s+ServiceExport$/m);
      assert.match(d.stdout, /Type:\s+Valid/);
      assert.match(d.stdout, /Path:\s+\/nodeapp/);
    });
  }

  it('finds kubectl 1.27 and 1.33 beside the default one', () => {
    assert.deepEqual(binaries.map((b) => b.name), ['kubectl (default)', 'kubectl.1.27', 'kubectl.1.33']);
  });
});
