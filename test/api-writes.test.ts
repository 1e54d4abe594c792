import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers.js';
import { kubectlBinaries, run, type RunResult } from './support/kubectl.js';

/**
 * The API's write side against what real kubectl sends (the default kubectl and the oldest and
 * newest side-by-side versions, each in its own namespace of one real cluster process, through
 * the kubeconfig of `crossmesh kubeconfig get`): create namespace/secret as kubectl encodes
 * them, client-side then server-side apply with field managers (kubectl's migration, conflicts
 * after an edit, --force-conflicts), label/annotate/patch of the three types, edit,
 * fieldValidation Strict/Warn, server dry runs that change nothing, DeleteOptions, and the
 * Kubernetes-style errors kubectl prints. No kubectl = a failing suite, never a skip.
 */
describe('kubectl writes against a crossmesh cluster', () => {
  const { dir: home, cleanup } = tempDir();
  const kubeconfig = join(home, 'kubeconfig');
  const env = { KUBECONFIG: kubeconfig };
  const binaries = kubectlBinaries();
  const fileOf = (name: string, text: string): string => {
    const path = join(home, name);
    writeFileSync(path, text);
    return path;
  };
  /** The store's revision, as a list answers it: unchanged = nothing was written. */
  const revision = async (bin: string): Promise<string> => {
    const res = await run(bin, ['get', '--raw', '/apis/flomesh.io/v1alpha1/serviceexports'], env);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout).metadata.resourceVersion;
  };

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

  for (const [i, b] of binaries.entries()) {
    const ns = `writes-${i}`;
    const cache = ['--cache-dir', join(home, `cache-${i}`)];
    const kubectl = (...args: string[]): Promise<RunResult> => run(b.path, [...cache, ...args], env);
    const ok = async (...args: string[]): Promise<string> => {
      const res = await kubectl(...args);
      assert.equal(res.code, 0, `${b.name} ${args.join(' ')}: ${res.stderr}`);
      return res.stdout;
    };
    const fails = async (...args: string[]): Promise<string> => {
      const res = await kubectl(...args);
      assert.notEqual(res.code, 0, `${b.name} ${args.join(' ')} should fail: ${res.stdout}`);
      return res.stderr;
    };
    const gtp = (weight: number, lbType = 'ActiveActive') => `apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: nodeapp
spec:
  lbType: ${lbType}
  targets:
    - clusterKey: default/default/default/cluster-1
      weight: ${weight}
`;
    const sexp = (extra = '') => `apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  name: nodeapp
spec:
  serviceAccountName: '*'
  rules:
    - portNumber: 3000
      path: /nodeapp
      pathType: Prefix${extra}
`;

    it(`${b.name}: create namespace and secret generic as kubectl encodes them (creationTimestamp null, spec {}, status {}); AlreadyExists`, async () => {
      assert.match(await ok('create', 'namespace', ns), new RegExp(`^namespace/${ns} created$`, 'm'));
      const nsObj = JSON.parse(await ok('get', 'namespace', ns, '-o', 'json', '--show-managed-fields'));
      assert.equal(nsObj.status.phase, 'Active');
      assert.match(nsObj.metadata.creationTimestamp, /^\d{4}-/);
      assert.equal(nsObj.metadata.managedFields[0].manager, 'kubectl-create');
      assert.equal(nsObj.metadata.managedFields[0].operation, 'Update');
      assert.match(await ok('create', 'secret', 'generic', 'redis', '-n', ns, '--from-literal=redis-password=changeme'), /^secret\/redis created$/m);
      assert.equal(await ok('get', 'secret', 'redis', '-n', ns, '-o', 'jsonpath={.data.redis-password}'), Buffer.from('changeme').toString('base64'));
      assert.match(await fails('create', 'namespace', ns), new RegExp(`Error from server \\(AlreadyExists\\): namespaces "${ns}" already exists`));
      assert.match(await fails('create', 'secret', 'generic', 'redis', '-n', ns, '--from-literal=a=b'), /failed to create secret secrets "redis" already exists/);
    });

    it(`${b.name}: apply client-side (created, unchanged, configured), then --server-side twice: ownership moves to the kubectl manager`, async () => {
      assert.match(await ok('apply', '-f', fileOf(`gtp-${i}.yaml`, gtp(100)), '-n', ns), /globaltrafficpolicy\.flomesh\.io\/nodeapp created/);
      assert.match(await ok('apply', '-f', join(home, `gtp-${i}.yaml`), '-n', ns), /unchanged/);
      assert.match(await ok('apply', '-f', fileOf(`gtp-${i}-60.yaml`, gtp(60)), '-n', ns), /configured/);
      for (const round of [0, 1]) {
        assert.match(await ok('apply', '--server-side', '-f', join(home, `gtp-${i}-60.yaml`), '-n', ns), /serverside-applied/, `round ${round}`);
      }
      const rv = JSON.parse(await ok('get', 'gtp', 'nodeapp', '-n', ns, '-o', 'json')).metadata.resourceVersion;
      await ok('apply', '--server-side', '-f', join(home, `gtp-${i}-60.yaml`), '-n', ns);
      const obj = JSON.parse(await ok('get', 'gtp', 'nodeapp', '-n', ns, '-o', 'json', '--show-managed-fields'));
      assert.equal(obj.metadata.resourceVersion, rv, 're-applying the same configuration writes nothing');
      const apply = obj.metadata.managedFields.find((m: { manager: string; operation: string }) => m.manager === 'kubectl' && m.operation === 'Apply');
      assert.ok(apply, JSON.stringify(obj.metadata.managedFields));
      assert.deepEqual(apply.fieldsV1['f:spec'], { 'f:lbType': {}, 'f:targets': {} });
      assert.equal(apply.fieldsType, 'FieldsV1');
      // Back to 100 by the same manager: it owns the field, no conflict.
      await ok('apply', '--server-side', '-f', join(home, `gtp-${i}.yaml`), '-n', ns);
      assert.equal(await ok('get', 'gtp', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.targets[0].weight}'), '100');
    });

    it(`${b.name}: edit takes the field; a server-side apply of another value conflicts with "kubectl-edit" until --force-conflicts`, async () => {
      const editor = fileOf(`editor-${i}.sh`, '#!/bin/sh\nsed -i "s/weight: 100/weight: 30/" "$1"\n');
      chmodSync(editor, 0o755);
      const edited = await run(b.path, [...cache, 'edit', 'gtp', 'nodeapp', '-n', ns], { ...env, KUBE_EDITOR: editor });
      assert.equal(edited.code, 0, edited.stderr);
      assert.match(edited.stdout, /^globaltrafficpolicy\.flomesh\.io\/nodeapp edited$/m);
      const conflict = await fails('apply', '--server-side', '-f', join(home, `gtp-${i}.yaml`), '-n', ns);
      assert.match(conflict, /Apply failed with 1 conflict: conflict with "kubectl-edit" using flomesh\.io\/v1alpha1: \.spec\.targets/);
      assert.equal(await ok('get', 'gtp', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.targets[0].weight}'), '30', 'a refused apply changes nothing');
      // The same value as the editor's: shared, no conflict.
      assert.match(await ok('apply', '--server-side', '-f', fileOf(`gtp-${i}-30.yaml`, gtp(30)), '-n', ns), /serverside-applied/);
      assert.match(await ok('apply', '--server-side', '--force-conflicts', '-f', join(home, `gtp-${i}.yaml`), '-n', ns), /serverside-applied/);
      assert.equal(await ok('get', 'gtp', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.targets[0].weight}'), '100');
    });

    it(`${b.name}: label, annotate, patch --type merge|json|strategic; strategic on a CRD kind and bad patches are refused as Kubernetes refuses them`, async () => {
      await ok('apply', '-f', fileOf(`svc-${i}.yaml`, 'apiVersion: v1\nkind: Service\nmetadata: {name: nodeapp, labels: {app: node}}\nspec:\n  selector: {app: node}\n  ports:\n  - {protocol: TCP, port: 3000, targetPort: 3000}\n  - {protocol: TCP, port: 9090, targetPort: 9090, name: metrics}\n'), '-n', ns);
      await ok('apply', '-f', fileOf(`sexp-${i}.yaml`, sexp()), '-n', ns);
      assert.match(await ok('label', 'svc', 'nodeapp', '-n', ns, 'team=payments'), /^service\/nodeapp labeled$/m);
      assert.equal((await ok('get', 'svc', '-n', ns, '-l', 'team=payments', '-o', 'name')).trim(), 'service/nodeapp');
      assert.match(await ok('label', 'svc', 'nodeapp', '-n', ns, 'team-'), /unlabeled|labeled/);
      assert.equal(await ok('get', 'svc', 'nodeapp', '-n', ns, '-o', 'jsonpath={.metadata.labels.team}'), '');
      assert.match(await ok('annotate', 'serviceexport', 'nodeapp', '-n', ns, 'owner=team-a'), /serviceexport\.flomesh\.io\/nodeapp annotated?$/m); // kubectl 1.27 prints "annotate"
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', ns, '-o', 'jsonpath={.metadata.annotations.owner}'), 'team-a');
      const managers = JSON.parse(await ok('get', 'serviceexport', 'nodeapp', '-n', ns, '-o', 'json', '--show-managed-fields')).metadata.managedFields.map((m: { manager: string }) => m.manager);
      assert.ok(managers.includes('kubectl-annotate') && managers.includes('kubectl-client-side-apply'), managers.join(', '));

      await ok('patch', 'serviceexport', 'nodeapp', '-n', ns, '--type', 'merge', '-p', '{"spec":{"rules":[{"portNumber":3000,"path":"/nodeapp"},{"portNumber":3000,"path":"/v2","pathType":"Exact"}]}}');
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.rules[*].path}'), '/nodeapp /v2');
      await ok('patch', 'serviceexport', 'nodeapp', '-n', ns, '--type', 'json', '-p', '[{"op":"test","path":"/spec/rules/1/path","value":"/v2"},{"op":"remove","path":"/spec/rules/1"}]');
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.rules[*].path}'), '/nodeapp');
      assert.match(await fails('patch', 'serviceexport', 'nodeapp', '-n', ns, '--type', 'json', '-p', '[{"op":"test","path":"/spec/rules/0/path","value":"/other"}]'), /test failed/);

      // Strategic (kubectl's default type): Service ports merge by port; the other port and targetPort survive.
      assert.match(await ok('patch', 'svc', 'nodeapp', '-n', ns, '-p', '{"spec":{"ports":[{"port":3000,"name":"http"}]}}'), /^service\/nodeapp patched$/m);
      const ports = JSON.parse(await ok('get', 'svc', 'nodeapp', '-n', ns, '-o', 'json')).spec.ports.map((p: { name: string; port: number; targetPort: number }) => [p.name, p.port, p.targetPort]);
      assert.deepEqual(ports, [['http', 3000, 3000], ['metrics', 9090, 9090]]);
      await ok('patch', 'svc', 'nodeapp', '-n', ns, '-p', '{"spec":{"ports":[{"port":9090,"$patch":"delete"}]}}');
      assert.equal(await ok('get', 'svc', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.ports[*].port}'), '3000');
      assert.match(await fails('patch', 'serviceexport', 'nodeapp', '-n', ns, '-p', '{"spec":{"sessionSticky":true}}'),
        /the body of the request was in an unknown format - accepted media types include: application\/json-patch\+json, application\/merge-patch\+json, application\/apply-patch\+yaml/);
      const invalid = await fails('patch', 'serviceexport', 'nodeapp', '-n', ns, '--type', 'merge', '-p', '{"spec":{"rules":[{"portNumber":"x","path":"/a"}]}}');
      assert.match(invalid, /ServiceExport "nodeapp" is invalid: spec\.rules\[0\]\.portNumber: Invalid value: "x"/);
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.rules[0].portNumber}'), '3000');
    });

    it(`${b.name}: fieldValidation: Strict (kubectl's default) refuses unknown fields; --validate=warn drops them with kubectl's Warning lines`, async () => {
      const file = fileOf(`sexp-unknown-${i}.yaml`, sexp('\n      bar: 1').replace('  name: nodeapp', '  name: strict').replace("spec:\n", 'spec:\n  foo: 1\n'));
      const strict = await fails('apply', '-f', file, '-n', ns);
      assert.match(strict, /strict decoding error: unknown field "spec\.foo", unknown field "spec\.rules\[0\]\.bar"/);
      assert.match(await fails('get', 'serviceexport', 'strict', '-n', ns), /Error from server \(NotFound\): serviceexports\.flomesh\.io "strict" not found/);
      const warn = await kubectl('apply', '--validate=warn', '-f', file, '-n', ns);
      assert.equal(warn.code, 0, warn.stderr);
      assert.match(warn.stderr, /Warning: unknown field "spec\.foo"/);
      assert.match(warn.stderr, /Warning: unknown field "spec\.rules\[0\]\.bar"/);
      const stored = JSON.parse(await ok('get', 'serviceexport', 'strict', '-n', ns, '-o', 'json'));
      assert.equal(stored.spec.foo, undefined);
      assert.deepEqual(Object.keys(stored.spec.rules[0]).sort(), ['path', 'pathType', 'portNumber']);
    });

    it(`${b.name}: --dry-run=server create, patch, apply and delete answer the would-be object and write nothing`, async () => {
      const before = await revision(b.path);
      const created = JSON.parse(await ok('create', '-f', fileOf(`dry-${i}.yaml`, sexp().replace('name: nodeapp', 'name: dry')), '-n', ns, '--dry-run=server', '-o', 'json'));
      assert.equal(created.metadata.name, 'dry');
      assert.equal(created.spec.pathRewrite, undefined);
      assert.equal(created.spec.loadBalancer, 'RoundRobinLoadBalancer', 'defaults applied');
      const patched = JSON.parse(await ok('patch', 'serviceexport', 'nodeapp', '-n', ns, '--type', 'merge', '-p', '{"spec":{"sessionSticky":true}}', '--dry-run=server', '-o', 'json'));
      assert.equal(patched.spec.sessionSticky, true);
      await ok('apply', '--server-side', '--force-conflicts', '-f', join(home, `dry-${i}.yaml`), '-n', ns, '--dry-run=server');
      assert.match(await ok('delete', 'serviceexport', 'nodeapp', '-n', ns, '--dry-run=server'), /deleted \(server dry run\)/);
      assert.equal(await revision(b.path), before, 'no write happened');
      assert.match(await fails('get', 'serviceexport', 'dry', '-n', ns), /NotFound/);
      assert.equal(await ok('get', 'serviceexport', 'nodeapp', '-n', ns, '-o', 'jsonpath={.spec.sessionSticky}'), 'false');
    });

    it(`${b.name}: delete with cascade policies (DeleteOptions body); orphaning a namespace and unknown names are refused`, async () => {
      assert.match(await fails('delete', 'serviceexport', 'nope', '-n', ns), /Error from server \(NotFound\): serviceexports\.flomesh\.io "nope" not found/);
      assert.match(await ok('delete', 'serviceexport', 'strict', '-n', ns, '--cascade=foreground'), /deleted/);
      assert.match(await ok('delete', '-f', join(home, `sexp-${i}.yaml`), '-n', ns, '--cascade=orphan'), /deleted/);
      assert.match(await fails('delete', 'namespace', ns, '--cascade=orphan'), /Error from server \(BadRequest\): propagationPolicy: Invalid value: "Orphan"/);
      assert.match(await ok('delete', 'namespace', ns, '--wait=false'), new RegExp(`namespace "${ns}" deleted`));
      assert.match(await fails('get', 'gtp', 'nodeapp', '-n', ns), /NotFound/);
    });
  }
});
