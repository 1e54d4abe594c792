/**
 * `node --expose-gc dist/bench/route-memory.js [E] [N]`: the live heap a sidecar's route caches
 * and compiled routes take per service, for 1,000 services with E local endpoints each and an
 * import from N-1 other clusters (the shapes bench:scale creates), as JSON.parse makes them and
 * the sidecar's informer transform (`routingFields`) keeps them. Heap used after two full GCs, so
 * it is what is held, not V8's headroom (which RSS includes).
 */
import { RouteTable } from '../src/sidecar/route-table.js';
import { routingFields } from '../src/client/informer.js';
import type { KubeObject } from '../src/api/types.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const S = 1000;
const E = Number(process.argv[2] ?? 10);
const N = Number(process.argv[3] ?? 10);

function objects(i: number): KubeObject[] {
  const name = `svc-${i}`;
  const ns = 'scale';
  const meta = { name, namespace: ns, resourceVersion: String(i), uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`, creationTimestamp: '2026-12-04T00:00:00Z' };
  const made: KubeObject[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: meta, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: meta, subsets: [{ addresses: Array.from({ length: E }, (_, e) => ({ ip: `10.1.${Math.floor(i / 200)}.${(i % 200) + e + 1}` })), ports: [{ name: 'http', port: 8080 }] }] },
    {
      apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceImport', metadata: { ...meta, labels: { 'multicluster.flomesh.io/managed-by': 'crossmesh-control-plane' } },
      spec: { type: 'ClusterSetIP', serviceAccountName: '*', ports: [{ name: 'http', protocol: 'TCP', port: 80, endpoints: Array.from({ length: N - 1 }, (_, k) => ({ clusterKey: `default/default/default/member-${k + 2}`, target: { host: '127.0.0.1', ip: '127.0.0.1', port: 40000 + k, path: `/${name}`, meshPort: 41000 + k } })) }] },
    },
  ];
  // As off the wire: fresh strings per object.
  return (JSON.parse(JSON.stringify(made)) as KubeObject[]).map(routingFields);
}

const heap = () => {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
};
const h0 = heap();
const cache = new Map<string, KubeObject[]>();
for (let i = 0; i < S; i++) cache.set(`scale/svc-${i}`, objects(i));
const h1 = heap();
const pick = (k: number) => (ns: string, name: string) => cache.get(`${ns}/${name}`)?.[k];
const table = new RouteTable('member-1', undefined);
table.update([...cache.keys()], { service: pick(0), endpoints: pick(1), serviceImport: pick(2), policy: () => undefined });
const h2 = heap();
const kb = (b: number) => (b / S / 1024).toFixed(2);
console.log(`E=${E} N=${N}: cached objects ${kb(h1 - h0)} KB per service, compiled routes ${kb(h2 - h1)} KB per service (${table.routes.size} routes), total ${kb(h2 - h0)} KB`);
