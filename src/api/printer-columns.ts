/**
 * The columns `crossmesh get` prints for each kind, as Kubernetes printer columns: the CRDs'
 * additionalPrinterColumns (`crossmesh crds`, cli/commands/crds.ts) and the API server's Table
 * output (apiserver/table.ts, what `kubectl get` prints) both come from here. No imports: the CLI
 * and the API server load it without each other.
 */

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** A column of a Kubernetes kind's table: a JSONPath, or a value one JSONPath can't say (`80/TCP`). */
export interface CorePrinterColumn extends PrinterColumn {
  value?: (obj: { [key: string]: unknown }) => string;
}

const cond = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;
const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/**
 * The columns `crossmesh get` prints for each kind (src/cli/commands/resources.ts), as JSONPath
 * (priority 1 = only with -o wide). Where `get` joins values (GATEWAY host:port, PATHS
 * port+path) the column shows what one JSONPath can: the host, the paths.
 */
export const PRINTER_COLUMNS: Readonly<Record<string, PrinterColumn[]>> = {
  Cluster: [
    { name: 'Region', type: 'string', jsonPath: '.spec.region' },
    { name: 'Zone', type: 'string', jsonPath: '.spec.zone' },
    { name: 'Group', type: 'string', jsonPath: '.spec.group' },
    { name: 'Gateway', type: 'string', jsonPath: '.spec.gatewayHost', description: 'the gateway host (port: .spec.gatewayPort)' },
    { name: 'Managed', type: 'string', jsonPath: cond('Managed') },
    { name: 'Message', type: 'string', jsonPath: '.status.conditions[0].message', priority: 1 },
    AGE,
  ],
  ServiceExport: [
    { name: 'Valid', type: 'string', jsonPath: cond('Valid') },
    { name: 'Conflict', type: 'string', jsonPath: cond('Conflict') },
    { name: 'Paths', type: 'string', jsonPath: '.spec.rules[*].path', priority: 1 },
    AGE,
  ],
  ServiceImport: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Ports', type: 'string', jsonPath: '.spec.ports[*].port' },
    { name: 'Clusters', type: 'string', jsonPath: '.spec.ports[*].endpoints[*].clusterKey' },
    AGE,
  ],
  GlobalTrafficPolicy: [
    { name: 'LB Type', type: 'string', jsonPath: '.spec.lbType' },
    { name: 'Targets', type: 'string', jsonPath: '.spec.targets[*].clusterKey' },
    AGE,
  ],
  Component: [{ name: 'Type', type: 'string', jsonPath: '.spec.type' }, AGE],
  Resiliency: [AGE],
  Configuration: [AGE],
  Subscription: [
    { name: 'PubSub', type: 'string', jsonPath: '.spec.pubsubname' },
    { name: 'Topic', type: 'string', jsonPath: '.spec.topic' },
    { name: 'Dead Letter', type: 'string', jsonPath: '.spec.deadLetterTopic', priority: 1 },
    AGE,
  ],
};


type Obj = { [key: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The Kubernetes kinds crossmesh serves: the columns of `crossmesh get` (as src/cli/commands/resources.ts prints them). */
export const CORE_PRINTER_COLUMNS: Readonly<Record<string, CorePrinterColumn[]>> = {
  Namespace: [{ name: 'Status', type: 'string', jsonPath: '.status.phase', value: (o: Obj) => o.status?.phase ?? 'Active' }, AGE],
  Service: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type', value: (o: Obj) => o.spec?.type ?? 'ClusterIP' },
    {
      name: 'Port(s)', type: 'string', jsonPath: '.spec.ports[*].port',
      value: (o: Obj) => ((o.spec?.ports ?? []) as Obj[]).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(','),
    },
    AGE,
  ],
  Endpoints: [
    {
      name: 'Endpoints', type: 'string', jsonPath: '.subsets[*].addresses[*].ip',
      value: (o: Obj) => ((o.subsets ?? []) as Obj[]).flatMap((s) => ((s.addresses ?? []) as Obj[]).flatMap((a) => ((s.ports ?? []) as Obj[]).map((p) => `${a.ip}:${p.port}`))).join(',') || '<none>',
    },
    AGE,
  ],
  Secret: [
    { name: 'Type', type: 'string', jsonPath: '.type', value: (o: Obj) => o.type ?? 'Opaque' },
    { name: 'Data', type: 'integer', jsonPath: '.data', value: (o: Obj) => String(Object.keys(o.data ?? {}).length) },
    AGE,
  ],
  ServiceAccount: [AGE],
  Lease: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, AGE],
};
