import type { KubeObject } from '../api/types.js';
import { getCondition } from '../api/conditions.js';

/** Labels/annotations that mark what the control plane wrote, so it only ever deletes its own. */
export const MANAGED_BY_LABEL = 'multicluster.flomesh.io/managed-by';
export const MANAGED_BY_VALUE = 'crossmesh-control-plane';

/** What the control plane knows of one member at reconcile time. */
export interface MemberSnapshot {
  clusterKey: string;
  gatewayHost: string;
  gatewayPort: number;
  /** The member gateway's mesh (tunnel) port, when its Cluster names one. */
  meshPort?: number;
  /** True once the member's exports/services were listed: its contributions are known. */
  synced: boolean;
  /** `namespace/name` → object (ServiceExports and Services are named alike, so one key finds both). */
  exports: ReadonlyMap<string, KubeObject>;
  services: ReadonlyMap<string, KubeObject>;
  /** ServiceImports currently in the member (to preserve endpoints of unreachable exporters). */
  imports: ReadonlyMap<string, KubeObject>;
}

export interface ImportEndpoint {
  clusterKey: string;
  target: { host: string; ip?: string; port: number; path: string; meshPort?: number };
}

export interface ImportPort {
  name?: string;
  protocol: string;
  port: number;
  endpoints: ImportEndpoint[];
}

export interface DesiredImport {
  namespace: string;
  name: string;
  spec: { type: 'ClusterSetIP' | 'Headless'; serviceAccountName: string; ports: ImportPort[] };
}

/** Conflict verdict for one export, written to its status by the controller. */
export interface ExportVerdict {
  clusterKey: string;
  namespace: string;
  name: string;
  conflict: boolean;
  message: string;
}

export interface Plan {
  /** clusterKey → (ns/name → import); with `keys`, only imports of those services. */
  imports: Map<string, Map<string, DesiredImport>>;
  verdicts: ExportVerdict[];
}

interface Exporter {
  member: MemberSnapshot;
  export: KubeObject;
  service: KubeObject;
  type: 'ClusterSetIP' | 'Headless';
}

const IPV4 = /^(\d{1,3}\.){3}\d{1,3}$/;

function isExportable(exp: KubeObject): boolean {
  return getCondition(exp, 'Valid')?.status === 'True' && !exp.metadata.deletionTimestamp;
}

function portsOf(svc: KubeObject): { name?: string; port: number; protocol: string }[] {
  return ((svc.spec?.ports ?? []) as { name?: string; port: number; protocol?: string }[]).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' }));
}

/** Why `b` can't join the import `a` defines, or undefined when it can (new ports merge). */
function conflictReason(a: Exporter, b: Exporter): string | undefined {
  if (a.type !== b.type) return `service type ${b.type} differs from ${a.type} exported first by ${a.member.clusterKey}`;
  const first = new Map(portsOf(a.service).map((p) => [p.port, p.protocol]));
  for (const p of portsOf(b.service)) {
    const proto = first.get(p.port);
    if (proto !== undefined && proto !== p.protocol) return `port ${p.port}/${p.protocol} differs from ${p.port}/${proto} exported first by ${a.member.clusterKey}`;
  }
  return undefined;
}

function exportOrder(a: Exporter, b: Exporter): number {
  const ta = a.export.metadata.creationTimestamp ?? '';
  const tb = b.export.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.member.clusterKey < b.member.clusterKey ? -1 : a.member.clusterKey > b.member.clusterKey ? 1 : 0;
}

/**
 * Computes, from every member's exports, what each member's ServiceImports must be. Pure, so
 * the rules (first exporter wins, ports merge, targetClusters, the exporter does not import
 * itself, an unreachable exporter keeps its last-known endpoints) are tested without servers.
 * With `keys` (`namespace/name` of services that changed) only those services are planned: a
 * service's imports depend only on the exports and Services of that name, so the result for
 * them is what the whole plan would say (desired.test.ts checks it).
 */
export function plan(members: MemberSnapshot[], keys?: ReadonlySet<string>): Plan {
  const byService = new Map<string, Exporter[]>();
  const consider = (m: MemberSnapshot, key: string, exp: KubeObject) => {
    if (!isExportable(exp)) return;
    const service = m.services.get(key);
    if (!service) return;
    const type = service.spec?.clusterIP === 'None' ? 'Headless' : 'ClusterSetIP';
    const list = byService.get(key) ?? [];
    list.push({ member: m, export: exp, service, type });
    byService.set(key, list);
  };
  for (const m of members) {
    if (!m.synced) continue;
    if (keys) {
      for (const key of keys) {
        const exp = m.exports.get(key);
        if (exp) consider(m, key, exp);
      }
      continue;
    }
    for (const [key, exp] of m.exports) consider(m, key, exp);
  }
  return planFrom(members, byService, keys);
}

function planFrom(members: MemberSnapshot[], byService: Map<string, Exporter[]>, keys: ReadonlySet<string> | undefined): Plan {
  const verdicts: ExportVerdict[] = [];
  const accepted = new Map<string, Exporter[]>();
  for (const [key, exporters] of byService) {
    exporters.sort(exportOrder);
    const ok: Exporter[] = [];
    for (const e of exporters) {
      const reason = ok.length ? conflictReason(ok[0], e) : undefined;
      verdicts.push({
        clusterKey: e.member.clusterKey,
        namespace: e.export.metadata.namespace!,
        name: e.export.metadata.name,
        conflict: reason !== undefined,
        message: reason ? `ServiceExport ${key} conflicts, ${reason}` : `ServiceExport ${key} is accepted.`,
      });
      if (!reason) ok.push(e);
    }
    accepted.set(key, ok);
  }

  const imports = new Map<string, Map<string, DesiredImport>>();
  for (const m of members) {
    const mine = new Map<string, DesiredImport>();
    imports.set(m.clusterKey, mine);
    for (const [key, exporters] of accepted) {
      const slash = key.indexOf('/');
      const namespace = key.slice(0, slash);
      const name = key.slice(slash + 1);
      const contributing = exporters.filter((e) => e.member !== m && targets(e.export, m.clusterKey));
      if (contributing.length === 0) continue;
      const ports = new Map<number, ImportPort>();
      for (const e of contributing) addEndpoints(ports, e);
      mine.set(key, {
        namespace,
        name,
        spec: {
          type: contributing[0].type,
          serviceAccountName: (contributing[0].export.spec?.serviceAccountName as string | undefined) ?? '*',
          ports: [...ports.values()].sort((a, b) => a.port - b.port),
        },
      });
    }
  }
  preserveUnreachable(members, imports, keys);
  return { imports, verdicts };
}

function targets(exp: KubeObject, clusterKey: string): boolean {
  const list = exp.spec?.targetClusters as string[] | undefined;
  return !list || list.length === 0 || list.includes(clusterKey);
}

function addEndpoints(ports: Map<number, ImportPort>, e: Exporter): void {
  const svcPorts = new Map(portsOf(e.service).map((p) => [p.port, p]));
  for (const rule of (e.export.spec?.rules ?? []) as { portNumber: number; path: string }[]) {
    const sp = svcPorts.get(rule.portNumber);
    let port = ports.get(rule.portNumber);
    if (!port) {
      port = { ...(sp?.name ? { name: sp.name } : {}), protocol: sp?.protocol ?? 'TCP', port: rule.portNumber, endpoints: [] };
      ports.set(rule.portNumber, port);
    }
    if (port.endpoints.some((x) => x.clusterKey === e.member.clusterKey)) continue;
    const host = e.member.gatewayHost;
    port.endpoints.push({
      clusterKey: e.member.clusterKey,
      target: { host, ...(IPV4.test(host) ? { ip: host } : {}), port: e.member.gatewayPort, path: rule.path, ...(e.member.meshPort !== undefined ? { meshPort: e.member.meshPort } : {}) },
    });
  }
  for (const p of ports.values()) p.endpoints.sort((a, b) => (a.clusterKey < b.clusterKey ? -1 : 1));
}

/**
 * An exporter the control plane can't reach right now (or hasn't listed since it started) keeps
 * the endpoints it already had in other members' imports: a control-plane restart or a network
 * blip must not take working routes away.
 */
function preserveUnreachable(members: MemberSnapshot[], imports: Map<string, Map<string, DesiredImport>>, keys: ReadonlySet<string> | undefined): void {
  const unreachable = new Set(members.filter((m) => !m.synced).map((m) => m.clusterKey));
  if (unreachable.size === 0) return;
  for (const m of members) {
    const mine = imports.get(m.clusterKey)!;
    const currents = keys ? [...keys].map((k) => [k, m.imports.get(k)] as const) : [...m.imports];
    for (const [key, current] of currents) {
      if (!current) continue;
      for (const p of (current.spec?.ports ?? []) as ImportPort[]) {
        for (const ep of p.endpoints ?? []) {
          if (!unreachable.has(ep.clusterKey)) continue;
          let imp = mine.get(key);
          if (!imp) {
            imp = { namespace: current.metadata.namespace!, name: current.metadata.name, spec: { type: current.spec?.type ?? 'ClusterSetIP', serviceAccountName: current.spec?.serviceAccountName ?? '*', ports: [] } };
            mine.set(key, imp);
          }
          let port = imp.spec.ports.find((x) => x.port === p.port);
          if (!port) {
            port = { ...(p.name ? { name: p.name } : {}), protocol: p.protocol ?? 'TCP', port: p.port, endpoints: [] };
            imp.spec.ports.push(port);
            imp.spec.ports.sort((a, b) => a.port - b.port);
          }
          if (!port.endpoints.some((x) => x.clusterKey === ep.clusterKey)) {
            port.endpoints.push(ep);
            port.endpoints.sort((a, b) => (a.clusterKey < b.clusterKey ? -1 : 1));
          }
        }
      }
    }
  }
}
