import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { statusFromError, type ResourcePath } from '../api/wire.js';
import type { ListResult, ObjectRef, ResourceStore } from '../store/types.js';
import type { HandlerContext } from './context.js';
import { parseListQuery, type ListQuery } from './list-options.js';
import { negotiate, notAcceptable, type ReadFormat } from './negotiate.js';
import { CONTINUE_EXPIRED, LIST_EXPIRED, encodeContinue } from './pagination.js';
import { notFound } from './refusals.js';
import { sendJson } from './status.js';
import { TableConverter, partialObjectMetadata } from './table.js';
import { serveWatch } from './watch.js';

// The read side: GET of one object, GET of a collection (pages, selectors, resourceVersion
// semantics), watch; each as JSON, a meta.k8s.io Table or PartialObjectMetadata per Accept.

/** Compiled once, when the API server module loads: the printer columns of every kind. */
const tables = new TableConverter();

/** How long a list or watch waits for a resourceVersion newer than the store's (Kubernetes: 3 s). */
const FUTURE_REVISION_WAIT_MS = 3000;

function formatFor(req: IncomingMessage, res: ServerResponse): ReadFormat | undefined {
  const fmt = negotiate(req.headers.accept);
  if (!fmt) {
    sendJson(res, 406, notAcceptable(req.headers.accept ?? ''));
    return undefined;
  }
  return fmt;
}

export function getObject(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, p: ResourcePath, ref: ObjectRef): void {
  const fmt = formatFor(req, res);
  if (!fmt) return;
  const obj = ctx.store.get(ref);
  if (!obj) throw notFound(p);
  if (fmt.as === 'Table') {
    const include = parseListQuery(new URL(req.url ?? '/', 'https://x').searchParams, p.kind).includeObject;
    return sendJson(res, 200, tables.table(p.kind, [obj], { resourceVersion: obj.metadata.resourceVersion }, include, fmt.apiVersion));
  }
  if (fmt.as === 'PartialObjectMetadata') return sendJson(res, 200, partialObjectMetadata(obj, fmt.apiVersion));
  sendJson(res, 200, obj);
}

export async function listOrWatch(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, url: URL, p: ResourcePath): Promise<void> {
  const fmt = formatFor(req, res);
  if (!fmt) return;
  const q = parseListQuery(url.searchParams, p.kind);
  if (q.watch) {
    if (q.resourceVersion && q.resourceVersion !== '0') await untilRevision(ctx.store, Number(q.resourceVersion));
    return serveWatch(ctx.store, req, res, {
      kind: p.kind,
      apiVersion: apiVersionOf(p),
      namespace: p.namespace,
      query: q,
      format: fmt,
      tables,
      bookmarkIntervalMs: ctx.bookmarkIntervalMs,
      traffic: ctx.traffic,
    });
  }
  let list: ListResult;
  try {
    list = await readList(ctx.store, p, q);
  } catch (err) {
    if (q.continue && toCrossmeshError(err).code === 'CM_ERR_GONE') {
      // Kubernetes offers an inconsistent continuation (at the current revision) in the 410.
      const status = statusFromError(new CrossmeshError('CM_ERR_GONE', CONTINUE_EXPIRED));
      const token = encodeContinue({ revision: -1, namespace: q.continue.namespace, name: q.continue.name });
      return sendJson(res, 410, { ...status, metadata: { continue: token } });
    }
    throw err;
  }
  const meta: { resourceVersion: string; continue?: string; remainingItemCount?: number } = { resourceVersion: list.resourceVersion };
  if (list.next) {
    const revision = Number(list.resourceVersion);
    meta.continue = encodeContinue({ revision: revision > 0 ? revision : -1, ...list.next });
    if (list.remainingItemCount !== undefined) meta.remainingItemCount = list.remainingItemCount;
  }
  if (fmt.as === 'Table') return sendJson(res, 200, tables.table(p.kind, list.items, meta, q.includeObject, fmt.apiVersion));
  if (fmt.as === 'PartialObjectMetadata') {
    return sendJson(res, 200, { kind: 'PartialObjectMetadataList', apiVersion: fmt.apiVersion, metadata: meta, items: list.items.map((o) => partialObjectMetadata(o, fmt.apiVersion)) });
  }
  sendJson(res, 200, { kind: `${p.kind.kind}List`, apiVersion: apiVersionOf(p), metadata: meta, items: list.items });
}

function apiVersionOf(p: ResourcePath): string {
  return p.group ? `${p.group}/${p.version}` : p.version;
}

/**
 * One list per Kubernetes' resourceVersion rules, as far as a store with one version per object
 * (and an event log) can: unset = now; "0" = any (now); R with NotOlderThan (or unset match and
 * no limit) = now once the store has reached R; R with Exact (or unset match with a limit, the
 * legacy rule) = the collection at R, rebuilt from the event log (410 when it no longer covers
 * R); continue = the next page at the first page's revision.
 */
async function readList(store: ResourceStore, p: ResourcePath, q: ListQuery): Promise<ListResult> {
  const ref = { storageKey: p.kind.storageKey, namespace: p.namespace };
  const filter = q.filter;
  if (q.continue) {
    const c = q.continue;
    const atRevision = c.revision > 0 ? c.revision : undefined;
    return store.list(ref, { atRevision, after: { namespace: c.namespace, name: c.name }, limit: q.limit, filter });
  }
  const rv = q.resourceVersion;
  if (rv === undefined || rv === '0') return store.list(ref, { limit: q.limit, filter });
  const revision = Number(rv);
  await untilRevision(store, revision);
  const exact = q.resourceVersionMatch === 'Exact' || (q.resourceVersionMatch === undefined && q.limit !== undefined);
  if (!exact) return store.list(ref, { limit: q.limit, filter });
  try {
    return store.list(ref, { atRevision: revision, limit: q.limit, filter });
  } catch (err) {
    if (toCrossmeshError(err).code === 'CM_ERR_GONE') throw new CrossmeshError('CM_ERR_GONE', `${LIST_EXPIRED} (resourceVersion ${rv}: ${toCrossmeshError(err).message})`);
    throw err;
  }
}

/** Resolves once the store is at `revision` or later; 504 (Kubernetes' "Too large resource version") after 3 s. */
function untilRevision(store: ResourceStore, revision: number): Promise<void> {
  if (store.revision() >= revision) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let stop: (() => void) | undefined;
    const timer = setTimeout(() => {
      stop?.();
      reject(new CrossmeshError('CM_ERR_TIMEOUT', `Too large resource version: ${revision}, current: ${store.revision()}`));
    }, FUTURE_REVISION_WAIT_MS);
    stop = store.watch({}, () => {
      if (store.revision() < revision) return;
      clearTimeout(timer);
      stop?.();
      resolve();
    });
  });
}
