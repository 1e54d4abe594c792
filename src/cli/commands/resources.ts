import { readFileSync } from 'node:fs';
import { resolveKindName, kindFor, type KindInfo } from '../../api/index.js';
import type { KubeObject } from '../../api/types.js';
import { CrossmeshError } from '../../errors.js';
import type { ApiClient } from '../../client/api-client.js';
import { age, formatTable, toYaml } from '../output.js';

const NAMESPACE_KIND = () => kindFor('v1', 'Namespace');
/** zod schemas and the YAML parser: only for the commands that validate or parse (`get` does neither). */
const validation = () => import('../../api/validation.js');

function readSource(file: string): string {
  try {
    return file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new CrossmeshError('CM_ERR_USAGE', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function displayName(kind: KindInfo, obj: KubeObject): string {
  return `${kind.plural}${kind.group ? '.' + kind.group : ''}/${obj.metadata.name}`;
}

/**
 * `crossmesh apply -f`: every document is validated before anything is sent, and namespaces are
 * checked up front (a namespace may come from an earlier document of the same file), so a file
 * with one bad document changes nothing.
 */
export async function applyFile(client: ApiClient, file: string, defaultNamespace: string | undefined): Promise<string[]> {
  const { parseManifests } = await validation();
  const docs = parseManifests(readSource(file), { file, defaultNamespace });
  const created = new Set(docs.filter((d) => d.object.kind === 'Namespace').map((d) => d.object.metadata.name));
  for (const d of docs) {
    const ns = d.object.metadata.namespace;
    const kind = kindFor(d.object.apiVersion, d.object.kind);
    if (!kind.namespaced || !ns || created.has(ns)) continue;
    if (!(await client.get(NAMESPACE_KIND(), ns))) {
      throw new CrossmeshError('CM_ERR_NOT_FOUND', `${file}: document ${d.document} (line ${d.line}), ${d.object.kind}/${d.object.metadata.name}: namespace "${ns}" not found; create it with \`crossmesh create namespace ${ns}\` (nothing was applied)`);
    }
    created.add(ns);
  }
  const lines: string[] = [];
  for (const d of docs) {
    const kind = kindFor(d.object.apiVersion, d.object.kind);
    const before = await client.get(kind, d.object.metadata.name, d.object.metadata.namespace);
    const after = await client.apply(kind, d.object);
    const verb = !before ? 'created' : before.metadata.resourceVersion === after.metadata.resourceVersion ? 'unchanged' : 'configured';
    lines.push(`${displayName(kind, after)} ${verb}`);
  }
  return lines;
}

export async function deleteFile(client: ApiClient, file: string, defaultNamespace: string | undefined): Promise<string[]> {
  const { parseManifests } = await validation();
  const docs = parseManifests(readSource(file), { file, defaultNamespace });
  const lines: string[] = [];
  for (const d of [...docs].reverse()) {
    const kind = kindFor(d.object.apiVersion, d.object.kind);
    const gone = await client.delete(kind, d.object.metadata.name, d.object.metadata.namespace);
    lines.push(gone ? `${displayName(kind, d.object)} deleted` : `${displayName(kind, d.object)} not found`);
  }
  return lines.reverse();
}

export async function deleteByName(client: ApiClient, kindName: string, names: string[], namespace: string): Promise<string[]> {
  const kind = resolveKindName(kindName);
  const lines: string[] = [];
  for (const name of names) {
    const gone = await client.delete(kind, name, kind.namespaced ? namespace : undefined);
    if (!gone) throw new CrossmeshError('CM_ERR_NOT_FOUND', `${kind.plural} "${name}" not found${kind.namespaced ? ` in namespace "${namespace}"` : ''}`);
    lines.push(`${displayName(kind, gone)} deleted`);
  }
  return lines;
}

export interface GetOptions {
  namespace: string;
  allNamespaces: boolean;
  output?: string;
}

export async function get(client: ApiClient, kindName: string, name: string | undefined, opts: GetOptions): Promise<string> {
  const kind = resolveKindName(kindName);
  const ns = kind.namespaced && !opts.allNamespaces ? opts.namespace : undefined;
  let items: KubeObject[];
  let single: KubeObject | undefined;
  if (name) {
    single = await client.get(kind, name, kind.namespaced ? opts.namespace : undefined);
    if (!single) throw new CrossmeshError('CM_ERR_NOT_FOUND', `${kind.plural} "${name}" not found${kind.namespaced ? ` in namespace "${opts.namespace}"` : ''}`);
    items = [single];
  } else {
    items = (await client.list(kind, ns)).items;
  }
  const output = opts.output ?? '';
  if (output === 'json' || output === 'yaml') {
    const value = single ?? { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items };
    return output === 'json' ? JSON.stringify(value, null, 4) + '\n' : await toYaml(value);
  }
  if (output !== '' && output !== 'wide' && output !== 'name') {
    throw new CrossmeshError('CM_ERR_USAGE', `unknown output format "${output}"; use yaml, json, wide or name`);
  }
  if (output === 'name') return items.map((o) => `${kind.singular}${kind.group ? '.' + kind.group : ''}/${o.metadata.name}`).join('\n') + '\n';
  if (items.length === 0) {
    return kind.namespaced && !opts.allNamespaces ? `No resources found in ${opts.namespace} namespace.\n` : 'No resources found\n';
  }
  const showNs = kind.namespaced && opts.allNamespaces;
  const extra = columnsFor(kind, output === 'wide');
  const headers = [...(showNs ? ['NAMESPACE'] : []), 'NAME', ...extra.map((c) => c.header), 'AGE'];
  const rows = items.map((o) => [
    ...(showNs ? [o.metadata.namespace ?? ''] : []),
    o.metadata.name,
    ...extra.map((c) => c.value(o)),
    age(o.metadata.creationTimestamp),
  ]);
  return formatTable(headers, rows);
}

interface Column { header: string; value: (o: KubeObject) => string }

function condition(o: KubeObject, type: string): string {
  const c = (o.status?.conditions as { type: string; status: string }[] | undefined)?.find((x) => x.type === type);
  return c?.status ?? '';
}

/** Per-kind columns, as kubectl's printers show for the reference's CRDs. */
function columnsFor(kind: KindInfo, wide: boolean): Column[] {
  switch (kind.kind) {
    case 'Service':
      return [
        { header: 'TYPE', value: (o) => o.spec?.type ?? 'ClusterIP' },
        { header: 'PORT(S)', value: (o) => (o.spec?.ports ?? []).map((p: { port: number; protocol?: string }) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',') },
      ];
    case 'Endpoints':
      return [{ header: 'ENDPOINTS', value: (o) => ((o.subsets as { addresses?: { ip: string }[]; ports?: { port: number }[] }[] | undefined) ?? []).flatMap((s) => (s.addresses ?? []).flatMap((a) => (s.ports ?? []).map((p) => `${a.ip}:${p.port}`))).join(',') || '<none>' }];
    case 'Cluster':
      return [
        { header: 'REGION', value: (o) => o.spec?.region ?? '' },
        { header: 'ZONE', value: (o) => o.spec?.zone ?? '' },
        { header: 'GROUP', value: (o) => o.spec?.group ?? '' },
        { header: 'GATEWAY', value: (o) => `${o.spec?.gatewayHost}:${o.spec?.gatewayPort}` },
        { header: 'MANAGED', value: (o) => condition(o, 'Managed') },
        ...(wide ? [{ header: 'MESSAGE', value: (o: KubeObject) => (o.status?.conditions?.[0]?.message as string | undefined) ?? '' }] : []),
      ];
    case 'ServiceExport':
      return [
        { header: 'VALID', value: (o) => condition(o, 'Valid') },
        { header: 'CONFLICT', value: (o) => condition(o, 'Conflict') },
        ...(wide ? [{ header: 'PATHS', value: (o: KubeObject) => (o.spec?.rules ?? []).map((r: { path: string; portNumber: number }) => `${r.portNumber}${r.path}`).join(',') }] : []),
      ];
    case 'ServiceImport':
      return [
        { header: 'TYPE', value: (o) => o.spec?.type ?? '' },
        { header: 'PORTS', value: (o) => (o.spec?.ports ?? []).map((p: { port: number }) => String(p.port)).join(',') },
        { header: 'CLUSTERS', value: (o) => [...new Set((o.spec?.ports ?? []).flatMap((p: { endpoints?: { clusterKey: string }[] }) => (p.endpoints ?? []).map((e) => e.clusterKey.split('/').pop())))].join(',') },
      ];
    case 'GlobalTrafficPolicy':
      return [
        { header: 'LB TYPE', value: (o) => o.spec?.lbType ?? 'Locality' },
        { header: 'TARGETS', value: (o) => (o.spec?.targets ?? []).map((t: { clusterKey: string; weight?: number }) => `${t.clusterKey.split('/').pop()}${t.weight === undefined ? '' : ':' + t.weight}`).join(',') },
      ];
    case 'Component':
      return [{ header: 'TYPE', value: (o) => o.spec?.type ?? '' }];
    case 'Subscription':
      return [
        { header: 'PUBSUB', value: (o) => o.spec?.pubsubname ?? '' },
        { header: 'TOPIC', value: (o) => o.spec?.topic ?? '' },
        ...(wide ? [{ header: 'DEAD LETTER', value: (o: KubeObject) => (o.spec?.deadLetterTopic as string | undefined) ?? '' }] : []),
      ];
    case 'Secret':
      return [
        { header: 'TYPE', value: (o) => (o.type as string | undefined) ?? 'Opaque' },
        { header: 'DATA', value: (o) => String(Object.keys((o.data as object | undefined) ?? {}).length) },
      ];
    case 'Namespace':
      return [{ header: 'STATUS', value: (o) => o.status?.phase ?? 'Active' }];
    default:
      return [];
  }
}

export async function createNamespace(client: ApiClient, name: string): Promise<string> {
  const { validateObject } = await validation();
  const obj = validateObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  await client.create(NAMESPACE_KIND(), obj);
  return `namespace/${name} created`;
}

/** `create secret generic NAME --from-literal=K=V`: the value is base64-encoded into `data`, as kubectl does. */
export async function createSecret(client: ApiClient, name: string, namespace: string, literals: string[]): Promise<string> {
  const data: Record<string, string> = {};
  for (const lit of literals) {
    const eq = lit.indexOf('=');
    if (eq <= 0) throw new CrossmeshError('CM_ERR_USAGE', `--from-literal "${lit}": expected KEY=VALUE`);
    const key = lit.slice(0, eq);
    if (key in data) throw new CrossmeshError('CM_ERR_USAGE', `--from-literal: key "${key}" given twice`);
    data[key] = Buffer.from(lit.slice(eq + 1)).toString('base64');
  }
  const { validateObject } = await validation();
  const obj = validateObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', data });
  await client.create(kindFor('v1', 'Secret'), obj);
  return `secret/${name} created`;
}
