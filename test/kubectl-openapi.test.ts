import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers.js';
import { SEED, kubectlBinaries, run, seedFiles } from './support/kubectl.js';

/**
 * The real kubectl against a real cluster process over the kubeconfig of `crossmesh kubeconfig
 * get`: OpenAPI (v2 protobuf for kubectl 1.27/1.28, v3 for explain and 1.33), `explain`, and
 * client-side `apply -f --validate=strict` of the seed manifests, with the default kubectl and
 * the oldest and newest of the side-by-side versions. No kubectl = a failing test, never a skip.
 */
describe('kubectl against a crossmesh cluster: OpenAPI, explain, client-side apply', () => {
  const { dir: home, cleanup } = tempDir();
  const cli = (args: string[]) => runCli(args, { home });
  const kubeconfig = join(home, 'kubeconfig');
  const binaries = kubectlBinaries();

  before(async () => {
    const up = await cli(['up', '--clusters', 'control-plane', '--api-port', '0', '--gateway-port', '0']);
    assert.equal(up.code, 0, up.stderr);
    const kc = await cli(['kubeconfig', 'get', 'control-plane']);
    assert.equal(kc.code, 0, kc.stderr);
    writeFileSync(kubeconfig, kc.stdout);
    for (const ns of ['dapr-test', 'curl']) assert.equal((await cli(['--cluster', 'control-plane', 'create', 'namespace', ns])).code, 0);
    assert.equal((await cli(['--cluster', 'control-plane', 'create', 'secret', 'generic', 'redis', '-n', 'dapr-test', '--from-literal=redis-password=changeme'])).code, 0);
  });

  after(async () => {
    await cli(['down', '--purge']);
    cleanup();
  });

  it('finds kubectl 1.27 and 1.33 beside the default one', () => {
    assert.deepEqual(binaries.map((b) => b.name), ['kubectl (default)', 'kubectl.1.27', 'kubectl.1.33'], `the side-by-side kubectl.1.27 / kubectl.1.33 are missing next to ${binaries[0].path}`);
  });

  for (const [i, b] of kubectlBinaries().entries()) {
    it(`${b.name}: apply -f --validate=strict of every seed manifest, then again unchanged`, async () => {
      const env = { KUBECONFIG: kubeconfig };
      const cache = ['--cache-dir', join(home, `cache-${i}`)];
      for (const round of [0, 1]) {
        for (const m of seedFiles()) {
          const file = join(home, `${i}-${m.file}`);
          writeFileSync(file, m.text);
          const res = await run(b.path, [...cache, 'apply', '--validate=strict', '-f', file, ...(m.namespace ? ['-n', m.namespace] : [])], env);
          assert.equal(res.code, 0, `${b.name} apply -f ${m.file}: ${res.stderr}`);
          assert.doesNotMatch(res.stderr, /warning|error/i, `${b.name} apply -f ${m.file}`);
          // The first kubectl creates the objects; every later apply finds them as it left them.
          assert.match(res.stdout, i === 0 && round === 0 ? /created/ : /unchanged/, `${b.name} apply -f ${m.file} (round ${round}): ${res.stdout}`);
        }
      }
      const sexp = JSON.parse((await run(b.path, [...cache, 'get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'json'], env)).stdout);
      assert.equal(sexp.spec.rules[0].path, '/nodeapp');
      assert.match(sexp.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'], /"kind":"ServiceExport"/);
    });

    it(`${b.name}: explain serviceexport.spec.rules from the OpenAPI v3 document`, async () => {
      const res = await run(b.path, ['--cache-dir', join(home, `cache-explain-${i}`), 'explain', 'serviceexport.spec.rules'], { KUBECONFIG: kubeconfig });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /KIND:\s+ServiceExport/);
      assert.match(res.stdout, /VERSION:\s+v1alpha1/);
      assert.match(res.stdout, /rules\s+<\[\]Object>/);
      assert.match(res.stdout, /portNumber\s+<integer> -required-/);
      assert.match(res.stdout, /pathType\s+<string>/);
      // The schemas' descriptions reach explain (OpenAPI v3 from the zod schemas' .describe()).
      assert.match(res.stdout, /The ports of the Service this cluster exports/);
      assert.match(res.stdout, /How path matches a request path: Exact or Prefix/);
      const svc = await run(b.path, ['--cache-dir', join(home, `cache-explain-${i}`), 'explain', 'service.spec.ports'], { KUBECONFIG: kubeconfig });
      assert.equal(svc.code, 0, svc.stderr);
      assert.match(svc.stdout, /targetPort\s+<(IntOrString|string)>/);
    });
  }

  it('a seed manifest with a Deployment: the supported documents apply, the Deployment is named as not served', async () => {
    const file = join(home, 'nodeapp-with-deployment.yaml');
    writeFileSync(file, readFileSync(join(SEED, '04-nodeapp.yaml'), 'utf8').replace(/\$\{CLUSTER_NAME\}/g, 'cluster-1'));
    const res = await run(binaries[0].path, ['--cache-dir', join(home, 'cache-d'), 'apply', '-f', file, '-n', 'dapr-test'], { KUBECONFIG: kubeconfig });
    assert.notEqual(res.code, 0);
    assert.match(res.stdout, /service\/nodeapp unchanged/);
    assert.match(res.stderr, /no matches for kind "Deployment" in version "apps\/v1"/);
  });
});
