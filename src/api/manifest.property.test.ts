/**
 * Property-based tests (fast-check) of the resource model through the real API: generated
 * manifests of the multi-cluster kinds. Every valid one round-trips (YAML parse → apply → get
 * gives the validated object back); every invalid one is refused with a message naming the field,
 * both by parseManifests (the CLI's check) and by the API server, and leaves the store unchanged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ApiClient } from '../client/api-client.js';
import { startCluster, type RunningCluster } from '../cluster/cluster.js';
import { CrossmeshError } from '../errors.js';
import { kindFor, parseManifests, validateObject, type KubeObject } from './validation.js';

const NS = 'props';
const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,20}[a-z0-9])?$/);
const segment = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/);
const clusterKey = fc.tuple(label, label, label, label).map((p) => p.join('/'));
const port = fc.integer({ min: 1, max: 65535 });

const serviceExport = fc
  .record({
    name: label,
    paths: fc.uniqueArray(segment, { minLength: 1, maxLength: 3 }),
    portNumber: port,
    pathType: fc.constantFrom('Exact', 'Prefix'),
    rewrite: fc.boolean(),
    sessionSticky: fc.option(fc.boolean(), { nil: undefined }),
    loadBalancer: fc.option(fc.constantFrom('RoundRobinLoadBalancer', 'HashingLoadBalancer', 'LeastWorkLoadBalancer'), { nil: undefined }),
    targetClusters: fc.option(fc.array(clusterKey, { maxLength: 3 }), { nil: undefined }),
  })
  .map((r) => ({
    apiVersion: 'flomesh.io/v1alpha1',
    kind: 'ServiceExport',
    metadata: { name: r.name, namespace: NS },
    spec: {
      rules: r.paths.map((p) => ({ portNumber: r.portNumber, path: `/${p}`, pathType: r.pathType })),
      ...(r.rewrite ? { pathRewrite: { from: `^/${r.paths[0]}/?`, to: '/' } } : {}),
      ...(r.sessionSticky === undefined ? {} : { sessionSticky: r.sessionSticky }),
      ...(r.loadBalancer === undefined ? {} : { loadBalancer: r.loadBalancer }),
      ...(r.targetClusters === undefined ? {} : { targetClusters: r.targetClusters }),
    },
  }));

const globalTrafficPolicy = fc
  .record({
    name: label,
    lbType: fc.constantFrom('Locality', 'FailOver', 'ActiveActive'),
    targets: fc.uniqueArray(fc.record({ clusterKey, weight: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }) }), { minLength: 1, maxLength: 3, selector: (t) => t.clusterKey }),
  })
  .map((r) => ({
    apiVersion: 'flomesh.io/v1alpha1',
    kind: 'GlobalTrafficPolicy',
    metadata: { name: r.name, namespace: NS },
    // Locality names at most one target (the validator says so).
    spec: { lbType: r.lbType, targets: (r.lbType === 'Locality' ? r.targets.slice(0, 1) : r.targets).map((t) => (t.weight === undefined ? { clusterKey: t.clusterKey } : t)) },
  }));

const service = fc
  .record({ name: label, ports: fc.uniqueArray(port, { minLength: 1, maxLength: 3 }) })
  .map((r) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: r.name, namespace: NS },
    spec: { ports: r.ports.map((p, i) => ({ name: `p${i}`, port: p })) },
  }));

const validObject = fc.oneof(serviceExport, globalTrafficPolicy, service);

type Obj = { kind: string; metadata: { name: string }; spec: Record<string, any> };
/** One way to break a valid object, and the field the refusal must name. */
type Breaker = { field: string; apply: (o: Obj) => void; kinds: string[] };
const breakers: Breaker[] = [
  { kinds: ['ServiceExport', 'GlobalTrafficPolicy', 'Service'], field: 'metadata.name', apply: (o) => void (o.metadata.name = `Bad_${o.metadata.name}`) },
  { kinds: ['ServiceExport', 'GlobalTrafficPolicy', 'Service'], field: 'metadata.name', apply: (o) => void (o.metadata.name = 'x'.repeat(300)) },
  { kinds: ['ServiceExport'], field: 'spec.rules', apply: (o) => void (o.spec.rules = []) },
  { kinds: ['ServiceExport'], field: 'spec.rules[0].portNumber', apply: (o) => void (o.spec.rules[0].portNumber = 70000) },
  { kinds: ['ServiceExport'], field: 'spec.rules[0].portNumber', apply: (o) => void (o.spec.rules[0].portNumber = 0) },
  { kinds: ['ServiceExport'], field: 'spec.rules[0].path', apply: (o) => void (o.spec.rules[0].path = 'no-slash') },
  { kinds: ['ServiceExport'], field: 'spec.rules[0].pathType', apply: (o) => void (o.spec.rules[0].pathType = 'Regex') },
  { kinds: ['ServiceExport'], field: 'spec.pathRewrite.from', apply: (o) => void (o.spec.pathRewrite = { from: '^/(', to: '/' }) },
  { kinds: ['ServiceExport'], field: 'spec.pathRewrite.from', apply: (o) => void (o.spec.pathRewrite = { from: '^(a+)+$', to: '/' }) },
  { kinds: ['ServiceExport'], field: 'spec.pathRewrite.from', apply: (o) => void (o.spec.pathRewrite = { from: '^/x/(.*a){30}$', to: '/' }) },
  { kinds: ['ServiceExport'], field: 'spec.loadBalancer', apply: (o) => void (o.spec.loadBalancer = 'Random') },
  { kinds: ['ServiceExport'], field: 'spec.sessionSticky', apply: (o) => void (o.spec.sessionSticky = 'yes') },
  { kinds: ['ServiceExport'], field: 'spec.targetClusters[0]', apply: (o) => void (o.spec.targetClusters = ['cluster-1']) },
  { kinds: ['GlobalTrafficPolicy'], field: 'spec.lbType', apply: (o) => void (o.spec.lbType = 'RoundRobin') },
  { kinds: ['GlobalTrafficPolicy'], field: 'spec.targets[0].clusterKey', apply: (o) => void (o.spec.targets = [{ clusterKey: 'a/b' }]) },
  { kinds: ['GlobalTrafficPolicy'], field: 'spec.targets[0].weight', apply: (o) => void (o.spec.targets = [{ clusterKey: 'a/b/c/d', weight: -1 }]) },
  { kinds: ['Service'], field: 'spec.ports[0].port', apply: (o) => void (o.spec.ports[0].port = 65536) },
];

const invalidObject = validObject.chain((o) => {
  const usable = breakers.filter((b) => b.kinds.includes(o.kind));
  return fc.constantFrom(...usable).map((b) => {
    const copy = structuredClone(o) as Obj;
    b.apply(copy);
    return { object: copy as unknown as KubeObject, field: b.field };
  });
});

describe('manifests, property-based, through the API of an in-process cluster', () => {
  let cluster: RunningCluster;
  let client: ApiClient;

  before(async () => {
    cluster = await startCluster({ name: 'props', dataDir: null });
    client = new ApiClient(cluster.endpoint);
    await client.create(kindFor('v1', 'Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  });
  after(async () => {
    await client?.close();
    await cluster?.close();
  });

  it('every valid manifest round-trips: YAML → parseManifests → apply → get gives the validated object', async () => {
    await fc.assert(
      fc.asyncProperty(validObject, async (obj) => {
        const yaml = stringify(obj);
        const [doc] = parseManifests(yaml, { file: 'gen.yaml' });
        const expected = validateObject(obj);
        assert.deepEqual(doc.object.spec, expected.spec);
        const kind = kindFor(obj.apiVersion, obj.kind);
        await client.apply(kind, doc.object);
        const got = await client.get(kind, obj.metadata.name, NS);
        assert.ok(got, 'stored');
        assert.deepEqual(got.spec, expected.spec);
        assert.equal(got.kind, obj.kind);
        // Applying the same manifest again changes nothing.
        const again = await client.apply(kind, doc.object);
        assert.equal(again.metadata.resourceVersion, got.metadata.resourceVersion);
      }),
      { numRuns: 150 },
    );
  });

  it('every invalid manifest is refused with a message naming the field, by the parser and the API, and the store is unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(invalidObject, async ({ object, field }) => {
        const yaml = stringify(object);
        assert.throws(() => parseManifests(yaml, { file: 'bad.yaml' }), (err: unknown) => {
          assert.ok(err instanceof CrossmeshError, String(err));
          assert.ok(err.message.includes(field), `parser message names ${field}: ${err.message}`);
          assert.match(err.message, /bad\.yaml/);
          return true;
        });
        const revision = cluster.store.revision();
        const kind = kindFor(object.apiVersion, object.kind);
        const existing = await client.get(kind, object.metadata.name, NS).catch(() => undefined);
        for (const write of [() => client.create(kind, object), () => client.apply(kind, object)]) {
          await assert.rejects(write(), (err: unknown) => {
            assert.ok(err instanceof CrossmeshError, String(err));
            assert.ok([400, 422].includes(err.status), `${err.status} ${err.message}`);
            assert.ok(err.message.includes(field), `API message names ${field}: ${err.message}`);
            return true;
          });
        }
        assert.equal(cluster.store.revision(), revision, 'the store is unchanged');
        assert.deepEqual(await client.get(kind, object.metadata.name, NS).catch(() => undefined), existing);
      }),
      { numRuns: 150 },
    );
  });

  it('random bytes as a manifest never crash the parser: a CrossmeshError or objects that validate', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        try {
          for (const d of parseManifests(text, { file: 'fuzz.yaml' })) validateObject(d.object);
        } catch (err) {
          assert.ok(err instanceof CrossmeshError, `${String(err)} for ${JSON.stringify(text)}`);
        }
      }),
      { numRuns: 500 },
    );
  });
});
