import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runCli, tempDir } from './helpers.js';
import { kubectlBinaries, run, seedFiles, spawnStreaming, type RunResult } from './support/kubectl.js';

/**
 * The reference walkthrough's kubectl usage, unchanged, against a real crossmesh cluster process
 * through the kubeconfig of `crossmesh kubeconfig get`: every command a user of the seed runs or
 * needs around it (create namespace/secret, apply client-side then server-side, get in every
 * output format, get -w, describe, label, annotate, patch of the three types, edit, explain,
 * api-resources, wait, delete -f), with the default kubectl and the oldest and newest of the
 * side-by-side versions, each against its own cluster. The errors asserted are the exact
 * Kubernetes-style lines kubectl prints.
 */
for (const [i, bin] of kubectlBinaries().entries()) {
  describe(`${bin.name}: the walkthrough's kubectl commands against a crossmesh cluster`, () => {
    const { dir: home, cleanup } = tempDir();
    const kubeconfig = join(home, 'kubeconfig');
    const env = { KUBECONFIG: kubeconfig };
    const cache = ['--cache-dir', join(home, 'kube-cache')];
    const kubectl = (...args: string[]): Promise<RunResult> => run(bin.path, [...cache, ...args], env);
    const ok = async (...args: string[]): Promise<string> => {
      const res = await kubectl(...args);
      assert.equal(res.code, 0, `${bin.name} ${args.join(' ')}: ${res.stderr}`);
      return res.stdout;
    };
    const fileOf = (name: string, text: string): string => {
      const path = join(home, name);
      writeFileSync(path, text);
      return path;
    };
    const seed = seedFiles();

    before(async () => {
      const up = await runCli(['up', '--clusters', 'control-plane', '--api-port', '0', '--gateway-port', '0'], { home });
      assert.equal(up.code, 0, up.stderr);
      const kc = await runCli(['kubeconfig', 'get', 'control-plane'], { home });
      assert.equal(kc.code, 0, kc.stderr);
      writeFileSync(kubeconfig, kc.stdout);
    });

    after(async () => {
      await runCli(['down', '--purge'], { home });
      cleanup();
    });

    it('create namespace and create secret generic --from-literal (what the seed creates first)', async () => {
      assert.match(await ok('create', 'namespace', 'dapr-test'), /^namespace\/dapr-test created$/m);
      assert.match(await ok('create', 'namespace', 'curl'), /^namespace\/curl created$/m);
      assert.match(await ok('create', 'secret', 'generic', 'redis', '-n', 'dapr-test', '--from-literal=redis-password=changeme'), /^secret\/redis created$/m);
      assert.equal(await ok('get', 'secret', 'redis', '-n', 'dapr-test', '-o', 'jsonpath={.data.redis-password}'), Buffer.from('changeme').toString('base64'));
      const again = await kubectl('create', 'namespace', 'curl');
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /Error from server \(AlreadyExists\): namespaces "curl" already exists/);
    });

    it('apply -f of every seed manifest: created, then unchanged, then configured after an edit', async () => {
      for (const m of seed) {
        const ns = m.namespace ? ['-n', m.namespace] : [];
        assert.match(await ok('apply', '-f', fileOf(m.file, m.text), ...ns), / created$/m, m.file);
      }
      for (const m of seed) {
        const ns = m.namespace ? ['-n', m.namespace] : [];
        assert.match(await ok('apply', '-f', join(home, m.file), ...ns), / unchanged$/m, m.file);
      }
      const gtp = seed.find((m) => m.file === '07-globaltrafficpolicy.yaml')!;
      const edited = fileOf('07-edited.yaml', gtp.text.replace(/weight: 100\n(\s+- clusterKey: default\/default\/default\/cluster-3)/, 'weight: 60\n$1'));
      assert.match(await ok('apply', '-f', edited, '-n', 'dapr-test'), /^globaltrafficpolicy\.flomesh\.io\/nodeapp configured$/m);
      assert.equal(await ok('get', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.targets[0].weight}'), '60');
    });

    it('apply --server-side of every seed manifest, twice, and a server-side change', async () => {
      for (const round of [0, 1]) {
        for (const m of seed) {
          const ns = m.namespace ? ['-n', m.namespace] : [];
          const file = m.file === '07-globaltrafficpolicy.yaml' ? join(home, '07-edited.yaml') : join(home, m.file);
          assert.match(await ok('apply', '--server-side', '-f', file, ...ns), / serverside-applied$/m, `${m.file} round ${round}`);
        }
      }
      const gtp = seed.find((m) => m.file === '07-globaltrafficpolicy.yaml')!;
      // Back to the seed's weights with the same field manager (kubectl): owned by it, no conflict.
      assert.match(await ok('apply', '--server-side', '-f', join(home, gtp.file), '-n', 'dapr-test'), /serverside-applied/);
      assert.equal(await ok('get', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.targets[0].weight}'), '100');
      const managers = JSON.parse(await ok('get', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test', '-o', 'json', '--show-managed-fields')).metadata.managedFields as { manager: string; operation: string }[];
      assert.ok(managers.some((m) => m.operation === 'Apply'), JSON.stringify(managers));
    });

    it('get -A, -o yaml|json|wide|name|jsonpath (the seed\'s `kubectl get serviceexports.flomesh.io -A`)', async () => {
      assert.match(await ok('get', 'serviceexports.flomesh.io', '-A'), /^NAMESPACE\s+NAME\s.*\ndapr-test\s+nodeapp\s/m);
      const imports = await kubectl('get', 'serviceimports', '-A');
      assert.equal(imports.code, 0, imports.stderr);
      assert.match(imports.stderr, /No resources found/);
      const yaml = parseYaml(await ok('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'yaml'));
      assert.equal(yaml.kind, 'ServiceExport');
      assert.equal(yaml.spec.rules[0].path, '/nodeapp');
      const json = JSON.parse(await ok('get', 'svc', 'nodeapp', '-n', 'dapr-test', '-o', 'json'));
      assert.equal(json.spec.ports[0].port, 3000);
      assert.match(await ok('get', 'svc', '-n', 'dapr-test', '-o', 'wide'), /^NAME\s.*\nnodeapp\s/m);
      assert.equal((await ok('get', 'serviceexport', '-n', 'dapr-test', '-o', 'name')).trim(), 'serviceexport.flomesh.io/nodeapp');
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.rules[0].path}'), '/nodeapp');
      const missing = await kubectl('get', 'serviceexport', 'nope', '-n', 'dapr-test');
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /Error from server \(NotFound\): serviceexports\.flomesh\.io "nope" not found/);
    });

    it('get -w sees a change as it happens', async () => {
      const watch = spawnStreaming(bin.path, [...cache, 'get', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test', '-w'], env);
      try {
        await watch.waitFor(/^nodeapp\s/m);
        assert.match(await ok('label', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test', 'watched=yes'), /labeled/);
        // The change arrives as a second row for the object.
        await watch.waitFor(/^nodeapp\s[^\n]*\n(?:[^\n]*\n)*?nodeapp\s/m);
      } finally {
        await watch.stop();
      }
    });

    it('describe, label, annotate', async () => {
      const described = await ok('describe', 'serviceexport', 'nodeapp', '-n', 'dapr-test');
      assert.match(described, /^Name:\s+nodeapp$/m);
      assert.match(described, /^Namespace:\s+dapr-test$/m);
      assert.match(described, /^Kind:\s+ServiceExport$/m);
      assert.match(await ok('label', 'svc', 'nodeapp', '-n', 'dapr-test', 'team=payments'), /^service\/nodeapp labeled$/m);
      assert.equal((await ok('get', 'svc', '-n', 'dapr-test', '-l', 'team=payments', '-o', 'name')).trim(), 'service/nodeapp');
      // kubectl 1.27 itself prints "annotate" (its operation string); 1.28 and later "annotated".
      assert.match(await ok('annotate', 'serviceexport', 'nodeapp', '-n', 'dapr-test', 'owner=team-a'), /^serviceexport\.flomesh\.io\/nodeapp annotated?$/m);
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.metadata.annotations.owner}'), 'team-a');
      const unlabel = await ok('label', 'svc', 'nodeapp', '-n', 'dapr-test', 'team-');
      assert.match(unlabel, /labeled/);
      assert.equal(await ok('get', 'svc', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.metadata.labels.team}'), '');
    });

    it('patch --type merge, json and strategic', async () => {
      assert.match(await ok('patch', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '--type', 'merge', '-p', '{"spec":{"rules":[{"portNumber":3000,"path":"/nodeapp","pathType":"Prefix"},{"portNumber":3000,"path":"/v2","pathType":"Exact"}]}}'), /patched/);
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.rules[1].path}'), '/v2');
      assert.match(await ok('patch', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '--type', 'json', '-p', '[{"op":"remove","path":"/spec/rules/1"}]'), /patched/);
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.rules[*].path}'), '/nodeapp');
      // Strategic merge on a core kind: ports merge by their key (port), so targetPort survives.
      assert.match(await ok('patch', 'svc', 'nodeapp', '-n', 'dapr-test', '-p', '{"spec":{"ports":[{"port":3000,"name":"http"}]}}'), /^service\/nodeapp patched$/m);
      const svc = JSON.parse(await ok('get', 'svc', 'nodeapp', '-n', 'dapr-test', '-o', 'json'));
      assert.deepEqual(svc.spec.ports.map((p: { name: string; port: number; targetPort: number }) => [p.name, p.port, p.targetPort]), [['http', 3000, 3000]]);
      const bad = await kubectl('patch', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '--type', 'merge', '-p', '{"spec":{"rules":[{"portNumber":"x","path":"/a"}]}}');
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /ServiceExport.*"nodeapp" is invalid: spec\.rules\[0\]\.portNumber/);
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.rules[0].portNumber}'), '3000');
    });

    it('edit through KUBE_EDITOR', async () => {
      const editor = join(home, `editor-${i}.sh`);
      writeFileSync(editor, '#!/bin/sh\nsed -i "s/weight: 100/weight: 30/" "$1"\n');
      chmodSync(editor, 0o755);
      const res = await run(bin.path, [...cache, 'edit', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test'], { ...env, KUBE_EDITOR: editor });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^globaltrafficpolicy\.flomesh\.io\/nodeapp edited$/m);
      assert.equal(await ok('get', 'globaltrafficpolicy', 'nodeapp', '-n', 'dapr-test', '-o', 'jsonpath={.spec.targets[*].weight}'), '30 30');
    });

    it('explain serviceexport.spec.rules and api-resources', async () => {
      const explained = await ok('explain', 'serviceexport.spec.rules');
      assert.match(explained, /KIND:\s+ServiceExport/);
      assert.match(explained, /portNumber\s+<integer> -required-/);
      const resources = await ok('api-resources');
      assert.match(resources, /^serviceexports\s+\S*\s*flomesh\.io\/v1alpha1\s+true\s+ServiceExport$/m);
      assert.match(resources, /^globaltrafficpolicies\s+gtp\s+flomesh\.io\/v1alpha1\s+true\s+GlobalTrafficPolicy$/m);
      assert.match(resources, /^namespaces\s+ns\s+v1\s+false\s+Namespace$/m);
    });

    it('wait --for=condition=Valid serviceexport/nodeapp', async () => {
      assert.match(await ok('wait', '--for=condition=Valid', 'serviceexport/nodeapp', '-n', 'dapr-test', '--timeout=30s'), /^serviceexport\.flomesh\.io\/nodeapp condition met$/m);
    });

    it('delete -f of every seed manifest', async () => {
      for (const m of [...seed].reverse()) {
        const ns = m.namespace ? ['-n', m.namespace] : [];
        assert.match(await ok('delete', '-f', join(home, m.file), ...ns), / deleted$/m, m.file);
      }
      const gone = await kubectl('get', 'serviceexport', 'nodeapp', '-n', 'dapr-test');
      assert.match(gone.stderr, /Error from server \(NotFound\): serviceexports\.flomesh\.io "nodeapp" not found/);
    });
  });
}
