import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KindInfo } from '../api/index.js';
import type { KubeObject } from '../api/types.js';
import type { ResourceStore, StoredWatchEvent } from '../store/types.js';
import { statusFromError } from '../api/wire.js';
import type { ListQuery } from './list-options.js';
import type { ReadFormat } from './negotiate.js';
import { partialObjectMetadata, type TableConverter } from './table.js';
import { ApiTraffic } from './traffic.js';

export interface WatchRequest {
  kind: KindInfo;
  /** The apiVersion of the request's path (bookmark objects carry it). */
  apiVersion: string;
  namespace?: string;
  query: ListQuery;
  format: ReadFormat;
  tables: TableConverter;
  /** How often a BOOKMARK is sent when asked for (ms). */
  bookmarkIntervalMs: number;
  /** Counts the events written. */
  traffic?: ApiTraffic;
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}\u0000${o.metadata.name}`;

/**
 * Streams newline-delimited watch events for one collection, as Kubernetes does:
 *  - where it starts: resourceVersion unset or "0" = ADDED for every existing object, then changes
 *    (so does sendInitialEvents=true, which ends the initial events with a BOOKMARK annotated
 *    `k8s.io/initial-events-end: "true"` when bookmarks are allowed, for streaming lists);
 *    resourceVersion R = every change after R (replayed from the store's event log, which
 *    survives restarts with the sqlite store), sendInitialEvents=false without R = changes from now;
 *  - selectors: an object that starts matching arrives as ADDED, one that stops as DELETED;
 *  - each event's object as JSON, a one-row Table (`kubectl get -w`) or PartialObjectMetadata;
 *  - BOOKMARKs with the current resourceVersion every bookmarkIntervalMs when allowed;
 *  - timeoutSeconds ends the stream; a revision older than the log = an ERROR event carrying
 *    the 410 Expired Status, which tells the client to list again.
 * Replay and live events come from the store's synchronous subscription in one ordered
 * sequence, so nothing is lost between a client's list and its watch.
 */
export function serveWatch(store: ResourceStore, req: IncomingMessage, res: ServerResponse, w: WatchRequest): void {
  const q = w.query;
  const fmt = w.format;
  const contentType = fmt.as === 'Table' || fmt.as === 'PartialObjectMetadata' ? `application/json;as=${fmt.as};g=meta.k8s.io;v=${fmt.apiVersion.split('/')[1]}` : 'application/json';
  res.writeHead(200, {
    'content-type': contentType,
    'transfer-encoding': 'chunked',
    'cache-control': 'no-cache',
  });
  res.flushHeaders();
  const render = (obj: KubeObject): unknown => {
    if (fmt.as === 'Table') return w.tables.table(w.kind, [obj], { resourceVersion: obj.metadata.resourceVersion }, q.includeObject, fmt.apiVersion);
    if (fmt.as === 'PartialObjectMetadata') return partialObjectMetadata(obj, fmt.apiVersion);
    return obj;
  };
  const traffic = w.traffic;
  const client = ApiTraffic.clientOf(req.headers['user-agent']);
  const write = (type: string, object: unknown) => {
    traffic?.watchEvent(client);
    res.write(JSON.stringify({ type, object }) + '\n');
  };
  const bookmarkObject = (rv: number, annotations?: Record<string, string>): unknown => {
    const metadata = { resourceVersion: String(rv), ...(annotations ? { annotations } : {}) };
    if (fmt.as === 'Table') return { kind: 'Table', apiVersion: fmt.apiVersion, metadata, columnDefinitions: [], rows: [] };
    if (fmt.as === 'PartialObjectMetadata') return { kind: 'PartialObjectMetadata', apiVersion: fmt.apiVersion, metadata };
    return { kind: w.kind.kind, apiVersion: w.apiVersion, metadata };
  };
  const name = q.name;
  const filter = q.filter;
  const matches = (obj: KubeObject) => (name === undefined || obj.metadata.name === name) && (!filter || filter(obj));
  // With a selector, the objects the client has been told about: a change that makes one stop
  // matching is its DELETED, one that makes another start matching its ADDED.
  const known = filter ? new Set<string>() : undefined;

  let unsubscribe: (() => void) | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let lastRevision = store.revision();
  const finish = () => {
    unsubscribe?.();
    unsubscribe = undefined;
    if (bookmarkTimer) clearInterval(bookmarkTimer);
    if (timeoutTimer) clearTimeout(timeoutTimer);
  };
  req.on('close', finish);
  res.on('close', finish);

  const ref = { storageKey: w.kind.storageKey, namespace: w.namespace };
  const rv = q.resourceVersion;
  const initialEvents = q.sendInitialEvents ?? (rv === undefined || rv === '0');
  let fromRevision: number;
  try {
    if (initialEvents) {
      const list = store.list(ref);
      for (const obj of list.items) {
        if (!matches(obj)) continue;
        known?.add(keyOf(obj));
        write('ADDED', render(obj));
      }
      fromRevision = Number(list.resourceVersion);
      if (q.sendInitialEvents && q.allowWatchBookmarks) write('BOOKMARK', bookmarkObject(fromRevision, { 'k8s.io/initial-events-end': 'true' }));
    } else if (rv === undefined) {
      fromRevision = store.revision();
    } else {
      fromRevision = Number(rv);
      // Who matched at R decides ADDED/DELETED for selector watches; the list at R is rebuilt from the log.
      if (known) {
        try {
          for (const obj of store.list(ref, { atRevision: Math.min(fromRevision, store.revision()), filter: matches }).items) known.add(keyOf(obj));
        } catch {
          // Not rebuildable: the watch below is Gone too, or every later change is passed on as it comes.
        }
      }
    }
    unsubscribe = store.watch({ ...ref, fromRevision }, (ev: StoredWatchEvent) => {
      lastRevision = ev.revision;
      const obj = ev.object;
      const now = matches(obj);
      if (!known) {
        if (now) write(ev.type, render(obj));
        return;
      }
      const k = keyOf(obj);
      const had = known.has(k);
      if (ev.type === 'DELETED') {
        if (had) write('DELETED', render(obj));
        known.delete(k);
      } else if (now) {
        known.add(k);
        write(had ? 'MODIFIED' : 'ADDED', render(obj));
      } else if (had) {
        known.delete(k);
        write('DELETED', render(obj));
      }
    });
  } catch (err) {
    write('ERROR', statusFromError(err));
    res.end();
    return;
  }
  if (q.allowWatchBookmarks) {
    bookmarkTimer = setInterval(() => {
      write('BOOKMARK', bookmarkObject(Math.max(lastRevision, store.revision())));
    }, w.bookmarkIntervalMs);
    bookmarkTimer.unref();
  }
  if (q.timeoutSeconds) {
    timeoutTimer = setTimeout(() => {
      finish();
      res.end();
    }, q.timeoutSeconds * 1000);
    timeoutTimer.unref();
  }
}
