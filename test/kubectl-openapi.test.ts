import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, tempDir } from './helpers.js';

/**
 * The real kubectl against a real cluster process over the kubeconfig of `crossmesh kubeconfig
 * get`: OpenAPI (v2 protobuf for kubectl 1.27/1.28, v3 for explain and 1.33), `explain`, and
 * client-side `apply -f --validate=strict` of the seed manifests, with the default kubectl and
 * the oldest and newest of the side-by-side versions. No kubectl = a failing test, never a skip.
 */
const SEED = fileURLToPath(new URL('../../../shared/reference/seed-manifests/', import.meta.url));
const HINT = 'install it with `apt-get install -y kubernetes-client` (Debian), or put kubectl on PATH';

function kubectlBinaries(): { name: string; path: string }[] {
  let main: string;
  try {
    main = execFileSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`kubectl is not on PATH: ${HINT}`);
  }
  if (!main) throw new Error(`kubectl is not on PATH: ${HINT}`);
  const dir = dirname(realpathSync(main));
  const out = [{ name: 'kubectl (default)', path: main }];
  for (const v of ['1.27', '1.33']) {
    const p = join(dir, `kubectl.${v}`);
    if (existsSync(p)) out.push({ name: `kubectl.${v}`, path: p });
  }
  return out;
}

function run(cmd: string, args: string[], env: Record<string, string>, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 60_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    child.stdin?.end(input ?? '');
  });
}

/** A seed manifest's documents without the Kubernetes workloads crossmesh does not serve (it runs apps with `crossmesh run`). */
function withoutWorkloads(text: string): string {
  return text.split(/^---$/m).filter((d) => !/^kind:\s*Deployment\s*$/m.test(d)).join('---\n');
}

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

  const seedFiles = (): { file: string; namespace?: string; text: string }[] => {
    const member = '    apiVersion: v1\n    kind: Config\n    clusters:\n    - name: cluster-1\n      cluster: {server: "https://127.0.0.1:1"}\n    users: []\n    contexts: []\n';
    const cluster = readFileSync(join(SEED, '01-cluster.yaml'), 'utf8')
      .replace(/\$\{CLUSTER_NAME\}/g, 'cluster-1').replace(/\$\{HOST_IP\}/g, '127.0.0.1').replace(/\$\{PORT\}/g, '81')
      .replace(/^ {4}<the member's kubeconfig.*>$/m, member.trimEnd());
    return [
      { file: '01-cluster.yaml', text: cluster },
      { file: '03-statestore.yaml', namespace: 'dapr-test', text: readFileSync(join(SEED, '03-statestore.yaml'), 'utf8') },
      { file: '04-nodeapp.yaml', namespace: 'dapr-test', text: withoutWorkloads(readFileSync(join(SEED, '04-nodeapp.yaml'), 'utf8').replace(/\$\{CLUSTER_NAME\}/g, 'cluster-1')) },
      { file: '05-curl.yaml', namespace: 'curl', text: withoutWorkloads(readFileSync(join(SEED, '05-curl.yaml'), 'utf8')) },
      { file: '06-serviceexport.yaml', namespace: 'dapr-test', text: readFileSync(join(SEED, '06-serviceexport.yaml'), 'utf8') },
      { file: '07-globaltrafficpolicy.yaml', namespace: 'dapr-test', text: readFileSync(join(SEED, '07-globaltrafficpolicy.yaml'), 'utf8') },
    ];
  };

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
