import { KINDS, type KindInfo } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import { CORE_PRINTER_COLUMNS, PRINTER_COLUMNS, type CorePrinterColumn } from '../api/printer-columns.js';
import { compileJsonPath } from './jsonpath.js';

/**
 * meta.k8s.io Table output (what `kubectl get` asks for with `Accept: application/json;as=Table;
 * g=meta.k8s.io;v=v1`): the columns of `crossmesh get` (api/printer-columns.ts), Name first,
 * compiled once per kind at start; a request only walks the compiled paths. Each row carries the
 * object as PartialObjectMetadata (`includeObject=Metadata`, the default), whole (`Object`) or
 * not at all (`None`).
 */
export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export interface TableRow {
  cells: unknown[];
  object?: unknown;
}

export interface Table {
  kind: 'Table';
  apiVersion: string;
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  columnDefinitions: ColumnDefinition[];
  rows: TableRow[];
}

interface CompiledKind {
  columns: ColumnDefinition[];
  cells: Array<(o: KubeObject, now: number) => unknown>;
}

const NAME_COLUMN: ColumnDefinition = {
  name: 'Name', type: 'string', format: 'name', priority: 0,
  description: 'Name must be unique within a namespace (or, for cluster-scoped kinds, the cluster). https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
};

/** Kubernetes' HumanDuration (apimachinery util/duration), as kubectl prints ages. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24) % 365;
    return days === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${days}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function compileColumn(c: CorePrinterColumn): (o: KubeObject, now: number) => unknown {
  if (c.value) {
    const value = c.value;
    return (o) => value(o as unknown as Record<string, unknown>);
  }
  const path = compileJsonPath(c.jsonPath);
  switch (c.type) {
    case 'date':
      return (o, now) => {
        const v = path(o)[0];
        const t = typeof v === 'string' ? Date.parse(v) : NaN;
        return Number.isNaN(t) ? null : humanDuration(now - t);
      };
    case 'integer':
    case 'number':
      return (o) => {
        const v = path(o)[0];
        return typeof v === 'number' ? v : null;
      };
    case 'boolean':
      return (o) => {
        const v = path(o)[0];
        return typeof v === 'boolean' ? v : null;
      };
    default:
      return (o) => {
        const vs = path(o);
        if (vs.length === 0) return null;
        return vs.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(',');
      };
  }
}

export class TableConverter {
  private readonly kinds = new Map<string, CompiledKind>();

  constructor(kinds: readonly KindInfo[] = KINDS) {
    for (const k of kinds) {
      const cols: CorePrinterColumn[] = CORE_PRINTER_COLUMNS[k.kind] ?? PRINTER_COLUMNS[k.kind] ?? [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
      this.kinds.set(k.storageKey, {
        columns: [NAME_COLUMN, ...cols.map((c) => ({ name: c.name, type: c.type, format: '', description: c.description ?? c.name, priority: c.priority ?? 0 }))],
        cells: [(o) => o.metadata.name, ...cols.map(compileColumn)],
      });
    }
  }

  /** A Table of `objects` (a list, one object, or one watch event's object). */
  table(kind: KindInfo, objects: KubeObject[], meta: Table['metadata'], include: IncludeObject, apiVersion = 'meta.k8s.io/v1', now = Date.now()): Table {
    const c = this.kinds.get(kind.storageKey)!;
    return {
      kind: 'Table',
      apiVersion,
      metadata: meta,
      columnDefinitions: c.columns,
      rows: objects.map((o) => this.row(c, o, include, apiVersion, now)),
    };
  }

  private row(c: CompiledKind, o: KubeObject, include: IncludeObject, apiVersion: string, now: number): TableRow {
    const cells = c.cells.map((f) => f(o, now));
    if (include === 'None') return { cells };
    if (include === 'Object') return { cells, object: o };
    return { cells, object: partialObjectMetadata(o, apiVersion) };
  }
}

export function partialObjectMetadata(o: KubeObject, apiVersion = 'meta.k8s.io/v1'): { kind: 'PartialObjectMetadata'; apiVersion: string; metadata: KubeObject['metadata'] } {
  return { kind: 'PartialObjectMetadata', apiVersion, metadata: o.metadata };
}
