/**
 * The import rules of src/ ("dependencies point one way"), checked on the TypeScript sources:
 * no import cycles, the client speaks the wire format without the server, the sidecar does not
 * reach into the CLI, product modules are not test scaffolding (that lives in test/support/),
 * the CLI does not load the API server unless it runs a cluster, and the sidecar's entry point
 * and the CLI's top level load only what they need (test/lean.test.ts checks real processes).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Edge { to: string; typeOnly: boolean; dynamic: boolean }

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(ROOT, p));
  }
  return out;
}

const isTest = (f: string) => f.endsWith('.test.ts');

/** Relative imports of a file (static, `export ... from`, dynamic), resolved to repo paths. */
function importsOf(file: string): Edge[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const edges: Edge[] = [];
  const add = (spec: string, typeOnly: boolean, dynamic: boolean) => {
    if (!spec.startsWith('.')) return;
    edges.push({ to: relative(ROOT, resolve(ROOT, dirname(file), spec.replace(/\.js$/, '.ts'))), typeOnly, dynamic });
  };
  for (const m of text.matchAll(/^[ \t]*(import|export)\s+(type\s+)?[^;'"]*?\bfrom\s+'([^']+)'/gm)) add(m[3], !!m[2], false);
  for (const m of text.matchAll(/^[ \t]*import\s+'([^']+)'/gm)) add(m[1], false, false);
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) add(m[1], false, true);
  return edges;
}

/** Packages a file imports statically (not type-only, not dynamic): `import ... from 'pkg'`. */
function packagesOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^[ \t]*(import|export)\s+(type\s+)?[^;'"]*?\bfrom\s+'([^']+)'/gm)) {
    if (!m[2] && !m[3].startsWith('.') && !m[3].startsWith('node:')) out.push(m[3]);
  }
  for (const m of text.matchAll(/^[ \t]*import\s+'([^'.][^']*)'/gm)) if (!m[1].startsWith('node:')) out.push(m[1]);
  return out;
}

/** Files reached from `entry` by static, non-type imports, and the packages they import. */
function staticClosure(entry: string): { files: string[]; packages: string[] } {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const e of GRAPH.get(f) ?? []) if (!e.typeOnly && !e.dynamic) todo.push(e.to);
  }
  return { files: [...seen].sort(), packages: [...new Set([...seen].flatMap(packagesOf))].sort() };
}

const SRC = sources(join(ROOT, 'src'));
const PRODUCT = SRC.filter((f) => !isTest(f));
const GRAPH = new Map(PRODUCT.map((f) => [f, importsOf(f)]));

describe('dependency rules of src/', () => {
  it('the import parser sees the imports (sanity check of this test)', () => {
    const main = GRAPH.get('src/cli/main.ts')!.map((e) => e.to);
    assert.ok(main.includes('src/cli/commands/lifecycle.ts'), main.join(', '));
    assert.ok(GRAPH.get('src/client/api-client.ts')!.some((e) => e.to === 'src/api/wire.ts'));
  });

  it('no import cycles among product modules (type-only imports included)', () => {
    // Tarjan's strongly connected components.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index); low.set(v, index); index++;
      stack.push(v); onStack.add(v);
      for (const { to } of GRAPH.get(v) ?? []) {
        if (!GRAPH.has(to)) continue;
        if (!idx.has(to)) { visit(to); low.set(v, Math.min(low.get(v)!, low.get(to)!)); }
        else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, idx.get(to)!));
      }
      if (low.get(v) === idx.get(v)) {
        const scc: string[] = [];
        let w: string;
        do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
        if (scc.length > 1 || (GRAPH.get(v) ?? []).some((e) => e.to === v)) cycles.push(scc.sort());
      }
    };
    for (const v of GRAPH.keys()) if (!idx.has(v)) visit(v);
    assert.deepEqual(cycles, []);
  });

  const forbidden: Array<[string, string, string]> = [
    ['src/client/', 'src/apiserver/', 'the wire format both use is src/api/wire.ts'],
    ['src/sidecar/', 'src/cli/', 'home paths are in src/util/home.ts'],
    ['src/', 'test/', 'test scaffolding is imported by tests only'],
  ];
  for (const [from, to, hint] of forbidden) {
    it(`${from} does not import ${to}`, () => {
      const bad = PRODUCT.filter((f) => f.startsWith(from)).flatMap((f) => GRAPH.get(f)!.filter((e) => e.to.startsWith(to)).map((e) => `${f} → ${e.to}`));
      assert.deepEqual(bad, [], hint);
    });
  }

  it('product modules are not test scaffolding: no node:test or node:assert outside *.test.ts', () => {
    const bad = PRODUCT.filter((f) => /\bfrom\s+'node:(test|assert)(\/strict)?'/.test(readFileSync(join(ROOT, f), 'utf8')));
    assert.deepEqual(bad, [], 'move it under test/support/');
  });

  it('the CLI loads the API server only for `crossmesh cluster` (static imports of bin → src/cli/main.ts)', () => {
    const seen = new Set<string>();
    const todo = ['src/cli/main.ts'];
    while (todo.length) {
      const f = todo.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const e of GRAPH.get(f) ?? []) if (!e.typeOnly && !e.dynamic) todo.push(e.to);
    }
    const loaded = [...seen].filter((f) => f.startsWith('src/apiserver/') || f === 'src/cluster/cluster.ts');
    assert.deepEqual(loaded, []);
  });

  it('the sidecar entry point (src/sidecar/main.ts) loads no CLI, API server, store, schemas, state backend', () => {
    const { files, packages } = staticClosure('src/sidecar/main.ts');
    const bad = files.filter((f) => /^src\/(cli|apiserver|store|cluster|multicluster|export|gateway)\//.test(f) || ['src/api/validation.ts', 'src/api/schemas.ts', 'src/state/sqlite.ts', 'src/state/redis.ts', 'src/dapr/grpc/server.ts'].includes(f));
    assert.deepEqual(bad, []);
    // prom-client: the sidecar's metrics (src/metrics/requests.ts). @grpc/grpc-js and
    // @grpc/proto-loader come with src/dapr/grpc/server.ts, imported on the first gRPC connection.
    assert.deepEqual(packages, ['prom-client']);
  });

  it('the CLI\'s top level (src/cli/main.ts) loads commander and no command module', () => {
    const { files, packages } = staticClosure('src/cli/main.ts');
    assert.deepEqual(packages, ['commander']);
    assert.deepEqual(files.filter((f) => f.startsWith('src/cli/commands/') || f.startsWith('src/client/') || f.startsWith('src/api/')), []);
  });

  it('VERSION (src/version.ts) is the version in package.json', async () => {
    const { VERSION } = await import('../src/version.js');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(VERSION, pkg.version);
  });
});
