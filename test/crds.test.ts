import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { crdKinds, crdName, crdYaml, allCrdsYaml } from '../src/cli/commands/crds.js';
import { runCli, tempDir } from './helpers.js';

const DIR = fileURLToPath(new URL('../../deploy/crds/', import.meta.url));
const REGEN = 'regenerate them with `npm run build && node bin/crossmesh.js crds --dir deploy/crds`';

type Node = Record<string, any>;

/** apiextensions' structural-schema rules (the ones our generator could break), as problems with their paths. */
function structuralProblems(s: Node, path: string, out: string[], root = false): void {
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  if (s.type === undefined && !preserve && !intOrString) out.push(`${path}: no type`);
  if (s.$ref !== undefined) out.push(`${path}: $ref is not allowed`);
  if (s.properties && s.additionalProperties !== undefined) out.push(`${path}: additionalProperties beside properties`);
  if (s.additionalProperties === false || s.additionalProperties === true) out.push(`${path}: boolean additionalProperties`);
  if (s.type === 'array' && !s.items) out.push(`${path}: array without items`);
  if (s.anyOf !== undefined) {
    const ok = intOrString && JSON.stringify(s.anyOf) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]);
    if (!ok) out.push(`${path}: anyOf other than int-or-string`);
  }
  for (const k of ['allOf', 'oneOf', 'not']) if (s[k] !== undefined) out.push(`${path}: ${k}`);
  if (s['x-kubernetes-list-type'] === 'map') {
    for (const key of s['x-kubernetes-list-map-keys'] ?? []) if (!(s.items?.required ?? []).includes(key)) out.push(`${path}: map key ${key} not required`);
  }
  if (Array.isArray(s.required)) for (const r of s.required) if (!s.properties?.[r]) out.push(`${path}: required ${r} is not a property`);
  if (root) {
    if (JSON.stringify(s.properties?.metadata) !== JSON.stringify({ type: 'object' })) out.push(`${path}.metadata: must be only {type: object}`);
    for (const f of ['apiVersion', 'kind', 'metadata']) if (s.required?.includes(f)) out.push(`${path}: ${f} required`);
  }
  for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Node>)) structuralProblems(v, `${path}.${k}`, out);
  if (s.items) structuralProblems(s.items, `${path}[*]`, out);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') structuralProblems(s.additionalProperties, `${path}{*}`, out);
}

describe('CustomResourceDefinitions (deploy/crds/, crossmesh crds)', () => {
  it('deploy/crds/ holds exactly the generated CRDs, unchanged', () => {
    const expected = crdKinds().map((k) => `${crdName(k)}.yaml`).sort();
    assert.deepEqual(readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort(), expected, `deploy/crds/ has other files than the generated ones: ${REGEN}`);
    for (const k of crdKinds()) {
      const file = join(DIR, `${crdName(k)}.yaml`);
      assert.ok(existsSync(file), `deploy/crds/${crdName(k)}.yaml is missing: ${REGEN}`);
      assert.equal(readFileSync(file, 'utf8'), crdYaml(k), `deploy/crds/${crdName(k)}.yaml drifted from the zod schema of ${k.kind}: ${REGEN}`);
    }
  });

  it('covers every crossmesh kind that is not a Kubernetes kind, with names, scope, status and columns', () => {
    assert.deepEqual(crdKinds().map((k) => k.kind).sort(), ['Cluster', 'Component', 'Configuration', 'GlobalTrafficPolicy', 'Resiliency', 'ServiceExport', 'ServiceImport', 'Subscription']);
    for (const doc of parseAllDocuments(allCrdsYaml())) {
      const crd = doc.toJS() as Node;
      const k = crdKinds().find((x) => x.kind === crd.spec.names.kind)!;
      assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
      assert.equal(crd.metadata.name, `${k.plural}.${k.group}`);
      assert.equal(crd.spec.scope, k.namespaced ? 'Namespaced' : 'Cluster');
      assert.deepEqual(crd.spec.names.shortNames ?? [], k.shortNames);
      const v = crd.spec.versions[0];
      assert.equal(v.name, k.version);
      assert.equal(v.storage, true);
      assert.equal(v.subresources?.status !== undefined, k.hasStatus, `${k.kind} status subresource`);
      assert.equal(v.additionalPrinterColumns.at(-1).name, 'Age');
    }
  });

  it('every schema is structural (typed at every level, preserve-unknown-fields where zod passes through)', () => {
    for (const doc of parseAllDocuments(allCrdsYaml())) {
      const crd = doc.toJS() as Node;
      const problems: string[] = [];
      structuralProblems(crd.spec.versions[0].schema.openAPIV3Schema, crd.metadata.name, problems, true);
      assert.deepEqual(problems, [], `${crd.metadata.name} is not structural`);
    }
    // Spot checks of the mapping: passthrough → preserve; records → additionalProperties; DynamicValue untyped.
    const comp = parseAllDocuments(allCrdsYaml()).map((d) => d.toJS() as Node).find((c) => c.spec.names.kind === 'Component')!;
    const spec = comp.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    assert.equal(spec['x-kubernetes-preserve-unknown-fields'], true);
    assert.deepEqual(spec.properties.metadata.items.properties.value, { 'x-kubernetes-preserve-unknown-fields': true });
  });

  it('the printer columns are the columns crossmesh get prints', async () => {
    const { PRINTER_COLUMNS } = await import('../src/cli/commands/crds.js');
    const { get } = await import('../src/cli/commands/resources.js');
    const obj = { metadata: { name: 'x', namespace: 'default', creationTimestamp: new Date().toISOString() }, spec: {}, status: {} };
    const client = { list: async () => ({ items: [obj] }), get: async () => obj } as never;
    for (const k of crdKinds()) {
      for (const wide of [false, true]) {
        const text = await get(client, k.plural, undefined, { namespace: 'default', allNamespaces: false, output: wide ? 'wide' : undefined });
        const headers = text.split('\n')[0].trim().split(/\s{2,}/);
        const cols = PRINTER_COLUMNS[k.kind].filter((c) => wide || !c.priority).map((c) => c.name.toUpperCase());
        assert.deepEqual(headers, ['NAME', ...cols], `${k.kind}${wide ? ' -o wide' : ''}`);
      }
    }
  });

  it('crossmesh crds prints them as multi-document YAML', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const res = await runCli(['crds'], { home: dir });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout, allCrdsYaml());
      assert.equal(parseAllDocuments(res.stdout).length, crdKinds().length);
    } finally {
      cleanup();
    }
  });
});
